//! Evidence bundles (`vellum-bundle/v1`): a self-contained, streamable
//! export of a time window of the log, with every event's inclusion proof
//! against one signed (and witnessed) checkpoint. See `spec/bundle.md`.
//!
//! A bundle is newline-delimited JSON: one header line (manifest,
//! checkpoint note, optional consistency proof), then records in index
//! order (`before`, `event`..., `after`), then an `end` line. Each event is
//! embedded as its exact leaf bytes, so `jq` can read it and the verifier
//! can hash it. [`BundleCheck`] verifies one record at a time, so memory
//! does not grow with the bundle.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::checkpoint::Checkpoint;
use crate::event::VERDICTS;
use crate::hash::{leaf_hash, Hash};
use crate::leaf::check_leaf_facts;
use crate::merkle::{verify_consistency, verify_inclusion};
use crate::note::{Note, Verified, VerifierKey};
use crate::proof::{verify_checkpoint, ProofFileError};
use crate::time::parse_utc_millis;

/// The `format` of the header line.
pub const FORMAT: &str = "vellum-bundle/v1";
/// The event schema the bundle's leaves follow.
pub const SCHEMA: &str = "vellum-event/v1";

/// Which events of the window an export holds; every field given must match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// `agent` equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// `principal` equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// `owner` equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `session` equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// `rule` equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `verdict` equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
}

impl Filter {
    /// The filterable fields, in the order of the struct.
    pub const FIELDS: [&'static str; 6] =
        ["agent", "principal", "owner", "session", "rule", "verdict"];

    /// The filter's value for `field`, if set.
    pub fn get(&self, field: &str) -> Option<&str> {
        match field {
            "agent" => self.agent.as_deref(),
            "principal" => self.principal.as_deref(),
            "owner" => self.owner.as_deref(),
            "session" => self.session.as_deref(),
            "rule" => self.rule.as_deref(),
            "verdict" => self.verdict.as_deref(),
            _ => None,
        }
    }

    /// Sets `field` (one of [`Filter::FIELDS`]); false for another name.
    pub fn set(&mut self, field: &str, value: String) -> bool {
        let slot = match field {
            "agent" => &mut self.agent,
            "principal" => &mut self.principal,
            "owner" => &mut self.owner,
            "session" => &mut self.session,
            "rule" => &mut self.rule,
            "verdict" => &mut self.verdict,
            _ => return false,
        };
        *slot = Some(value);
        true
    }

    /// True when nothing is filtered: the export is the whole window.
    pub fn is_empty(&self) -> bool {
        Self::FIELDS.iter().all(|f| self.get(f).is_none())
    }

    /// Whether a checked leaf's facts match every field given.
    pub fn matches_facts(&self, event: &crate::leaf::LeafFacts) -> bool {
        Self::FIELDS.iter().all(|f| match self.get(f) {
            None => true,
            Some(want) => event.get(f) == Some(want),
        })
    }
}

/// The window exported, as times and as the index range they resolve to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Inclusive start of the window (`logged_at` ≥ from); none: the log's start.
    pub from: Option<String>,
    /// Exclusive end of the window (`logged_at` < to); none: the checkpoint.
    pub to: Option<String>,
    /// First index of the window.
    pub first_index: u64,
    /// One past the last index of the window (at most the checkpoint size).
    pub end_index: u64,
    /// True for an unfiltered export: every index of the range is present.
    pub complete: bool,
}

/// What the bundle claims to hold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The log's origin.
    pub origin: String,
    /// The log's verifier key.
    pub log_key: String,
    /// Event schema version of the leaves.
    pub schema: String,
    /// When the log wrote the bundle (RFC 3339 UTC).
    pub exported_at: String,
    /// The window.
    pub scope: Scope,
    /// The filter (empty for a complete export).
    pub filter: Filter,
    /// Events by verdict, plus `events` for the total.
    pub counts: BTreeMap<String, u64>,
    /// Size of the checkpoint every proof is against.
    pub checkpoint_size: u64,
}

/// A consistency proof from an earlier checkpoint the auditor holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Consistency {
    /// Size of the earlier checkpoint.
    pub from_size: u64,
    /// RFC 9162 proof hashes, base64.
    pub proof: Vec<String>,
}

/// The first line of a bundle.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// What the bundle holds.
    pub manifest: Manifest,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
    /// Present when the export asked for `since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
    /// The log's signed statement of this manifest: a signed note whose
    /// text is [`manifest_statement`] (see `spec/bundle.md`).
    pub manifest_signature: String,
}

