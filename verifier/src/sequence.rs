//! Per-session sequence numbers (`seq`): duplicates and gaps. A gap may be
//! omitted events.
//!
//! Memory is bounded whatever the log holds: sessions are keyed by a
//! 16-byte hash of their name (the name is kept, cut to
//! [`NAME_BYTES`], only to be reported), at most [`Limits::sessions`] are
//! tracked, and the seen values of all sessions together take at most
//! [`Limits::runs`] intervals. What the bounds leave unchecked is counted
//! and reported, never silently dropped.

use std::collections::{BTreeMap, HashMap};

/// Bytes of a session name kept for the report.
pub const NAME_BYTES: usize = 64;

/// Bounds on what sequence checking keeps in memory.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Sessions tracked; later new sessions are counted but not checked.
    pub sessions: usize,
    /// Intervals of seen values over all sessions; a session whose holes
    /// would exceed it stops being checked (and is reported).
    pub runs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // About 100 MB at worst: ~150 bytes a session, ~40 an interval.
        Limits {
            sessions: 500_000,
            runs: 1_000_000,
        }
    }
}

/// Seen `seq` values of one session, as disjoint half-open intervals; the
/// common case, one contiguous run, needs no allocation.
enum Seen {
    One(u64, u64),
    Many(BTreeMap<u64, u64>),
}

impl Seen {
    fn runs(&self) -> usize {
        match self {
            Seen::One(..) => 1,
            Seen::Many(m) => m.len(),
        }
    }

    /// Adds `s`; false if it was already there.
    fn insert(&mut self, s: u64) -> bool {
        if let Seen::One(a, b) = *self {
            if (a..b).contains(&s) {
                return false;
            }
            if s == b {
                *self = Seen::One(a, b + 1);
                return true;
            }
            if s + 1 == a {
                *self = Seen::One(s, b);
                return true;
            }
            *self = Seen::Many(BTreeMap::from([(a, b)]));
        }
        let Seen::Many(runs) = self else {
            unreachable!("converted above")
        };
        let before = runs.range(..=s).next_back().map(|(a, b)| (*a, *b));
        if let Some((_, end)) = before {
            if s < end {
                return false;
            }
        }
        let mut start = s;
        let mut end = s + 1;
        if let Some((a, b)) = before {
            if b == s {
                start = a;
                runs.remove(&a);
            }
        }
        if let Some(next_end) = runs.remove(&end) {
            end = next_end;
        }
        runs.insert(start, end);
        true
    }

    fn gaps(&self) -> Vec<(u64, u64)> {
        let Seen::Many(runs) = self else {
            return vec![];
        };
        let mut out = Vec::new();
        let mut prev: Option<u64> = None;
        for (a, b) in runs {
            if let Some(p) = prev {
                out.push((p, *a));
            }
            prev = Some(*b);
        }
        out
    }
}

struct Session {
    name: Box<str>,
    /// `None` once the session stopped being checked (too many holes).
    seen: Option<Seen>,
}

/// A duplicate or gap found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqFinding {
    /// `seq` repeated in a session (the entry index of the repeat).
    Duplicate {
        /// Session.
        session: String,
        /// The repeated value.
        seq: u64,
        /// Index of the repeating entry.
        index: u64,
    },
    /// Values `from..to` never appeared between two that did.
    Gap {
        /// Session.
        session: String,
        /// First missing value.
        from: u64,
        /// One past the last missing value.
        to: u64,
    },
}

impl std::fmt::Display for SeqFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeqFinding::Duplicate {
                session,
                seq,
                index,
            } => write!(
                f,
                "session {session:?}: seq {seq} appears again at index {index}"
            ),
            SeqFinding::Gap { session, from, to } if to - from == 1 => write!(
                f,
                "session {session:?}: seq {from} is missing (possibly an omitted event)"
            ),
            SeqFinding::Gap { session, from, to } => write!(
                f,
                "session {session:?}: seq {from}..{} are missing ({} possibly omitted events)",
                to - 1,
                to - from
            ),
        }
    }
}

/// Tracks every session's `seq` values, within [`Limits`].
#[derive(Default)]
pub struct Sequences {
    limits: Limits,
    sessions: HashMap<[u8; 16], Session>,
    runs: usize,
    duplicates: Vec<SeqFinding>,
    /// Duplicates found in total (the list keeps the first few).
    pub duplicate_count: u64,
    /// Entries with a `seq` (and a session).
    pub sequenced: u64,
    /// Entries with a session but no `seq`: nothing to check them by.
    pub unsequenced: u64,
    /// Entries of sessions beyond [`Limits::sessions`], not checked.
    pub untracked_entries: u64,
    /// Sessions that stopped being checked because their holes would
    /// exceed [`Limits::runs`] (their names, the first [`KEEP`]).
    pub abandoned: Vec<String>,
    /// Number of such sessions.
    pub abandoned_count: u64,
}

/// Most findings of one kind kept for the report.
pub const KEEP: usize = 1000;

/// A session's key: a name of at most 15 bytes is its own key (length,
/// then the bytes), a longer one the first 16 bytes of its SHA-256. A long
/// name whose hash began like a short name's key would take a 2^128
/// search to find.
fn key(session: &str) -> [u8; 16] {
    let b = session.as_bytes();
    let mut k = [0u8; 16];
    if b.len() < 16 {
        k[0] = b.len() as u8;
        k[1..=b.len()].copy_from_slice(b);
    } else {
        k.copy_from_slice(&vellum_spec::hash::sha256(b)[..16]);
    }
    k
}

