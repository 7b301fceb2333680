//! The embedded backend's commit point: the durable tree size, in a small
//! file of two checksummed slots written in turn.
//!
//! A commit writes the slot its generation selects (new size, the size
//! before it, the new root) together with its entry and tile files, and
//! all of them are synced in one round. So after a power loss the newest
//! slot may name a commit whose files did not all reach the disk; opening
//! the store therefore replays that one commit from the files and keeps
//! it only if the entries, the tiles and the root all check
//! ([`SizeRecord::unverified`]), else falls back to the size before it,
//! which the previous round made durable (commits' rounds never overlap).
//! A torn slot fails its checksum and the other slot is in force.
//!
//! Slot layout (at byte 0 and byte [`SLOT_STRIDE`]): `VLMSIZE1`, the
//! generation, the size, the size before this commit (u64 LE each), the
//! root (32 bytes), then SHA-256 of those 64 bytes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};
use vellum_spec::hash::Hash;

const MAGIC: &[u8; 8] = b"VLMSIZE1";
/// Distance between the two slots: each in its own page and sector.
const SLOT_STRIDE: u64 = 4096;
const BODY_BYTES: usize = 64;
const SLOT_BYTES: usize = BODY_BYTES + 32;

/// One slot's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    generation: u64,
    size: u64,
    prev: u64,
    root: [u8; 32],
}

impl Slot {
    fn encode(&self) -> [u8; SLOT_BYTES] {
        let mut b = [0u8; SLOT_BYTES];
        b[..8].copy_from_slice(MAGIC);
        b[8..16].copy_from_slice(&self.generation.to_le_bytes());
        b[16..24].copy_from_slice(&self.size.to_le_bytes());
        b[24..32].copy_from_slice(&self.prev.to_le_bytes());
        b[32..64].copy_from_slice(&self.root);
        let sum = Sha256::digest(&b[..BODY_BYTES]);
        b[BODY_BYTES..].copy_from_slice(&sum);
        b
    }

    /// The slot in `b`, if it checks.
    fn decode(b: &[u8]) -> Option<Slot> {
        if b.len() < SLOT_BYTES
            || &b[..8] != MAGIC
            || Sha256::digest(&b[..BODY_BYTES])[..] != b[BODY_BYTES..SLOT_BYTES]
        {
            return None;
        }
        let u = |at: usize| b[at..at + 8].try_into().ok().map(u64::from_le_bytes);
        let slot = Slot {
            generation: u(8)?,
            size: u(16)?,
            prev: u(24)?,
            root: b[32..64].try_into().ok()?,
        };
        (slot.prev <= slot.size).then_some(slot)
    }
}