/// First line of the note a log signs over a bundle's manifest; it cannot
/// be read as a checkpoint (its second line is not a tree size).
pub const MANIFEST_HEADER: &str = "vellum-bundle/v1 manifest";

/// The note text a log signs for `manifest`: the header, then
/// `sha256:<hex of SHA-256 over the manifest's RFC 8785 form>`, then the
/// checkpoint size and root it was exported under.
pub fn manifest_statement(manifest: &Manifest, checkpoint: &Checkpoint) -> String {
    let v = serde_json::to_value(manifest).unwrap_or_default();
    let canon = crate::jcs::canonicalize(&v).unwrap_or_default();
    format!(
        "{MANIFEST_HEADER}\nsha256:{}\n{} {}\n",
        Hash(crate::hash::sha256(&canon)).to_hex(),
        checkpoint.size,
        checkpoint.root.to_base64()
    )
}

/// The role of a record.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The entry just before the window (proves where it starts).
    Before,
    /// An exported event.
    Event,
    /// The entry just after the window (proves where it ends).
    After,
    /// The last line: how many events were written.
    End,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Before => "before",
            Kind::Event => "event",
            Kind::After => "after",
            Kind::End => "end",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    kind: Kind,
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    proof: Option<Vec<&'a str>>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(default)]
    events: Option<u64>,
}

/// One record line (`before`, `event` or `after`), newline included.
pub fn record_line(kind: Kind, index: u64, proof: &[Hash], leaf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(leaf.len() + 64 + proof.len() * 47);
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(kind.name().as_bytes());
    out.extend_from_slice(format!("\",\"index\":{index},\"proof\":[").as_bytes());
    for (i, h) in proof.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(h.to_base64().as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"],\"event\":");
    out.extend_from_slice(leaf);
    out.extend_from_slice(b"}\n");
    out
}

/// The last line.
pub fn end_line(events: u64) -> Vec<u8> {
    format!("{{\"kind\":\"end\",\"events\":{events}}}\n").into_bytes()
}

/// The header line, newline included.
pub fn header_line(h: &Header) -> Vec<u8> {
    let mut v = serde_json::to_vec(h).unwrap_or_default();
    v.push(b'\n');
    v
}

/// Why a bundle does not verify. Each names the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// A line is not what the format allows.
    #[error("format: {0}")]
    Format(String),
    /// The checkpoint's signatures, origin or quorum.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] ProofFileError),
    /// The manifest disagrees with the checkpoint or the keys.
    #[error("manifest: {0}")]
    Manifest(String),
    /// The consistency proof from the auditor's earlier checkpoint.
    #[error("consistency: {0}")]
    Consistency(String),
    /// A leaf is not a canonical, schema-valid event.
    #[error("event at index {index}: not a canonical schema-valid event: {reason}")]
    Event {
        /// Entry index.
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// An inclusion proof does not lead to the checkpoint's root.
    #[error("inclusion: entry {index} is not in the checkpoint's tree (size {size}): {reason}")]
    Inclusion {
        /// Entry index.
        index: u64,
        /// Checkpoint size.
        size: u64,
        /// What failed.
        reason: String,
    },
    /// Records out of order or outside the window's index range.
    #[error("order: {0}")]
    Order(String),
    /// An index of a complete window is missing.
    #[error("completeness: index {missing} of the complete window {first}..{end} is missing{}", .next.map(|n| format!(" (next record is index {n})")).unwrap_or_default())]
    Missing {
        /// The first missing index.
        missing: u64,
        /// The next index present, if any.
        next: Option<u64>,
        /// Window start.
        first: u64,
        /// Window end.
        end: u64,
    },
    /// An event's `logged_at` is outside the window, or time went back.
    #[error("scope: entry {index}: {reason}")]
    Scope {
        /// Entry index.
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// An event does not match the export's filter.
    #[error("filter: entry {index} does not match the filter")]
    Filter {
        /// Entry index.
        index: u64,
    },
    /// The counts in the manifest or the end line are not what was found.
    #[error("counts: {0}")]
    Counts(String),
    /// The bundle ends before its `end` line.
    #[error("truncated: the bundle ends without its end line")]
    Truncated,
}

impl BundleError {
    /// A stable name for the check, for machine-readable reports.
    pub fn check(&self) -> &'static str {
        match self {
            BundleError::Format(_) => "format",
            BundleError::Checkpoint(ProofFileError::Quorum { .. }) => "quorum",
            BundleError::Checkpoint(_) => "checkpoint",
            BundleError::Manifest(_) => "manifest",
            BundleError::Consistency(_) => "consistency",
            BundleError::Event { .. } => "event",
            BundleError::Inclusion { .. } => "inclusion",
            BundleError::Order(_) => "order",
            BundleError::Missing { .. } => "completeness",
            BundleError::Scope { .. } => "scope",
            BundleError::Filter { .. } => "filter",
            BundleError::Counts(_) => "counts",
            BundleError::Truncated => "truncated",
        }
    }
}

