//! Bearer tokens: generated with 256 bits of randomness, stored only as
//! SHA-256 hashes in `DIR/tokens.json` (mode 0600), each with scopes.
//! The server reloads the file when it changes, so `vellum token add` and
//! `vellum token revoke` take effect on a running log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use vellum_spec::hash::Hash;

use crate::secrets;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `POST /v1/events`.
    Append,
    /// Entry bundles and `/v1/entries`.
    Read,
    /// `GET /v1/export` (evidence bundles of any scope).
    Admin,
}

impl Scope {
    /// Parses `append`, `read` or `admin`.
    pub fn parse(s: &str) -> Result<Scope, TokenError> {
        match s.trim() {
            "append" => Ok(Scope::Append),
            "read" => Ok(Scope::Read),
            "admin" => Ok(Scope::Admin),
            other => Err(TokenError::BadScope(other.to_string())),
        }
    }

    /// The scope's name.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Append => "append",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

/// One stored token: its name, the hash of its secret and its scopes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Token name; appended events carry it as `gateway`.
    pub name: String,
    /// Lowercase hex SHA-256 of the token string.
    pub sha256: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// When it was created (RFC 3339).
    pub created: String,
}

#[derive(Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<TokenRecord>,
}

/// Token management and authentication failures.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read or written.
    #[error("token file {path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        err: String,
    },
    /// A token name breaks the naming rule.
    #[error("token name {0:?} must be 1-64 characters of A-Z a-z 0-9 . _ -")]
    BadName(String),
    /// An unknown scope was asked for.
    #[error("unknown scope {0:?}; scopes are append, read and admin")]
    BadScope(String),
    /// `token add` for a name in use.
    #[error("a token named {0:?} exists; revoke it first")]
    Exists(String),
    /// `token revoke` for a name not in use.
    #[error("no token named {0:?}")]
    NotFound(String),
}

/// The file that holds token hashes in a data directory.
pub fn token_file(dir: &Path) -> PathBuf {
    dir.join("tokens.json")
}

fn hash_token(token: &str) -> [u8; 32] {
    vellum_spec::hash::sha256(token.as_bytes())
}

/// Whether `name` is a valid token name.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Where a running log records which `tokens.json` it loaded last.
const APPLIED: &str = "tokens.applied";