/// The open size record.
pub struct SizeRecord {
    file: File,
    /// The newest slot on disk (or being written).
    last: Slot,
    /// The size published: readers may use the tree up to it.
    size: u64,
}

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl SizeRecord {
    /// Opens the record at `path`; `Ok(None)` if there is none yet. Its
    /// size is the newest slot's; see [`SizeRecord::unverified`].
    pub fn open(path: &Path) -> io::Result<Option<SizeRecord>> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut best: Option<Slot> = None;
        for slot in 0..2u64 {
            let mut b = [0u8; SLOT_BYTES];
            let got = read_full_at(&file, &mut b, slot * SLOT_STRIDE)?;
            if let Some(s) = Slot::decode(&b[..got]) {
                if best.is_none_or(|b| s.generation > b.generation) {
                    best = Some(s);
                }
            }
        }
        let last = best.ok_or_else(|| {
            corrupt(format!(
                "{}: neither slot of the size record checks",
                path.display()
            ))
        })?;
        Ok(Some(SizeRecord {
            file,
            last,
            size: last.size,
        }))
    }

    /// Creates the record at `path` holding `size` (file and directory
    /// synced); an existing one is replaced.
    pub fn create(path: &Path, size: u64) -> io::Result<SizeRecord> {
        let last = Slot {
            generation: 0,
            size,
            prev: size,
            root: [0; 32],
        };
        let tmp = path.with_extension("tmp");
        {
            let f = File::create(&tmp)?;
            f.write_all_at(&last.encode(), 0)?;
            f.write_all_at(&last.encode(), SLOT_STRIDE)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(SizeRecord { file, last, size })
    }

    /// The published size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The newest commit as (size before, size, root) when its files have
    /// to be checked before its size is trusted: the record was written in
    /// the same sync round as them. `None` when it records no new entries.
    pub fn unverified(&self) -> Option<(u64, u64, Hash)> {
        (self.last.prev < self.last.size).then_some((
            self.last.prev,
            self.last.size,
            Hash(self.last.root),
        ))
    }

    /// The newest commit did not check: the size before it is in force,
    /// recorded (synced) as a new generation.
    pub fn fall_back(&mut self) -> io::Result<()> {
        let prev = self.last.prev;
        self.set(prev)
    }

    /// Writes `size` (after `prev`, with `root`) into the next slot without
    /// syncing it, and returns a handle to sync with the commit's other
    /// files. The published size changes only with [`SizeRecord::publish`].
    pub fn stage(&mut self, size: u64, prev: u64, root: &Hash) -> io::Result<File> {
        let slot = Slot {
            generation: self.last.generation + 1,
            size,
            prev,
            root: root.0,
        };
        self.write(slot)?;
        self.file.try_clone()
    }

    /// The staged size is durable (its round synced): readers may use it.
    pub fn publish(&mut self, size: u64) {
        self.size = size;
    }

    /// Records `size` durably on its own (a recovery): written and synced,
    /// and published.
    pub fn set(&mut self, size: u64) -> io::Result<()> {
        let slot = Slot {
            generation: self.last.generation + 1,
            size,
            prev: size,
            root: [0; 32],
        };
        self.write(slot)?;
        self.file.sync_data()?;
        self.size = size;
        Ok(())
    }

    /// Writes `slot` into its place. The generation advances even if the
    /// write fails: the slot may hold part of it, so the next write goes to
    /// the other one.
    fn write(&mut self, slot: Slot) -> io::Result<()> {
        let at = (slot.generation % 2) * SLOT_STRIDE;
        self.last = slot;
        self.file.write_all_at(&slot.encode(), at)
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
        assert_eq!(r.unverified(), None);
        let root = Hash([9; 32]);
        for (prev, s) in [(7, 8), (8, 9), (9, 10)] {
            r.stage(s, prev, &root).unwrap().sync_data().unwrap();
            assert_eq!(r.size(), prev, "published only by publish()");
            r.publish(s);
        }
        drop(r);
        let r = SizeRecord::open(&p).unwrap().unwrap();
        assert_eq!((r.size(), r.last.generation), (10, 3));
        assert_eq!(r.unverified(), Some((9, 10, root)));

        // A torn write of the newest slot (generation 3 is in slot 1):
        // the previous commit's size is in force, and the next write
        // goes to the torn slot again.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(b"garbage", SLOT_STRIDE + 20).unwrap();
        let mut r = SizeRecord::open(&p).unwrap().unwrap();
        assert_eq!(r.size(), 9);
        r.stage(11, 9, &root).unwrap().sync_data().unwrap();
        drop(r);
        let mut r = SizeRecord::open(&p).unwrap().unwrap();
        assert_eq!(r.size(), 11);

        // A commit whose files did not check: back to the size before it,
        // durably, and nothing left to check.
        r.fall_back().unwrap();
        assert_eq!(r.size(), 9);
        drop(r);
        let r = SizeRecord::open(&p).unwrap().unwrap();
        assert_eq!((r.size(), r.unverified()), (9, None));

        // Both slots damaged: a clear error, never a guessed size.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&[0u8; 8], 0).unwrap();
        f.write_all_at(&[0u8; 8], SLOT_STRIDE).unwrap();
        let e = SizeRecord::open(&p).err().unwrap();
        assert!(e.to_string().contains("neither slot"), "{e}");
    }
}
