//! Per-session sequence numbers (`seq`): duplicates and gaps. A gap may be
//! omitted events. Memory is one small interval set per session: it grows
//! with the number of sessions and holes, not with the entries.

use std::collections::{BTreeMap, HashMap};

/// Seen `seq` values of one session, as disjoint half-open intervals.
#[derive(Default)]
struct Seen {
    runs: BTreeMap<u64, u64>,
}

impl Seen {
    /// Adds `s`; false if it was already there.
    fn insert(&mut self, s: u64) -> bool {
        let before = self.runs.range(..=s).next_back().map(|(a, b)| (*a, *b));
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
                self.runs.remove(&a);
            }
        }
        if let Some(next_end) = self.runs.remove(&end) {
            end = next_end;
        }
        self.runs.insert(start, end);
        true
    }

    fn gaps(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut prev: Option<u64> = None;
        for (a, b) in &self.runs {
            if let Some(p) = prev {
                out.push((p, *a));
            }
            prev = Some(*b);
        }
        out
    }
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

/// Tracks every session's `seq` values.
#[derive(Default)]
pub struct Sequences {
    sessions: HashMap<String, Seen>,
    duplicates: Vec<SeqFinding>,
    /// Duplicates found in total (the list keeps the first few).
    pub duplicate_count: u64,
}

/// Most findings of one kind kept for the report.
const KEEP: usize = 1000;

impl Sequences {
    /// Records `seq` of `session` at entry `index`.
    pub fn record(&mut self, session: &str, seq: u64, index: u64) {
        let seen = match self.sessions.get_mut(session) {
            Some(s) => s,
            None => self.sessions.entry(session.to_string()).or_default(),
        };
        if !seen.insert(seq) {
            self.duplicate_count += 1;
            if self.duplicates.len() < KEEP {
                self.duplicates.push(SeqFinding::Duplicate {
                    session: session.to_string(),
                    seq,
                    index,
                });
            }
        }
    }

    /// Number of sessions seen.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Duplicates, then gaps (sorted by session).
    pub fn findings(&self) -> Vec<SeqFinding> {
        let mut out = self.duplicates.clone();
        let mut names: Vec<&String> = self.sessions.keys().collect();
        names.sort();
        for n in names {
            for (from, to) in self.sessions[n].gaps() {
                out.push(SeqFinding::Gap {
                    session: n.clone(),
                    from,
                    to,
                });
            }
        }
        out
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
        let f = s.findings();
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
        assert_eq!(s.sessions(), 2);
    }
}
