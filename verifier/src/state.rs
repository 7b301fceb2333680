//! The monitor's memory: the last checkpoint note it trusted, in a file
//! replaced atomically (write a temporary file, fsync, rename, fsync the
//! directory), so a crash leaves either the old or the new checkpoint.

use std::io::Write;
use std::path::Path;

use crate::report::Failure;

/// Reads the stored note, `None` if the file does not exist yet.
pub fn load(path: &Path) -> Result<Option<Vec<u8>>, Failure> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::Operational(format!("{}: {e}", path.display()))),
    }
}

/// Replaces the stored note with `note`, atomically and durably.
pub fn store(path: &Path, note: &[u8]) -> Result<(), Failure> {
    let op = |e: std::io::Error| Failure::Operational(format!("{}: {e}", path.display()));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(op)?;
        f.write_all(note).map_err(op)?;
        f.sync_all().map_err(op)?;
    }
    std::fs::rename(&tmp, path).map_err(op)?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
