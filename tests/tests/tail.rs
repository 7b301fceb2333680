//! Live tails against the real binary: every matching event once, in
//! order, across a disconnect (resumed with Last-Event-ID) and across a
//! kill -9 and restart of the log; checkpoints arrive as they are
//! published; subscribers that read nothing neither slow the log's
//! appends nor grow its memory, and are cut off after the write timeout.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use vellum_tests::*;

/// A tail connection, read line by line.
struct Tail {
    lines: std::io::Lines<BufReader<reqwest::blocking::Response>>,
    last_id: Option<u64>,
}

/// What a tail delivered.
#[derive(Debug)]
enum Frame {
    Entry(u64, Value),
    Checkpoint(u64),
}

impl Tail {
    fn open(log: &Log, token: &str, query: &str, last_id: Option<u64>) -> Tail {
        let http = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .unwrap();
        let mut req = http
            .get(format!("{}/v1/events/tail{query}", log.url()))
            .bearer_auth(token);
        if let Some(id) = last_id {
            req = req.header("last-event-id", id.to_string());
        }
        let r = req.send().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        Tail {
            lines: BufReader::new(r).lines(),
            last_id,
        }
    }

    /// The next entry or checkpoint frame.
    fn next(&mut self) -> Frame {
        let (mut id, mut event, mut data): (Option<u64>, Option<String>, Option<String>) =
            (None, None, None);
        loop {
            let l = self.lines.next().expect("tail ended").expect("tail read");
            if l.is_empty() {
                match (event.as_deref(), data.as_deref()) {
                    (Some("entry"), Some(d)) => {
                        let v: Value = serde_json::from_str(d).unwrap();
                        let i = id.expect("entry without id");
                        assert_eq!(v["index"], i);
                        self.last_id = Some(i);
                        return Frame::Entry(i, v);
                    }
                    (Some("checkpoint"), Some(d)) => {
                        let v: Value = serde_json::from_str(d).unwrap();
                        return Frame::Checkpoint(v["size"].as_u64().unwrap());
                    }
                    _ => {}
                }
                (id, event, data) = (None, None, None);
                continue;
            }
            if let Some(v) = l.strip_prefix("id: ") {
                id = Some(v.parse::<u64>().unwrap());
            } else if let Some(v) = l.strip_prefix("event: ") {
                event = Some(v.to_string());
            } else if let Some(v) = l.strip_prefix("data: ") {
                data = Some(v.to_string());
            }
        }
    }

    /// The next `n` entries (skipping checkpoint frames).
    fn entries(&mut self, n: usize) -> Vec<(u64, Value)> {
        let mut out = Vec::new();
        while out.len() < n {
            if let Frame::Entry(i, v) = self.next() {
                out.push((i, v));
            }
        }
        out
    }
}

fn append_mixed(log: &Log, token: &str, n: usize, tag: &str) {
    let batch: Vec<Value> = (0..n)
        .map(|i| {
            let mut e = event(&format!("{tag}-{i}"), None);
            e["verdict"] = Value::String(if i % 3 == 0 { "deny" } else { "allow" }.into());
            e
        })
        .collect();
    let (s, b) = log.post_events(Some(token), serde_json::to_vec(&batch).unwrap());
    assert_eq!(s, 200, "{b}");
}

/// Indexes of the denials among all entries, read from the tiles.
fn denials(log: &Log, token: &str) -> Vec<u64> {
    let size = log.tree_size();
    let (_, leaves) = recompute_from_tiles(log, size, token);
    leaves
        .iter()
        .enumerate()
        .filter(|(_, l)| serde_json::from_slice::<Value>(l).unwrap()["verdict"] == "deny")
        .map(|(i, _)| i as u64)
        .collect()
}

