//! Prometheus text metrics, kept with atomics: no locks on the hot paths.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A cumulative histogram with fixed upper bounds.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in millionths of the unit, to stay integral.
    sum_micros: AtomicU64,
}

impl Histogram {
    /// An empty histogram with these upper bounds.
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add((v * 1e6) as u64, Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        self.render_labeled(name, help, "", out)
    }

    /// Renders with extra labels (`key="value"`, or empty); the HELP and
    /// TYPE lines are written only for unlabeled or first-labeled calls.
    pub fn render_labeled(&self, name: &str, help: &str, labels: &str, out: &mut String) {
        if !out.contains(&format!("# TYPE {name} histogram")) {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        }
        let (sep, braces) = if labels.is_empty() {
            ("", String::new())
        } else {
            (",", format!("{{{labels}}}"))
        };
        let mut cum = 0;
        for (b, c) in self.bounds.iter().zip(&self.buckets) {
            cum += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cum}");
        }
        let n = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {n}");
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}\n{name}_count{braces} {n}",
            self.sum_micros.load(Relaxed) as f64 / 1e6
        );
    }
}

/// Bucket bounds for durations in seconds.
pub const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];
const SIZES: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

/// Every metric the log exports.
pub struct Metrics {
    /// Entries appended (new leaves).
    pub appended: AtomicU64,
    /// Events answered as duplicates of an earlier event_id.
    pub duplicates: AtomicU64,
    /// Append requests answered 200.
    pub append_requests: AtomicU64,
    /// Append requests refused (4xx/5xx).
    pub append_rejected: AtomicU64,
    /// Append requests refused because the queue was full.
    pub overloaded: AtomicU64,
    /// Group commits that failed (transient or not).
    pub commit_failures: AtomicU64,
    /// Requests refused because a concurrency limit was reached (exports,
    /// receipt waits).
    pub limited: AtomicU64,
    /// Checkpoints signed.
    pub checkpoints: AtomicU64,
    /// Proofs served.
    pub proofs: AtomicU64,
    /// Query pages served.
    pub queries: AtomicU64,
    /// Durable tree size.
    pub tree_size: AtomicU64,
    /// Size of the published checkpoint.
    pub checkpoint_size: AtomicU64,
    /// Entries per group commit.
    pub commit_entries: Histogram,
    /// Seconds each group commit takes to write and fsync (entries, then index).
    pub fsync_seconds: Histogram,
    /// Seconds from a request entering the queue to its entries being durable.
    pub integration_seconds: Histogram,
    /// Seconds to compute, sign and store a checkpoint.
    pub checkpoint_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            appended: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            append_requests: AtomicU64::new(0),
            append_rejected: AtomicU64::new(0),
            overloaded: AtomicU64::new(0),
            commit_failures: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            proofs: AtomicU64::new(0),
            queries: AtomicU64::new(0),
            tree_size: AtomicU64::new(0),
            checkpoint_size: AtomicU64::new(0),
            commit_entries: Histogram::new(SIZES),
            fsync_seconds: Histogram::new(SECONDS),
            integration_seconds: Histogram::new(SECONDS),
            checkpoint_seconds: Histogram::new(SECONDS),
        }
    }
}

impl Metrics {
    /// Renders all metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = [
            (
                "vellum_appended_entries_total",
                "Entries appended to the log.",
                &self.appended,
            ),
            (
                "vellum_duplicate_events_total",
                "Events answered with the index of an earlier event with the same event_id.",
                &self.duplicates,
            ),
            (
                "vellum_append_requests_total",
                "Append requests answered 200.",
                &self.append_requests,
            ),
            (
                "vellum_append_rejected_total",
                "Append requests refused.",
                &self.append_rejected,
            ),
            (
                "vellum_append_overloaded_total",
                "Append requests refused with 503 because the queue was full.",
                &self.overloaded,
            ),
            (
                "vellum_commit_failures_total",
                "Group commits that failed; appends are refused until storage recovers.",
                &self.commit_failures,
            ),
            (
                "vellum_requests_limited_total",
                "Requests refused with 503 because a concurrency limit (exports, receipt waits) was reached.",
                &self.limited,
            ),
            (
                "vellum_checkpoints_signed_total",
                "Checkpoints signed.",
                &self.checkpoints,
            ),
            (
                "vellum_proofs_served_total",
                "Inclusion and consistency proofs served.",
                &self.proofs,
            ),
            (
                "vellum_query_pages_total",
                "Query pages served (GET /v1/events).",
                &self.queries,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
        for (name, help, v) in [
            (
                "vellum_tree_size",
                "Durable entries in the log.",
                &self.tree_size,
            ),
            (
                "vellum_checkpoint_size",
                "Tree size of the published checkpoint.",
                &self.checkpoint_size,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                v.load(Relaxed)
            );
        }
        self.commit_entries.render(
            "vellum_commit_batch_entries",
            "Entries per group commit.",
            &mut out,
        );
        self.fsync_seconds.render(
            "vellum_fsync_seconds",
            "Duration of each group commit: writing and fsyncing the entry bundles, then the index.",
            &mut out,
        );
        self.integration_seconds.render("vellum_integration_seconds", "Time from an append request entering the queue to its entries being durable and in the tree.", &mut out);
        self.checkpoint_seconds.render(
            "vellum_checkpoint_seconds",
            "Time to compute, sign and durably store a checkpoint.",
            &mut out,
        );
        out
    }
}
