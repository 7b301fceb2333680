//! `vellum-verify bundle`: verifies an evidence bundle offline, one line at
//! a time ([`vellum_spec::bundle::BundleCheck`]), and optionally writes an
//! HTML report an auditor can file.

use std::io::BufRead;
use std::path::Path;

use vellum_spec::bundle::{BundleCheck, BundleError, BundleSummary};

use crate::keys::Policy;
use crate::report::{CheckpointInfo, Failure, Report};

fn failure(e: BundleError, line: u64) -> Failure {
    let index = match &e {
        BundleError::Event { index, .. }
        | BundleError::Inclusion { index, .. }
        | BundleError::Scope { index, .. }
        | BundleError::Filter { index } => Some(*index),
        BundleError::Missing { missing, .. } => Some(*missing),
        _ => None,
    };
    Failure::Verification {
        check: e.check().into(),
        index,
        expected: None,
        got: None,
        message: if line > 0 {
            format!("line {line}: {e}")
        } else {
            e.to_string()
        },
    }
}

/// Runs `vellum-verify bundle`.
pub fn run(file: &Path, policy: &Policy, since: Option<&Path>) -> (Report, Option<BundleSummary>) {
    let mut r = Report::new("bundle", &file.display().to_string());
    match inner(file, policy, since, &mut r) {
        Ok(s) => (r, Some(s)),
        Err(f) => {
            r.fail(f);
            (r, None)
        }
    }
}

