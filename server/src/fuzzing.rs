//! The properties the server's parsers of outside bytes must keep, one
//! function per fuzz target (`fuzz/fuzz_targets/server_*.rs`), replayed
//! over the checked-in corpora by `tests/fuzz_corpus.rs` on stable.

use crate::query::cursor::{Cursors, Position};
use crate::query::exec::Dir;
use crate::query::fields::{EventFields, Field};
use crate::query::params::{EventsQuery, StatsQuery, TailQuery};

/// A property check over arbitrary bytes.
pub type Check = fn(&[u8]);

/// The server's fuzz targets, by name.
pub const TARGETS: &[(&str, Check)] = &[
    ("server_query_params", query_params),
    ("server_cursor", cursor),
    ("server_event_fields", event_fields),
];

/// Query strings of `/v1/events`, `/v1/events/tail` and `/v1/stats`,
/// decoded as axum decodes them: parsing never panics, and what parses
/// keeps its invariants (limits in range, windows ordered).
pub fn query_params(data: &[u8]) {
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) else {
        return;
    };
    if let Ok(q) = EventsQuery::parse(&pairs) {
        assert!((1..=1000).contains(&q.limit));
        if let (Some(f), Some(t)) = (q.filter.from, q.filter.to) {
            assert!(f <= t);
        }
        if let Some((lo, hi)) = q.filter.risk {
            assert!(lo <= hi && hi <= 100);
        }
        let _ = q.filter.plan();
        assert_eq!(q.filter.canonical(), q.filter.clone().canonical());
    }
    let _ = TailQuery::parse(&pairs, None);
    let last = std::str::from_utf8(data).ok();
    let _ = TailQuery::parse(&pairs, last);
    if let Ok(s) = StatsQuery::parse(&pairs, 1_800_000_000_000) {
        assert!(Field::GROUPS.contains(&s.group_by));
        assert!(s.filter.from <= s.filter.to);
    }
}

/// Cursors: any text decodes to an error or to what was encoded; an
/// encoded position round-trips, and any change to it is refused.
pub fn cursor(data: &[u8]) {
    let c = Cursors::new(b"fuzz");
    let text = String::from_utf8_lossy(data);
    for dir in [Dir::Asc, Dir::Desc] {
        let _ = c.decode(&text, "agent=a", dir);
    }
    if data.len() >= 17 {
        let u = |r: std::ops::Range<usize>| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&data[r]);
            u64::from_le_bytes(x)
        };
        let p = Position {
            dir: if data[16] & 1 == 0 {
                Dir::Asc
            } else {
                Dir::Desc
            },
            hi: u(0..8),
            next: u(8..16),
        };
        let s = c.encode(p, "f");
        assert_eq!(c.decode(&s, "f", p.dir), Ok(p));
        let mut b = s.into_bytes();
        let at = data[16] as usize % b.len();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        if let Ok(t) = String::from_utf8(b) {
            assert!(
                c.decode(&t, "f", p.dir).is_err(),
                "a changed cursor was accepted"
            );
        }
    }
}

/// The indexer's one-pass field scan agrees with serde_json on every
/// input both accept.
pub fn event_fields(data: &[u8]) {
    let (Ok(fast), Ok(slow)) = (EventFields::parse(data), EventFields::parse_slow(data)) else {
        return;
    };
    for f in Field::ALL {
        assert_eq!(fast.get(f), slow.get(f), "{f:?}");
    }
    assert_eq!(fast.risk, slow.risk);
    assert_eq!(fast.event_id(), slow.event_id());
    assert_eq!(fast.logged_at_ms(), slow.logged_at_ms());
}
