//! `vellum-verify log`: checks a live log's checkpoint (signature, witness
//! quorum), its consistency with the last trusted checkpoint (`--state`),
//! optionally the whole tree (`--full`), and keeps doing so (`--follow`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vellum_spec::merkle::verify_consistency;
use vellum_spec::Checkpoint;

use crate::http::Log;
use crate::keys::Policy;
use crate::prefetch::Prefetch;
use crate::report::{Failure, Report};
use crate::sequence::Sequences;
use crate::tree::TreeCheck;

/// Options of `vellum-verify log`.
pub struct LogOptions {
    /// The log.
    pub log: Log,
    /// Keys and quorum.
    pub policy: Policy,
    /// The monitor's state file.
    pub state: Option<PathBuf>,
    /// Verify every entry and tile.
    pub full: bool,
    /// Sequence gaps and duplicates fail the run.
    pub strict_seq: bool,
    /// Keep monitoring at this interval.
    pub follow: Option<Duration>,
    /// Where evidence of a failure goes.
    pub evidence: Option<PathBuf>,
    /// Download threads for `--full`.
    pub threads: usize,
    /// Progress output on stderr.
    pub progress: bool,
}

/// The checkpoint last trusted.
#[derive(Clone)]
struct Trusted {
    note: Vec<u8>,
    cp: Checkpoint,
}

/// What a failed round leaves behind for the evidence file.
#[derive(Default)]
struct Evidence {
    new_note: Option<Vec<u8>>,
    proof: Option<serde_json::Value>,
}

/// Runs the command; the report says what happened.
pub fn run(o: &LogOptions) -> Report {
    let mut report = Report::new("log", o.log.base());
    let mut tree = TreeCheck::new();
    let mut trusted: Option<Trusted> = None;
    if let Some(path) = &o.state {
        match crate::state::load(path) {
            Ok(None) => report.pass(
                "state",
                format!(
                    "no state in {} yet: this run's checkpoint becomes the trusted one",
                    path.display()
                ),
            ),
            Ok(Some(note)) => match o.policy.checkpoint_quiet(&note) {
                Ok(cp) => {
                    report.pass(
                        "state",
                        format!(
                            "trusted checkpoint from {}: size {} root {}",
                            path.display(),
                            cp.size,
                            cp.root.to_base64()
                        ),
                    );
                    trusted = Some(Trusted { note, cp });
                }
                Err(e) => {
                    report.fail(Failure::Usage(format!(
                        "state file {}: {e} (not a checkpoint of this log)",
                        path.display()
                    )));
                    return report;
                }
            },
            Err(e) => {
                report.fail(e);
                return report;
            }
        }
    }
    let mut round = 0u64;
    loop {
        round += 1;
        let mut ev = Evidence::default();
        let mut r = Report::new("log", o.log.base());
        r.checks = report.checks.clone();
        let res = one_round(o, &mut r, &mut tree, trusted.as_ref(), &mut ev);
        match res {
            Ok(t) => {
                if let Some(path) = &o.state {
                    if let Err(e) = crate::state::store(path, &t.note) {
                        r.fail(e);
                        return r;
                    }
                    r.pass(
                        "state",
                        format!("stored checkpoint size {} in {}", t.cp.size, path.display()),
                    );
                }
                trusted = Some(t);
                if o.follow.is_none() {
                    return r;
                }
                if o.progress {
                    eprintln!(
                        "round {round}: OK at size {} ({} warnings)",
                        trusted.as_ref().map_or(0, |t| t.cp.size),
                        r.warnings.len()
                    );
                }
            }
            Err(f) => {
                if let Failure::Verification { .. } = &f {
                    write_evidence(o, &f, trusted.as_ref(), &ev, &mut r);
                }
                r.fail(f);
                return r;
            }
        }
        if let Some(d) = o.follow {
            std::thread::sleep(d);
        }
        report.checks.clear();
    }
}

