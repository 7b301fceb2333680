//! Files a commit wrote, synced together: every file and directory of one
//! commit is fsynced at once, each on its own thread, so a commit waits
//! for the slowest sync rather than for the sum of them (the device
//! merges the flushes that arrive together).

use std::fs::File;
use std::io;
use std::path::PathBuf;

/// What one commit must make durable before its size is recorded.
#[derive(Default)]
pub struct SyncSet {
    files: Vec<File>,
    dirs: Vec<PathBuf>,
}

impl SyncSet {
    /// A file whose data must reach the disk (fdatasync).
    pub fn file(&mut self, f: File) {
        self.files.push(f);
    }

    /// A directory that gained an entry (fsync of the directory).
    pub fn dir(&mut self, d: PathBuf) {
        if !self.dirs.contains(&d) {
            self.dirs.push(d);
        }
    }

    /// Syncs everything, concurrently; the first error, if any.
    pub fn sync(self) -> io::Result<()> {
        let _span = tracing::debug_span!("sync", files = self.files.len(), dirs = self.dirs.len())
            .entered();
        let mut jobs: Vec<Box<dyn FnOnce() -> io::Result<()> + Send>> = Vec::new();
        for f in self.files {
            jobs.push(Box::new(move || f.sync_data()));
        }
        for d in self.dirs {
            jobs.push(Box::new(move || File::open(&d)?.sync_all()));
        }
        let Some(first) = jobs.pop() else {
            return Ok(());
        };
        std::thread::scope(|s| {
            let mut res = Ok(());
            let mut others = Vec::new();
            for j in jobs {
                // At the process's thread limit the commit fails (and the
                // sequencer recovers, as from any storage error).
                let thread = std::thread::Builder::new().name("vellum-fsync".into());
                match thread.spawn_scoped(s, j) {
                    Ok(h) => others.push(h),
                    Err(e) => {
                        res = res.and(Err(io::Error::other(format!(
                            "could not start a sync thread: {e}"
                        ))))
                    }
                }
            }
            res = res.and(first());
            for h in others {
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("a sync thread panicked")));
                res = res.and(r);
            }
            res
        })
    }
}
