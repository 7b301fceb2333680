//! Entry bundles as files, laid out exactly as C2SP tlog-tiles serves them
//! (`entries/x001/234` for bundle 1234, uint16-prefixed entries), so the
//! directory could be mirrored by a static file server. Full bundles are
//! immutable; the rightmost one grows by appends. Appends are fsynced
//! before the tree size that covers them is recorded, and on start-up any
//! bytes past the recorded size (a crash between the two) are cut off.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use vellum_spec::tile::{encode_index, parse_bundle, TILE_WIDTH};

use super::syncset::SyncSet;

/// The entry-bundle directory.
pub struct BundleFiles {
    root: PathBuf,
}

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl BundleFiles {
    /// Opens (or creates) the bundle directory as it is, leftovers of an
    /// interrupted commit included: the store cuts them off with
    /// [`BundleFiles::truncate_to`] once it knows the committed size.
    pub fn open(root: &Path) -> io::Result<BundleFiles> {
        fs::create_dir_all(root)?;
        Ok(BundleFiles { root: root.into() })
    }

    fn path(&self, n: u64) -> PathBuf {
        self.root.join(encode_index(n))
    }

    /// Removes entries at or beyond `size` left by an interrupted commit.
    pub fn truncate_to(&self, size: u64) -> io::Result<()> {
        let n = size / TILE_WIDTH;
        let w = (size % TILE_WIDTH) as usize;
        // Bundles after n can only be leftovers of an unrecorded commit.
        let mut next = n + 1;
        while self.path(next).exists() {
            fs::remove_file(self.path(next))?;
            next += 1;
        }
        let p = self.path(n);
        if w == 0 {
            if p.exists() {
                fs::remove_file(&p)?;
            }
            return Ok(());
        }
        let data = fs::read(&p)
            .map_err(|e| corrupt(format!("bundle {} for size {size}: {e}", p.display())))?;
        let keep = prefix_len(&data, w).ok_or_else(|| {
            corrupt(format!(
                "bundle {} holds fewer than {w} entries",
                p.display()
            ))
        })?;
        if keep < data.len() {
            tracing::warn!(
                bundle = n,
                dropped_bytes = data.len() - keep,
                "cutting off entries of an unfinished commit"
            );
            let f = OpenOptions::new().write(true).open(&p)?;
            f.set_len(keep as u64)?;
            f.sync_all()?;
        }
        Ok(())
    }

    /// Appends entries (index order, contiguous); every file written and
    /// the directory of every new file go into `sync`, to be fsynced.
    pub fn append(&self, entries: &[(u64, Vec<u8>)], sync: &mut SyncSet) -> io::Result<()> {
        let mut bufs: Vec<(u64, Vec<u8>)> = Vec::new();
        for (i, e) in entries {
            let n = i / TILE_WIDTH;
            if bufs.last().map(|b| b.0) != Some(n) {
                bufs.push((n, Vec::with_capacity(64 << 10)));
            }
            let buf = &mut bufs.last_mut().expect("pushed above").1;
            vellum_spec::tile::push_bundle_entry(buf, e)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        }
        for (n, buf) in &bufs {
            let p = self.path(*n);
            let fresh = !p.exists();
            if fresh {
                if let Some(dir) = p.parent() {
                    if !dir.exists() {
                        fs::create_dir_all(dir)?;
                        if let Some(up) = dir.parent() {
                            sync.dir(up.to_path_buf());
                        }
                    }
                    sync.dir(dir.to_path_buf());
                }
            }
            let mut f = OpenOptions::new().create(true).append(true).open(&p)?;
            f.write_all(buf)?;
            sync.file(f);
        }
        Ok(())
    }

    /// The first `w` entries of bundle `n`, as bundle bytes.
    pub fn read(&self, n: u64, w: usize) -> io::Result<Vec<u8>> {
        let mut data = fs::read(self.path(n))?;
        let keep = prefix_len(&data, w)
            .ok_or_else(|| corrupt(format!("bundle {n} holds fewer than {w} entries")))?;
        data.truncate(keep);
        Ok(data)
    }

    /// The entry whose 2-byte length starts at byte `offset` of bundle `n`
    /// (an offset the caller kept, e.g. the query index): one read in the
    /// common case, instead of reading the bundle up to the entry.
    pub fn entry_at(&self, n: u64, offset: u32) -> io::Result<Vec<u8>> {
        let f = File::open(self.path(n))?;
        let mut buf = vec![0u8; 4096];
        let got = read_some_at(&f, &mut buf, offset as u64)?;
        if got < 2 {
            return Err(corrupt(format!("bundle {n}: no entry at byte {offset}")));
        }
        let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
        if got >= 2 + len {
            buf.truncate(2 + len);
            buf.drain(..2);
            return Ok(buf);
        }
        let mut out = vec![0u8; len];
        out[..got - 2].copy_from_slice(&buf[2..got]);
        f.read_exact_at(&mut out[got - 2..], offset as u64 + got as u64)?;
        Ok(out)
    }

    /// Entry `index`'s bytes.
    pub fn entry(&self, index: u64) -> io::Result<Vec<u8>> {
        let k = (index % TILE_WIDTH) as usize;
        let data = self.read(index / TILE_WIDTH, k + 1)?;
        let entries = parse_bundle(&data).map_err(|e| corrupt(e.to_string()))?;
        entries
            .get(k)
            .map(|e| e.to_vec())
            .ok_or_else(|| corrupt(format!("entry {index} missing")))
    }
}

