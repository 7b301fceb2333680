//! The parameters of `GET /v1/events`, `/v1/events/tail` and `/v1/stats`:
//! parsed strictly (an unknown, empty or repeated parameter is refused,
//! naming it), into a filter that both the index and a single event can
//! be checked against.

use std::collections::BTreeSet;

use super::exec::{Dir, Plan};
use super::fields::{EventFields, Field};
use super::segment::Slot;

/// A refused parameter: the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

fn bad(m: impl Into<String>) -> ParamError {
    ParamError(m.into())
}

/// Most values one field may list.
pub const MAX_VALUES: usize = 64;

/// What events must satisfy: AND across fields, OR within one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Per field (in [`Field::ALL`] order), the values allowed.
    pub fields: Vec<(Field, BTreeSet<String>)>,
    /// `event_id` values allowed.
    pub event_ids: BTreeSet<String>,
    /// `risk` within `[min, max]`.
    pub risk: Option<(u8, u8)>,
    /// `logged_at` at or after this (Unix ms).
    pub from: Option<i64>,
    /// `logged_at` before this (Unix ms).
    pub to: Option<i64>,
}

impl Filter {
    /// The index plan for the field and risk constraints (time and
    /// `event_id` are applied separately).
    pub fn plan(&self) -> Plan {
        let mut terms: Vec<(Slot, Vec<String>)> = self
            .fields
            .iter()
            .map(|(f, vs)| (Slot::Field(*f), vs.iter().cloned().collect()))
            .collect();
        if let Some((lo, hi)) = self.risk {
            terms.push((Slot::Risk, (lo..=hi).map(|r| r.to_string()).collect()));
        }
        Plan { terms }
    }

    /// True when the filter lets every event through.
    pub fn is_everything(&self) -> bool {
        self.fields.is_empty()
            && self.event_ids.is_empty()
            && self.risk.is_none()
            && self.from.is_none()
            && self.to.is_none()
    }

    /// True when `e` satisfies every constraint.
    pub fn matches(&self, e: &EventFields) -> bool {
        for (f, vs) in &self.fields {
            match e.get(*f) {
                Some(v) if vs.contains(v) => {}
                _ => return false,
            }
        }
        if !self.event_ids.is_empty() && !e.event_id().is_some_and(|id| self.event_ids.contains(id))
        {
            return false;
        }
        if let Some((lo, hi)) = self.risk {
            if !e.risk.is_some_and(|r| (lo..=hi).contains(&r)) {
                return false;
            }
        }
        let t = e.logged_at_ms();
        if self.from.is_some_and(|f| t < f) || self.to.is_some_and(|to| t >= to) {
            return false;
        }
        true
    }

    /// A canonical text of the filter, for binding cursors to it.
    pub fn canonical(&self) -> String {
        let mut s = String::new();
        for (f, vs) in &self.fields {
            s.push_str(f.name());
            s.push('=');
            s.push_str(&vs.iter().cloned().collect::<Vec<_>>().join("\u{1f}"));
            s.push('\u{1e}');
        }
        s.push_str(&format!(
            "event_id={:?}\u{1e}risk={:?}\u{1e}from={:?}\u{1e}to={:?}",
            self.event_ids, self.risk, self.from, self.to
        ));
        s
    }

