//! `vellum-verify event` (one event is in the live log under its latest
//! witnessed checkpoint) and `vellum-verify receipt` (an append receipt,
//! offline).

use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use vellum_spec::event::check_leaf;
use vellum_spec::hash::leaf_hash;
use vellum_spec::jcs;
use vellum_spec::merkle::verify_inclusion;
use vellum_spec::proof::TlogProof;

use crate::http::Log;
use crate::keys::{checkpoint_failure, Policy};
use crate::report::{Failure, Report};

#[derive(Deserialize)]
struct EntryResponse<'a> {
    index: u64,
    #[serde(borrow)]
    event: &'a RawValue,
}

/// Which event to prove.
pub enum Which {
    /// By index (the log serves it).
    Index(u64),
    /// From a file: the event JSON (any formatting), or a `/v1/entries` answer.
    File(std::path::PathBuf),
}

fn event_check(index: u64, leaf: &[u8], r: &mut Report) -> Result<Value, Failure> {
    let obj = check_leaf(leaf).map_err(|e| {
        Failure::check(
            "event",
            format!("entry {index} is not a canonical schema-valid event: {e}"),
        )
    })?;
    r.pass(
        "event",
        format!(
            "canonical schema-valid event, leaf hash {}",
            leaf_hash(leaf).to_base64()
        ),
    );
    Ok(Value::Object(obj))
}

/// The leaf bytes and index of the event to prove.
fn resolve(log: &Log, which: &Which) -> Result<(u64, Vec<u8>), Failure> {
    let from_response = |b: &[u8]| -> Result<Option<(u64, Vec<u8>)>, Failure> {
        match serde_json::from_slice::<EntryResponse>(b) {
            Ok(e) => Ok(Some((e.index, e.event.get().as_bytes().to_vec()))),
            Err(_) => Ok(None),
        }
    };
    match which {
        Which::Index(i) => {
            let b = log.get_body(&format!("/v1/entries/{i}"), crate::http::caps::JSON)?;
            let (index, leaf) = from_response(&b)?.ok_or_else(|| {
                Failure::check("entry", format!("/v1/entries/{i} is not an entry response"))
            })?;
            if index != *i {
                return Err(Failure::mismatch(
                    "entry",
                    *i,
                    i.to_string(),
                    index.to_string(),
                    "the log answered with another index",
                ));
            }
            Ok((index, leaf))
        }
        Which::File(p) => {
            let b = std::fs::read(p)
                .map_err(|e| Failure::Operational(format!("{}: {e}", p.display())))?;
            if let Some(found) = from_response(&b)? {
                return Ok(found);
            }
            // A bare event, however formatted: its leaf is its canonical form.
            let v = jcs::parse_strict(&b)
                .map_err(|e| Failure::Usage(format!("{}: not JSON: {e}", p.display())))?;
            let leaf = jcs::canonicalize(&v)
                .map_err(|e| Failure::Usage(format!("{}: {e}", p.display())))?;
            let (Some(gw), Some(id)) = (
                v.get("gateway").and_then(Value::as_str),
                v.get("event_id").and_then(Value::as_str),
            ) else {
                return Err(Failure::Usage(format!(
                    "{}: the event has no gateway and event_id, so the log cannot look it up; give --index",
                    p.display()
                )));
            };
            let q = format!(
                "/v1/lookup?gateway={}&event_id={}",
                urlencode(gw),
                urlencode(id)
            );
            let served = match log.get(&q, crate::http::caps::JSON)? {
                crate::http::Got::Body(b) => b,
                crate::http::Got::NotFound => {
                    return Err(Failure::check(
                        "lookup",
                        format!("the log has no event {id:?} from gateway {gw:?}"),
                    ))
                }
            };
            let (index, stored) = from_response(&served)?
                .ok_or_else(|| Failure::check("lookup", "the lookup answer is not an entry"))?;
            if stored != leaf {
                return Err(Failure::mismatch(
                    "event",
                    index,
                    String::from_utf8_lossy(&leaf),
                    String::from_utf8_lossy(&stored),
                    format!("the log holds a different event {id:?} at index {index}"),
                ));
            }
            Ok((index, leaf))
        }
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs `vellum-verify event`.
pub fn event(log: &Log, policy: &Policy, which: &Which) -> Report {
    let mut r = Report::new("event", log.base());
    if let Err(f) = event_inner(log, policy, which, &mut r) {
        r.fail(f);
    }
    r
}

fn event_inner(log: &Log, policy: &Policy, which: &Which, r: &mut Report) -> Result<(), Failure> {
    let note = log.checkpoint()?;
    let (_, cp, _) = policy.checkpoint(&note, r)?;
    let (index, leaf) = resolve(log, which)?;
    event_check(index, &leaf, r)?;
    if index >= cp.size {
        return Err(Failure::Operational(format!(
            "entry {index} is not yet covered by the published checkpoint (size {}); retry after the next checkpoint",
            cp.size
        )));
    }
    let proof = log.inclusion(index, cp.size)?;
    verify_inclusion(index, cp.size, &leaf_hash(&leaf), &proof, &cp.root).map_err(|e| {
        Failure::mismatch(
            "inclusion",
            index,
            cp.root.to_base64(),
            format!("a proof that fails: {e}"),
            format!(
                "entry {index} is not proven to be in the tree of size {}",
                cp.size
            ),
        )
    })?;
    r.pass(
        "inclusion",
        format!(
            "entry {index} is in the checkpoint's tree (size {}, {} proof hashes)",
            cp.size,
            proof.len()
        ),
    );
    r.entries = Some((1, 1));
    Ok(())
}

/// Runs `vellum-verify receipt`.
pub fn receipt(file: &Path, policy: &Policy) -> Report {
    let mut r = Report::new("receipt", &file.display().to_string());
    if let Err(f) = receipt_inner(file, policy, &mut r) {
        r.fail(f);
    }
    r
}

fn receipt_inner(file: &Path, policy: &Policy, r: &mut Report) -> Result<(), Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::Operational(format!("{}: {e}", file.display())))?;
    // Accept a bare tlog-proof or an append answer's entry holding one.
    let text = match serde_json::from_str::<Value>(&text) {
        Ok(v) => v
            .get("receipt")
            .or_else(|| v.pointer("/entries/0/receipt"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or(text),
        Err(_) => text,
    };
    let p = TlogProof::parse(&text).map_err(|e| Failure::check("format", e.to_string()))?;
    policy.checkpoint(&p.checkpoint, r)?;
    let leaf = p
        .extra
        .clone()
        .ok_or_else(|| Failure::check("format", "the receipt carries no event (no extra line)"))?;
    event_check(p.index, &leaf, r)?;
    p.verify(None, &policy.log, &policy.witnesses, policy.quorum)
        .map_err(checkpoint_failure)?;
    r.pass(
        "inclusion",
        format!(
            "entry {} is in the checkpoint's tree ({} proof hashes)",
            p.index,
            p.proof.len()
        ),
    );
    r.entries = Some((1, 1));
    Ok(())
}
