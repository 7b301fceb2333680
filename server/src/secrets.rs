//! Files that hold secrets: written with mode 0600, created exclusively,
//! synced, and replaced atomically.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes a new secret file (mode 0600); fails if it already exists.
pub fn create_secret(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Replaces a file atomically (temp file, fsync, rename) with mode `mode`.
/// The temp file's name is unique to this call, so concurrent writers
/// never share one (the last rename wins; callers that read-modify-write
/// hold a lock, see [`lock_file`]).
pub fn replace_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce = u64::from_le_bytes(random32()?[..8].try_into().expect("8 bytes"));
    let tmp = path.with_file_name(format!(".{name}.{}.{nonce:016x}.tmp", std::process::id()));
    let res = write_new(&tmp, contents, mode).and_then(|()| fs::rename(&tmp, path));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Takes an exclusive advisory lock on `path` (created with mode 0600),
/// waiting for other holders; released when the returned file is dropped.
pub fn lock_file(path: &Path) -> std::io::Result<fs::File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    f.lock()?;
    Ok(f)
}

fn write_new(tmp: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    Ok(())
}

/// Warns when a secret file can be read by group or others.
pub fn check_mode(path: &Path) {
    if let Ok(m) = fs::metadata(path) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "secret file is readable by others; run chmod 600"
            );
        }
    }
}

/// 32 bytes from the operating system's CSPRNG.
pub fn random32() -> std::io::Result<[u8; 32]> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(b)
}
