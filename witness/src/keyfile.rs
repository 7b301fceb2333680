//! The witness's identity: `witness.key` (mode 0600, the Ed25519 seed as a
//! `cosignature/v1` signer key) and `witness.vkey` (its verifier key).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use vellum_spec::note::{SignerKey, ALG_COSIGNATURE_V1};

/// Reading or creating the key failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// File I/O.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        err: std::io::Error,
    },
    /// The key file does not hold a valid signer key (never printed).
    #[error("{path}: {err}")]
    Bad {
        /// The file.
        path: String,
        /// What is wrong.
        err: vellum_spec::note::NoteError,
    },
    /// `--name` differs from the existing key's name.
    #[error("{path} holds the witness {have:?}, but --name says {want:?}")]
    NameMismatch {
        /// The file.
        path: String,
        /// Existing name.
        have: String,
        /// Requested name.
        want: String,
    },
}

/// Opens `dir/witness.key`, creating it (and `witness.vkey`) on first start.
/// Returns the key and whether it was created.
pub fn open(dir: &Path, name: Option<&str>) -> Result<(SignerKey, bool), KeyError> {
    let path = dir.join("witness.key");
    let p = path.display().to_string();
    let io = |err| KeyError::Io {
        path: p.clone(),
        err,
    };
    if path.exists() {
        if let Ok(m) = fs::metadata(&path) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %p, "witness.key is readable by others; run chmod 600");
            }
        }
        let text = fs::read_to_string(&path).map_err(io)?;
        let key = SignerKey::parse(text.trim()).map_err(|err| KeyError::Bad {
            path: p.clone(),
            err,
        })?;
        if key.alg != ALG_COSIGNATURE_V1 {
            return Err(KeyError::Bad {
                path: p.clone(),
                err: vellum_spec::note::NoteError::UnknownAlgorithm(key.alg),
            });
        }
        if let Some(want) = name {
            if want != key.name {
                return Err(KeyError::NameMismatch {
                    path: p.clone(),
                    have: key.name.clone(),
                    want: want.into(),
                });
            }
        }
        return Ok((key, false));
    }
    let name = name.map(str::to_string).unwrap_or_else(default_name);
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let key =
        SignerKey::from_seed(&name, ALG_COSIGNATURE_V1, seed).map_err(|err| KeyError::Bad {
            path: p.clone(),
            err,
        })?;
    // The verifier key first; witness.key last marks a complete setup.
    let vpath = dir.join("witness.vkey");
    fs::write(&vpath, format!("{}\n", key.verifier().to_vkey())).map_err(|err| KeyError::Io {
        path: vpath.display().to_string(),
        err,
    })?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    f.write_all(format!("{}\n", key.to_skey()).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io)?;
    Ok((key, true))
}

/// `<host>/vellum-witness`, from the kernel's host name, made a valid key name.
pub fn default_name() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '+')
        .collect();
    let host = if host.is_empty() {
        "localhost".into()
    } else {
        host
    };
    format!("{host}/vellum-witness")
}
