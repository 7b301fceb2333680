//! What a run checked and found: printed for people, or as JSON with
//! `--json`. The exit code follows from it (see [`Failure::exit_code`]).

use serde::Serialize;
use vellum_spec::note::{Note, Verified, VerifierKey};
use vellum_spec::Checkpoint;

/// Exit code: everything verified.
pub const EXIT_OK: u8 = 0;
/// Exit code: a verification failed (the log or file is not what it claims).
pub const EXIT_VERIFY: u8 = 1;
/// Exit code: bad arguments (also clap's own usage errors).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: operational error (network, HTTP, file I/O): nothing proven either way.
pub const EXIT_OPERATIONAL: u8 = 3;

/// Why a run stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// A check failed.
    #[error("{check} check failed{}: {message}", .index.map(|i| format!(" at index {i}")).unwrap_or_default())]
    Verification {
        /// The check's name (e.g. `tile`, `inclusion`, `consistency`).
        check: String,
        /// Entry or tile index, when there is one.
        index: Option<u64>,
        /// What it should have been.
        expected: Option<String>,
        /// What was served.
        got: Option<String>,
        /// The whole story.
        message: String,
    },
    /// Bad arguments.
    #[error("usage: {0}")]
    Usage(String),
    /// Network, HTTP or file trouble.
    #[error("operational error: {0}")]
    Operational(String),
}

/// As JSON: `{"kind": "verification"|"usage"|"operational", "message", ...}`
/// with `check`, `index`, `expected`, `got` for verification failures.
impl Serialize for Failure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self {
            Failure::Verification {
                check,
                index,
                expected,
                got,
                message,
            } => {
                m.serialize_entry("kind", "verification")?;
                m.serialize_entry("check", check)?;
                if let Some(i) = index {
                    m.serialize_entry("index", i)?;
                }
                if let Some(e) = expected {
                    m.serialize_entry("expected", e)?;
                }
                if let Some(g) = got {
                    m.serialize_entry("got", g)?;
                }
                m.serialize_entry("message", message)?;
            }
            Failure::Usage(msg) => {
                m.serialize_entry("kind", "usage")?;
                m.serialize_entry("message", msg)?;
            }
            Failure::Operational(msg) => {
                m.serialize_entry("kind", "operational")?;
                m.serialize_entry("message", msg)?;
            }
        }
        m.end()
    }
}

impl Failure {
    /// A failed check with a message.
    pub fn check(check: &str, message: impl Into<String>) -> Failure {
        Failure::Verification {
            check: check.into(),
            index: None,
            expected: None,
            got: None,
            message: message.into(),
        }
    }

    /// A failed check at an index, with expected and served values.
    pub fn mismatch(
        check: &str,
        index: u64,
        expected: impl Into<String>,
        got: impl Into<String>,
        message: impl Into<String>,
    ) -> Failure {
        Failure::Verification {
            check: check.into(),
            index: Some(index),
            expected: Some(expected.into()),
            got: Some(got.into()),
            message: message.into(),
        }
    }

    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Verification { .. } => EXIT_VERIFY,
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Operational(_) => EXIT_OPERATIONAL,
        }
    }
}

/// One signature line of the checkpoint and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureLine {
    /// Key name on the line.
    pub name: String,
    /// Key ID, hex.
    pub key_id: String,
    /// `log`, `witness` or `unknown`.
    pub role: String,
    /// Verified with a trusted key.
    pub verified: bool,
    /// Cosignature time (RFC 3339), for witnesses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

/// The checkpoint a run trusted.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointInfo {
    /// Origin line.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash, base64.
    pub root: String,
    /// Every signature line.
    pub signatures: Vec<SignatureLine>,
    /// Valid witness cosignatures, and how many were required.
    pub cosignatures: usize,
    /// Required quorum.
    pub quorum: usize,
}

