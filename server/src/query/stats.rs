//! `GET /v1/stats`: counts per time bucket and per group value, and the
//! top groups over the window. Unfiltered, whole minutes come from the
//! per-minute counts each segment stores (the minutes cut by the window's
//! edges, and the segment still in memory, from its columns); with
//! filters, from the matching postings and the group column. No event is
//! read.

use std::collections::{BTreeMap, HashMap};

use super::exec::{self, Dir};
use super::fields::Field;
use super::index::{Index, QueryError};
use super::params::StatsQuery;
use super::segment::{group_index, SEGMENT_EVENTS, VERDICT_GROUP};

/// One time bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Its start (Unix ms, aligned to the bucket size in UTC).
    pub start: i64,
    /// Matching events in it.
    pub total: u64,
    /// Per group value (events without the field count only in `total`).
    pub counts: BTreeMap<String, u64>,
}

/// A stats answer.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Every bucket of the window, in time order (empty ones too).
    pub buckets: Vec<Bucket>,
    /// The `top` groups over the window, most first (ties by name).
    pub top: Vec<(String, u64)>,
    /// Matching events in the window.
    pub total: u64,
    /// Entries indexed when the answer was made.
    pub indexed: u64,
}

/// The bucket (start) of a minute.
fn bucket_of(minute: i64, size: i64) -> i64 {
    (minute * 60_000).div_euclid(size) * size
}

