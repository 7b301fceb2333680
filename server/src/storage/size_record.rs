//! The embedded backend's commit point: the durable tree size, in a small
//! file of two checksummed slots written in turn. A commit overwrites the
//! slot its generation selects with one positioned write and syncs it
//! (`fdatasync`: the file never changes length), so a torn or lost write
//! leaves the other slot, the size of the previous commit, in force.
//!
//! Slot layout (at byte 0 and byte [`SLOT_STRIDE`]): `VLMSIZE1`, the
//! generation (u64 LE), the size (u64 LE), then SHA-256 of those 24 bytes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"VLMSIZE1";
/// Distance between the two slots: each in its own page and sector.
const SLOT_STRIDE: u64 = 4096;
const SLOT_BYTES: usize = 56;

/// The open size record.
pub struct SizeRecord {
    file: File,
    generation: u64,
    size: u64,
}

fn encode(generation: u64, size: u64) -> [u8; SLOT_BYTES] {
    let mut b = [0u8; SLOT_BYTES];
    b[..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&generation.to_le_bytes());
    b[16..24].copy_from_slice(&size.to_le_bytes());
    let sum = Sha256::digest(&b[..24]);
    b[24..].copy_from_slice(&sum);
    b
}

/// A slot's (generation, size), if it checks.
fn decode(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() < SLOT_BYTES || &b[..8] != MAGIC || Sha256::digest(&b[..24])[..] != b[24..56] {
        return None;
    }
    let g = u64::from_le_bytes(b[8..16].try_into().ok()?);
    let s = u64::from_le_bytes(b[16..24].try_into().ok()?);
    Some((g, s))
}

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl SizeRecord {
    /// Opens the record at `path`; `Ok(None)` if there is none yet.
    pub fn open(path: &Path) -> io::Result<Option<SizeRecord>> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut best: Option<(u64, u64)> = None;
        for slot in 0..2u64 {
            let mut b = [0u8; SLOT_BYTES];
            let got = read_full_at(&file, &mut b, slot * SLOT_STRIDE)?;
            if let Some((g, s)) = decode(&b[..got]) {
                if best.is_none_or(|(bg, _)| g > bg) {
                    best = Some((g, s));
                }
            }
        }
        let (generation, size) = best.ok_or_else(|| {
            corrupt(format!(
                "{}: neither slot of the size record checks",
                path.display()
            ))
        })?;
        Ok(Some(SizeRecord {
            file,
            generation,
            size,
        }))
    }

    /// Creates the record at `path` holding `size` (file and directory
    /// synced); an existing one is replaced.
    pub fn create(path: &Path, size: u64) -> io::Result<SizeRecord> {
        let tmp = path.with_extension("tmp");
        {
            let f = File::create(&tmp)?;
            f.write_all_at(&encode(0, size), 0)?;
            f.write_all_at(&encode(0, size), SLOT_STRIDE)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(SizeRecord {
            file,
            generation: 0,
            size,
        })
    }

    /// The recorded size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Records `size` durably: the next generation into its slot, synced.
    /// On an error the recorded size is unchanged in memory; on disk it is
    /// the old or the new one.
    pub fn set(&mut self, size: u64) -> io::Result<()> {
        let g = self.generation + 1;
        let at = (g % 2) * SLOT_STRIDE;
        self.file.write_all_at(&encode(g, size), at)?;
        self.file.sync_data()?;
        self.generation = g;
        self.size = size;
        Ok(())
    }
}

/// Reads up to `buf.len()` bytes at `offset` (fewer at the end of file).
fn read_full_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_slot_that_checks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("size");
        assert!(SizeRecord::open(&p).unwrap().is_none());
        let mut r = SizeRecord::create(&p, 7).unwrap();
        for s in [8, 9, 10] {
            r.set(s).unwrap();
        }
        drop(r);
        let r = SizeRecord::open(&p).unwrap().unwrap();
        assert_eq!((r.size(), r.generation), (10, 3));

        // A torn write of the newest slot (generation 3 is in slot 1):
        // the previous commit's size is in force, and the next write
        // goes to the torn slot again.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(b"garbage", SLOT_STRIDE + 20).unwrap();
        let mut r = SizeRecord::open(&p).unwrap().unwrap();
        assert_eq!(r.size(), 9);
        r.set(11).unwrap();
        drop(r);
        assert_eq!(SizeRecord::open(&p).unwrap().unwrap().size(), 11);

        // Both slots damaged: a clear error, never a guessed size.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&[0u8; 8], 0).unwrap();
        f.write_all_at(&[0u8; 8], SLOT_STRIDE).unwrap();
        let e = SizeRecord::open(&p).err().unwrap();
        assert!(e.to_string().contains("neither slot"), "{e}");
    }
}