fn format_err(m: impl Into<String>) -> BundleError {
    BundleError::Format(m.into())
}

fn hashes<S: AsRef<str>>(v: &[S], what: &str) -> Result<Vec<Hash>, BundleError> {
    v.iter()
        .map(AsRef::as_ref)
        .map(|s| {
            Hash::from_base64(s)
                .map_err(|_| format_err(format!("{what}: {s:?} is not base64 of 32 bytes")))
        })
        .collect()
}

/// What a verified bundle established.
#[derive(Clone, Debug)]
pub struct BundleSummary {
    /// The header as read.
    pub manifest: Manifest,
    /// The checkpoint every proof is against.
    pub checkpoint: Checkpoint,
    /// The checkpoint note.
    pub note: Note,
    /// Witness cosignatures that verified.
    pub cosigned: Vec<Verified>,
    /// Events verified (inclusion, canonical form, scope, filter).
    pub events: u64,
    /// Events by verdict, as recomputed.
    pub counts: BTreeMap<String, u64>,
    /// Size of the auditor's checkpoint the bundle was proven consistent with.
    pub consistent_from: Option<u64>,
    /// True when the window is complete and that was verified.
    pub complete: bool,
}

/// Verifies a bundle one line at a time: [`BundleCheck::open`] with the
/// header, [`BundleCheck::record`] for each following line, then
/// [`BundleCheck::finish`].
pub struct BundleCheck {
    manifest: Manifest,
    note: Note,
    checkpoint: Checkpoint,
    cosigned: Vec<Verified>,
    consistent_from: Option<u64>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    /// Next index an event may have (the window start, then one past the last event).
    next: u64,
    /// `logged_at` of the previous record.
    last_ms: Option<i64>,
    before: bool,
    after: bool,
    end: Option<u64>,
    events: u64,
    counts: BTreeMap<String, u64>,
}

