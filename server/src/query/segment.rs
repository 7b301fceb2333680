//! Index segments: the query index of [`SEGMENT_EVENTS`] consecutive log
//! entries. A segment is built in memory as the indexer follows the log
//! ([`Builder`], queryable while it grows) and written once full as an
//! immutable file ([`Segment`]), read back with positioned reads only, so
//! the log's memory does not grow with the index.
//!
//! Per indexed field (see [`Slot`]): a dictionary of the values present
//! (sorted by a 64-bit hash, with a fence of every 128th hash for a
//! two-read lookup), the values' names, and each value's posting list.
//! Per stats group field: a column of value ids, one per event. Also the
//! `logged_at` of every 256th event (time windows), the minute boundaries
//! and per-minute counts per group value (stats). A SHA-256 of everything
//! before it ends the file; a segment that does not check is rebuilt from
//! the entry bundles.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::fields::{EventFields, Field};
use super::postings::{Corrupt, Postings, SKIP_BYTES};

/// Events per segment (positions fit in 16 bits).
pub const SEGMENT_EVENTS: u64 = 1 << 16;

/// Events per time block (one entry bundle).
pub const TIME_BLOCK: u64 = 256;

const MAGIC: &[u8; 8] = b"VLMSEG2\n";
/// Dictionary records per fence step.
const FENCE: usize = 128;
/// Bytes of a dictionary record.
const RECORD: usize = 32;

/// An indexed dimension: the string fields, then `risk` (values "0".."100").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// A string field.
    Field(Field),
    /// `risk`, by its decimal value.
    Risk,
}

impl Slot {
    /// Every slot, in file order.
    pub const ALL: [Slot; 11] = [
        Slot::Field(Field::Agent),
        Slot::Field(Field::Principal),
        Slot::Field(Field::Owner),
        Slot::Field(Field::Session),
        Slot::Field(Field::Tool),
        Slot::Field(Field::Target),
        Slot::Field(Field::Verdict),
        Slot::Field(Field::Rule),
        Slot::Field(Field::Provenance),
        Slot::Field(Field::Gateway),
        Slot::Risk,
    ];

    /// Position in [`Slot::ALL`].
    pub fn index(self) -> usize {
        match self {
            Slot::Field(f) => f.slot(),
            Slot::Risk => 10,
        }
    }
}

/// Position of `verdict` in [`Field::GROUPS`].
pub const VERDICT_GROUP: usize = 0;

/// Position in [`Field::GROUPS`] of a group field.
pub fn group_index(f: Field) -> Option<usize> {
    Field::GROUPS.iter().position(|g| *g == f)
}

/// 64-bit FNV-1a of a value: the dictionary's sort key (names are
/// compared too, so a collision costs a comparison, never a wrong answer).
pub fn value_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The minute (Unix minutes) of a time in milliseconds.
pub fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(60_000)
}

/// FNV-1a as a `Hasher`: the builder hashes every field of every event,
/// and SipHash's resistance to chosen keys buys nothing for values the
/// log already accepted (a colliding value only costs a comparison).
#[derive(Default)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf29ce484222325
        } else {
            self.0
        };
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        self.0 = h;
    }
}

type FnvMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

#[derive(Default)]
struct SlotBuild {
    ids: FnvMap<String, u32>,
    names: Vec<String>,
    postings: Vec<Vec<u32>>,
}

impl SlotBuild {
    fn add(&mut self, value: &str, pos: u32) -> u32 {
        let id = match self.ids.get(value) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                self.ids.insert(value.to_string(), id);
                self.names.push(value.to_string());
                self.postings.push(Vec::new());
                id
            }
        };
        self.postings[id as usize].push(pos);
        id
    }
}

/// No value of a group field (the event lacks it).
pub const NONE: u32 = u32::MAX;

/// A segment being built: the newest entries of the log, queryable.
pub struct Builder {
    number: u64,
    count: u32,
    slots: Vec<SlotBuild>,
    columns: Vec<Vec<u32>>,
    block_times: Vec<i64>,
    minutes: Vec<(i64, u32)>,
    /// Byte offset of each entry in its entry bundle.
    offsets: Vec<u32>,
    last_ms: i64,
}

