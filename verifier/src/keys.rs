//! The trust policy given on the command line: the log's key, witness
//! keys and the quorum, and checking a checkpoint note against it.

use vellum_spec::note::{Note, Verified, VerifierKey, ALG_ED25519};
use vellum_spec::proof::{verify_checkpoint, ProofFileError};
use vellum_spec::Checkpoint;

use crate::report::{CheckpointInfo, Failure, Report};

/// Keys and quorum.
pub struct Policy {
    /// The log's key.
    pub log: VerifierKey,
    /// Witness keys (cosignature/v1).
    pub witnesses: Vec<VerifierKey>,
    /// Valid cosignatures required.
    pub quorum: usize,
}

/// Parses a vkey given inline or as the path of a file holding one.
pub fn parse_key(s: &str, what: &str) -> Result<VerifierKey, Failure> {
    let inline = match VerifierKey::parse(s.trim()) {
        Ok(k) => return Ok(k),
        Err(e) => e,
    };
    let text = match std::fs::read_to_string(s) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !s.contains('+') => {
            return Err(Failure::Usage(format!(
                "{what} {s:?}: no such file (give the path of a .vkey file, or the key itself: NAME+ID+KEY)"
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::Usage(format!("{what} {s:?}: {inline}")))
        }
        Err(e) => return Err(Failure::Usage(format!("{what} {s:?}: cannot read it: {e}"))),
    };
    VerifierKey::parse(text.trim()).map_err(|e| Failure::Usage(format!("{what} in file {s}: {e}")))
}

impl Policy {
    /// Builds the policy; the quorum defaults to every witness given.
    pub fn new(log: &str, witnesses: &[String], quorum: Option<usize>) -> Result<Policy, Failure> {
        let log = parse_key(log, "--log-key")?;
        if log.alg == vellum_spec::note::ALG_COSIGNATURE_V1 {
            return Err(Failure::Usage(format!(
                "--log-key {} is a witness's cosignature key, not a log's key; give the log's key, and witness keys with --witness-key",
                log.to_vkey()
            )));
        }
        let witnesses = witnesses
            .iter()
            .map(|w| {
                parse_key(w, "--witness-key").map(|k| {
                    // A witness's Ed25519 note key verifies its cosignatures
                    // as the cosignature/v1 key of the same name and bytes.
                    if k.alg == ALG_ED25519 {
                        k.as_cosignature_v1()
                    } else {
                        k
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let quorum = quorum.unwrap_or(witnesses.len());
        if quorum > witnesses.len() {
            return Err(Failure::Usage(format!(
                "--quorum {quorum} but only {} --witness-key given",
                witnesses.len()
            )));
        }
        Ok(Policy {
            log,
            witnesses,
            quorum,
        })
    }

    /// Verifies a checkpoint note and records what it found in `report`.
    pub fn checkpoint(
        &self,
        note: &[u8],
        report: &mut Report,
    ) -> Result<(Note, Checkpoint, Vec<Verified>), Failure> {
        // A key for another origin is the wrong key given, not evidence
        // against the log: say so before checking any signature.
        if let Ok(Ok(cp)) = Note::parse(note).map(|n| Checkpoint::parse(&n.text)) {
            if cp.origin != self.log.name {
                return Err(Failure::Usage(format!(
                    "--log-key is the key of {:?}, but this log's checkpoints are for origin {:?}: give this log's key (is {:?} a witness's key?)",
                    self.log.name, cp.origin, self.log.name
                )));
            }
        }
        let r = verify_checkpoint(note, &self.log, &self.witnesses, self.quorum);
        match r {
            Ok((n, cp, cosigned)) => {
                let info = CheckpointInfo::describe(
                    true,
                    &n,
                    &cp,
                    &self.log,
                    &self.witnesses,
                    &cosigned,
                    self.quorum,
                );
                report.pass(
                    "log-signature",
                    format!("checkpoint signed by {}+{:08x}", self.log.name, self.log.id),
                );
                report.pass(
                    "quorum",
                    format!(
                        "{} valid witness cosignature(s), {} required",
                        cosigned.len(),
                        self.quorum
                    ),
                );
                report.checkpoint = Some(info);
                Ok((n, cp, cosigned))
            }
            Err(e) => {
                if let Ok(n) = Note::parse(note) {
                    if let Ok(cp) = Checkpoint::parse(&n.text) {
                        let good: Vec<Verified> = n
                            .verify_each(&self.witnesses)
                            .into_iter()
                            .filter_map(|(_, v)| v)
                            .collect();
                        let log_ok = n.verify(std::slice::from_ref(&self.log)).is_ok();
                        report.checkpoint = Some(CheckpointInfo::describe(
                            log_ok,
                            &n,
                            &cp,
                            &self.log,
                            &self.witnesses,
                            &good,
                            self.quorum,
                        ));
                    }
                }
                Err(checkpoint_failure(e))
            }
        }
    }
}

/// Names the check a checkpoint error failed.
pub fn checkpoint_failure(e: ProofFileError) -> Failure {
    let check = match &e {
        ProofFileError::NoLogSignature(_) => "log-signature",
        ProofFileError::Quorum { .. } => "quorum",
        ProofFileError::Origin { .. } => "origin",
        ProofFileError::Inclusion { .. } => "inclusion",
        _ => "checkpoint",
    };
    Failure::check(check, e.to_string())
}
