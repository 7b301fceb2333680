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
    /// Whether hours left open by an earlier run have been looked for.
    swept: bool,
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

/// Every file under `dir/YYYY/MM/DD/`, with the hour its name gives
/// (files not named for an hour are left alone).
fn hour_files(dir: &Path) -> std::io::Result<Vec<(PathBuf, i64)>> {
    fn subdirs(d: &Path, width: usize) -> std::io::Result<Vec<(PathBuf, u32)>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for e in rd {
            let e = e?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() == width && name.bytes().all(|b| b.is_ascii_digit()) && e.path().is_dir()
            {
                out.push((e.path(), name.parse().unwrap_or(0)));
            }
        }
        Ok(out)
    }
    let mut out = Vec::new();
    for (y, year) in subdirs(dir, 4)? {
        for (m, month) in subdirs(&y, 2)? {
            for (d, day) in subdirs(&m, 2)? {
                for e in std::fs::read_dir(&d)? {
                    let e = e?;
                    let name = e.file_name();
                    let Some(name) = name.to_str() else { continue };
                    let Some(hh) = name.get(..2).and_then(|h| h.parse::<u32>().ok()) else {
                        continue;
                    };
                    let t = format!("{year:04}-{month:02}-{day:02}T{hh:02}:00:00Z");
                    if let Ok(ms) = vellum_spec::time::parse_utc_millis(&t) {
                        out.push((e.path(), ms));
                    }
                }
            }
        }
    }
    Ok(out)
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
            swept: false,
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

    /// Closes hours that ended more than a minute ago, including, the
    /// first time, those an earlier run left open (stopped or crashed).
    pub async fn idle(&mut self) -> Result<(), String> {
        let cutoff = super::now_ms() - GRACE.as_millis() as i64 - HOUR_MS;
        let hour = (cutoff.div_euclid(HOUR_MS) + 1) * HOUR_MS;
        tokio::task::block_in_place(|| {
            if !self.swept && self.gzip {
                self.sweep(hour)?;
            }
            self.swept = true;
            self.close_before(hour)
        })
        .map_err(|e| format!("{}: {e}", self.dir.display()))
    }

    /// Compresses the plain hour files before `hour` that no run has open,
    /// and removes temporary files a crash left behind.
    fn sweep(&mut self, hour: i64) -> std::io::Result<()> {
        let mut found = Vec::new();
        for (path, h) in hour_files(&self.dir)? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".gz.tmp") {
                std::fs::remove_file(&path)?;
            } else if name.ends_with(".ndjson") && h < hour && !self.open.contains_key(&h) {
                found.push(h);
            }
        }
        for h in found {
            self.compress(h)?;
        }
        Ok(())
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

    fn sink(dir: &Path) -> FileSink {
        FileSink {
            dir: dir.to_path_buf(),
            gzip: true,
            open: BTreeMap::new(),
            newest: i64::MIN,
            swept: false,
        }
    }

    fn item(index: u64, ms: i64) -> Item {
        Item {
            index,
            logged_at_ms: ms,
            record: format!("{{\"index\":{index}}}"),
            wire: Vec::new(),
        }
    }

    /// The text of a gzip file as the gzip command reads it.
    fn gunzip(p: &Path) -> String {
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(p)
            .output()
            .unwrap();
        assert!(out.status.success(), "gzip -dc {}: {out:?}", p.display());
        String::from_utf8(out.stdout).unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_hour_closes_into_gzip_when_a_later_hour_arrives() {
        let d = tempfile::tempdir().unwrap();
        let h = 1_781_964_000_000i64; // 2026-06-20T14:00Z
        let mut s = sink(d.path());
        assert!(matches!(
            s.deliver(&[item(0, h + 5), item(1, h + 6)]).await,
            Outcome::Delivered
        ));
        let plain = d.path().join("2026/06/20/14.ndjson");
        assert_eq!(
            std::fs::read_to_string(&plain).unwrap(),
            "{\"index\":0}\n{\"index\":1}\n"
        );
        assert!(matches!(
            s.deliver(&[item(2, h + HOUR_MS)]).await,
            Outcome::Delivered
        ));
        assert!(!plain.exists());
        let gz = d.path().join("2026/06/20/14.ndjson.gz");
        assert_eq!(gunzip(&gz), "{\"index\":0}\n{\"index\":1}\n");
        // A late event of the closed hour (after a restart) becomes a
        // further member, read as one text.
        let mut s = sink(d.path());
        assert!(matches!(
            s.deliver(&[item(3, h + 7), item(4, h + 2 * HOUR_MS)]).await,
            Outcome::Delivered
        ));
        assert_eq!(gunzip(&gz), "{\"index\":0}\n{\"index\":1}\n{\"index\":3}\n");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn hours_an_earlier_run_left_open_are_closed_when_idle() {
        let d = tempfile::tempdir().unwrap();
        let day = d.path().join("2026/06/20");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::write(day.join("09.ndjson"), "{\"index\":7}\n").unwrap();
        std::fs::write(day.join("10.ndjson.gz.tmp"), "half").unwrap();
        std::fs::write(day.join("notes.txt"), "kept").unwrap();
        let mut s = sink(d.path());
        s.idle().await.unwrap();
        assert_eq!(gunzip(&day.join("09.ndjson.gz")), "{\"index\":7}\n");
        assert!(!day.join("09.ndjson").exists());
        assert!(!day.join("10.ndjson.gz.tmp").exists());
        assert!(day.join("notes.txt").exists());
    }
}
