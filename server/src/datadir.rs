//! The data directory: the log's signing key (`log.key`, 0600), its
//! verifier key (`log.vkey`), the default gateway token (`gateway.token`,
//! 0600), token hashes (`tokens.json`) and the database (`db/`).

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use vellum_spec::note::{SignerKey, ALG_ED25519};

use crate::secrets;
use crate::tokens::{self, Scope};

/// Origin (and key name) used for a new log when none is given.
pub const DEFAULT_ORIGIN: &str = "localhost/vellum";

/// Setting up or opening a data directory failed.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// A file could not be read or written.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        err: std::io::Error,
    },
    /// `log.key` is not a valid signer key.
    #[error("{path}: {err}")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong (never the key itself).
        err: vellum_spec::note::NoteError,
    },
    /// The directory belongs to a log with another origin.
    #[error("data directory holds the log {have:?}, but --origin says {want:?}")]
    OriginMismatch {
        /// Origin of the existing key.
        have: String,
        /// Origin asked for.
        want: String,
    },
    /// Creating the default token failed.
    #[error(transparent)]
    Token(#[from] tokens::TokenError),
    /// Another process serves this directory.
    #[error("another vellum is already using {path}{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse {
        /// The data directory.
        path: PathBuf,
        /// The process holding it, if it said.
        pid: Option<u32>,
    },
}

/// The file a serving log holds locked, holding its pid.
const SERVE_LOCK: &str = "serve.lock";

/// Held while a log serves a data directory; released on drop (or when
/// the process dies, however it dies).
pub struct ServeLock {
    _file: fs::File,
}

/// Takes the serving lock of `dir` (which must exist), or says who has it.
pub fn lock_for_serving(dir: &Path) -> Result<ServeLock, DataDirError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(SERVE_LOCK);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(DataDirError::InUse {
                path: dir.into(),
                pid: read_pid(&path),
            })
        }
        Err(fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
    }
    f.set_len(0).map_err(io(&path))?;
    writeln!(f, "{}", std::process::id()).map_err(io(&path))?;
    Ok(ServeLock { _file: f })
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The pid of the log serving `dir`, if one holds its lock now.
pub fn serving_pid(dir: &Path) -> Option<u32> {
    let path = dir.join(SERVE_LOCK);
    let f = fs::OpenOptions::new().read(true).open(&path).ok()?;
    match f.try_lock_shared() {
        Ok(()) => None,
        Err(_) => read_pid(&path),
    }
}

/// Asks the log with `pid` to re-read its tokens (SIGHUP); false if the
/// signal could not be sent.
pub fn signal_reload(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with a pid read from the lock file its holder wrote;
    // it only sends a signal.
    unsafe { libc::kill(pid, libc::SIGHUP) == 0 }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |err| DataDirError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// The opened data directory.
pub struct DataDir {
    /// Its path.
    pub path: PathBuf,
    /// The log's signing key; its name is the origin.
    pub signer: SignerKey,
    /// True if this call created the directory's keys.
    pub created: bool,
}

impl DataDir {
    /// Path of the embedded database.
    pub fn db_path(&self) -> PathBuf {
        self.path.join("db")
    }

    /// Opens `dir`, creating keys and the default token on first start.
    pub fn open(dir: &Path, origin: Option<&str>) -> Result<DataDir, DataDirError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        let key_path = dir.join("log.key");
        if key_path.exists() {
            secrets::check_mode(&key_path);
            let text = fs::read_to_string(&key_path).map_err(io(&key_path))?;
            let signer = SignerKey::parse(text.trim()).map_err(|err| DataDirError::BadKey {
                path: key_path.clone(),
                err,
            })?;
            if let Some(want) = origin {
                if want != signer.name {
                    return Err(DataDirError::OriginMismatch {
                        have: signer.name.clone(),
                        want: want.into(),
                    });
                }
            }
            return Ok(DataDir {
                path: dir.into(),
                signer,
                created: false,
            });
        }
        // First start. log.key is written last: its presence marks a
        // complete setup, so a crash here leaves files we may replace.
        let origin = origin.unwrap_or(DEFAULT_ORIGIN);
        let seed = secrets::random32().map_err(io(&key_path))?;
        let signer = SignerKey::from_seed(origin, ALG_ED25519, seed).map_err(|err| {
            DataDirError::BadKey {
                path: key_path.clone(),
                err,
            }
        })?;
        for stale in ["gateway.token", "log.vkey", "tokens.json"] {
            let _ = fs::remove_file(dir.join(stale));
        }
        let token = tokens::add(dir, "default", &[Scope::Append, Scope::Read])?;
        let token_path = dir.join("gateway.token");
        secrets::create_secret(&token_path, format!("{token}\n").as_bytes())
            .map_err(io(&token_path))?;
        let vkey_path = dir.join("log.vkey");
        secrets::replace_file(
            &vkey_path,
            format!("{}\n", signer.verifier().to_vkey()).as_bytes(),
            0o644,
        )
        .map_err(io(&vkey_path))?;
        secrets::create_secret(&key_path, format!("{}\n", signer.to_skey()).as_bytes())
            .map_err(io(&key_path))?;
        Ok(DataDir {
            path: dir.into(),
            signer,
            created: true,
        })
    }
}