impl Policy {
    /// Verifies a stored note with the log key only (it was trusted before).
    fn checkpoint_quiet(&self, note: &[u8]) -> Result<Checkpoint, String> {
        vellum_spec::proof::verify_checkpoint(note, &self.log, &[], 0)
            .map(|(_, cp, _)| cp)
            .map_err(|e| e.to_string())
    }
}

fn one_round(
    o: &LogOptions,
    r: &mut Report,
    tree: &mut TreeCheck,
    trusted: Option<&Trusted>,
    ev: &mut Evidence,
) -> Result<Trusted, Failure> {
    let note = o.log.checkpoint()?;
    ev.new_note = Some(note.clone());
    let (_, cp, _) = o.policy.checkpoint(&note, r)?;
    if let Some(t) = trusted {
        let old = &t.cp;
        if cp.size < old.size {
            return Err(Failure::mismatch(
                "rollback",
                cp.size,
                format!("tree size ≥ {}", old.size),
                format!("tree size {}", cp.size),
                format!(
                    "the log now shows a smaller tree ({}) than the checkpoint trusted before ({}): history was rolled back or this is a split view",
                    cp.size, old.size
                ),
            ));
        }
        if cp.size == old.size {
            if cp.root != old.root {
                return Err(Failure::mismatch(
                    "fork",
                    cp.size,
                    old.root.to_base64(),
                    cp.root.to_base64(),
                    format!(
                        "two different roots signed for tree size {}: the log forked",
                        cp.size
                    ),
                ));
            }
            r.pass(
                "consistency",
                format!("same tree as trusted before (size {})", cp.size),
            );
        } else {
            let proof = o.log.consistency(old.size, cp.size)?;
            ev.proof = Some(serde_json::json!({
                "from": old.size, "to": cp.size,
                "proof": proof.iter().map(|h| h.to_base64()).collect::<Vec<_>>(),
            }));
            verify_consistency(old.size, cp.size, &old.root, &cp.root, &proof).map_err(|e| {
                Failure::mismatch(
                    "consistency",
                    old.size,
                    format!("a tree of size {} extending root {}", cp.size, old.root.to_base64()),
                    format!("root {} with a proof that fails: {e}", cp.root.to_base64()),
                    format!(
                        "the checkpoint of size {} does not extend the trusted one of size {}: a fork or rewritten history",
                        cp.size, old.size
                    ),
                )
            })?;
            r.pass(
                "consistency",
                format!(
                    "size {} extends the trusted size {} (RFC 9162 proof, {} hashes)",
                    cp.size,
                    old.size,
                    proof.len()
                ),
            );
        }
    }
    if o.full {
        full(o, r, tree, &cp)?;
    }
    Ok(Trusted { note, cp })
}

