//! Asking the log, against the real binary: random filter combinations,
//! both orders and several page sizes give exactly what a brute-force scan
//! of every entry (read back from the tiles) gives; paging while appends
//! continue neither repeats nor skips; the index is rebuilt from the log
//! after its directory is deleted, after a segment is damaged and after
//! kill -9; stats equal counts from the scan; bad parameters are refused
//! by name.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use vellum_tests::*;

const AGENTS: usize = 30;
const SEGMENT: u64 = 65_536;

fn random_event(rng: &mut StdRng) -> Value {
    let verdict = match rng.gen_range(0..100) {
        0..=69 => "allow",
        70..=89 => "deny",
        90..=97 => "review",
        _ => "approve",
    };
    let mut e = json!({
        "ts": "2026-06-20T14:07:31.120Z",
        "agent": format!("agent-{}", rng.gen_range(0..AGENTS)),
        "principal": format!("p{}", rng.gen_range(0..10)),
        "owner": format!("o{}", rng.gen_range(0..5)),
        "tool": format!("tool.{}", rng.gen_range(0..8)),
        "verdict": verdict,
        "session": format!("s{}", rng.gen_range(0..200)),
    });
    if rng.gen_bool(0.7) {
        e["target"] = json!(format!("host{}.example", rng.gen_range(0..6)));
    }
    if rng.gen_bool(0.6) {
        e["rule"] = json!(format!("rule-{}", rng.gen_range(0..6)));
    }
    if rng.gen_bool(0.5) {
        e["provenance"] = json!(if rng.gen_bool(0.3) {
            "untrusted"
        } else {
            "trusted"
        });
    }
    if rng.gen_bool(0.8) {
        e["risk"] = json!(rng.gen_range(0..=100));
    }
    e
}

/// Appends `n` random events in batches of 1,000.
fn fill(log: &Log, token: &str, rng: &mut StdRng, n: usize) {
    for chunk in 0..n.div_ceil(1000) {
        let k = (n - chunk * 1000).min(1000);
        let batch: Vec<Value> = (0..k).map(|_| random_event(rng)).collect();
        let (s, b) = log.post_events(Some(token), serde_json::to_vec(&batch).unwrap());
        assert_eq!(s, 200, "{b}");
    }
}