impl BundleCheck {
    /// Reads the header: verifies the checkpoint (log signature, origin,
    /// `quorum` cosignatures from `witnesses`), the manifest against it and,
    /// when the auditor gives the `since` checkpoint note they hold, the
    /// consistency proof from it.
    pub fn open(
        header: &[u8],
        log: &VerifierKey,
        witnesses: &[VerifierKey],
        quorum: usize,
        since: Option<&[u8]>,
    ) -> Result<BundleCheck, BundleError> {
        let h: Header =
            serde_json::from_slice(header).map_err(|e| format_err(format!("header line: {e}")))?;
        if h.format != FORMAT {
            return Err(format_err(format!(
                "format is {:?}, want {FORMAT:?}",
                h.format
            )));
        }
        let (note, checkpoint, cosigned) =
            verify_checkpoint(h.checkpoint.as_bytes(), log, witnesses, quorum)?;
        let m = h.manifest;
        let statement = manifest_statement(&m, &checkpoint);
        let signed = Note::parse(h.manifest_signature.as_bytes())
            .map_err(|e| BundleError::Manifest(format!("manifest_signature: {e}")))?;
        if signed.text != statement {
            return Err(BundleError::Manifest(
                "manifest_signature is not over this manifest and checkpoint: the manifest was altered".into(),
            ));
        }
        signed.verify(std::slice::from_ref(log)).map_err(|_| {
            BundleError::Manifest(
                "manifest_signature is not a valid signature of the log key".into(),
            )
        })?;
        if m.origin != checkpoint.origin {
            return Err(BundleError::Manifest(format!(
                "origin {:?} is not the checkpoint's {:?}",
                m.origin, checkpoint.origin
            )));
        }
        if m.log_key != log.to_vkey() {
            return Err(BundleError::Manifest(format!(
                "names log key {:?}, not the trusted {:?}",
                m.log_key,
                log.to_vkey()
            )));
        }
        if m.schema != SCHEMA {
            return Err(BundleError::Manifest(format!(
                "schema {:?}, want {SCHEMA:?}",
                m.schema
            )));
        }
        if m.checkpoint_size != checkpoint.size {
            return Err(BundleError::Manifest(format!(
                "checkpoint_size {} but the checkpoint's size is {}",
                m.checkpoint_size, checkpoint.size
            )));
        }
        let s = &m.scope;
        if s.first_index > s.end_index || s.end_index > checkpoint.size {
            return Err(BundleError::Manifest(format!(
                "index range {}..{} is not within the checkpoint's size {}",
                s.first_index, s.end_index, checkpoint.size
            )));
        }
        if s.complete != m.filter.is_empty() {
            return Err(BundleError::Manifest(
                "complete must be true exactly when no filter is set".into(),
            ));
        }
        let time = |t: &Option<String>, what: &str| -> Result<Option<i64>, BundleError> {
            t.as_deref()
                .map(|t| {
                    parse_utc_millis(t)
                        .map_err(|e| BundleError::Manifest(format!("scope.{what}: {e}")))
                })
                .transpose()
        };
        let from_ms = time(&s.from, "from")?;
        let to_ms = time(&s.to, "to")?;
        if s.from.is_none() && s.first_index != 0 {
            return Err(BundleError::Manifest(
                "without scope.from the window starts at index 0".into(),
            ));
        }
        if s.to.is_none() && s.end_index != checkpoint.size {
            return Err(BundleError::Manifest(
                "without scope.to the window ends at the checkpoint".into(),
            ));
        }
        let consistent_from = match (since, &h.consistency) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(BundleError::Consistency(
                    "an earlier checkpoint was given but the bundle holds no consistency proof (export with since=<its size>)".into(),
                ))
            }
            (Some(since), Some(c)) => {
                let (_, old, _) = verify_checkpoint(since, log, &[], 0)
                    .map_err(|e| BundleError::Consistency(format!("the earlier checkpoint: {e}")))?;
                if c.from_size != old.size {
                    return Err(BundleError::Consistency(format!(
                        "the proof starts at size {}, the earlier checkpoint has size {}",
                        c.from_size, old.size
                    )));
                }
                let proof = hashes(&c.proof, "consistency proof")?;
                verify_consistency(old.size, checkpoint.size, &old.root, &checkpoint.root, &proof)
                    .map_err(|e| {
                        BundleError::Consistency(format!(
                            "size {} (root {}) to size {} (root {}): {e}",
                            old.size,
                            old.root.to_base64(),
                            checkpoint.size,
                            checkpoint.root.to_base64()
                        ))
                    })?;
                Some(old.size)
            }
        };
        let next = s.first_index;
        Ok(BundleCheck {
            next,
            manifest: m,
            note,
            checkpoint,
            cosigned,
            consistent_from,
            from_ms,
            to_ms,
            last_ms: None,
            before: false,
            after: false,
            end: None,
            events: 0,
            counts: BTreeMap::new(),
        })
    }

    /// The manifest of the bundle being checked.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The verified checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Verifies one line after the header.
    pub fn record(&mut self, line: &[u8]) -> Result<(), BundleError> {
        if self.end.is_some() {
            return Err(format_err("a line follows the end line"));
        }
        let l: Line =
            serde_json::from_slice(line).map_err(|e| format_err(format!("record: {e}")))?;
        if l.kind == Kind::End {
            self.end = Some(
                l.events
                    .ok_or_else(|| format_err("end line without `events`"))?,
            );
            return Ok(());
        }
        let (Some(index), Some(proof), Some(event)) = (l.index, l.proof, l.event) else {
            return Err(format_err(format!(
                "{} record needs index, proof and event",
                l.kind.name()
            )));
        };
        if l.events.is_some() {
            return Err(format_err("`events` belongs only on the end line"));
        }
        let s = &self.manifest.scope;
        let (first, end) = (s.first_index, s.end_index);
        // Where this record may be, by kind.
        match l.kind {
            Kind::Before => {
                if self.before || self.events > 0 || self.after || first == 0 || index != first - 1
                {
                    return Err(BundleError::Order(format!(
                        "a `before` record must come first and be index {}, got {index}",
                        first.wrapping_sub(1)
                    )));
                }
                self.before = true;
            }
            Kind::Event => {
                if self.after {
                    return Err(BundleError::Order(format!(
                        "event {index} after the `after` record"
                    )));
                }
                if index < first || index >= end {
                    return Err(BundleError::Order(format!(
                        "event {index} is outside the window's range {first}..{end}"
                    )));
                }
                let expect = self.next;
                if index < expect {
                    return Err(BundleError::Order(format!(
                        "event {index} is out of order or repeated (expected ≥ {expect})"
                    )));
                }
                if s.complete && index != expect {
                    return Err(BundleError::Missing {
                        missing: expect,
                        next: Some(index),
                        first,
                        end,
                    });
                }
            }
            Kind::After => {
                if self.after || index != end {
                    return Err(BundleError::Order(format!(
                        "the `after` record must be index {end}, got {index}"
                    )));
                }
                self.check_complete_until(end)?;
                self.after = true;
            }
            Kind::End => unreachable!("handled above"),
        }
        let leaf = event.get().as_bytes();
        let facts = check_leaf_facts(leaf).map_err(|e| BundleError::Event {
            index,
            reason: e.to_string(),
        })?;
        let proof = hashes(&proof, "inclusion proof")?;
        verify_inclusion(
            index,
            self.checkpoint.size,
            &leaf_hash(leaf),
            &proof,
            &self.checkpoint.root,
        )
        .map_err(|e| BundleError::Inclusion {
            index,
            size: self.checkpoint.size,
            reason: e.to_string(),
        })?;
        let t = facts.logged_at_ms;
        if t == i64::MIN {
            return Err(BundleError::Event {
                index,
                reason: "logged_at is not a time".into(),
            });
        }
        if let Some(last) = self.last_ms {
            if t < last {
                return Err(BundleError::Scope {
                    index,
                    reason: "logged_at is earlier than the previous record's: the log's time order is broken".into(),
                });
            }
        }
        self.last_ms = Some(t);
        let in_window =
            !matches!(self.from_ms, Some(f) if t < f) && !matches!(self.to_ms, Some(e) if t >= e);
        match l.kind {
            Kind::Before if self.from_ms.is_some_and(|f| t >= f) => {
                return Err(BundleError::Scope {
                    index,
                    reason: "the `before` entry is inside the window, so the window starts earlier"
                        .into(),
                })
            }
            Kind::After if !matches!(self.to_ms, Some(e) if t >= e) => {
                return Err(BundleError::Scope {
                    index,
                    reason: "the `after` entry is inside the window, so the window ends later"
                        .into(),
                })
            }
            Kind::Event if !in_window => {
                return Err(BundleError::Scope {
                    index,
                    reason: "logged_at is outside the window".into(),
                })
            }
            Kind::Event if !self.manifest.filter.matches_facts(&facts) => {
                return Err(BundleError::Filter { index });
            }
            Kind::Event => {
                self.events += 1;
                self.next = index + 1;
                match self.counts.get_mut(facts.verdict.as_ref()) {
                    Some(n) => *n += 1,
                    None => {
                        self.counts.insert(facts.verdict.to_string(), 1);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check_complete_until(&self, end: u64) -> Result<(), BundleError> {
        let s = &self.manifest.scope;
        let expect = self.next;
        if s.complete && expect < end {
            return Err(BundleError::Missing {
                missing: expect,
                next: None,
                first: s.first_index,
                end,
            });
        }
        Ok(())
    }

    /// Checks what only the whole bundle shows: the end line, boundaries,
    /// completeness and counts.
    pub fn finish(self) -> Result<BundleSummary, BundleError> {
        let end_count = self.end.ok_or(BundleError::Truncated)?;
        let s = &self.manifest.scope;
        self.check_complete_until(s.end_index)?;
        if s.from.is_some() && s.first_index > 0 && !self.before {
            return Err(BundleError::Order(format!(
                "no `before` record (index {}) proving where the window starts",
                s.first_index - 1
            )));
        }
        if s.end_index < self.checkpoint.size && !self.after {
            return Err(BundleError::Order(format!(
                "no `after` record (index {}) proving where the window ends",
                s.end_index
            )));
        }
        if end_count != self.events {
            return Err(BundleError::Counts(format!(
                "the end line says {end_count} events, the bundle holds {}",
                self.events
            )));
        }
        let mut found = self.counts.clone();
        found.insert("events".into(), self.events);
        let claimed: BTreeMap<String, u64> = self
            .manifest
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        let found_nz: BTreeMap<String, u64> = found
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        if claimed != found_nz {
            return Err(BundleError::Counts(format!(
                "the manifest claims {claimed:?}, the bundle holds {found_nz:?}"
            )));
        }
        let complete = s.complete;
        Ok(BundleSummary {
            manifest: self.manifest,
            checkpoint: self.checkpoint,
            note: self.note,
            cosigned: self.cosigned,
            events: self.events,
            counts: self.counts,
            consistent_from: self.consistent_from,
            complete,
        })
    }
}

/// Counts by verdict with every verdict present (zeros included) and the
/// `events` total, as the manifest carries them.
pub fn empty_counts() -> BTreeMap<String, u64> {
    let mut c: BTreeMap<String, u64> = VERDICTS.iter().map(|v| (v.to_string(), 0)).collect();
    c.insert("events".into(), 0);
    c
}
