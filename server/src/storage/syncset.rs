//! Files a commit wrote, synced together: every file and directory of one
//! commit is fsynced at once, each on its own thread of a small pool, so a
//! commit waits for the slowest sync rather than for the sum of them (the
//! device merges the flushes that arrive together).

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

/// Threads of the sync pool: more than a commit's usual files (its entry
/// bundle, a tile per level it touched, their directories); the rest
/// queue.
const SYNC_THREADS: usize = 8;

/// What one commit must make durable before its size is recorded.
#[derive(Default)]
pub struct SyncSet {
    files: Vec<File>,
    dirs: Vec<PathBuf>,
}

type Job = Box<dyn FnOnce() + Send>;

/// The pool's queue; `None` if not one of its threads could be started
/// (then the caller syncs everything itself, one after another).
fn pool() -> Option<&'static mpsc::Sender<Job>> {
    static POOL: OnceLock<Option<mpsc::Sender<Job>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        let mut started = 0;
        for _ in 0..SYNC_THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name("vellum-fsync".into())
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::warn!(error = %e, "could not start a sync thread"),
            }
        }
        (started > 0).then_some(tx)
    })
    .as_ref()
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
        let (done_tx, done) = mpsc::channel();
        for j in jobs {
            let tx = done_tx.clone();
            let job: Job = Box::new(move || {
                let _ = tx.send(j());
            });
            match pool() {
                Some(p) => match p.send(job) {
                    Ok(()) => {}
                    Err(mpsc::SendError(job)) => job(),
                },
                None => job(),
            }
        }
        drop(done_tx);
        let mut res = first();
        // Results of the jobs run inline arrive here too.
        while let Ok(r) = done.recv() {
            res = res.and(r);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_many_files_and_reports_the_first_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = SyncSet::default();
        for i in 0..(3 * SYNC_THREADS) {
            set.file(File::create(dir.path().join(format!("f{i}"))).unwrap());
        }
        set.dir(dir.path().to_path_buf());
        set.sync().unwrap();

        let mut set = SyncSet::default();
        set.file(File::create(dir.path().join("g")).unwrap());
        set.dir(dir.path().join("missing"));
        let e = set.sync().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