impl Builder {
    /// An empty segment number `number` (entries from `number * SEGMENT_EVENTS`).
    pub fn new(number: u64) -> Builder {
        Builder {
            number,
            count: 0,
            slots: (0..Slot::ALL.len()).map(|_| SlotBuild::default()).collect(),
            columns: vec![Vec::new(); Field::GROUPS.len()],
            block_times: Vec::new(),
            minutes: Vec::new(),
            offsets: Vec::new(),
            last_ms: i64::MIN,
        }
    }

    /// The segment number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// True once it holds [`SEGMENT_EVENTS`] entries.
    pub fn is_full(&self) -> bool {
        self.count as u64 == SEGMENT_EVENTS
    }

    /// Adds the next entry's fields; `offset` is where its length prefix
    /// starts in its entry bundle.
    pub fn add(&mut self, e: &EventFields, offset: u32) {
        let pos = self.count;
        self.offsets.push(offset);
        for f in Field::ALL {
            let id = e.get(f).map(|v| self.slots[f.slot()].add(v, pos));
            if let Some(g) = group_index(f) {
                self.columns[g].push(id.unwrap_or(NONE));
            }
        }
        if let Some(r) = e.risk {
            self.slots[Slot::Risk.index()].add(&r.to_string(), pos);
        }
        let ms = e.logged_at_ms().max(self.last_ms);
        self.last_ms = ms;
        if (pos as u64).is_multiple_of(TIME_BLOCK) {
            self.block_times.push(ms);
        }
        let m = minute_of(ms);
        if self.minutes.last().is_none_or(|(lm, _)| *lm != m) {
            self.minutes.push((m, pos));
        }
        self.count += 1;
    }

