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
