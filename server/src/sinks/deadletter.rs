//! A sink's dead-letter file (`DATA/sinks/<name>.dead.ndjson`): the
//! records a receiver refused for good, one JSON line each with the time
//! and the reason, so they can be inspected and sent again by hand. It
//! stops growing at [`MAX_BYTES`] (later refusals are still counted).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Item;

/// Size at which the dead-letter file stops growing.
pub const MAX_BYTES: u64 = 1 << 30;

/// A sink's dead-letter file.
pub struct DeadLetters {
    path: PathBuf,
}

impl DeadLetters {
    /// The file of sink `name` in `dir`.
    pub fn new(dir: &Path, name: &str) -> DeadLetters {
        DeadLetters {
            path: dir.join(format!("{name}.dead.ndjson")),
        }
    }

    /// Appends `items` with `reason`, synced; logs (never fails the sink).
    pub fn write(&self, items: &[Item], reason: &str) {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= MAX_BYTES) {
            tracing::error!(file = %self.path.display(), "dead-letter file is full; refused records are only counted");
            return;
        }
        let at = vellum_spec::time::format_millis(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        );
        let mut buf = Vec::new();
        for it in items {
            let line = serde_json::json!({
                "at": at,
                "reason": reason,
                "index": it.index,
                "record": it.record,
            });
            buf.extend_from_slice(line.to_string().as_bytes());
            buf.push(b'\n');
        }
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| {
                f.write_all(&buf)?;
                f.sync_data()
            });
        if let Err(e) = res {
            tracing::error!(file = %self.path.display(), error = %e, "writing the dead-letter file failed");
        }
    }
}