    /// Writes the segment to `dir` (temp file, fsync, rename, fsync dir).
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let bytes = self.encode();
        let path = segment_path(dir, self.number);
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()?;
        Ok(path)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.count as usize * 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.number.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        // Section table, patched below: per slot 8 u64 offsets/lengths,
        // then columns, block times, minutes, aggregates.
        let table_at = out.len();
        let table_len = (Slot::ALL.len() * 6 + Field::GROUPS.len() + 4) * 8;
        out.resize(out.len() + table_len, 0);
        let mut table: Vec<u64> = Vec::new();
        for s in &self.slots {
            // Dictionary sorted by (hash, name).
            let mut order: Vec<u32> = (0..s.names.len() as u32).collect();
            order.sort_by(|a, b| {
                let (na, nb) = (&s.names[*a as usize], &s.names[*b as usize]);
                (value_hash(na), na).cmp(&(value_hash(nb), nb))
            });
            let mut names = Vec::new();
            let mut name_at = vec![0u32; s.names.len()];
            for (id, n) in s.names.iter().enumerate() {
                name_at[id] = names.len() as u32;
                let b = n.as_bytes();
                names.extend_from_slice(&(b.len() as u16).to_le_bytes());
                names.extend_from_slice(b);
            }
            let mut posts = Vec::new();
            let mut dict = Vec::with_capacity(order.len() * RECORD);
            for &id in &order {
                let (data, skips) = super::postings::encode(&s.postings[id as usize]);
                let data_off = posts.len() as u32;
                posts.extend_from_slice(&data);
                let skips_off = posts.len() as u32;
                posts.extend_from_slice(&skips);
                dict.extend_from_slice(&value_hash(&s.names[id as usize]).to_le_bytes());
                dict.extend_from_slice(&id.to_le_bytes());
                dict.extend_from_slice(&(s.postings[id as usize].len() as u32).to_le_bytes());
                dict.extend_from_slice(&data_off.to_le_bytes());
                dict.extend_from_slice(&(data.len() as u32).to_le_bytes());
                dict.extend_from_slice(&skips_off.to_le_bytes());
                dict.extend_from_slice(&name_at[id as usize].to_le_bytes());
            }
            let mut fence = Vec::new();
            for r in dict.chunks(RECORD).step_by(FENCE) {
                fence.extend_from_slice(&r[..8]);
            }
            for section in [&dict, &fence, &names, &posts] {
                table.push(out.len() as u64);
                out.extend_from_slice(section);
            }
            table.push(order.len() as u64);
            table.push(s.names.len() as u64);
        }
        for c in &self.columns {
            table.push(out.len() as u64);
            let max = c.iter().filter(|v| **v != NONE).max().copied().unwrap_or(0);
            let width: u8 = if max < 255 {
                1
            } else if max < 65_535 {
                2
            } else {
                4
            };
            out.push(width);
            for &v in c {
                match width {
                    1 => out.push(if v == NONE { 255 } else { v as u8 }),
                    2 => out.extend_from_slice(
                        &(if v == NONE { 65_535 } else { v as u16 }).to_le_bytes(),
                    ),
                    _ => out.extend_from_slice(&v.to_le_bytes()),
                }
            }
        }
        table.push(out.len() as u64);
        for o in &self.offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        table.push(out.len() as u64);
        out.extend_from_slice(&(self.block_times.len() as u32).to_le_bytes());
        for t in &self.block_times {
            out.extend_from_slice(&t.to_le_bytes());
        }
        table.push(out.len() as u64);
        out.extend_from_slice(&(self.minutes.len() as u32).to_le_bytes());
        for (m, p) in &self.minutes {
            out.extend_from_slice(&m.to_le_bytes());
            out.extend_from_slice(&p.to_le_bytes());
        }
        // Per minute, per group field: (id, verdict id, count), so that
        // stats filtered by verdict alone ("top agents by denials") come
        // from these counts too.
        table.push(out.len() as u64);
        let verdicts = &self.columns[VERDICT_GROUP];
        for (i, _) in self.minutes.iter().enumerate() {
            let (from, to) = self.minute_range(i);
            for c in &self.columns {
                let mut counts: HashMap<(u32, u32), u32> = HashMap::new();
                for p in from as usize..to as usize {
                    if c[p] != NONE {
                        *counts.entry((c[p], verdicts[p])).or_insert(0) += 1;
                    }
                }
                let mut rows: Vec<((u32, u32), u32)> = counts.into_iter().collect();
                rows.sort_unstable();
                out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
                for ((id, v), n) in rows {
                    out.extend_from_slice(&id.to_le_bytes());
                    out.extend_from_slice(&v.to_le_bytes());
                    out.extend_from_slice(&n.to_le_bytes());
                }
            }
        }
        for (i, v) in table.iter().enumerate() {
            out[table_at + i * 8..table_at + i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        out
    }

    fn minute_range(&self, i: usize) -> (u32, u32) {
        let from = self.minutes[i].1;
        let to = self.minutes.get(i + 1).map(|m| m.1).unwrap_or(self.count);
        (from, to)
    }
}

/// The file of segment `number` in `dir`.
pub fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("seg-{number:012}"))
}

/// Why a segment cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// Reading the file failed.
    #[error("index segment: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a well-formed segment.
    #[error("index segment is corrupt: {0}")]
    Corrupt(String),
}

impl From<Corrupt> for SegmentError {
    fn from(c: Corrupt) -> Self {
        SegmentError::Corrupt(c.to_string())
    }
}

fn corrupt(m: &str) -> SegmentError {
    SegmentError::Corrupt(m.to_string())
}

#[derive(Clone, Copy, Debug, Default)]
struct SlotTable {
    dict: u64,
    fence: u64,
    names: u64,
    posts: u64,
    records: u64,
    ids: u64,
}

/// A written segment, read with positioned reads.
pub struct Segment {
    file: File,
    len: u64,
    slots: Vec<SlotTable>,
    /// Section starts in file order, to bound each section's length.
    bounds: Vec<u64>,
    columns: Vec<u64>,
    offsets: u64,
    block_times: u64,
    minutes: u64,
    aggregates: u64,
}

