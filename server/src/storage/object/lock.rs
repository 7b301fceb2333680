//! The writer's lock record: one small JSON object swapped with
//! compare-and-swap (`If-Match` on its ETag). It holds the committed tree
//! (size and root), the newest stored checkpoint, the log's public key,
//! and who holds the right to write until when (a lease). Every commit,
//! checkpoint and lease renewal swaps it against the version the writer
//! last read; a writer whose swap fails has been fenced by another.

use serde::{Deserialize, Serialize};

/// How long a lease lasts by default without renewal; a second writer may
/// take over once it expired. Renewed every third of it.
pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(15);

/// The lock record's contents.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockRecord {
    /// Format version (1).
    pub version: u32,
    /// The writer's instance ID (random, kept in its data directory).
    pub holder: String,
    /// The writer's host name and process ID, for messages.
    pub host: String,
    /// The writer's process ID.
    pub pid: u32,
    /// Unix time in ms until which the holder may write without renewing.
    pub lease_until_ms: i64,
    /// Committed tree size: every entry and tile below it is in the bucket.
    pub size: u64,
    /// Hex root of the tree at `size`.
    pub root: String,
    /// The log's verifier key (`vkey`), fixed when the log was created.
    pub log_key: String,
    /// The newest stored signed checkpoint (note text), if any.
    pub checkpoint: Option<String>,
}

impl LockRecord {
    /// True while the lease has not run out at `now_ms`.
    pub fn live(&self, now_ms: i64) -> bool {
        self.lease_until_ms > now_ms
    }

    /// The lock's holder, for messages.
    pub fn who(&self) -> String {
        format!("{} (pid {} on {})", self.holder, self.pid, self.host)
    }
}

/// Unix time now, in ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// This machine's host name, for the lock record.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
