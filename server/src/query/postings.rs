//! Posting lists: the sorted positions (within a segment) of the events
//! that have one field value. Stored in blocks of [`BLOCK`] positions, each
//! a varint of the first position then varint deltas, with a skip table of
//! (first, last, byte offset) per block, so that a cursor can seek to any
//! position in either direction by decoding one block.

/// Positions per block.
pub const BLOCK: usize = 128;

/// Bytes of one skip-table row: first and last position, byte offset.
pub const SKIP_BYTES: usize = 12;

/// Why stored postings are unusable (the index is then rebuilt).
#[derive(Debug, thiserror::Error)]
#[error("corrupt posting list: {0}")]
pub struct Corrupt(pub &'static str);

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], at: &mut usize) -> Result<u32, Corrupt> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = *data.get(*at).ok_or(Corrupt("truncated varint"))?;
        *at += 1;
        v |= ((b & 0x7f) as u32)
            .checked_shl(shift)
            .ok_or(Corrupt("varint overflows"))?;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Corrupt("varint too long"))
}

/// Encodes sorted, distinct positions; returns (block bytes, skip table).
pub fn encode(positions: &[u32]) -> (Vec<u8>, Vec<u8>) {
    let mut data = Vec::with_capacity(positions.len() * 2);
    let mut skips = Vec::with_capacity(positions.len().div_ceil(BLOCK) * SKIP_BYTES);
    for block in positions.chunks(BLOCK) {
        skips.extend_from_slice(&block[0].to_le_bytes());
        skips.extend_from_slice(&block[block.len() - 1].to_le_bytes());
        skips.extend_from_slice(&(data.len() as u32).to_le_bytes());
        put_varint(&mut data, block[0]);
        for w in block.windows(2) {
            put_varint(&mut data, w[1] - w[0]);
        }
    }
    (data, skips)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

/// A posting list of `len` positions, owned (read from a segment or built
/// in memory).
#[derive(Clone, Debug, Default)]
pub struct Postings {
    data: Vec<u8>,
    skips: Vec<u8>,
    len: usize,
}

impl Postings {
    /// Wraps encoded bytes, checking the skip table's shape.
    pub fn new(data: Vec<u8>, skips: Vec<u8>, len: usize) -> Result<Postings, Corrupt> {
        if !skips.len().is_multiple_of(SKIP_BYTES)
            || skips.len() / SKIP_BYTES != len.div_ceil(BLOCK)
        {
            return Err(Corrupt("skip table does not match the length"));
        }
        Ok(Postings { data, skips, len })
    }

    /// Encodes sorted positions.
    pub fn from_sorted(positions: &[u32]) -> Postings {
        let (data, skips) = encode(positions);
        Postings {
            data,
            skips,
            len: positions.len(),
        }
    }

    /// Number of positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn blocks(&self) -> usize {
        self.skips.len() / SKIP_BYTES
    }

    fn skip(&self, b: usize) -> (u32, u32, usize) {
        let at = b * SKIP_BYTES;
        (
            u32_at(&self.skips, at),
            u32_at(&self.skips, at + 4),
            u32_at(&self.skips, at + 8) as usize,
        )
    }

    /// Decodes block `b` into `out`.
    fn decode_block(&self, b: usize, out: &mut Vec<u32>) -> Result<(), Corrupt> {
        out.clear();
        let n = if b + 1 == self.blocks() {
            self.len - b * BLOCK
        } else {
            BLOCK
        };
        let (first, last, off) = self.skip(b);
        let mut at = off;
        let mut v = get_varint(&self.data, &mut at)?;
        if v != first {
            return Err(Corrupt("block does not start at its skip entry"));
        }
        out.push(v);
        for _ in 1..n {
            let d = get_varint(&self.data, &mut at)?;
            if d == 0 {
                return Err(Corrupt("positions are not increasing"));
            }
            v = v.checked_add(d).ok_or(Corrupt("position overflows"))?;
            out.push(v);
        }
        if v != last {
            return Err(Corrupt("block does not end at its skip entry"));
        }
        Ok(())
    }

    /// Every position, in order.
    #[cfg(test)]
    pub fn to_vec(&self) -> Result<Vec<u32>, Corrupt> {
        let mut out = Vec::with_capacity(self.len);
        let mut buf = Vec::with_capacity(BLOCK);
        for b in 0..self.blocks() {
            self.decode_block(b, &mut buf)?;
            out.extend_from_slice(&buf);
        }
        Ok(out)
    }

    /// A cursor over the positions.
    pub fn cursor(&self) -> Cursor<'_> {
        Cursor {
            p: self,
            block: usize::MAX,
            buf: Vec::with_capacity(BLOCK),
        }
    }
}

/// Seeks in a posting list, loading one block at a time.
pub struct Cursor<'a> {
    p: &'a Postings,
    block: usize,
    buf: Vec<u32>,
}

impl Cursor<'_> {
    fn load(&mut self, b: usize) -> Result<(), Corrupt> {
        if self.block != b {
            self.p.decode_block(b, &mut self.buf)?;
            self.block = b;
        }
        Ok(())
    }

    /// The smallest position `>= x`.
    pub fn seek_ge(&mut self, x: u32) -> Result<Option<u32>, Corrupt> {
        let blocks = self.p.blocks();
        // First block whose last position is >= x.
        let (mut lo, mut hi) = (0usize, blocks);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.p.skip(mid).1 < x {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == blocks {
            return Ok(None);
        }
        self.load(lo)?;
        let i = self.buf.partition_point(|&v| v < x);
        Ok(self.buf.get(i).copied())
    }

    /// The largest position `<= x`.
    pub fn seek_le(&mut self, x: u32) -> Result<Option<u32>, Corrupt> {
        let blocks = self.p.blocks();
        // Last block whose first position is <= x.
        let (mut lo, mut hi) = (0usize, blocks);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.p.skip(mid).0 <= x {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return Ok(None);
        }
        self.load(lo - 1)?;
        let i = self.buf.partition_point(|&v| v <= x);
        Ok(if i == 0 { None } else { Some(self.buf[i - 1]) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_seek_in_both_directions() {
        let mut rng = 0x2545f4914f6cdd1du64;
        for len in [0usize, 1, 2, 127, 128, 129, 1000, 5000] {
            let mut v: Vec<u32> = Vec::new();
            let mut x = 0u32;
            for _ in 0..len {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                x += 1 + (rng % 40) as u32;
                v.push(x);
            }
            let p = Postings::from_sorted(&v);
            assert_eq!(p.to_vec().unwrap(), v);
            let mut c = p.cursor();
            let top = x + 50;
            for q in (0..top).step_by(7) {
                let ge = v.iter().copied().find(|&e| e >= q);
                let le = v.iter().rev().copied().find(|&e| e <= q);
                assert_eq!(c.seek_ge(q).unwrap(), ge, "ge {q} len {len}");
                assert_eq!(c.seek_le(q).unwrap(), le, "le {q} len {len}");
            }
        }
    }

    #[test]
    fn corrupt_bytes_are_errors_not_panics() {
        let p = Postings::from_sorted(&(0..300).map(|i| i * 3).collect::<Vec<_>>());
        for cut in [0, 1, 5, p.data.len() / 2] {
            let bad = Postings::new(p.data[..cut].to_vec(), p.skips.clone(), 300).unwrap();
            assert!(bad.to_vec().is_err());
        }
        assert!(Postings::new(vec![], vec![0; 5], 1).is_err());
    }
}
