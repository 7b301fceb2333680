//! C2SP tlog-witness: the `add-checkpoint` request body and the witness's
//! decision, as pure functions so the witness, the log's witness client and
//! the tests share one definition.
//!
//! A request body is `old <size>\n`, up to 63 consistency-proof hashes (one
//! base64 line each), an empty line, then the signed checkpoint note.

use crate::checkpoint::{parse_canonical_u64, Checkpoint};
use crate::hash::{Hash, EMPTY_ROOT};
use crate::merkle::verify_consistency;
use crate::note::{Note, VerifierKey};

/// Most proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body a witness accepts (1 MiB note plus 64 KiB).
pub const MAX_REQUEST_BYTES: usize = 1_114_112;
/// Content type of a 409 body, which is the witness's size and a newline.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// A parsed `add-checkpoint` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size the client believes the witness last cosigned.
    pub old: u64,
    /// Consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub note: Vec<u8>,
}

/// Why a request was refused. [`WitnessError::status`] maps each to the
/// HTTP status tlog-witness specifies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    /// The body is not a well-formed request.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The checkpoint's origin is not a log this witness knows.
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// No valid signature from the log's key, or a failing one.
    #[error("checkpoint signature: {0}")]
    Signature(String),
    /// `old` is larger than the checkpoint's size.
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldTooLarge {
        /// The request's old size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// `old` is not the size this witness last cosigned; the client should
    /// retry from `current`.
    #[error("old size {old} does not match the witness's size {current}")]
    Conflict {
        /// The request's old size.
        old: u64,
        /// The size the witness last cosigned.
        current: u64,
    },
    /// The checkpoint is not consistent with what the witness cosigned.
    #[error("inconsistent checkpoint: {0}")]
    Inconsistent(String),
    /// A checkpoint at the witnessed size with a different root: a fork.
    #[error(
        "fork: the log signed a different root at size {size}, which this witness already cosigned"
    )]
    Fork {
        /// The size at which the two roots differ.
        size: u64,
    },
}

impl WitnessError {
    /// The HTTP status code for this refusal (tlog-witness, HEAD).
    pub fn status(&self) -> u16 {
        match self {
            WitnessError::Malformed(_) | WitnessError::OldTooLarge { .. } => 400,
            WitnessError::Signature(_) => 403,
            WitnessError::UnknownOrigin(_) => 404,
            WitnessError::Conflict { .. } => 409,
            WitnessError::Inconsistent(_) | WitnessError::Fork { .. } => 422,
        }
    }
}

fn malformed(msg: &str) -> WitnessError {
    WitnessError::Malformed(msg.to_string())
}

impl AddCheckpoint {
    /// Parses a request body; checks form only.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, WitnessError> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(malformed("body is larger than 1,114,112 bytes"));
        }
        let split = body
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or_else(|| malformed("no empty line between the proof and the checkpoint"))?;
        let head = std::str::from_utf8(&body[..split])
            .map_err(|_| malformed("proof block is not UTF-8"))?;
        let mut lines = head.split('\n');
        let first = lines.next().unwrap_or_default();
        let old = first
            .strip_prefix("old ")
            .ok_or_else(|| malformed("first line must be `old <size>`"))?;
        let old = parse_canonical_u64(old)
            .ok_or_else(|| malformed("old size must be a decimal without sign or leading zeros"))?;
        let mut proof = Vec::new();
        for (i, line) in lines.enumerate() {
            if proof.len() == MAX_PROOF_LINES {
                return Err(malformed("more than 63 proof lines"));
            }
            let h = Hash::from_base64(line).map_err(|_| {
                WitnessError::Malformed(format!("proof line {} is not base64 of 32 bytes", i + 1))
            })?;
            proof.push(h);
        }
        Ok(AddCheckpoint {
            old,
            proof,
            note: body[split + 2..].to_vec(),
        })
    }

    /// The request body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("old {}\n", self.old);
        for h in &self.proof {
            s.push_str(&h.to_base64());
            s.push('\n');
        }
        s.push('\n');
        let mut b = s.into_bytes();
        b.extend_from_slice(&self.note);
        b
    }
}

/// What a witness last cosigned for a log: its size and root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Witnessed {
    /// Tree size.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
}

/// A request that passed every check: the checkpoint to cosign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The verified note (the witness signs its text).
    pub note: Note,
    /// The parsed checkpoint.
    pub checkpoint: Checkpoint,
}

/// Parses and verifies the request's note against the log keys configured
/// for its origin (`keys_for` returns none for an unknown origin).
pub fn open_checkpoint<'k>(
    req: &AddCheckpoint,
    keys_for: impl FnOnce(&str) -> Option<&'k [VerifierKey]>,
) -> Result<Accepted, WitnessError> {
    let note = Note::parse(&req.note).map_err(|e| WitnessError::Malformed(e.to_string()))?;
    let checkpoint =
        Checkpoint::parse(&note.text).map_err(|e| WitnessError::Malformed(e.to_string()))?;
    let keys = keys_for(&checkpoint.origin)
        .ok_or(WitnessError::UnknownOrigin(checkpoint.origin.clone()))?;
    note.verify(keys)
        .map_err(|e| WitnessError::Signature(e.to_string()))?;
    Ok(Accepted { note, checkpoint })
}

/// The witness's state check (tlog-witness, in the spec's order) for an
/// authenticated checkpoint, given what it last cosigned (`None`: never).
/// `Ok` means: cosign, after storing `cp`'s size and root atomically.
pub fn check_update(
    state: Option<Witnessed>,
    old: u64,
    proof: &[Hash],
    cp: &Checkpoint,
) -> Result<(), WitnessError> {
    if old > cp.size {
        return Err(WitnessError::OldTooLarge { old, size: cp.size });
    }
    let current = state.map_or(0, |s| s.size);
    if old != current {
        return Err(WitnessError::Conflict { old, current });
    }
    if cp.size == 0 && cp.root != EMPTY_ROOT {
        return Err(WitnessError::Inconsistent(
            "a size-0 checkpoint must have the empty tree's root".into(),
        ));
    }
    let Some(state) = state.filter(|s| s.size != 0) else {
        if !proof.is_empty() {
            return Err(WitnessError::Inconsistent(
                "a proof from size 0 must be empty".into(),
            ));
        }
        return Ok(());
    };
    if state.size == cp.size {
        if state.root != cp.root {
            return Err(WitnessError::Fork { size: cp.size });
        }
        if !proof.is_empty() {
            return Err(WitnessError::Inconsistent(
                "a proof between equal sizes must be empty".into(),
            ));
        }
        return Ok(());
    }
    verify_consistency(state.size, cp.size, &state.root, &cp.root, proof).map_err(|e| {
        WitnessError::Inconsistent(format!("consistency proof from {}: {e}", state.size))
    })
}

/// Parses a 409 body (`<size>\n`).
pub fn parse_size_body(body: &str) -> Option<u64> {
    parse_canonical_u64(body.strip_suffix('\n').unwrap_or(body))
}

/// The monitoring path component for an origin: lowercase hex SHA-256.
pub fn origin_hash(origin: &str) -> String {
    Hash(crate::hash::sha256(origin.as_bytes())).to_hex()
}
