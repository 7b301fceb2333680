//! Durable witness state in sled: per origin, the last checkpoint cosigned
//! (size, root, the cosigned note, the cosignature time). Every update is a
//! compare-and-swap against the record the decision was made on, flushed to
//! disk before the cosignature is released.

use std::path::Path;

use serde::{Deserialize, Serialize};
use vellum_spec::hash::Hash;
use vellum_spec::witness::Witnessed;

/// State storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database.
    #[error("state database: {0}")]
    Db(#[from] sled::Error),
    /// A stored record does not decode.
    #[error("state record for {origin:?} is corrupt: {reason}")]
    Corrupt {
        /// Its origin.
        origin: String,
        /// Why.
        reason: String,
    },
    /// The flush task did not complete.
    #[error("state flush: {0}")]
    Flush(String),
    /// Another update changed the record first.
    #[error("state for this log changed concurrently")]
    Raced,
}

/// What the witness last cosigned for one log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// Tree size.
    pub size: u64,
    /// Root, base64.
    pub root: String,
    /// The cosigned checkpoint: the log's note plus this witness's line.
    pub note: String,
    /// Timestamp of the cosignature, seconds since the Unix epoch.
    pub time: u64,
}

impl Record {
    /// Size and root, for the consistency check.
    pub fn witnessed(&self) -> Option<Witnessed> {
        Some(Witnessed {
            size: self.size,
            root: Hash::from_base64(&self.root).ok()?,
        })
    }
}

/// A stored record with the exact bytes it was read from (for the CAS).
pub struct Current {
    /// The decoded record.
    pub record: Option<Record>,
    raw: Option<sled::IVec>,
}

/// The state database.
pub struct State {
    db: sled::Db,
    logs: sled::Tree,
    evidence: sled::Tree,
}

impl State {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<State, StateError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(16 << 20)
            .open()?;
        let logs = db.open_tree("logs")?;
        let evidence = db.open_tree("evidence")?;
        Ok(State { db, logs, evidence })
    }

    /// Reads the record for `origin`.
    pub fn get(&self, origin: &str) -> Result<Current, StateError> {
        let raw = self.logs.get(origin.as_bytes())?;
        let record = match &raw {
            None => None,
            Some(b) => Some(serde_json::from_slice(b).map_err(|e| StateError::Corrupt {
                origin: origin.into(),
                reason: e.to_string(),
            })?),
        };
        Ok(Current { record, raw })
    }

    /// Replaces `cur` by `new` atomically and durably.
    pub async fn update(
        &self,
        origin: &str,
        cur: &Current,
        new: &Record,
    ) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(new).map_err(|e| StateError::Corrupt {
            origin: origin.into(),
            reason: e.to_string(),
        })?;
        let swapped =
            self.logs
                .compare_and_swap(origin.as_bytes(), cur.raw.as_ref(), Some(bytes))?;
        if swapped.is_err() {
            return Err(StateError::Raced);
        }
        self.flush().await?;
        Ok(())
    }

    /// Makes every write so far durable. (A blocking `flush` on the
    /// blocking pool: sled 0.34's `flush_async` was seen to hang under many
    /// concurrent callers.)
    async fn flush(&self) -> Result<(), StateError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StateError::Flush(e.to_string()))??;
        Ok(())
    }

    /// Every stored record, by origin.
    pub fn all(&self) -> Vec<(String, Record)> {
        self.logs
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(k, v)| {
                Some((
                    String::from_utf8(k.to_vec()).ok()?,
                    serde_json::from_slice(&v).ok()?,
                ))
            })
            .collect()
    }

    /// Stores evidence of misbehaviour (both notes) durably; returns its key.
    pub async fn record_evidence(
        &self,
        origin: &str,
        time: u64,
        body: &str,
    ) -> Result<String, StateError> {
        let id = self.db.generate_id()?;
        let key = format!("{origin} {time} {id}");
        self.evidence.insert(key.as_bytes(), body.as_bytes())?;
        self.flush().await?;
        Ok(key)
    }

    /// Every evidence record: key and text.
    pub fn evidence(&self) -> Vec<(String, String)> {
        self.evidence
            .iter()
            .filter_map(Result::ok)
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(&k).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect()
    }
}
