//! The logs a witness accepts checkpoints from: origin → verifier keys,
//! from `--log VKEY` flags and an optional TOML file that is re-read when
//! it changes. State is keyed by origin, so editing the list never loses it.
//!
//! ```toml
//! [[log]]
//! vkey = "example.com/log+1234abcd+AaBb..."
//! # origin = "example.com/log"   # defaults to the key's name
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use vellum_spec::note::{VerifierKey, ALG_COSIGNATURE_V1};

/// Origin → the keys whose signature makes a checkpoint authentic.
pub type LogKeys = BTreeMap<String, Vec<VerifierKey>>;

/// Loading the log list failed.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// The file could not be read.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The file is not valid TOML of the expected shape.
    #[error("{0}: {1}")]
    Toml(String, toml::de::Error),
    /// A verifier key does not parse.
    #[error("log key {key:?}: {err}")]
    Key {
        /// The key text.
        key: String,
        /// Why.
        err: vellum_spec::note::NoteError,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    log: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    vkey: String,
    origin: Option<String>,
}

fn add(map: &mut LogKeys, vkey: &str, origin: Option<&str>) -> Result<(), LogsError> {
    let key = VerifierKey::parse(vkey).map_err(|err| LogsError::Key {
        key: vkey.to_string(),
        err,
    })?;
    if key.alg == ALG_COSIGNATURE_V1 {
        return Err(LogsError::Key {
            key: vkey.to_string(),
            err: vellum_spec::note::NoteError::UnknownAlgorithm(key.alg),
        });
    }
    let origin = origin.unwrap_or(&key.name).to_string();
    let keys = map.entry(origin).or_default();
    if !keys.contains(&key) {
        keys.push(key);
    }
    Ok(())
}

/// Builds the list from flags and (if given) the file.
pub fn load(flags: &[String], file: Option<&Path>) -> Result<LogKeys, LogsError> {
    let mut map = LogKeys::new();
    for v in flags {
        add(&mut map, v, None)?;
    }
    if let Some(path) = file {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| LogsError::Io(p.clone(), e))?;
        let f: File = toml::from_str(&text).map_err(|e| LogsError::Toml(p.clone(), e))?;
        for e in f.log {
            add(&mut map, &e.vkey, e.origin.as_deref())?;
        }
    }
    Ok(map)
}

/// The live list, shared with the request handlers.
#[derive(Clone)]
pub struct Logs {
    inner: Arc<RwLock<Arc<LogKeys>>>,
}

impl Logs {
    /// Wraps an initial list.
    pub fn new(keys: LogKeys) -> Logs {
        Logs {
            inner: Arc::new(RwLock::new(Arc::new(keys))),
        }
    }

    /// The current list.
    pub fn get(&self) -> Arc<LogKeys> {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, keys: LogKeys) {
        match self.inner.write() {
            Ok(mut g) => *g = Arc::new(keys),
            Err(p) => *p.into_inner() = Arc::new(keys),
        }
    }

    /// Re-reads `file` whenever its modification time changes; a bad file
    /// is reported and the previous list kept.
    pub async fn watch(self, flags: Vec<String>, file: PathBuf) {
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut seen: Option<SystemTime> = mtime(&file);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = mtime(&file);
            if now == seen {
                continue;
            }
            seen = now;
            match load(&flags, Some(&file)) {
                Ok(keys) => {
                    tracing::info!(logs = keys.len(), file = %file.display(), "reloaded log list");
                    self.set(keys);
                }
                Err(e) => {
                    tracing::error!(error = %e, "log list not reloaded; keeping the previous one")
                }
            }
        }
    }
}