/// Waits until a running log has loaded the current `tokens.json` (see
/// [`TokenStore::reload_and_ack`]); false after `timeout`.
pub fn wait_applied(dir: &Path, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let current = std::fs::read(token_file(dir)).unwrap_or_default();
        let want = Hash(vellum_spec::hash::sha256(&current)).to_hex();
        let applied = std::fs::read_to_string(dir.join(APPLIED)).unwrap_or_default();
        if applied.trim() == want {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn parse(path: &Path, b: &[u8]) -> Result<TokenFile, TokenError> {
    serde_json::from_slice(b).map_err(|e| TokenError::Io {
        path: path.into(),
        err: e.to_string(),
    })
}

fn load(path: &Path) -> Result<TokenFile, TokenError> {
    match std::fs::read(path) {
        Ok(b) => parse(path, &b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
        Err(e) => Err(TokenError::Io {
            path: path.into(),
            err: e.to_string(),
        }),
    }
}

fn save(path: &Path, f: &TokenFile) -> Result<(), TokenError> {
    let mut body = serde_json::to_vec_pretty(f).map_err(|e| TokenError::Io {
        path: path.into(),
        err: e.to_string(),
    })?;
    body.push(b'\n');
    secrets::replace_file(path, &body, 0o600).map_err(|e| TokenError::Io {
        path: path.into(),
        err: e.to_string(),
    })
}

/// The lock that serializes changes to `tokens.json` between processes.
fn lock(dir: &Path) -> Result<std::fs::File, TokenError> {
    let path = dir.join("tokens.lock");
    secrets::lock_file(&path).map_err(|e| TokenError::Io {
        path,
        err: e.to_string(),
    })
}

/// Creates a token, stores its hash, and returns the secret (shown once).
pub fn add(dir: &Path, name: &str, scopes: &[Scope]) -> Result<String, TokenError> {
    if !valid_name(name) {
        return Err(TokenError::BadName(name.into()));
    }
    let path = token_file(dir);
    let _lock = lock(dir)?;
    let mut f = load(&path)?;
    if f.tokens.iter().any(|t| t.name == name) {
        return Err(TokenError::Exists(name.into()));
    }
    let secret = secrets::random32().map_err(|e| TokenError::Io {
        path: path.clone(),
        err: e.to_string(),
    })?;
    let token = format!("vlm_{}", URL_SAFE_NO_PAD.encode(secret));
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut scopes = scopes.to_vec();
    scopes.dedup();
    f.tokens.push(TokenRecord {
        name: name.into(),
        sha256: Hash(hash_token(&token)).to_hex(),
        scopes,
        created: vellum_spec::time::format_millis(now),
    });
    save(&path, &f)?;
    Ok(token)
}

/// Lists stored tokens (names, scopes, creation times; never secrets).
pub fn list(dir: &Path) -> Result<Vec<TokenRecord>, TokenError> {
    Ok(load(&token_file(dir))?.tokens)
}

/// Removes a token. A running log re-reads the file within a second, or at
/// once when signalled (see `vellum token revoke`).
pub fn revoke(dir: &Path, name: &str) -> Result<(), TokenError> {
    let path = token_file(dir);
    let _lock = lock(dir)?;
    let mut f = load(&path)?;
    let before = f.tokens.len();
    f.tokens.retain(|t| t.name != name);
    if f.tokens.len() == before {
        return Err(TokenError::NotFound(name.into()));
    }
    save(&path, &f)
}

/// The token of an `Authorization: Bearer <token>` header value; the
/// scheme is case-insensitive (RFC 9110 §11.1).
fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let h = header.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = h.split_once([' ', '\t']).unwrap_or((h, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed(if h.is_empty() {
            "the header is empty"
        } else {
            "it uses another scheme"
        }));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Malformed("the token is missing"));
    }
    Ok(token)
}

/// An authenticated caller.
#[derive(Debug)]
pub struct Principal {
    /// Token name.
    pub name: Arc<str>,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
}

/// Why a request was not authorized.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing Authorization: Bearer <token> header")]
    Missing,
    /// An `Authorization` header with another scheme, or no token.
    #[error("Authorization header must be `Bearer <token>`; {0}")]
    Malformed(&'static str),
    /// The token is not known (never issued, or revoked).
    #[error("unknown or revoked token")]
    Unknown,
    /// The token lacks the scope.
    #[error("token {name:?} lacks the {scope} scope")]
    Scope {
        /// Token name.
        name: String,
        /// The missing scope.
        scope: &'static str,
    },
}

struct Loaded {
    stamp: Option<(SystemTime, u64)>,
    by_hash: HashMap<[u8; 32], Arc<Principal>>,
}

/// The server's view of `tokens.json`, reloaded when the file changes.
pub struct TokenStore {
    path: PathBuf,
    loaded: RwLock<Loaded>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn index(f: TokenFile) -> HashMap<[u8; 32], Arc<Principal>> {
    let mut by_hash = HashMap::new();
    for t in f.tokens {
        let Some(h) = Hash::from_hex(&t.sha256) else {
            tracing::warn!(
                token = %t.name,
                "tokens.json: sha256 is not 64 hex digits; this token is ignored (revoke and re-add it)"
            );
            continue;
        };
        by_hash.insert(
            h.0,
            Arc::new(Principal {
                name: t.name.into(),
                scopes: t.scopes,
            }),
        );
    }
    by_hash
}

impl TokenStore {
    /// Loads the tokens of data directory `dir`.
    pub fn open(dir: &Path) -> Result<TokenStore, TokenError> {
        let path = token_file(dir);
        let s = stamp(&path);
        let f = load(&path)?;
        Ok(TokenStore {
            path,
            loaded: RwLock::new(Loaded {
                stamp: s,
                by_hash: index(f),
            }),
        })
    }

    /// Re-reads the file now, whatever its stamp (on SIGHUP).
    pub fn reload_and_ack(&self) {
        self.reload(true);
    }

    /// Re-reads the file if it changed since the last load.
    pub fn refresh(&self) {
        self.reload(false);
    }

    /// Re-reads the file (if `force`, or if its stamp changed) and records
    /// what was loaded in `tokens.applied` (the SHA-256 of the file's
    /// bytes), which `vellum token` waits for.
    fn reload(&self, force: bool) {
        let s = stamp(&self.path);
        let unchanged = self.loaded.read().map(|l| l.stamp == s).unwrap_or(false);
        if unchanged && !force {
            return;
        }
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                tracing::error!(error = %e, "re-reading tokens failed; keeping the previous tokens");
                return;
            }
        };
        let f = if bytes.is_empty() {
            TokenFile::default()
        } else {
            match parse(&self.path, &bytes) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %e, "keeping the previous tokens");
                    return;
                }
            }
        };
        if let Ok(mut l) = self.loaded.write() {
            *l = Loaded {
                stamp: s,
                by_hash: index(f),
            };
            tracing::info!(tokens = l.by_hash.len(), "reloaded tokens");
        }
        let ack = self.path.with_file_name(APPLIED);
        let digest = Hash(vellum_spec::hash::sha256(&bytes)).to_hex();
        if let Err(e) = secrets::replace_file(&ack, format!("{digest}\n").as_bytes(), 0o600) {
            tracing::warn!(error = %e, "could not record the token reload");
        }
    }

    fn lookup(&self, token: &str) -> Option<Arc<Principal>> {
        let h = hash_token(token);
        self.loaded.read().ok()?.by_hash.get(&h).cloned()
    }

    /// Authenticates an `Authorization` header value for `scope`.
    pub fn authorize(
        &self,
        header: Option<&str>,
        scope: Scope,
    ) -> Result<Arc<Principal>, AuthError> {
        let token = bearer_token(header)?;
        let p = match self.lookup(token) {
            Some(p) => p,
            None => {
                // Perhaps a token added a moment ago: one stat() tells.
                self.refresh();
                self.lookup(token).ok_or(AuthError::Unknown)?
            }
        };
        if !p.scopes.contains(&scope) {
            return Err(AuthError::Scope {
                name: p.name.to_string(),
                scope: scope.name(),
            });
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(Some("bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(Some("BEARER   abc ")).unwrap(), "abc");
        assert!(matches!(bearer_token(None), Err(AuthError::Missing)));
        for bad in ["Basic abc", "Bearer", "Bearer  ", "", "Bearerabc"] {
            let e = bearer_token(Some(bad)).unwrap_err();
            assert!(matches!(e, AuthError::Malformed(_)), "{bad:?}: {e}");
            assert!(e.to_string().contains("Bearer <token>"), "{e}");
        }
    }

    #[test]
    fn concurrent_adds_and_revokes_lose_nothing() {
        let dir = tempfile_dir("tokens-race");
        let names: Vec<String> = (0..16).map(|i| format!("t{i}")).collect();
        std::thread::scope(|s| {
            for n in &names {
                let d = dir.clone();
                s.spawn(move || add(&d, n, &[Scope::Append]).unwrap());
            }
        });
        assert_eq!(list(&dir).unwrap().len(), names.len());
        std::thread::scope(|s| {
            for (i, n) in names.iter().enumerate() {
                let d = dir.clone();
                s.spawn(move || {
                    if i % 2 == 0 {
                        revoke(&d, n).unwrap()
                    } else {
                        add(&d, &format!("{n}-b"), &[Scope::Read]).unwrap();
                    }
                });
            }
        });
        let mut left: Vec<String> = list(&dir).unwrap().into_iter().map(|t| t.name).collect();
        left.sort();
        let mut want: Vec<String> = (0..16)
            .filter(|i| i % 2 == 1)
            .flat_map(|i| [format!("t{i}"), format!("t{i}-b")])
            .collect();
        want.sort();
        assert_eq!(left, want);
        let stray: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(stray.is_empty(), "{stray:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vellum-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn malformed_hashes_are_skipped_not_zeroed() {
        let good = "vlm_good";
        let f = TokenFile {
            tokens: vec![
                TokenRecord {
                    name: "ok".into(),
                    sha256: Hash(hash_token(good)).to_hex(),
                    scopes: vec![Scope::Append],
                    created: String::new(),
                },
                TokenRecord {
                    name: "damaged".into(),
                    sha256: "zz".repeat(32),
                    scopes: vec![Scope::Append, Scope::Read],
                    created: String::new(),
                },
            ],
        };
        let by_hash = index(f);
        assert_eq!(by_hash.len(), 1);
        assert_eq!(&*by_hash[&hash_token(good)].name, "ok");
        assert!(!by_hash.contains_key(&[0u8; 32]));
    }
}