/// Reads up to `buf.len()` bytes at `at`, fewer only at the end of the file.
fn read_some_at(f: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], at + got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Byte length of the first `w` entries of a bundle, if it has that many.
fn prefix_len(data: &[u8], w: usize) -> Option<usize> {
    let mut at = 0usize;
    for _ in 0..w {
        let len = u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]) as usize;
        at += 2 + len;
        if at > data.len() {
            return None;
        }
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(from: u64, to: u64) -> Vec<(u64, Vec<u8>)> {
        (from..to)
            .map(|i| (i, format!("entry-{i}").into_bytes()))
            .collect()
    }

    fn append(b: &BundleFiles, e: &[(u64, Vec<u8>)]) {
        let mut sync = SyncSet::default();
        b.append(e, &mut sync).unwrap();
        sync.sync().unwrap();
    }

    #[test]
    fn append_read_and_cut_off_an_unrecorded_commit() {
        let dir = std::env::temp_dir().join(format!("vellum-bundles-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let b = BundleFiles::open(&dir).unwrap();
        append(&b, &entries(0, 200));
        append(&b, &entries(200, 600));
        assert_eq!(b.entry(599).unwrap(), b"entry-599");
        let full = std::fs::read(dir.join("001")).unwrap();
        let at = prefix_len(&full, 10).unwrap() as u32;
        assert_eq!(b.entry_at(1, at).unwrap(), b"entry-266");
        assert_eq!(b.entry(256).unwrap(), b"entry-256");
        let full = b.read(1, 256).unwrap();
        assert_eq!(parse_bundle(&full).unwrap().len(), 256);
        assert!(dir.join("001").exists() && dir.join("002").exists());
        // A crash after the bundle write of 300..600 but before the index
        // recorded it: reopening at size 300 drops everything after 299.
        drop(b);
        let b = BundleFiles::open(&dir).unwrap();
        b.truncate_to(300).unwrap();
        assert!(!dir.join("002").exists());
        assert_eq!(fs::read(dir.join("001")).unwrap(), b.read(1, 44).unwrap());
        assert!(b.read(1, 45).is_err());
        append(&b, &entries(300, 301));
        assert_eq!(b.entry(300).unwrap(), b"entry-300");
        // Size on a bundle boundary: the next bundle file goes away.
        drop(b);
        BundleFiles::open(&dir).unwrap().truncate_to(256).unwrap();
        assert!(!dir.join("001").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