    /// Parses one filter parameter into the filter; `Ok(false)` if `k` is
    /// not a filter parameter. `seen` catches repeated single parameters.
    fn take(&mut self, k: &str, v: &str, seen: &mut BTreeSet<String>) -> Result<bool, ParamError> {
        let single = |seen: &mut BTreeSet<String>| {
            if !seen.insert(k.to_string()) {
                return Err(bad(format!("query parameter {k} given twice")));
            }
            Ok(())
        };
        if let Some(f) = Field::parse(k) {
            let set = match self.fields.iter_mut().find(|(g, _)| *g == f) {
                Some((_, s)) => s,
                None => {
                    self.fields.push((f, BTreeSet::new()));
                    self.fields.sort_by_key(|(g, _)| *g);
                    &mut self
                        .fields
                        .iter_mut()
                        .find(|(g, _)| *g == f)
                        .expect("just pushed")
                        .1
                }
            };
            for part in v.split(',') {
                if part.is_empty() {
                    return Err(bad(format!("query parameter {k} has an empty value")));
                }
                check_value(f, part)?;
                set.insert(part.to_string());
            }
            if set.len() > MAX_VALUES {
                return Err(bad(format!(
                    "query parameter {k}: more than {MAX_VALUES} values"
                )));
            }
            return Ok(true);
        }
        match k {
            "event_id" => {
                for part in v.split(',') {
                    if part.is_empty() {
                        return Err(bad("query parameter event_id has an empty value"));
                    }
                    self.event_ids.insert(part.to_string());
                }
                if self.event_ids.len() > MAX_VALUES {
                    return Err(bad(format!(
                        "query parameter event_id: more than {MAX_VALUES} values"
                    )));
                }
            }
            "risk_min" | "risk_max" => {
                single(seen)?;
                let r: u8 = v
                    .parse()
                    .ok()
                    .filter(|r: &u8| *r <= 100 && v == r.to_string())
                    .ok_or_else(|| {
                        bad(format!(
                            "query parameter {k}: {v:?} is not an integer from 0 to 100"
                        ))
                    })?;
                let (lo, hi) = self.risk.unwrap_or((0, 100));
                self.risk = Some(if k == "risk_min" { (r, hi) } else { (lo, r) });
            }
            "from" | "to" => {
                single(seen)?;
                let ms = vellum_spec::time::parse_utc_millis(v).map_err(|e| {
                    bad(format!(
                        "query parameter {k}: {v:?} is not an RFC 3339 UTC time: {e}"
                    ))
                })?;
                if k == "from" {
                    self.from = Some(ms);
                } else {
                    self.to = Some(ms);
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn finish(&self) -> Result<(), ParamError> {
        if let (Some(f), Some(t)) = (self.from, self.to) {
            if f > t {
                return Err(bad("query parameter from is after to"));
            }
        }
        if let Some((lo, hi)) = self.risk {
            if lo > hi {
                return Err(bad("query parameter risk_min is above risk_max"));
            }
        }
        Ok(())
    }
}

fn check_value(f: Field, v: &str) -> Result<(), ParamError> {
    match f {
        Field::Verdict if !vellum_spec::event::VERDICTS.contains(&v) => Err(bad(format!(
            "query parameter verdict: {v:?} is not one of allow, deny, approve, review"
        ))),
        Field::Provenance if !vellum_spec::event::PROVENANCES.contains(&v) => Err(bad(format!(
            "query parameter provenance: {v:?} is not one of trusted, untrusted"
        ))),
        _ => Ok(()),
    }
}

const FILTER_PARAMS: &str = "agent, principal, owner, session, tool, target, verdict, rule, provenance, gateway, event_id, risk_min, risk_max, from, to";

/// `GET /v1/events`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventsQuery {
    /// What to return.
    pub filter: Filter,
    /// Newest first (default) or oldest first.
    pub dir: Dir,
    /// Page size, 1–1000.
    pub limit: usize,
    /// Where the previous page ended.
    pub cursor: Option<String>,
    /// Attach inclusion proofs.
    pub proofs: bool,
}

fn flag(k: &str, v: &str) -> Result<bool, ParamError> {
    match v {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(format!(
            "query parameter {k}: {v:?} must be true or false"
        ))),
    }
}

impl EventsQuery {
    /// Parses the query pairs.
    pub fn parse(pairs: &[(String, String)]) -> Result<EventsQuery, ParamError> {
        let mut q = EventsQuery {
            filter: Filter::default(),
            dir: Dir::Desc,
            limit: 100,
            cursor: None,
            proofs: false,
        };
        let mut seen = BTreeSet::new();
        for (k, v) in pairs {
            if q.filter.take(k, v, &mut seen)? {
                continue;
            }
            if !seen.insert(k.clone()) {
                return Err(bad(format!("query parameter {k} given twice")));
            }
            match k.as_str() {
                "order" => {
                    q.dir = match v.as_str() {
                        "desc" => Dir::Desc,
                        "asc" => Dir::Asc,
                        _ => return Err(bad(format!("query parameter order: {v:?} must be desc or asc"))),
                    }
                }
                "limit" => {
                    q.limit = v
                        .parse()
                        .ok()
                        .filter(|n: &usize| (1..=1000).contains(n) && *v == n.to_string())
                        .ok_or_else(|| bad(format!("query parameter limit: {v:?} must be an integer from 1 to 1000")))?;
                }
                "cursor" => {
                    if v.is_empty() {
                        return Err(bad("query parameter cursor is empty"));
                    }
                    q.cursor = Some(v.clone());
                }
                "proofs" => q.proofs = flag(k, v)?,
                other => {
                    return Err(bad(format!(
                        "unknown query parameter {other:?}; expected {FILTER_PARAMS}, order, limit, cursor, proofs"
                    )))
                }
            }
        }
        q.filter.finish()?;
        Ok(q)
    }
}

/// `GET /v1/events/tail`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailQuery {
    /// Which events to send.
    pub filter: Filter,
    /// Start after this index (`?after=` or `Last-Event-ID`).
    pub after: Option<u64>,
}

impl TailQuery {
    /// Parses the query pairs (and the `Last-Event-ID` header, which wins).
    pub fn parse(
        pairs: &[(String, String)],
        last_event_id: Option<&str>,
    ) -> Result<TailQuery, ParamError> {
        let mut q = TailQuery {
            filter: Filter::default(),
            after: None,
        };
        let mut seen = BTreeSet::new();
        for (k, v) in pairs {
            if q.filter.take(k, v, &mut seen)? {
                continue;
            }
            if !seen.insert(k.clone()) {
                return Err(bad(format!("query parameter {k} given twice")));
            }
            match k.as_str() {
                "after" => {
                    q.after = Some(vellum_spec::checkpoint::parse_canonical_u64(v).ok_or_else(
                        || {
                            bad(format!(
                                "query parameter after: {v:?} is not an entry index"
                            ))
                        },
                    )?)
                }
                other => {
                    return Err(bad(format!(
                        "unknown query parameter {other:?}; expected {FILTER_PARAMS}, after"
                    )))
                }
            }
        }
        if let Some(id) = last_event_id {
            q.after = Some(
                vellum_spec::checkpoint::parse_canonical_u64(id.trim())
                    .ok_or_else(|| bad(format!("Last-Event-ID: {id:?} is not an entry index")))?,
            );
        }
        q.filter.finish()?;
        Ok(q)
    }
}

/// Stats bucket sizes.
pub const BUCKETS: [(&str, i64); 4] = [
    ("1m", 60_000),
    ("5m", 300_000),
    ("1h", 3_600_000),
    ("1d", 86_400_000),
];

/// Most buckets one stats answer holds.
pub const MAX_BUCKETS: i64 = 10_000;

/// `GET /v1/stats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsQuery {
    /// Which events to count (`from`/`to` default to the last 24 hours).
    pub filter: Filter,
    /// Bucket name and size in ms.
    pub bucket: (&'static str, i64),
    /// Field to count by.
    pub group_by: Field,
    /// Groups listed in `top`.
    pub top: usize,
}

impl StatsQuery {
    /// Parses the query pairs; `now_ms` anchors the default window.
    pub fn parse(pairs: &[(String, String)], now_ms: i64) -> Result<StatsQuery, ParamError> {
        let mut q = StatsQuery {
            filter: Filter::default(),
            bucket: BUCKETS[2],
            group_by: Field::Verdict,
            top: 10,
        };
        let mut seen = BTreeSet::new();
        for (k, v) in pairs {
            if q.filter.take(k, v, &mut seen)? {
                continue;
            }
            if !seen.insert(k.clone()) {
                return Err(bad(format!("query parameter {k} given twice")));
            }
            match k.as_str() {
                "bucket" => {
                    q.bucket = *BUCKETS
                        .iter()
                        .find(|(n, _)| n == v)
                        .ok_or_else(|| bad(format!("query parameter bucket: {v:?} must be one of 1m, 5m, 1h, 1d")))?;
                }
                "group_by" => {
                    q.group_by = Field::parse(v)
                        .filter(|f| Field::GROUPS.contains(f))
                        .ok_or_else(|| bad(format!(
                            "query parameter group_by: {v:?} must be one of verdict, agent, principal, owner, rule, tool, gateway"
                        )))?;
                }
                "top" => {
                    q.top = v
                        .parse()
                        .ok()
                        .filter(|n: &usize| (1..=100).contains(n) && *v == n.to_string())
                        .ok_or_else(|| bad(format!("query parameter top: {v:?} must be an integer from 1 to 100")))?;
                }
                other => {
                    return Err(bad(format!(
                        "unknown query parameter {other:?}; expected {FILTER_PARAMS}, bucket, group_by, top"
                    )))
                }
            }
        }
        let to = q.filter.to.unwrap_or(now_ms);
        let from = q.filter.from.unwrap_or(to - 86_400_000);
        q.filter.from = Some(from);
        q.filter.to = Some(to);
        q.filter.finish()?;
        let n = (to.div_euclid(q.bucket.1) - from.div_euclid(q.bucket.1)) + 1;
        if n > MAX_BUCKETS {
            return Err(bad(format!(
                "query parameters from, to and bucket: {n} buckets, more than {MAX_BUCKETS}; use a larger bucket or a shorter window"
            )));
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        s.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn filters_or_within_and_across() {
        let q = EventsQuery::parse(&pairs(
            "agent=a,b&agent=c&verdict=deny&risk_min=50&order=asc&limit=5",
        ))
        .unwrap();
        assert_eq!(q.limit, 5);
        assert_eq!(q.dir, Dir::Asc);
        assert_eq!(q.filter.fields[0].1.len(), 3);
        assert_eq!(q.filter.risk, Some((50, 100)));
        let plan = q.filter.plan();
        assert_eq!(plan.terms.len(), 3);
        let leaf =
            br#"{"agent":"b","logged_at":"2026-06-20T14:07:31.120Z","risk":70,"verdict":"deny"}"#;
        assert!(q.filter.matches(&EventFields::parse(leaf).unwrap()));
        let leaf =
            br#"{"agent":"b","logged_at":"2026-06-20T14:07:31.120Z","risk":10,"verdict":"deny"}"#;
        assert!(!q.filter.matches(&EventFields::parse(leaf).unwrap()));
    }

    #[test]
    fn refusals_name_the_parameter() {
        for (q, words) in [
            ("colour=red", "colour"),
            ("verdict=maybe", "verdict"),
            ("provenance=dubious", "provenance"),
            ("from=yesterday", "from"),
            (
                "from=2026-06-21T00:00:00Z&to=2026-06-20T00:00:00Z",
                "from is after to",
            ),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=05", "limit"),
            ("order=sideways", "order"),
            ("limit=5&limit=6", "limit given twice"),
            ("agent=", "agent"),
            ("agent=a,,b", "agent"),
            ("risk_min=101", "risk_min"),
            ("risk_min=60&risk_max=50", "risk_min"),
            ("cursor=", "cursor"),
            ("proofs=maybe", "proofs"),
        ] {
            let e = EventsQuery::parse(&pairs(q)).unwrap_err();
            assert!(e.0.contains(words), "{q}: {e}");
        }
        assert!(TailQuery::parse(&pairs("after=x"), None)
            .unwrap_err()
            .0
            .contains("after"));
        assert!(TailQuery::parse(&pairs(""), Some("-1"))
            .unwrap_err()
            .0
            .contains("Last-Event-ID"));
        assert_eq!(
            TailQuery::parse(&pairs("after=3"), Some("7"))
                .unwrap()
                .after,
            Some(7)
        );
        let now = 1_800_000_000_000;
        for (q, words) in [
            ("bucket=2h", "bucket"),
            ("group_by=session", "group_by"),
            ("top=0", "top"),
            ("bucket=1m&from=2020-01-01T00:00:00Z", "buckets"),
        ] {
            let e = StatsQuery::parse(&pairs(q), now).unwrap_err();
            assert!(e.0.contains(words), "{q}: {e}");
        }
        let s = StatsQuery::parse(&pairs("group_by=agent&verdict=deny"), now).unwrap();
        assert_eq!(
            (s.filter.from, s.filter.to),
            (Some(now - 86_400_000), Some(now))
        );
    }
}