fn inner(
    file: &Path,
    policy: &Policy,
    since: Option<&Path>,
    r: &mut Report,
) -> Result<BundleSummary, Failure> {
    let op = |e: std::io::Error| Failure::Operational(format!("{}: {e}", file.display()));
    let since = since
        .map(|p| {
            std::fs::read(p).map_err(|e| Failure::Operational(format!("{}: {e}", p.display())))
        })
        .transpose()?;
    let f = std::fs::File::open(file).map_err(op)?;
    let mut rd = std::io::BufReader::with_capacity(1 << 20, f);
    let mut line = Vec::new();
    let mut n = 0u64;
    let mut read = |line: &mut Vec<u8>| -> Result<bool, Failure> {
        line.clear();
        let got = rd.read_until(b'\n', line).map_err(op)?;
        if got == 0 {
            return Ok(false);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        Ok(true)
    };
    if !read(&mut line)? {
        return Err(failure(BundleError::Format("empty file".into()), 0));
    }
    n += 1;
    let check = BundleCheck::open(
        &line,
        &policy.log,
        &policy.witnesses,
        policy.quorum,
        since.as_deref(),
    );
    // Describe the checkpoint (also when it fails) for the report.
    if let Ok(h) = serde_json::from_slice::<vellum_spec::bundle::Header>(&line) {
        let mut scratch = Report::new("bundle", "");
        let _ = policy.checkpoint(h.checkpoint.as_bytes(), &mut scratch);
        r.checkpoint = scratch.checkpoint;
    }
    let mut check = match check {
        Ok(c) => c,
        Err(BundleError::Checkpoint(e)) => return Err(crate::keys::checkpoint_failure(e)),
        Err(e) => return Err(failure(e, 1)),
    };
    r.pass(
        "log-signature",
        format!(
            "checkpoint signed by {}+{:08x}",
            policy.log.name, policy.log.id
        ),
    );
    r.pass(
        "quorum",
        format!(
            "{} valid witness cosignature(s), {} required",
            r.checkpoint.as_ref().map_or(0, |c| c.cosignatures),
            policy.quorum
        ),
    );
    while read(&mut line)? {
        n += 1;
        check.record(&line).map_err(|e| failure(e, n))?;
    }
    let summary = check.finish().map_err(|e| failure(e, 0))?;
    describe(&summary, r);
    Ok(summary)
}

/// Adds the summary's checks to the report.
pub fn describe(s: &BundleSummary, r: &mut Report) {
    let m = &s.manifest;
    let sc = &m.scope;
    r.pass(
        "manifest",
        "the manifest (scope, filter, counts, export time) is signed by the log key, bound to this checkpoint",
    );
    r.pass(
        "inclusion",
        format!(
            "{} events, each with an inclusion proof to the checkpoint's root (size {})",
            s.events, s.checkpoint.size
        ),
    );
    r.pass(
        "event",
        "every event is canonical JSON of a schema-valid event",
    );
    let window = format!(
        "{} ≤ logged_at < {}",
        sc.from.as_deref().unwrap_or("(start of log)"),
        sc.to.as_deref().unwrap_or("(checkpoint)")
    );
    r.pass(
        "scope",
        format!(
            "window {window} = indexes {}..{}; {}; every event is inside it and logged_at never decreases",
            sc.first_index,
            sc.end_index,
            match (sc.first_index > 0 && sc.from.is_some(), sc.end_index < s.checkpoint.size) {
                (true, true) => "the entries just before and after it prove where it starts and ends",
                (true, false) => "the entry just before it proves where it starts; it ends at the checkpoint",
                (false, true) => "it starts at the log's first entry; the entry just after it proves where it ends",
                (false, false) => "it spans the log from its first entry to the checkpoint",
            }
        ),
    );
    if s.complete {
        r.pass(
            "completeness",
            format!(
                "unfiltered window: all {} entries of indexes {}..{} are present, so no event of the window was left out{}",
                sc.end_index - sc.first_index,
                sc.first_index,
                sc.end_index,
                if sc.end_index == s.checkpoint.size && sc.to.is_some() {
                    " (up to the checkpoint; later events are not covered)"
                } else {
                    ""
                }
            ),
        );
    } else {
        r.pass(
            "filter",
            format!(
                "every event matches the filter {}; NOT proven: that no other matching event exists in the window (a filtered export cannot show what it left out)",
                serde_json::to_string(&m.filter).unwrap_or_default()
            ),
        );
    }
    r.pass(
        "counts",
        format!("counts by verdict match the manifest: {:?}", s.counts),
    );
    match s.consistent_from {
        Some(m) => r.pass(
            "consistency",
            format!("the checkpoint (size {}) extends your earlier checkpoint (size {m})", s.checkpoint.size),
        ),
        None => r.warn("no --since checkpoint given: consistency with an earlier view of the log was not checked"),
    }
    r.entries = Some((s.events, s.events));
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An HTML report of a bundle verification.
pub fn html(r: &Report, s: Option<&BundleSummary>) -> String {
    let mut h = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>Vellum evidence bundle verification</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}table{border-collapse:collapse}.ok{color:#060}.fail{color:#a00}code{word-break:break-all}</style></head><body>");
    h += &format!(
        "<h1>Evidence bundle verification: <span class=\"{}\">{}</span></h1>",
        if r.ok { "ok" } else { "fail" },
        if r.ok { "VERIFIED" } else { "FAILED" }
    );
    h += &format!(
        "<p>File <code>{}</code>, verified offline by <b>{}</b>.</p>",
        esc(&r.target),
        esc(&r.verifier)
    );
    if let Some(s) = s {
        let m = &s.manifest;
        h += "<h2>Scope</h2><table>";
        let rows = [
            ("Log origin", m.origin.clone()),
            ("Log key", m.log_key.clone()),
            ("Exported at", m.exported_at.clone()),
            (
                "From (logged_at ≥)",
                m.scope.from.clone().unwrap_or("start of log".into()),
            ),
            (
                "To (logged_at <)",
                m.scope.to.clone().unwrap_or("the checkpoint".into()),
            ),
            (
                "Index range",
                format!("{}..{}", m.scope.first_index, m.scope.end_index),
            ),
            (
                "Filter",
                serde_json::to_string(&m.filter).unwrap_or_default(),
            ),
            (
                "Complete window",
                if s.complete {
                    "yes: every entry of the range is present".into()
                } else {
                    "no: filtered".into()
                },
            ),
            ("Events", s.events.to_string()),
            ("By verdict", format!("{:?}", s.counts)),
        ];
        for (k, v) in rows {
            h += &format!(
                "<tr><th>{}</th><td><code>{}</code></td></tr>",
                esc(k),
                esc(&v)
            );
        }
        h += "</table>";
    }
    if let Some(c) = &r.checkpoint {
        h += &checkpoint_html(c);
    }
    h += "<h2>Checks</h2><table><tr><th>check</th><th>result</th><th>what</th></tr>";
    for c in &r.checks {
        h += &format!(
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            esc(&c.check),
            if c.ok { "ok" } else { "fail" },
            if c.ok { "ok" } else { "FAILED" },
            esc(&c.detail)
        );
    }
    h += "</table>";
    if !r.warnings.is_empty() {
        h += "<h2>Warnings</h2><ul>";
        for w in &r.warnings {
            h += &format!("<li>{}</li>", esc(w));
        }
        h += "</ul>";
    }
    if let Some(f) = &r.failure {
        h += &format!(
            "<h2 class=\"fail\">Failure</h2><p>{}</p>",
            esc(&f.to_string())
        );
    }
    h += "</body></html>\n";
    h
}

fn checkpoint_html(c: &CheckpointInfo) -> String {
    let mut h = format!(
        "<h2>Checkpoint</h2><p>Origin <code>{}</code>, tree size <b>{}</b>, root <code>{}</code>; {} valid witness cosignature(s), {} required.</p><table><tr><th>signer</th><th>role</th><th>verified</th><th>cosigned at</th></tr>",
        esc(&c.origin), c.size, esc(&c.root), c.cosignatures, c.quorum
    );
    for s in &c.signatures {
        h += &format!(
            "<tr><td><code>{}+{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.name),
            esc(&s.key_id),
            esc(&s.role),
            if s.verified { "yes" } else { "no" },
            esc(s.time.as_deref().unwrap_or(""))
        );
    }
    h + "</table>"
}