#[test]
fn every_event_once_across_a_disconnect_and_a_restart() {
    let mut log = Log::start(&[]);
    let token = log.token();
    append_mixed(&log, &token, 30, "before");
    // From the start of the log (after=-: every entry from index 0).
    let mut t = Tail::open(&log, &token, "?verdict=deny&after=0", None);
    let first = t.entries(5);
    // Entry 0 is not after 0; entries 3, 6, ... are denials.
    assert_eq!(first[0].0, 3);
    let mut got: Vec<u64> = first.iter().map(|(i, _)| *i).collect();
    append_mixed(&log, &token, 300, "during");
    got.extend(t.entries(50).iter().map(|(i, _)| *i));
    let last = t.last_id;
    drop(t);
    // Disconnected: more arrive; resuming sends exactly the rest.
    append_mixed(&log, &token, 300, "away");
    let mut t = Tail::open(&log, &token, "?verdict=deny", last);
    let want = denials(&log, &token);
    let rest = want.iter().filter(|i| **i > last.unwrap()).count();
    got.extend(t.entries(rest).iter().map(|(i, _)| *i));
    let last = t.last_id;
    drop(t);
    let mut want_so_far: Vec<u64> = want.iter().copied().filter(|i| *i > 0).collect();
    assert_eq!(got, want_so_far, "after a disconnect");
    // kill -9 and restart; resume again.
    log.kill9();
    log.spawn();
    append_mixed(&log, &token, 60, "restarted");
    let mut t = Tail::open(&log, &token, "?verdict=deny", last);
    let want = denials(&log, &token);
    let rest: Vec<u64> = want
        .iter()
        .copied()
        .filter(|i| *i > last.unwrap())
        .collect();
    let more: Vec<u64> = t.entries(rest.len()).iter().map(|(i, _)| *i).collect();
    assert_eq!(more, rest, "after a restart");
    want_so_far.extend(rest);
    got.extend(more);
    assert_eq!(got, want_so_far);
    // Checkpoints come through too, as they are published.
    let size = log.tree_size();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Frame::Checkpoint(s) = t.next() {
            if s >= size {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no checkpoint of size {size}");
    }
}

#[test]
fn subscribers_that_never_read_neither_slow_nor_grow_the_log() {
    let log = Log::start(&["--write-timeout", "3s", "--max-tails", "20"]);
    let token = log.token();
    let pid = log.child.as_ref().unwrap().id();
    // Warm up first: the allocator's pools, sled's cache and the dedup
    // table grow with the first appends whether or not anyone tails
    // (about 23 MiB over 30,000 events with no tail at all), and that is
    // not what this test is about.
    for round in 0..10 {
        append_mixed(&log, &token, 1000, &format!("warm{round}"));
    }
    let base_rss = rss_kib(pid).unwrap();
    // 20 tails from the start of the log that never read a byte.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut c = TcpStream::connect(("127.0.0.1", log.port)).unwrap();
        c.write_all(
            format!("GET /v1/events/tail?after=0 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        stalled.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    // The cap holds: a 21st is refused while they are connected.
    let (s, _) = log.get("/v1/events/tail", Some(&token));
    assert_eq!(s, 503);
    // 30,000 events of ~600 bytes while they sit: every append succeeds
    // promptly and the log's memory does not follow.
    let t = Instant::now();
    for round in 0..30 {
        let r = Instant::now();
        append_mixed(&log, &token, 1000, &format!("r{round}"));
        assert!(
            r.elapsed() < Duration::from_secs(5),
            "append {round} took {:?}",
            r.elapsed()
        );
    }
    let grew = rss_kib(pid).unwrap().saturating_sub(base_rss);
    assert!(
        grew < 60 << 10,
        "the log grew by {grew} KiB with stalled tails"
    );
    // After the write timeout they are cut off and their slots are free.
    std::thread::sleep(
        Duration::from_secs(4).saturating_sub(t.elapsed().min(Duration::from_secs(4))),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut t = loop {
        let http = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .unwrap();
        let r = http
            .get(format!("{}/v1/events/tail?verdict=deny", log.url()))
            .bearer_auth(&token)
            .send()
            .unwrap();
        if r.status() == 200 {
            break Tail {
                lines: BufReader::new(r).lines(),
                last_id: None,
            };
        }
        assert!(
            Instant::now() < deadline,
            "stalled tails were never cut off"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    append_mixed(&log, &token, 3, "after");
    let (i, v) = t.entries(1).remove(0);
    assert_eq!(v["event"]["agent"], "after-0");
    assert!(i > 30_000);
    drop(stalled);
}