fn wait_indexed(log: &Log, size: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let m = String::from_utf8(log.get("/metrics", None).1).unwrap();
        let n: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix("vellum_indexed_size "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if n >= size {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "indexed {n} of {size}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Every entry's event, read back from the tiles (not from the index).
fn all_events(log: &Log, token: &str, size: u64) -> Vec<Value> {
    let (_, leaves) = recompute_from_tiles(log, size, token);
    leaves
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// A query as parameters plus the predicate it stands for.
struct Q {
    params: Vec<(String, String)>,
    fields: Vec<(String, Vec<String>)>,
    risk: Option<(u64, u64)>,
    from: Option<String>,
    to: Option<String>,
}

impl Q {
    fn matches(&self, e: &Value) -> bool {
        for (f, vs) in &self.fields {
            match e[f.as_str()].as_str() {
                Some(v) if vs.iter().any(|x| x == v) => {}
                _ => return false,
            }
        }
        if let Some((lo, hi)) = self.risk {
            match e["risk"].as_u64() {
                Some(r) if (lo..=hi).contains(&r) => {}
                _ => return false,
            }
        }
        let t = e["logged_at"].as_str().unwrap();
        if self.from.as_ref().is_some_and(|f| t < f.as_str()) {
            return false;
        }
        if self.to.as_ref().is_some_and(|to| t >= to.as_str()) {
            return false;
        }
        true
    }
}

fn random_query(rng: &mut StdRng, events: &[Value]) -> Q {
    let choices: [(&str, Vec<String>); 9] = [
        ("agent", (0..AGENTS).map(|i| format!("agent-{i}")).collect()),
        ("principal", (0..10).map(|i| format!("p{i}")).collect()),
        ("owner", (0..5).map(|i| format!("o{i}")).collect()),
        ("tool", (0..8).map(|i| format!("tool.{i}")).collect()),
        (
            "target",
            (0..6).map(|i| format!("host{i}.example")).collect(),
        ),
        (
            "verdict",
            ["allow", "deny", "review", "approve"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        ("rule", (0..6).map(|i| format!("rule-{i}")).collect()),
        (
            "provenance",
            ["trusted", "untrusted"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        ("session", (0..200).map(|i| format!("s{i}")).collect()),
    ];
    let mut q = Q {
        params: vec![],
        fields: vec![],
        risk: None,
        from: None,
        to: None,
    };
    for _ in 0..rng.gen_range(0..=3) {
        let (name, values) = &choices[rng.gen_range(0..choices.len())];
        if q.fields.iter().any(|(f, _)| f == name) {
            continue;
        }
        let vs: Vec<String> = (0..rng.gen_range(1..=2))
            .map(|_| values[rng.gen_range(0..values.len())].clone())
            .collect();
        // Both spellings of OR: repeated, and comma-separated.
        if rng.gen_bool(0.5) {
            q.params.push((name.to_string(), vs.join(",")));
        } else {
            for v in &vs {
                q.params.push((name.to_string(), v.clone()));
            }
        }
        q.fields.push((name.to_string(), vs));
    }
    if rng.gen_bool(0.2) {
        let (lo, hi) = (rng.gen_range(0..60), rng.gen_range(40..=100));
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        q.params.push(("risk_min".into(), lo.to_string()));
        q.params.push(("risk_max".into(), hi.to_string()));
        q.risk = Some((lo, hi));
    }
    if rng.gen_bool(0.3) {
        let a = events[rng.gen_range(0..events.len())]["logged_at"]
            .as_str()
            .unwrap()
            .to_string();
        let b = events[rng.gen_range(0..events.len())]["logged_at"]
            .as_str()
            .unwrap()
            .to_string();
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        if rng.gen_bool(0.7) {
            q.params.push(("from".into(), a.clone()));
            q.from = Some(a);
        }
        if rng.gen_bool(0.7) {
            q.params.push(("to".into(), b.clone()));
            q.to = Some(b);
        }
    }
    q
}

fn url_of(params: &[(String, String)]) -> String {
    let mut s = String::from("/v1/events?");
    for (k, v) in params {
        s.push_str(&format!("{k}={}&", urlencode(v)));
    }
    s
}

fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Pages through a query; returns the indexes in order and the pages' count.
fn page_all(
    log: &Log,
    token: &str,
    params: &[(String, String)],
    limit: usize,
) -> (Vec<u64>, usize) {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut p = params.to_vec();
        p.push(("limit".into(), limit.to_string()));
        if let Some(c) = &cursor {
            p.push(("cursor".into(), c.clone()));
        }
        let v = log.get_json(&url_of(&p), Some(token));
        pages += 1;
        let evs = v["events"].as_array().unwrap();
        assert!(evs.len() <= limit);
        for e in evs {
            out.push(e["index"].as_u64().unwrap());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (out, pages),
        }
        assert!(pages < 100_000, "paging does not end");
    }
}

#[test]
fn queries_equal_a_brute_force_scan_across_segments() {
    let log = Log::start(&[]);
    let token = log.token();
    let mut rng = StdRng::seed_from_u64(11);
    // Two written segments and part of a third, in memory.
    let n = 2 * SEGMENT as usize + 7_000;
    fill(&log, &token, &mut rng, n);
    wait_indexed(&log, n as u64);
    let events = all_events(&log, &token, n as u64);
    assert_eq!(events.len(), n);
    let mut unfiltered = 0;
    for round in 0..80 {
        let q = random_query(&mut rng, &events);
        // A few unfiltered walks over everything are enough.
        if q.fields.is_empty() && q.risk.is_none() {
            unfiltered += 1;
            if unfiltered > 4 {
                continue;
            }
        }
        let want_asc: Vec<u64> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| q.matches(e))
            .map(|(i, _)| i as u64)
            .collect();
        let limit = [1usize, 7, 100, 1000][rng.gen_range(0..4)];
        // Keep the number of pages per query moderate.
        let limit = if want_asc.len() / limit > 200 {
            1000
        } else {
            limit
        };
        for order in ["asc", "desc"] {
            let mut params = q.params.clone();
            params.push(("order".into(), order.into()));
            let (got, _) = page_all(&log, &token, &params, limit);
            let mut want = want_asc.clone();
            if order == "desc" {
                want.reverse();
            }
            assert_eq!(
                got.len(),
                want.len(),
                "round {round} {order} limit {limit}: {:?}",
                q.params
            );
            assert!(
                got == want,
                "round {round} {order} limit {limit}: {:?}",
                q.params
            );
        }
    }
    // Stats equal counts from the scan.
    let from = events[0]["logged_at"].as_str().unwrap();
    for (group, filter) in [
        ("verdict", ""),
        ("agent", "&verdict=deny"),
        ("rule", "&owner=o1,o2"),
    ] {
        let v = log.get_json(
            &format!("/v1/stats?from={from}&bucket=1d&group_by={group}&top=100{filter}"),
            Some(&token),
        );
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        let mut total = 0;
        for e in &events {
            let ok = match filter {
                "" => true,
                "&verdict=deny" => e["verdict"] == "deny",
                _ => e["owner"] == "o1" || e["owner"] == "o2",
            };
            if ok {
                total += 1;
                if let Some(g) = e[group].as_str() {
                    *want.entry(g.to_string()).or_insert(0) += 1;
                }
            }
        }
        assert_eq!(v["total"], total, "{group}{filter}: {v}");
        let got: BTreeMap<String, u64> = v["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["value"].as_str().unwrap().to_string(),
                    t["count"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "{group}{filter}");
    }
}

#[test]
fn paging_while_appends_continue_neither_repeats_nor_skips() {
    let log = Log::start(&[]);
    let token = log.token();
    let mut rng = StdRng::seed_from_u64(5);
    fill(&log, &token, &mut rng, 20_000);
    wait_indexed(&log, 20_000);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appender = {
        let (url, token, stop) = (log.url(), token.clone(), stop.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            let mut rng = StdRng::seed_from_u64(6);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let batch: Vec<Value> = (0..200).map(|_| random_event(&mut rng)).collect();
                let r = http
                    .post(format!("{url}/v1/events"))
                    .bearer_auth(&token)
                    .body(serde_json::to_vec(&batch).unwrap())
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        })
    };
    for order in ["desc", "asc"] {
        let params = vec![
            ("verdict".to_string(), "deny,review".to_string()),
            ("order".to_string(), order.to_string()),
        ];
        // The result set is fixed by the first page: entries below its indexed_size.
        let mut p = params.clone();
        p.push(("limit".into(), "37".into()));
        let first = log.get_json(&url_of(&p), Some(&token));
        let hi = first["indexed_size"].as_u64().unwrap();
        let (got, pages) = page_all(&log, &token, &params, 37);
        assert!(pages > 10);
        let events = all_events(&log, &token, hi);
        let mut want: Vec<u64> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e["verdict"] == "deny" || e["verdict"] == "review")
            .map(|(i, _)| i as u64)
            .collect();
        if order == "desc" {
            want.reverse();
        }
        // Paging started a moment after `first`, so it may cover a few more.
        let mut dedup = got.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(dedup.len(), got.len(), "{order}: an entry was repeated");
        let got_in: Vec<u64> = got.iter().copied().filter(|i| *i < hi).collect();
        assert_eq!(got_in, want, "{order}: an entry was skipped");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    appender.join().unwrap();
}

/// Answers to a fixed set of queries, to compare before and after a rebuild.
fn answers(log: &Log, token: &str) -> Vec<Value> {
    [
        "/v1/events?limit=1000",
        "/v1/events?verdict=deny&agent=agent-3,agent-7&limit=1000",
        "/v1/events?order=asc&owner=o2&risk_min=50&limit=1000",
        "/v1/events?session=s17&order=asc&limit=1000",
        "/v1/stats?from=2026-01-01T00:00:00Z&to=2028-01-01T00:00:00Z&bucket=1d&group_by=agent&top=100",
    ]
    .iter()
    .map(|q| {
        let mut v = log.get_json(q, Some(token));
        v.as_object_mut().unwrap().remove("checkpoint_size");
        v
    })
    .collect()
}

#[test]
fn the_index_is_rebuilt_after_deletion_damage_and_kill_9() {
    let mut log = Log::start(&[]);
    let token = log.token();
    let mut rng = StdRng::seed_from_u64(9);
    let n = SEGMENT + 5_000;
    fill(&log, &token, &mut rng, n as usize);
    wait_indexed(&log, n);
    let before = answers(&log, &token);
    let qdir = log.data().join("db/query");
    // Deleted.
    log.kill9();
    std::fs::remove_dir_all(&qdir).unwrap();
    log.spawn();
    wait_indexed(&log, n);
    assert!(
        answers(&log, &token) == before,
        "after deleting the index: answers differ"
    );
    // Damaged: a byte flipped in the written segment.
    log.kill9();
    let seg = qdir.join("seg-000000000000");
    let mut b = std::fs::read(&seg).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x20;
    std::fs::write(&seg, b).unwrap();
    log.spawn();
    wait_indexed(&log, n);
    assert!(
        answers(&log, &token) == before,
        "after damaging a segment: answers differ"
    );
    // kill -9 while the indexer is busy: a second segment fills and is
    // written while appends go on.
    fill(&log, &token, &mut rng, SEGMENT as usize);
    log.kill9();
    log.spawn();
    let size = log.tree_size();
    wait_indexed(&log, size);
    let events = all_events(&log, &token, size);
    let v = log.get_json(
        "/v1/events?verdict=review&order=asc&limit=1000&from=2000-01-01T00:00:00Z",
        Some(&token),
    );
    let want: Vec<u64> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["verdict"] == "review")
        .map(|(i, _)| i as u64)
        .take(1000)
        .collect();
    let got: Vec<u64> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn bad_query_stats_and_tail_parameters_are_refused_by_name() {
    let log = Log::start(&[]);
    let token = log.token();
    assert_eq!(
        log.post_events(Some(&token), serde_json::to_vec(&event("a", None)).unwrap())
            .0,
        200
    );
    let cases = [
        ("/v1/events?colour=red", "colour"),
        ("/v1/events?verdict=maybe", "verdict"),
        ("/v1/events?provenance=odd", "provenance"),
        ("/v1/events?from=yesterday", "from"),
        ("/v1/events?to=2026-13-01T00:00:00Z", "to"),
        (
            "/v1/events?from=2026-06-21T00:00:00Z&to=2026-06-20T00:00:00Z",
            "from is after to",
        ),
        ("/v1/events?limit=0", "limit"),
        ("/v1/events?limit=1001", "limit"),
        ("/v1/events?limit=ten", "limit"),
        ("/v1/events?order=random", "order"),
        ("/v1/events?order=asc&order=desc", "given twice"),
        ("/v1/events?risk_min=-1", "risk_min"),
        ("/v1/events?risk_max=101", "risk_max"),
        ("/v1/events?agent=", "agent"),
        ("/v1/events?cursor=AAAA", "cursor"),
        ("/v1/events?proofs=yes", "proofs"),
        ("/v1/stats?bucket=7m", "bucket"),
        ("/v1/stats?group_by=session", "group_by"),
        ("/v1/stats?top=1000", "top"),
        ("/v1/stats?bucket=1m&from=2000-01-01T00:00:00Z", "buckets"),
        ("/v1/stats?verdict=nope", "verdict"),
        ("/v1/stats?limit=5", "limit"),
        ("/v1/events/tail?after=minus", "after"),
        ("/v1/events/tail?limit=5", "limit"),
        ("/v1/events/tail?verdict=x", "verdict"),
    ];
    for (q, word) in cases {
        let (s, b) = log.get(q, Some(&token));
        let b = String::from_utf8_lossy(&b);
        assert_eq!(s, 400, "{q}: {b}");
        assert!(b.contains(word), "{q}: {b}");
    }
    // A cursor from another query, and one tampered with.
    let v = log.get_json("/v1/events?limit=1&agent=a,b", Some(&token));
    let _ = v;
    assert_eq!(
        log.post_events(Some(&token), serde_json::to_vec(&event("a", None)).unwrap())
            .0,
        200
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let v = log.get_json("/v1/events?limit=1&agent=a", Some(&token));
    let c = v["next_cursor"].as_str().unwrap().to_string();
    let (s, b) = log.get(
        &format!("/v1/events?limit=1&agent=b&cursor={c}"),
        Some(&token),
    );
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&b).contains("other filters"));
    let mut t = c.into_bytes();
    let at = t.len() / 2;
    t[at] = if t[at] == b'A' { b'B' } else { b'A' };
    let (s, b) = log.get(
        &format!(
            "/v1/events?limit=1&agent=a&cursor={}",
            String::from_utf8(t).unwrap()
        ),
        Some(&token),
    );
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&b).contains("cursor"));
    // Access: the read scope.
    assert_eq!(log.get("/v1/events", None).0, 401);
    assert_eq!(log.get("/v1/stats", None).0, 401);
    assert_eq!(log.get("/v1/events/tail", None).0, 401);
}

/// (nice, scheduling policy) of each of `pid`'s threads named `name`.
fn thread_priorities(pid: u32, name: &str) -> Vec<(i64, u64)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().path();
        let comm = std::fs::read_to_string(t.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(t.join("stat")).unwrap();
        // Fields after the parenthesized name: state is field 3; nice is
        // field 19 and policy field 41 (proc(5)).
        let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        out.push((rest[19 - 3].parse().unwrap(), rest[41 - 3].parse().unwrap()));
    }
    out
}

#[test]
fn the_indexer_yields_the_cores_to_appends() {
    let log = Log::start(&[]);
    let pid = log.child.as_ref().unwrap().id();
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = thread_priorities(pid, "vellum-indexer");
        if !seen.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    const SCHED_IDLE: u64 = 5;
    assert_eq!(
        seen,
        vec![(10, SCHED_IDLE)],
        "the indexer thread's (nice, policy)"
    );
    // The log's own threads keep the normal policy.
    for (nice, policy) in thread_priorities(pid, "vellum-sequence") {
        assert_eq!((nice, policy), (0, 0));
    }
}
