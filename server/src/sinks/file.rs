//! The file sink: NDJSON partitioned by the hour of `logged_at` (UTC), at
//! `DIR/YYYY/MM/DD/HH.ndjson`, for archives and for shipping agents
//! (Filebeat, Fluent Bit, Vector) to pick up. A batch counts as delivered
//! once written and synced. An hour closes once the sink delivers an event
//! of a later hour, or a minute after the hour ended while the sink is
//! caught up; with gzip on, the closed hour becomes `HH.ndjson.gz` (a
//! later event of that hour, after a restart for instance, is added to it
//! as a further gzip member, which every gzip reader concatenates).
//!
//! A line cut short by a crash is cut off when the sink next opens the
//! file: its events were not acknowledged, so they are written again.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::{Destination, SinkSpec};
use super::{Item, Outcome};

/// How long after an hour ends its file stays open for late events.
const GRACE: Duration = Duration::from_secs(60);
const HOUR_MS: i64 = 3_600_000;

/// Hourly NDJSON files.
pub struct FileSink {
    dir: PathBuf,
    gzip: bool,
    /// Open files by hour (Unix ms of the hour's start).
    open: BTreeMap<i64, File>,
    /// Newest hour delivered.
    newest: i64,
}

/// The path of the file of the hour starting at `hour_ms`, relative to the
/// sink's directory: `YYYY/MM/DD/HH.ndjson`.
pub fn hour_path(hour_ms: i64) -> PathBuf {
    let t = vellum_spec::time::format_millis(hour_ms);
    // 2026-06-20T14:00:00.000Z
    PathBuf::from(&t[0..4])
        .join(&t[5..7])
        .join(&t[8..10])
        .join(format!("{}.ndjson", &t[11..13]))
}

fn gz_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".gz");
    PathBuf::from(s)
}

/// Cuts a line left incomplete by a crash off the end of `f`.
fn cut_torn_line(f: &mut File) -> std::io::Result<()> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut pos = len;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let start = pos.saturating_sub(buf.len() as u64);
        let n = (pos - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(k) = buf[..n].iter().rposition(|b| *b == b'\n') {
            let keep = start + k as u64 + 1;
            if keep < len {
                f.set_len(keep)?;
                tracing::warn!(
                    cut = len - keep,
                    "file sink: cut an incomplete last line (written again)"
                );
            }
            break;
        }
        if start == 0 {
            f.set_len(0)?;
            break;
        }
        pos = start;
    }
    f.seek(SeekFrom::End(0))?;
    Ok(())
}

fn sync_dir(p: &Path) {
    if let Some(d) = p.parent() {
        if let Ok(f) = File::open(d) {
            let _ = f.sync_all();
        }
    }
}

impl FileSink {
    /// The sink of `spec` (a file destination).
    pub fn new(spec: &SinkSpec) -> Result<FileSink, String> {
        let Destination::File { dir, gzip } = &spec.dest else {
            return Err("not a file sink".into());
        };
        Ok(FileSink {
            dir: dir.clone(),
            gzip: *gzip,
            open: BTreeMap::new(),
            newest: i64::MIN,
        })
    }

    fn file(&mut self, hour: i64) -> std::io::Result<&mut File> {
        if !self.open.contains_key(&hour) {
            let p = self.dir.join(hour_path(hour));
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d)?;
            }
            let mut f = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&p)?;
            cut_torn_line(&mut f)?;
            sync_dir(&p);
            self.open.insert(hour, f);
        }
        Ok(self.open.get_mut(&hour).expect("just opened"))
    }

    fn write_batch(&mut self, items: &[Item]) -> std::io::Result<()> {
        let mut by_hour: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
        for it in items {
            let ms = if it.logged_at_ms == i64::MIN {
                super::now_ms()
            } else {
                it.logged_at_ms
            };
            let hour = ms.div_euclid(HOUR_MS) * HOUR_MS;
            let b = by_hour.entry(hour).or_default();
            b.extend_from_slice(it.bytes());
            b.push(b'\n');
        }
        for (hour, buf) in &by_hour {
            let f = self.file(*hour)?;
            f.write_all(buf)?;
            f.sync_data()?;
            self.newest = self.newest.max(*hour);
        }
        Ok(())
    }

    /// Writes a batch and syncs it; closes the hours before the newest.
    pub async fn deliver(&mut self, items: &[Item]) -> Outcome {
        let r = tokio::task::block_in_place(|| self.write_batch(items));
        if let Err(e) = r {
            // A file handle may be in a bad state: reopen next time.
            self.open.clear();
            return Outcome::Retry(format!("{}: {e}", self.dir.display()), None);
        }
        let newest = self.newest;
        if let Err(e) = tokio::task::block_in_place(|| self.close_before(newest)) {
            tracing::error!(error = %e, "file sink: closing an hour failed (retried later)");
        }
        Outcome::Delivered
    }

    /// Closes hours that ended more than a minute ago.
    pub async fn idle(&mut self) -> Result<(), String> {
        let cutoff = super::now_ms() - GRACE.as_millis() as i64 - HOUR_MS;
        let hour = (cutoff.div_euclid(HOUR_MS) + 1) * HOUR_MS;
        tokio::task::block_in_place(|| self.close_before(hour))
            .map_err(|e| format!("{}: {e}", self.dir.display()))
    }

    /// Closes (and gzips) every open hour before `hour`.
    fn close_before(&mut self, hour: i64) -> std::io::Result<()> {
        let old: Vec<i64> = self.open.range(..hour).map(|(h, _)| *h).collect();
        for h in old {
            if let Some(f) = self.open.remove(&h) {
                drop(f);
                if self.gzip {
                    self.compress(h)?;
                }
            }
        }
        Ok(())
    }

    /// `HH.ndjson` → `HH.ndjson.gz` (appended as a further member if the
    /// `.gz` exists), through a synced temporary file and a rename.
    fn compress(&self, hour: i64) -> std::io::Result<()> {
        let plain = self.dir.join(hour_path(hour));
        let gz = gz_path(&plain);
        let mut tmp_name = gz.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let mut out = File::create(&tmp)?;
        if gz.exists() {
            std::io::copy(&mut File::open(&gz)?, &mut out)?;
        }
        let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        std::io::copy(&mut File::open(&plain)?, &mut enc)?;
        let out = enc.finish()?;
        out.sync_all()?;
        std::fs::rename(&tmp, &gz)?;
        sync_dir(&gz);
        std::fs::remove_file(&plain)?;
        sync_dir(&plain);
        tracing::debug!(file = %gz.display(), "file sink: hour closed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_map_to_dated_paths() {
        // 2026-06-20T14:07:31Z
        let t = 1_781_964_451_000i64;
        let h = t.div_euclid(HOUR_MS) * HOUR_MS;
        assert_eq!(hour_path(h), PathBuf::from("2026/06/20/14.ndjson"));
    }

    #[test]
    fn a_torn_last_line_is_cut() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"{\"a\":1}\n{\"b\":").unwrap();
        let mut f = OpenOptions::new().read(true).append(true).open(&p).unwrap();
        cut_torn_line(&mut f).unwrap();
        f.write_all(b"{\"c\":3}\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"a\":1}\n{\"c\":3}\n");
    }
}