fn short(name: &str) -> Box<str> {
    if name.len() <= NAME_BYTES {
        return name.into();
    }
    let mut end = NAME_BYTES;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &name[..end]).into()
}

impl Sequences {
    /// Tracking within `limits`.
    #[cfg(test)]
    pub fn with_limits(limits: Limits) -> Sequences {
        Sequences {
            limits,
            ..Sequences::default()
        }
    }

    /// Records `seq` of `session` at entry `index`.
    pub fn record(&mut self, session: &str, seq: u64, index: u64) {
        self.sequenced += 1;
        let k = key(session);
        let full = self.sessions.len() >= self.limits.sessions || self.runs >= self.limits.runs;
        let s = match self.sessions.get_mut(&k) {
            Some(s) => s,
            None if full => {
                self.untracked_entries += 1;
                return;
            }
            None => {
                self.runs += 1;
                self.sessions.entry(k).or_insert(Session {
                    name: short(session),
                    seen: Some(Seen::One(seq, seq + 1)),
                });
                return;
            }
        };
        let Some(seen) = s.seen.as_mut() else {
            self.untracked_entries += 1;
            return;
        };
        let before = seen.runs();
        if !seen.insert(seq) {
            self.duplicate_count += 1;
            if self.duplicates.len() < KEEP {
                self.duplicates.push(SeqFinding::Duplicate {
                    session: s.name.to_string(),
                    seq,
                    index,
                });
            }
        }
        self.runs = self.runs + seen.runs() - before;
        if self.runs > self.limits.runs {
            self.runs -= seen.runs();
            s.seen = None;
            self.abandoned_count += 1;
            if self.abandoned.len() < KEEP {
                self.abandoned.push(s.name.to_string());
            }
        }
    }

    /// Counts an entry that has a session but no `seq`.
    pub fn record_unsequenced(&mut self, n: u64) {
        self.unsequenced += n;
    }

    /// Number of sessions checked.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Gaps over all checked sessions.
    pub fn gap_count(&self) -> u64 {
        self.sessions
            .values()
            .filter_map(|s| s.seen.as_ref())
            .map(|seen| seen.runs().saturating_sub(1) as u64)
            .sum()
    }

    /// Duplicates, then gaps (sorted by session), at most `max` in all;
    /// returns them and how many more there are.
    pub fn findings(&self, max: usize) -> (Vec<SeqFinding>, u64) {
        let mut out: Vec<SeqFinding> = self.duplicates.iter().take(max).cloned().collect();
        let mut more = self.duplicate_count - out.len() as u64;
        let mut named: Vec<&Session> = self.sessions.values().collect();
        named.sort_by(|a, b| a.name.cmp(&b.name));
        for s in named {
            let Some(seen) = &s.seen else { continue };
            for (from, to) in seen.gaps() {
                if out.len() < max {
                    out.push(SeqFinding::Gap {
                        session: s.name.to_string(),
                        from,
                        to,
                    });
                } else {
                    more += 1;
                }
            }
        }
        (out, more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_gaps_and_duplicates_in_any_order() {
        let mut s = Sequences::default();
        for (i, q) in [0u64, 1, 2, 5, 4, 9, 2, 3].into_iter().enumerate() {
            s.record("a", q, i as u64);
        }
        s.record("b", 7, 8);
        let (f, more) = s.findings(KEEP);
        assert_eq!(
            f,
            vec![
                SeqFinding::Duplicate {
                    session: "a".into(),
                    seq: 2,
                    index: 6
                },
                SeqFinding::Gap {
                    session: "a".into(),
                    from: 6,
                    to: 9
                },
            ]
        );
        assert_eq!((more, s.sessions()), (0, 2));
    }

    #[test]
    fn short_and_long_names_are_distinct_sessions() {
        let names = [
            "",
            "a",
            "a\0",
            "\u{1}a",
            "fifteen-bytes-x",
            "sixteen-bytes-xy",
            "sixteen-bytes-xz",
            "a much longer session name than sixteen bytes",
        ];
        let mut s = Sequences::default();
        for (i, n) in names.iter().enumerate() {
            s.record(n, 0, i as u64);
        }
        assert_eq!(s.sessions(), names.len());
        assert_eq!(s.findings(KEEP), (vec![], 0));
        s.record("sixteen-bytes-xy", 0, 99);
        let (f, _) = s.findings(KEEP);
        assert_eq!(
            f,
            vec![SeqFinding::Duplicate {
                session: "sixteen-bytes-xy".into(),
                seq: 0,
                index: 99
            }]
        );
    }

    #[test]
    fn memory_is_bounded_and_what_is_dropped_is_counted() {
        let mut s = Sequences::with_limits(Limits {
            sessions: 3,
            runs: 10,
        });
        let long = "x".repeat(10_000);
        for i in 0..5u64 {
            s.record(&format!("{long}{i}"), 0, i);
        }
        assert_eq!(s.sessions(), 3);
        assert_eq!(s.untracked_entries, 2);
        assert!(s.sessions.values().all(|x| x.name.len() <= NAME_BYTES + 3));
        // Holes: every other value of one session, until the budget goes.
        for q in (2..40u64).step_by(2) {
            s.record(&format!("{long}0"), q, 100 + q);
        }
        assert_eq!(s.abandoned_count, 1);
        assert!(s.runs <= 10, "{}", s.runs);
        let (f, more) = s.findings(2);
        assert!(f.len() <= 2 && more == 0, "{f:?} {more}");
    }
}