/// A dictionary hit: a value's posting list and its id.
struct Record {
    count: u32,
    data_off: u32,
    data_len: u32,
    skips_off: u32,
    name_off: u32,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

impl Segment {
    /// Opens segment `number` in `dir`; with `verify`, checks its SHA-256.
    pub fn open(dir: &Path, number: u64, verify: bool) -> Result<Segment, SegmentError> {
        let file = File::open(segment_path(dir, number))?;
        let len = file.metadata()?.len();
        let head_len = 8 + 8 + 4 + ((Slot::ALL.len() * 6 + Field::GROUPS.len() + 4) * 8) as u64;
        if len < head_len + 32 {
            return Err(corrupt("shorter than its header"));
        }
        let mut head = vec![0u8; head_len as usize];
        file.read_exact_at(&mut head, 0)?;
        if &head[..8] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        if le_u64(&head, 8) != number || le_u32(&head, 16) as u64 != SEGMENT_EVENTS {
            return Err(corrupt("wrong segment number or size"));
        }
        if verify {
            let mut all = vec![0u8; len as usize];
            file.read_exact_at(&mut all, 0)?;
            let (body, digest) = all.split_at(len as usize - 32);
            if Sha256::digest(body).as_slice() != digest {
                return Err(corrupt("checksum mismatch"));
            }
        }
        let t = |i: usize| le_u64(&head, 20 + i * 8);
        let mut slots = Vec::new();
        let mut bounds = Vec::new();
        let mut i = 0;
        for _ in Slot::ALL {
            let s = SlotTable {
                dict: t(i),
                fence: t(i + 1),
                names: t(i + 2),
                posts: t(i + 3),
                records: t(i + 4),
                ids: t(i + 5),
            };
            bounds.extend([s.dict, s.fence, s.names, s.posts]);
            slots.push(s);
            i += 6;
        }
        let columns: Vec<u64> = (0..Field::GROUPS.len()).map(|g| t(i + g)).collect();
        i += Field::GROUPS.len();
        bounds.extend(&columns);
        let (offsets, block_times, minutes, aggregates) = (t(i), t(i + 1), t(i + 2), t(i + 3));
        bounds.extend([offsets, block_times, minutes, aggregates, len - 32]);
        if bounds.windows(2).any(|w| w[0] > w[1]) || bounds[0] < head_len {
            return Err(corrupt("sections out of order"));
        }
        Ok(Segment {
            file,
            len,
            slots,
            bounds,
            columns,
            offsets,
            block_times,
            minutes,
            aggregates,
        })
    }

    fn read(&self, at: u64, n: usize) -> Result<Vec<u8>, SegmentError> {
        if at.checked_add(n as u64).is_none_or(|e| e > self.len - 32) {
            return Err(corrupt("read beyond the file"));
        }
        let mut buf = vec![0u8; n];
        self.file.read_exact_at(&mut buf, at)?;
        Ok(buf)
    }

    /// End of the section starting at `start`.
    fn section_end(&self, start: u64) -> u64 {
        self.bounds
            .iter()
            .copied()
            .find(|b| *b > start)
            .unwrap_or(self.len - 32)
    }