impl Index {
    /// Answers a stats query.
    pub fn stats(&self, q: &StatsQuery) -> Result<Stats, QueryError> {
        let _span = tracing::debug_span!("stats", group_by = q.group_by.name()).entered();
        let indexed = self.indexed_size();
        let (from, to) = (q.filter.from.unwrap_or(0), q.filter.to.unwrap_or(i64::MAX));
        let size = q.bucket.1;
        let mut buckets: BTreeMap<i64, (u64, HashMap<String, u64>)> = BTreeMap::new();
        let mut b = from.div_euclid(size) * size;
        while b < to {
            buckets.insert(b, (0, HashMap::new()));
            b += size;
        }
        let g = group_index(q.group_by).expect("group_by is a group field");
        let (lo, hi) = self.window(&q.filter, indexed)?;
        let mut add = |minute: i64, total: u64, ids: &mut dyn Iterator<Item = (String, u64)>| {
            let e = buckets
                .entry(bucket_of(minute, size))
                .or_insert_with(|| (0, HashMap::new()));
            e.0 += total;
            for (name, n) in ids {
                *e.1.entry(name).or_insert(0) += n;
            }
        };
        if !q.filter.event_ids.is_empty() {
            // Rare: count the few events with these IDs directly.
            let page = self.query(&super::params::EventsQuery {
                filter: q.filter.clone(),
                dir: Dir::Asc,
                limit: 1000,
                cursor: None,
                proofs: false,
            })?;
            for (_, leaf) in &page.entries {
                if let Ok(e) = super::fields::EventFields::parse(leaf) {
                    let name = e.get(q.group_by).map(str::to_string);
                    add(
                        super::segment::minute_of(e.logged_at_ms()),
                        1,
                        &mut name.into_iter().map(|n| (n, 1)),
                    );
                }
            }
        } else if lo < hi {
            let plan = q.filter.plan();
            // Filtered by verdict alone: the per-minute counts still answer.
            let by_verdict: Option<&std::collections::BTreeSet<String>> =
                match q.filter.fields.as_slice() {
                    [(Field::Verdict, vs)] if q.filter.risk.is_none() => Some(vs),
                    _ => None,
                };
            for k in lo / SEGMENT_EVENTS..=(hi - 1) / SEGMENT_EVENTS {
                let base = k * SEGMENT_EVENTS;
                let (l, h) = (
                    (lo.max(base) - base) as u32,
                    (hi.min(base + SEGMENT_EVENTS) - base) as u32,
                );
                self.with_view(k, |v| {
                    let h = h.min(v.count());
                    let minutes = v.minutes()?;
                    let names = v.names(q.group_by)?;
                    let name = |id: u32| names.get(&id).cloned();
                    let end_of = |i: usize| minutes.get(i + 1).map(|m| m.1).unwrap_or(v.count());
                    if plan.is_empty() || by_verdict.is_some() {
                        let aggs = v.aggregates(g)?;
                        // Allowed verdicts by this segment's verdict id.
                        let mut allowed: Vec<bool> = Vec::new();
                        if let Some(vs) = by_verdict {
                            for (id, n) in v.names(Field::Verdict)? {
                                if allowed.len() <= id as usize {
                                    allowed.resize(id as usize + 1, false);
                                }
                                allowed[id as usize] = vs.contains(&n);
                            }
                        }
                        let verdict_ok = |vid: u32| {
                            by_verdict.is_none()
                                || allowed.get(vid as usize).copied().unwrap_or(false)
                        };
                        // Totals per minute of the allowed verdicts, from the
                        // verdict field's own counts (every event has one).
                        let vaggs = match by_verdict {
                            Some(_) => v.aggregates(VERDICT_GROUP)?,
                            None => None,
                        };
                        let vcol_for = |a: u32, b: u32| -> Result<Vec<u32>, QueryError> {
                            Ok(if by_verdict.is_some() {
                                v.column(VERDICT_GROUP, a, b)?
                            } else {
                                Vec::new()
                            })
                        };
                        for (i, &(m, p0)) in minutes.iter().enumerate() {
                            let p1 = end_of(i);
                            let (a, b) = (p0.max(l), p1.min(h));
                            if a >= b {
                                continue;
                            }
                            match (&aggs, a == p0 && b == p1) {
                                (Some(aggs), true) => {
                                    let row = aggs.get(i).ok_or_else(|| {
                                        super::segment::SegmentError::Corrupt(
                                            "aggregates short".into(),
                                        )
                                    })?;
                                    let total = match &vaggs {
                                        Some(va) => va
                                            .get(i)
                                            .map(|rows| {
                                                rows.iter()
                                                    .filter(|(_, vid, _)| verdict_ok(*vid))
                                                    .map(|(_, _, n)| *n as u64)
                                                    .sum()
                                            })
                                            .unwrap_or(0),
                                        None => (b - a) as u64,
                                    };
                                    add(
                                        m,
                                        total,
                                        &mut row
                                            .iter()
                                            .filter(|(_, vid, _)| verdict_ok(*vid))
                                            .filter_map(|(id, _, n)| {
                                                name(*id).map(|s| (s, *n as u64))
                                            }),
                                    );
                                }
                                _ => {
                                    let col = v.column(g, a, b)?;
                                    let vcol = vcol_for(a, b)?;
                                    let mut c: HashMap<u32, u64> = HashMap::new();
                                    let mut total = 0u64;
                                    for (k, id) in col.into_iter().enumerate() {
                                        if by_verdict.is_some() && !verdict_ok(vcol[k]) {
                                            continue;
                                        }
                                        total += 1;
                                        if id != super::segment::NONE {
                                            *c.entry(id).or_insert(0) += 1;
                                        }
                                    }
                                    add(
                                        m,
                                        total,
                                        &mut c
                                            .into_iter()
                                            .filter_map(|(id, n)| name(id).map(|s| (s, n))),
                                    );
                                }
                            }
                        }
                    } else if let Some(lists) = exec::lists(v, &plan)? {
                        let col = v.column(g, l, h)?;
                        let mut per: BTreeMap<usize, (u64, HashMap<u32, u64>)> = BTreeMap::new();
                        exec::walk(&lists, l, h, Dir::Asc, |p| {
                            let mi = minutes
                                .partition_point(|(_, first)| *first <= p)
                                .saturating_sub(1);
                            let e = per.entry(mi).or_default();
                            e.0 += 1;
                            let id = col[(p - l) as usize];
                            if id != super::segment::NONE {
                                *e.1.entry(id).or_insert(0) += 1;
                            }
                            true
                        })?;
                        for (mi, (total, ids)) in per {
                            let m = minutes.get(mi).map(|x| x.0).unwrap_or(0);
                            add(
                                m,
                                total,
                                &mut ids
                                    .into_iter()
                                    .filter_map(|(id, n)| name(id).map(|s| (s, n))),
                            );
                        }
                    }
                    Ok(())
                })?;
            }
        }
        let mut totals: HashMap<String, u64> = HashMap::new();
        let mut total = 0;
        let buckets: Vec<Bucket> = buckets
            .into_iter()
            .filter(|(start, _)| *start + size > from && *start < to)
            .map(|(start, (t, counts))| {
                total += t;
                for (k, n) in &counts {
                    *totals.entry(k.clone()).or_insert(0) += n;
                }
                Bucket {
                    start,
                    total: t,
                    counts: counts.into_iter().collect(),
                }
            })
            .collect();
        let mut top: Vec<(String, u64)> = totals.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(q.top);
        Ok(Stats {
            buckets,
            top,
            total,
            indexed,
        })
    }
}
