//! Evaluating a filter over one segment: for each constrained dimension
//! the union of its values' posting lists, intersected across dimensions
//! by leapfrogging (each list seeks to the others' next candidate), walked
//! in either direction from a position. No event is looked at: the cost
//! is the posting blocks the seeks decode.

use super::postings::{Corrupt, Cursor, Postings};
use super::segment::{SegmentError, Slot, View};

/// AND over dimensions, OR within one: `(slot, values)` pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The constrained dimensions.
    pub terms: Vec<(Slot, Vec<String>)>,
}

impl Plan {
    /// True when nothing is constrained: every position matches.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

/// Walk order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Increasing positions (oldest first).
    Asc,
    /// Decreasing positions (newest first).
    Desc,
}

struct Union<'a> {
    cursors: Vec<Cursor<'a>>,
}

impl Union<'_> {
    fn seek_ge(&mut self, x: u32) -> Result<Option<u32>, Corrupt> {
        let mut best: Option<u32> = None;
        for c in &mut self.cursors {
            if let Some(v) = c.seek_ge(x)? {
                best = Some(best.map_or(v, |b| b.min(v)));
            }
        }
        Ok(best)
    }

    fn seek_le(&mut self, x: u32) -> Result<Option<u32>, Corrupt> {
        let mut best: Option<u32> = None;
        for c in &mut self.cursors {
            if let Some(v) = c.seek_le(x)? {
                best = Some(best.map_or(v, |b| b.max(v)));
            }
        }
        Ok(best)
    }
}

/// The posting lists of a plan in one segment; `None` when some
/// dimension has none of its values there (nothing can match).
pub fn lists(view: &dyn View, plan: &Plan) -> Result<Option<Vec<Vec<Postings>>>, SegmentError> {
    let mut out = Vec::with_capacity(plan.terms.len());
    for (slot, values) in &plan.terms {
        let mut ls = Vec::new();
        for v in values {
            if let Some(p) = view.postings(*slot, v)? {
                if !p.is_empty() {
                    ls.push(p);
                }
            }
        }
        if ls.is_empty() {
            return Ok(None);
        }
        // Shortest dimension first: it leads the leapfrog.
        out.push(ls);
    }
    out.sort_by_key(|ls| ls.iter().map(Postings::len).sum::<usize>());
    Ok(Some(out))
}

/// Calls `emit` with each matching position in `[lo, hi)` in `dir` order,
/// until it returns false.
pub fn walk(
    lists: &[Vec<Postings>],
    lo: u32,
    hi: u32,
    dir: Dir,
    mut emit: impl FnMut(u32) -> bool,
) -> Result<(), Corrupt> {
    if lo >= hi {
        return Ok(());
    }
    if lists.is_empty() {
        match dir {
            Dir::Asc => {
                for x in lo..hi {
                    if !emit(x) {
                        break;
                    }
                }
            }
            Dir::Desc => {
                for x in (lo..hi).rev() {
                    if !emit(x) {
                        break;
                    }
                }
            }
        }
        return Ok(());
    }
    let mut unions: Vec<Union> = lists
        .iter()
        .map(|ls| Union {
            cursors: ls.iter().map(Postings::cursor).collect(),
        })
        .collect();
    match dir {
        Dir::Asc => {
            let mut x = lo;
            'outer: while x < hi {
                let mut i = 0;
                while i < unions.len() {
                    match unions[i].seek_ge(x)? {
                        None => break 'outer,
                        Some(y) if y >= hi => break 'outer,
                        Some(y) if y > x => {
                            x = y;
                            i = 0;
                            continue;
                        }
                        Some(_) => i += 1,
                    }
                }
                if !emit(x) {
                    break;
                }
                x += 1;
            }
        }
        Dir::Desc => {
            let mut x = hi - 1;
            'outer: loop {
                let mut i = 0;
                while i < unions.len() {
                    match unions[i].seek_le(x)? {
                        None => break 'outer,
                        Some(y) if y < lo => break 'outer,
                        Some(y) if y < x => {
                            x = y;
                            i = 0;
                            continue;
                        }
                        Some(_) => i += 1,
                    }
                }
                if !emit(x) || x == lo {
                    break;
                }
                x -= 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(sets: &[Vec<Vec<u32>>], lo: u32, hi: u32) -> Vec<u32> {
        (lo..hi)
            .filter(|x| sets.iter().all(|d| d.iter().any(|l| l.contains(x))))
            .collect()
    }

    #[test]
    fn leapfrog_equals_brute_force_both_ways() {
        let mut rng = 7u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..200 {
            let dims = 1 + (next() % 3) as usize;
            let sets: Vec<Vec<Vec<u32>>> = (0..dims)
                .map(|_| {
                    (0..1 + next() % 3)
                        .map(|_| {
                            let density = 1 + next() % 9;
                            (0..2000u32).filter(|_| next() % 10 < density).collect()
                        })
                        .collect()
                })
                .collect();
            let lists: Vec<Vec<Postings>> = sets
                .iter()
                .map(|d| d.iter().map(|l| Postings::from_sorted(l)).collect())
                .collect();
            let (lo, hi) = ((next() % 500) as u32, 1500 + (next() % 500) as u32);
            let want = brute(&sets, lo, hi);
            let mut got = Vec::new();
            walk(&lists, lo, hi, Dir::Asc, |x| {
                got.push(x);
                true
            })
            .unwrap();
            assert_eq!(got, want, "asc round {round}");
            let mut got = Vec::new();
            walk(&lists, lo, hi, Dir::Desc, |x| {
                got.push(x);
                true
            })
            .unwrap();
            got.reverse();
            assert_eq!(got, want, "desc round {round}");
            // A limit stops early.
            let mut n = 0;
            walk(&lists, lo, hi, Dir::Desc, |_| {
                n += 1;
                n < 3
            })
            .unwrap();
            assert_eq!(n, want.len().min(3));
        }
    }
}