    fn find(&self, slot: Slot, value: &str) -> Result<Option<Record>, SegmentError> {
        let s = self.slots[slot.index()];
        if s.records == 0 {
            return Ok(None);
        }
        let h = value_hash(value);
        let fences = s.records.div_ceil(FENCE as u64) as usize;
        let fence = self.read(s.fence, fences * 8)?;
        // Last fence hash <= h: the page that may hold it.
        let (mut lo, mut hi) = (0usize, fences);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if le_u64(&fence, mid * 8) <= h {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        // Equal hashes can straddle a fence: start one page earlier.
        let first_page = lo.saturating_sub(2);
        let mut rec = first_page * FENCE;
        while (rec as u64) < s.records {
            let n = (FENCE).min(s.records as usize - rec);
            let page = self.read(s.dict + (rec * RECORD) as u64, n * RECORD)?;
            for r in page.chunks(RECORD) {
                let rh = le_u64(r, 0);
                if rh > h {
                    return Ok(None);
                }
                if rh == h {
                    let record = Record {
                        count: le_u32(r, 12),
                        data_off: le_u32(r, 16),
                        data_len: le_u32(r, 20),
                        skips_off: le_u32(r, 24),
                        name_off: le_u32(r, 28),
                    };
                    if self.name_at(s, record.name_off)? == value {
                        return Ok(Some(record));
                    }
                }
            }
            rec += n;
        }
        Ok(None)
    }

    fn name_at(&self, s: SlotTable, off: u32) -> Result<String, SegmentError> {
        let at = s.names + off as u64;
        if at + 2 > self.section_end(s.names) {
            return Err(corrupt("name beyond its section"));
        }
        let l = self.read(at, 2)?;
        let n = u16::from_le_bytes([l[0], l[1]]) as usize;
        let b = self.read(at + 2, n)?;
        String::from_utf8(b).map_err(|_| corrupt("name is not UTF-8"))
    }

    /// The posting list of `value` in `slot`, if present.
    pub fn postings(&self, slot: Slot, value: &str) -> Result<Option<Postings>, SegmentError> {
        let Some(r) = self.find(slot, value)? else {
            return Ok(None);
        };
        let s = self.slots[slot.index()];
        let data = self.read(s.posts + r.data_off as u64, r.data_len as usize)?;
        let skips = self.read(
            s.posts + r.skips_off as u64,
            (r.count as usize).div_ceil(super::postings::BLOCK) * SKIP_BYTES,
        )?;
        Ok(Some(Postings::new(data, skips, r.count as usize)?))
    }

    /// Every (id, name) of field `f`, from one read of its names section
    /// (stored in id order, each with a 2-byte length).
    pub fn names(&self, f: Field) -> Result<HashMap<u32, String>, SegmentError> {
        let s = self.slots[Slot::Field(f).index()];
        let end = self.section_end(s.names);
        let raw = self.read(s.names, (end - s.names) as usize)?;
        let mut out = HashMap::with_capacity(s.ids as usize);
        let mut at = 0usize;
        for id in 0..s.ids as u32 {
            let n = raw
                .get(at..at + 2)
                .map(|l| u16::from_le_bytes([l[0], l[1]]) as usize)
                .ok_or_else(|| corrupt("names truncated"))?;
            let b = raw
                .get(at + 2..at + 2 + n)
                .ok_or_else(|| corrupt("names truncated"))?;
            out.insert(
                id,
                String::from_utf8(b.to_vec()).map_err(|_| corrupt("name is not UTF-8"))?,
            );
            at += 2 + n;
        }
        Ok(out)
    }

    /// The column of group field number `g` (ids per position; [`NONE`]
    /// where absent), positions `from..to`.
    pub fn column(&self, g: usize, from: u32, to: u32) -> Result<Vec<u32>, SegmentError> {
        let at = self.columns[g];
        let w = self.read(at, 1)?[0] as usize;
        if ![1, 2, 4].contains(&w) || to < from || to as u64 > SEGMENT_EVENTS {
            return Err(corrupt("bad column"));
        }
        let b = self.read(
            at + 1 + (from as usize * w) as u64,
            (to - from) as usize * w,
        )?;
        Ok(b.chunks(w)
            .map(|c| match w {
                1 => {
                    if c[0] == 255 {
                        NONE
                    } else {
                        c[0] as u32
                    }
                }
                2 => {
                    let v = u16::from_le_bytes([c[0], c[1]]);
                    if v == 65_535 {
                        NONE
                    } else {
                        v as u32
                    }
                }
                _ => le_u32(c, 0),
            })
            .collect())
    }

    /// Bundle byte offset of the entry at `pos`.
    pub fn offset(&self, pos: u32) -> Result<u32, SegmentError> {
        if pos as u64 >= SEGMENT_EVENTS {
            return Err(corrupt("offset beyond the segment"));
        }
        Ok(le_u32(&self.read(self.offsets + pos as u64 * 4, 4)?, 0))
    }

    /// `logged_at` (ms) of every [`TIME_BLOCK`]-th entry.
    pub fn block_times(&self) -> Result<Vec<i64>, SegmentError> {
        let n = le_u32(&self.read(self.block_times, 4)?, 0) as usize;
        let b = self.read(self.block_times + 4, n * 8)?;
        Ok(b.chunks(8).map(|c| le_u64(c, 0) as i64).collect())
    }

    /// The (minute, first position) boundaries.
    pub fn minutes(&self) -> Result<Vec<(i64, u32)>, SegmentError> {
        let n = le_u32(&self.read(self.minutes, 4)?, 0) as usize;
        let b = self.read(self.minutes + 4, n * 12)?;
        Ok(b.chunks(12)
            .map(|c| (le_u64(c, 0) as i64, le_u32(c, 8)))
            .collect())
    }

    /// Per minute (in [`Segment::minutes`] order), the (id, verdict id,
    /// count) rows of group field number `g`.
    pub fn aggregates(&self, g: usize) -> Result<MinuteCounts, SegmentError> {
        let minutes = self.minutes()?.len();
        let end = self.len - 32;
        let raw = self.read(self.aggregates, (end - self.aggregates) as usize)?;
        let mut at = 0usize;
        let mut out = Vec::with_capacity(minutes);
        let take = |at: &mut usize, n: usize| -> Result<usize, SegmentError> {
            let s = *at;
            *at = at
                .checked_add(n)
                .filter(|e| *e <= raw.len())
                .ok_or_else(|| corrupt("aggregates truncated"))?;
            Ok(s)
        };
        for _ in 0..minutes {
            for gi in 0..Field::GROUPS.len() {
                let s = take(&mut at, 4)?;
                let n = le_u32(&raw, s) as usize;
                let s = take(&mut at, n * 12)?;
                if gi == g {
                    out.push(
                        raw[s..s + n * 12]
                            .chunks(12)
                            .map(|c| (le_u32(c, 0), le_u32(c, 4), le_u32(c, 8)))
                            .collect(),
                    );
                }
            }
        }
        Ok(out)
    }
}

/// Per minute, the (id, verdict id, count) rows of one group field.
pub type MinuteCounts = Vec<Vec<(u32, u32, u32)>>;

/// What queries and stats need from a segment, written or in memory.
pub trait View {
    /// Entries it holds.
    fn count(&self) -> u32;
    /// The posting list of `value` in `slot`.
    fn postings(&self, slot: Slot, value: &str) -> Result<Option<Postings>, SegmentError>;
    /// Group field `g`'s column over `from..to`.
    fn column(&self, g: usize, from: u32, to: u32) -> Result<Vec<u32>, SegmentError>;
    /// Id → name of field `f`.
    fn names(&self, f: Field) -> Result<HashMap<u32, String>, SegmentError>;
    /// Bundle byte offset of the entry at `pos`.
    fn offset(&self, pos: u32) -> Result<u32, SegmentError>;
    /// Block times.
    fn block_times(&self) -> Result<Vec<i64>, SegmentError>;
    /// Minute boundaries.
    fn minutes(&self) -> Result<Vec<(i64, u32)>, SegmentError>;
    /// Per-minute counts of group field `g`, or `None` to count from the column.
    fn aggregates(&self, g: usize) -> Result<Option<MinuteCounts>, SegmentError>;
}

impl View for Segment {
    fn count(&self) -> u32 {
        SEGMENT_EVENTS as u32
    }
    fn postings(&self, slot: Slot, value: &str) -> Result<Option<Postings>, SegmentError> {
        Segment::postings(self, slot, value)
    }
    fn column(&self, g: usize, from: u32, to: u32) -> Result<Vec<u32>, SegmentError> {
        Segment::column(self, g, from, to)
    }
    fn names(&self, f: Field) -> Result<HashMap<u32, String>, SegmentError> {
        Segment::names(self, f)
    }
    fn offset(&self, pos: u32) -> Result<u32, SegmentError> {
        Segment::offset(self, pos)
    }
    fn block_times(&self) -> Result<Vec<i64>, SegmentError> {
        Segment::block_times(self)
    }
    fn minutes(&self) -> Result<Vec<(i64, u32)>, SegmentError> {
        Segment::minutes(self)
    }
    fn aggregates(&self, g: usize) -> Result<Option<MinuteCounts>, SegmentError> {
        Segment::aggregates(self, g).map(Some)
    }
}

impl View for Builder {
    fn count(&self) -> u32 {
        self.count
    }
    fn postings(&self, slot: Slot, value: &str) -> Result<Option<Postings>, SegmentError> {
        let s = &self.slots[slot.index()];
        Ok(s.ids
            .get(value)
            .map(|id| Postings::from_sorted(&s.postings[*id as usize])))
    }
    fn column(&self, g: usize, from: u32, to: u32) -> Result<Vec<u32>, SegmentError> {
        self.columns[g]
            .get(from as usize..to as usize)
            .map(<[u32]>::to_vec)
            .ok_or_else(|| corrupt("column range"))
    }
    fn names(&self, f: Field) -> Result<HashMap<u32, String>, SegmentError> {
        Ok(self.slots[f.slot()]
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u32, n.clone()))
            .collect())
    }
    fn offset(&self, pos: u32) -> Result<u32, SegmentError> {
        self.offsets
            .get(pos as usize)
            .copied()
            .ok_or_else(|| corrupt("offset beyond the segment"))
    }
    fn block_times(&self) -> Result<Vec<i64>, SegmentError> {
        Ok(self.block_times.clone())
    }
    fn minutes(&self) -> Result<Vec<(i64, u32)>, SegmentError> {
        Ok(self.minutes.clone())
    }
    fn aggregates(&self, _g: usize) -> Result<Option<MinuteCounts>, SegmentError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u32) -> String {
        format!(
            r#"{{"agent":"agent-{}","event_id":"e{i}","gateway":"gw","logged_at":"2026-06-20T14:{:02}:{:02}.000Z","owner":"o{}","principal":"p","risk":{},"session":"s{}","tool":"t","ts":"2026-06-20T14:07:31Z","verdict":"{}"}}"#,
            i % 300,
            (i / 6000) % 60,
            (i / 100) % 60,
            i % 7,
            i % 101,
            i % 5000,
            ["allow", "deny", "review", "approve"][(i % 4) as usize]
        )
    }

    #[test]
    fn a_written_segment_answers_like_its_builder() {
        let dir = std::env::temp_dir().join(format!("vellum-seg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut b = Builder::new(3);
        for i in 0..SEGMENT_EVENTS as u32 {
            let l = leaf(i);
            b.add(&EventFields::parse(l.as_bytes()).unwrap(), i * 7);
        }
        assert!(b.is_full());
        b.write(&dir).unwrap();
        let s = Segment::open(&dir, 3, true).unwrap();
        for (slot, v) in [
            (Slot::Field(Field::Agent), "agent-17"),
            (Slot::Field(Field::Session), "s4999"),
            (Slot::Field(Field::Verdict), "deny"),
            (Slot::Risk, "100"),
            (Slot::Field(Field::Rule), "none"),
        ] {
            let mem = View::postings(&b, slot, v)
                .unwrap()
                .map(|p| p.to_vec().unwrap());
            let disk = s.postings(slot, v).unwrap().map(|p| p.to_vec().unwrap());
            assert_eq!(mem, disk, "{slot:?} {v}");
        }
        let g = group_index(Field::Verdict).unwrap();
        assert_eq!(
            View::column(&b, g, 100, 200).unwrap(),
            s.column(g, 100, 200).unwrap()
        );
        assert_eq!(View::minutes(&b).unwrap(), s.minutes().unwrap());
        assert_eq!(View::block_times(&b).unwrap(), s.block_times().unwrap());
        assert_eq!(s.offset(1234).unwrap(), 1234 * 7);
        let names = s.names(Field::Agent).unwrap();
        assert_eq!(names.len(), 300);
        assert!(names.values().any(|n| n == "agent-5"));
        let agg = s.aggregates(g).unwrap();
        let total: u32 = agg.iter().flatten().map(|(_, _, n)| n).sum();
        assert_eq!(total as u64, SEGMENT_EVENTS);
        // A flipped byte fails the checksum.
        let p = segment_path(&dir, 3);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[1000] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert!(Segment::open(&dir, 3, true).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
