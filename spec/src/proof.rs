//! C2SP tlog-proof: an offline-verifiable proof that an entry is in a log,
//! and Vellum's receipt built on it.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 opaque data>      (optional)
//! index <decimal>
//! <base64 inclusion-proof hash>   (zero or more, leaf's sibling first)
//!
//! <checkpoint note with the log's signature and cosignatures>
//! ```
//!
//! A Vellum receipt is a tlog-proof whose `extra` is the entry's leaf bytes
//! (the canonical event), so it verifies with nothing but the keys.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::checkpoint::{parse_canonical_u64, Checkpoint};
use crate::hash::{leaf_hash, Hash};
use crate::merkle::verify_inclusion;
use crate::note::{Note, NoteError, Verified, VerifierKey};

/// First line of every tlog-proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A parsed tlog-proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Optional application data (for a Vellum receipt: the leaf bytes).
    pub extra: Option<Vec<u8>>,
    /// Index of the entry.
    pub index: u64,
    /// RFC 9162 inclusion proof for `index` in the checkpoint's tree.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: Vec<u8>,
}

/// Why a proof does not parse or verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofFileError {
    /// The text is not a tlog-proof.
    #[error("malformed tlog-proof: {0}")]
    Malformed(String),
    /// The checkpoint note or its signatures.
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),
    /// The checkpoint is for another log.
    #[error("checkpoint origin {got:?} is not the log's origin {want:?}")]
    Origin {
        /// Origin in the checkpoint.
        got: String,
        /// Origin of the trusted log key.
        want: String,
    },
    /// The log's own signature is missing.
    #[error("no valid signature from the log key {0}")]
    NoLogSignature(String),
    /// Fewer valid witness cosignatures than required.
    #[error("{got} valid witness cosignature(s), the policy requires {want}")]
    Quorum {
        /// Valid cosignatures from the given witness keys.
        got: usize,
        /// Required.
        want: usize,
    },
    /// The receipt carries no leaf bytes and none were given.
    #[error("no entry bytes: the proof has no extra data")]
    NoEntry,
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error("inclusion of index {index} in tree size {size}: {reason}")]
    Inclusion {
        /// Entry index.
        index: u64,
        /// Checkpoint size.
        size: u64,
        /// What failed.
        reason: String,
    },
}

fn malformed(m: impl Into<String>) -> ProofFileError {
    ProofFileError::Malformed(m.into())
}

impl TlogProof {
    /// The text form.
    pub fn to_text(&self) -> String {
        let mut s = format!("{HEADER}\n");
        if let Some(e) = &self.extra {
            s.push_str("extra ");
            s.push_str(&B64.encode(e));
            s.push('\n');
        }
        s.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            s.push_str(&h.to_base64());
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&String::from_utf8_lossy(&self.checkpoint));
        s
    }

    /// Parses the text form (form only; see [`TlogProof::verify`]).
    pub fn parse(text: &str) -> Result<TlogProof, ProofFileError> {
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or_else(|| malformed("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n').peekable();
        if lines.next() != Some(HEADER) {
            return Err(malformed(format!("first line must be {HEADER}")));
        }
        let mut extra = None;
        if let Some(e) = lines.peek().and_then(|l| l.strip_prefix("extra ")) {
            extra = Some(
                B64.decode(e)
                    .map_err(|_| malformed("extra is not valid base64"))?,
            );
            lines.next();
        }
        let index = lines
            .next()
            .and_then(|l| l.strip_prefix("index "))
            .ok_or_else(|| malformed("missing `index <n>` line"))?;
        let index = parse_canonical_u64(index)
            .ok_or_else(|| malformed("index must be a decimal without leading zeros"))?;
        let mut proof = Vec::new();
        for (i, l) in lines.enumerate() {
            if proof.len() == 63 {
                return Err(malformed("more than 63 proof lines"));
            }
            proof.push(Hash::from_base64(l).map_err(|_| {
                malformed(format!("proof line {} is not base64 of 32 bytes", i + 1))
            })?);
        }
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint: checkpoint.as_bytes().to_vec(),
        })
    }

    /// Verifies the proof for `entry` (or, if `None`, the `extra` bytes) under
    /// `log` with at least `quorum` cosignatures from `witnesses`.
    pub fn verify(
        &self,
        entry: Option<&[u8]>,
        log: &VerifierKey,
        witnesses: &[VerifierKey],
        quorum: usize,
    ) -> Result<VerifiedProof, ProofFileError> {
        let (note, checkpoint, cosigned) =
            verify_checkpoint(&self.checkpoint, log, witnesses, quorum)?;
        let leaf = entry
            .or(self.extra.as_deref())
            .ok_or(ProofFileError::NoEntry)?;
        let lh = leaf_hash(leaf);
        verify_inclusion(
            self.index,
            checkpoint.size,
            &lh,
            &self.proof,
            &checkpoint.root,
        )
        .map_err(|e| ProofFileError::Inclusion {
            index: self.index,
            size: checkpoint.size,
            reason: e.to_string(),
        })?;
        Ok(VerifiedProof {
            note,
            checkpoint,
            cosigned,
            leaf_hash: lh,
        })
    }
}

/// What a verified proof established.
#[derive(Clone, Debug)]
pub struct VerifiedProof {
    /// The checkpoint note.
    pub note: Note,
    /// Its parsed body.
    pub checkpoint: Checkpoint,
    /// Witness cosignatures that verified, with their timestamps.
    pub cosigned: Vec<Verified>,
    /// The entry's leaf hash.
    pub leaf_hash: Hash,
}

/// Verifies a checkpoint note: the log's signature, the origin, and at least
/// `quorum` valid cosignatures from distinct `witnesses`. A witness line that
/// fails to verify is not counted (and does not reject the note).
pub fn verify_checkpoint(
    note: &[u8],
    log: &VerifierKey,
    witnesses: &[VerifierKey],
    quorum: usize,
) -> Result<(Note, Checkpoint, Vec<Verified>), ProofFileError> {
    let note = Note::parse(note)?;
    note.verify(std::slice::from_ref(log))
        .map_err(|_| ProofFileError::NoLogSignature(log.to_vkey()))?;
    let checkpoint =
        Checkpoint::parse(&note.text).map_err(|e| malformed(format!("checkpoint: {e}")))?;
    if checkpoint.origin != log.name {
        return Err(ProofFileError::Origin {
            got: checkpoint.origin,
            want: log.name.clone(),
        });
    }
    let cosigned = note.verify_each(witnesses);
    let good: Vec<Verified> = cosigned.into_iter().filter_map(|(_, r)| r).collect();
    if good.len() < quorum {
        return Err(ProofFileError::Quorum {
            got: good.len(),
            want: quorum,
        });
    }
    Ok((note, checkpoint, good))
}