fn full(
    o: &LogOptions,
    r: &mut Report,
    tree: &mut TreeCheck,
    cp: &Checkpoint,
) -> Result<(), Failure> {
    let from = tree.size();
    let tiles = tree.tiles_to(cp.size);
    let started = Instant::now();
    let bar = progress_bar(o.progress, from, cp.size);
    let mut last_line = Instant::now();
    let log = o.log.clone();
    let mut fetch = |id| log.tile(id, false);
    let mut pre = Prefetch::start(Arc::new(o.log.clone()), tiles, o.threads);
    for d in pre.by_ref() {
        tree.push(d?, &mut fetch)?;
        let n = tree.size();
        if let Some(b) = &bar {
            b.set_position(n);
        } else if o.progress && last_line.elapsed() > Duration::from_secs(5) {
            last_line = Instant::now();
            eprintln!(
                "verified {n}/{} entries ({:.0}/s)",
                cp.size,
                (n - from) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    drop(pre);
    let root = tree.finish(&mut fetch)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if root != cp.root {
        return Err(Failure::mismatch(
            "root",
            cp.size,
            cp.root.to_base64(),
            root.to_base64(),
            format!(
                "the root recomputed from all {} entries is not the checkpoint's root",
                cp.size
            ),
        ));
    }
    let secs = started.elapsed().as_secs_f64();
    r.pass(
        "full",
        format!(
            "recomputed every level from {} entries ({} new, {:.1} MB) in {:.2} s ({:.0} entries/s); {} tiles served were each compared with the recomputation; every entry is canonical schema-valid JSON; logged_at never decreases; root matches",
            cp.size,
            cp.size - from,
            tree.bytes as f64 / 1e6,
            secs,
            (cp.size - from) as f64 / secs.max(1e-9),
            tree.tiles_checked
        ),
    );
    r.entries = Some((cp.size, cp.size));
    sequence_report(r, &tree.sequences, o.strict_seq)
}

/// Reports per-session `seq` checking: what was counted, what the memory
/// bounds left unchecked, and the gaps and duplicates (the first
/// [`sequence::KEEP`] of them).
fn sequence_report(r: &mut Report, seqs: &Sequences, strict: bool) -> Result<(), Failure> {
    let (findings, more) = seqs.findings(crate::sequence::KEEP);
    let dups = seqs.duplicate_count;
    let gaps = seqs.gap_count();
    let counted = format!(
        "{} entries with a seq in {} sessions; {} entries with a session but no seq (nothing to check them by)",
        seqs.sequenced,
        seqs.sessions(),
        seqs.unsequenced
    );
    if seqs.untracked_entries > 0 || seqs.abandoned_count > 0 {
        r.warn(format!(
            "sequence: {} entries of sessions beyond the memory bound were not checked; {} sessions with too many holes stopped being checked{}",
            seqs.untracked_entries,
            seqs.abandoned_count,
            seqs.abandoned.first().map(|n| format!(" (first: {n:?})")).unwrap_or_default()
        ));
    }
    if findings.is_empty() {
        r.pass("sequence", format!("{counted}: no seq gaps or duplicates"));
        return Ok(());
    }
    for f in &findings {
        r.warn(f.to_string());
    }
    if more > 0 {
        r.warn(format!("... and {more} more seq findings not listed"));
    }
    let msg =
        format!("{counted}: {gaps} seq gap(s) (possibly omitted events), {dups} duplicate seq(s)");
    if strict {
        return Err(Failure::check("sequence", msg));
    }
    r.warn(msg);
    Ok(())
}

fn progress_bar(on: bool, from: u64, to: u64) -> Option<indicatif::ProgressBar> {
    if !on || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(to);
    b.set_position(from);
    if let Ok(s) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} entries ({per_sec}, eta {eta})",
    ) {
        b.set_style(s);
    }
    Some(b)
}

fn write_evidence(
    o: &LogOptions,
    f: &Failure,
    trusted: Option<&Trusted>,
    ev: &Evidence,
    r: &mut Report,
) {
    let path = match (&o.evidence, o.follow) {
        (Some(p), _) => p.clone(),
        (None, Some(_)) => PathBuf::from(format!(
            "vellum-evidence-{}.json",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        )),
        (None, None) => return,
    };
    let text = |b: &Option<Vec<u8>>| b.as_ref().map(|n| String::from_utf8_lossy(n).into_owned());
    let doc = serde_json::json!({
        "verifier": format!("vellum-verify {}", env!("CARGO_PKG_VERSION")),
        "log": o.log.base(),
        "log_key": o.policy.log.to_vkey(),
        "failure": f,
        "trusted_checkpoint": text(&trusted.map(|t| t.note.clone())),
        "served_checkpoint": text(&ev.new_note),
        "proof": ev.proof,
        "note": "Both checkpoints are signed by the log: two that do not extend each other are proof the log forked.",
    });
    match std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap_or_default()) {
        Ok(()) => r.warn(format!("evidence written to {}", path.display())),
        Err(e) => r.warn(format!(
            "could not write evidence to {}: {e}",
            path.display()
        )),
    }
}
