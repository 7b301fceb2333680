//! A sink's durable cursor: the index of the next entry to deliver,
//! advanced only after the receiver acknowledged. Two 24-byte slots in
//! one file, written alternately in place (sequence, index, checksum);
//! reading takes the valid slot with the higher sequence, so a write torn
//! by a crash leaves the previous value. Every store reaches the page
//! cache at once (a killed process loses nothing); it is synced at most
//! once a second, so a power cut can take the cursor back by up to a
//! second, which only redelivers. Derived data: losing the file
//! redelivers from the start (or the configured start).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

const SLOT: u64 = 24;

fn check(seq: u64, index: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(b"vellum sink cursor\0");
    h.update(seq.to_le_bytes());
    h.update(index.to_le_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// An open cursor file.
pub struct Cursor {
    file: File,
    seq: u64,
    index: u64,
    synced: Option<std::time::Instant>,
    dirty: bool,
}

/// Longest a stored cursor goes unsynced.
const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Cursor {
    /// Opens (or creates) the cursor at `path`; `None` as the index when
    /// it holds no valid slot yet.
    pub fn open(path: &Path) -> io::Result<(Cursor, Option<u64>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut best: Option<(u64, u64)> = None;
        for slot in 0..2 {
            let mut b = [0u8; SLOT as usize];
            if file.read_exact_at(&mut b, slot * SLOT).is_err() {
                continue;
            }
            let seq = u64::from_le_bytes(b[0..8].try_into().expect("8 bytes"));
            let index = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
            let sum = u64::from_le_bytes(b[16..24].try_into().expect("8 bytes"));
            if sum == check(seq, index) && best.is_none_or(|(s, _)| seq > s) {
                best = Some((seq, index));
            }
        }
        let (seq, index) = best.unwrap_or((0, 0));
        Ok((
            Cursor {
                file,
                seq,
                index,
                synced: None,
                dirty: false,
            },
            best.map(|b| b.1),
        ))
    }

    /// The stored index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Stores `index` (synced within a second; see the module notes).
    pub fn store(&mut self, index: u64) -> io::Result<()> {
        if index == self.index && self.seq > 0 {
            return Ok(());
        }
        let seq = self.seq + 1;
        let mut b = [0u8; SLOT as usize];
        b[0..8].copy_from_slice(&seq.to_le_bytes());
        b[8..16].copy_from_slice(&index.to_le_bytes());
        b[16..24].copy_from_slice(&check(seq, index).to_le_bytes());
        self.file.write_all_at(&b, (seq % 2) * SLOT)?;
        self.seq = seq;
        self.index = index;
        self.dirty = true;
        if self.synced.is_none_or(|t| t.elapsed() >= SYNC_EVERY) {
            self.sync()?;
        }
        Ok(())
    }

    /// Syncs the stored value (if it changed since the last sync).
    pub fn sync(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.file.sync_data()?;
        self.dirty = false;
        self.synced = Some(std::time::Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_valid_slot_wins_and_a_torn_one_is_ignored() {
        let dir = std::env::temp_dir().join(format!("vellum-cursor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c");
        let (mut c, at) = Cursor::open(&p).unwrap();
        assert_eq!(at, None);
        for i in [5u64, 9, 12] {
            c.store(i).unwrap();
        }
        drop(c);
        let (_, at) = Cursor::open(&p).unwrap();
        assert_eq!(at, Some(12));
        // Tear the newest slot (seq 3 is in slot 1): the older value stands.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&[0xff; 4], SLOT + 10).unwrap();
        let (_, at) = Cursor::open(&p).unwrap();
        assert_eq!(at, Some(9));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