impl CheckpointInfo {
    /// Describes `note` (already verified) against the keys given.
    pub fn describe(
        log_ok: bool,
        note: &Note,
        cp: &Checkpoint,
        log: &VerifierKey,
        witnesses: &[VerifierKey],
        cosigned: &[Verified],
        quorum: usize,
    ) -> CheckpointInfo {
        let signatures = note
            .sigs
            .iter()
            .map(|s| {
                let is_log = s.name == log.name && s.id == log.id;
                let w = witnesses.iter().find(|k| k.name == s.name && k.id == s.id);
                let good = cosigned
                    .iter()
                    .find(|v| v.key.name == s.name && v.key.id == s.id);
                SignatureLine {
                    name: s.name.clone(),
                    key_id: format!("{:08x}", s.id),
                    role: if is_log {
                        "log"
                    } else if w.is_some() {
                        "witness"
                    } else {
                        "unknown"
                    }
                    .into(),
                    verified: (is_log && log_ok) || good.is_some(),
                    time: good
                        .and_then(|v| v.timestamp)
                        .map(|t| vellum_spec::time::format_millis(t as i64 * 1000)),
                }
            })
            .collect();
        CheckpointInfo {
            origin: cp.origin.clone(),
            size: cp.size,
            root: cp.root.to_base64(),
            signatures,
            cosignatures: cosigned.len(),
            quorum,
        }
    }
}

/// One check that ran.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Its name.
    pub check: String,
    /// Passed.
    pub ok: bool,
    /// What exactly was checked.
    pub detail: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// `vellum-verify <version>`.
    pub verifier: String,
    /// The subcommand.
    pub command: String,
    /// What was verified (URL or file).
    pub target: String,
    /// All good.
    pub ok: bool,
    /// The checkpoint trusted, if one was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointInfo>,
    /// Checks in the order they ran.
    pub checks: Vec<Check>,
    /// Warnings (e.g. sequence gaps) that are not failures.
    pub warnings: Vec<String>,
    /// Entries verified, out of how many.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<(u64, u64)>,
    /// The failure that stopped the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// Most warnings kept in a report; the rest are counted.
pub const MAX_WARNINGS: usize = 200;

impl Report {
    /// An empty report for `command` on `target`.
    pub fn new(command: &str, target: &str) -> Report {
        Report {
            verifier: format!("vellum-verify {}", env!("CARGO_PKG_VERSION")),
            command: command.into(),
            target: target.into(),
            ok: true,
            ..Report::default()
        }
    }

    /// Records a passed check.
    pub fn pass(&mut self, check: &str, detail: impl Into<String>) {
        self.checks.push(Check {
            check: check.into(),
            ok: true,
            detail: detail.into(),
        });
    }

    /// Records a warning.
    pub fn warn(&mut self, w: impl Into<String>) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(w.into());
        }
    }

    /// Records the failure that ends the run.
    pub fn fail(&mut self, f: Failure) {
        if let Failure::Verification { check, message, .. } = &f {
            self.checks.push(Check {
                check: check.clone(),
                ok: false,
                detail: message.clone(),
            });
        }
        self.ok = false;
        self.failure = Some(f);
    }

    /// The exit code this report calls for.
    pub fn exit_code(&self) -> u8 {
        self.failure.as_ref().map_or(EXIT_OK, Failure::exit_code)
    }

    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = format!("{} — {} {}\n", self.verifier, self.command, self.target);
        if let Some(c) = &self.checkpoint {
            s += &format!(
                "checkpoint  {}  size {}  root {}\n",
                c.origin, c.size, c.root
            );
            for l in &c.signatures {
                let mark = if l.verified { "ok" } else { "--" };
                let what = match (l.role.as_str(), l.verified) {
                    ("log", _) => "log signature".to_string(),
                    ("witness", true) => format!(
                        "witness cosignature, {}",
                        l.time.as_deref().unwrap_or("no time")
                    ),
                    ("witness", false) => "witness line did NOT verify (not counted)".into(),
                    _ => "signature from a key not given (not verified, not counted)".into(),
                };
                s += &format!("  [{mark}] {}+{}  {what}\n", l.name, l.key_id);
            }
            s += &format!(
                "  cosignatures: {} valid, {} required\n",
                c.cosignatures, c.quorum
            );
        }
        for c in &self.checks {
            let mark = if c.ok { "ok" } else { "FAIL" };
            s += &format!("[{mark}] {}: {}\n", c.check, c.detail);
        }
        if let Some((n, of)) = self.entries {
            s += &format!("entries verified: {n}/{of}\n");
        }
        for w in &self.warnings {
            s += &format!("warning: {w}\n");
        }
        match &self.failure {
            None => s += "RESULT: OK — everything listed above verified\n",
            Some(f @ Failure::Verification { expected, got, .. }) => {
                s += &format!("RESULT: FAILED — {f}\n");
                if let (Some(e), Some(g)) = (expected, got) {
                    s += &format!("  expected: {e}\n  got:      {g}\n");
                }
            }
            Some(f) => s += &format!("RESULT: NOT VERIFIED — {f}\n"),
        }
        s
    }
}
