//! Attacks on the log, the witness client and the verifier, each played
//! against the real binaries on loopback; each test fails without the
//! defence it checks.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vellum_spec::hash::Hash;
use vellum_spec::note::{SignerKey, ALG_ED25519};
use vellum_spec::Checkpoint;
use vellum_tests::*;

/// Appends `ev`, retrying 503s (which must carry Retry-After) until
/// `deadline`; returns the last (status, body).
fn append_retrying(log: &Log, token: &str, body: &[u8], deadline: Instant) -> (u16, String) {
    loop {
        let resp = log
            .http
            .post(format!("{}/v1/events", log.url()))
            .bearer_auth(token)
            .body(body.to_vec())
            .send();
        if let Ok(r) = resp {
            let status = r.status().as_u16();
            let retry = r.headers().contains_key("retry-after");
            let text = r.text().unwrap_or_default();
            if status != 503 || Instant::now() > deadline {
                return (status, text);
            }
            assert!(retry, "a 503 without Retry-After: {text}");
            assert!(
                !text.contains("restart"),
                "the log gave up on its storage: {text}"
            );
        } else if Instant::now() > deadline {
            return (0, format!("{resp:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(log: &Log, name: &str) -> u64 {
    let (_, b) = log.get("/metrics", None);
    String::from_utf8_lossy(&b)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

#[test]
fn a_connection_flood_under_a_low_descriptor_limit_does_not_stop_appends() {
    let mut log = Log::init();
    log.nofile = Some(256);
    log.args = vec!["--header-timeout".into(), "1s".into()];
    log.spawn();
    let token = log.token();
    let pid = log.child.as_ref().unwrap().id();
    let ev = serde_json::to_vec(&event("flood", None)).unwrap();
    assert_eq!(log.post_events(Some(&token), ev.clone()).0, 200);
    // 600 connections that start a request and never finish it: more than
    // the log has descriptors for.
    let mut flood = Vec::new();
    for _ in 0..600 {
        if let Ok(mut c) = TcpStream::connect(("127.0.0.1", log.port)) {
            let _ = c.write_all(b"GET /healthz HTTP/1.1\r\n");
            flood.push(c);
        }
    }
    assert!(flood.len() > 300, "only {} connections", flood.len());
    // Appends go on: at worst refused for a moment with 503 + Retry-After.
    let deadline = Instant::now() + Duration::from_secs(15);
    for i in 0..20 {
        let (s, b) = append_retrying(&log, &token, &ev, deadline);
        assert_eq!(s, 200, "append {i} during the flood: {b}");
    }
    // The log closes every flood connection by itself (the connection cap
    // answers 503 at once, the header timeout closes the rest).
    for (i, c) in flood.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        assert!(
            matches!(c.read(&mut buf), Ok(0) | Err(_)),
            "flood connection {i} still open"
        );
    }
    drop(flood);
    assert!(metric(&log, "vellum_connections_refused_total") > 0);
    let h = log.get_json("/healthz", None);
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(log.post_events(Some(&token), ev).0, 200);
    let fds = open_fds(pid).unwrap();
    assert!(fds < 120, "{fds} descriptors still open after the flood");
}

/// Runs `vellum serve` with its database on a small file system of its
/// own (a tmpfs in a mount namespace), most of it taken by a junk file
/// that the test can have removed by creating `<data>/free`.
fn log_on_a_small_disk() -> Log {
    let mut log = Log::init();
    std::fs::create_dir(log.data().join("db")).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let script = r#"set -e
mount -t tmpfs -o size=16m tmpfs "$0/db"
head -c 14680064 /dev/zero > "$0/db/junk"
( while [ ! -e "$0/free" ]; do sleep 0.05; done; rm -f "$0/db/junk"; : > "$0/freed" ) &
exec "$@""#;
    log.prefix = vec![
        "unshare".into(),
        if root { "-m" } else { "-Urm" }.into(),
        "sh".into(),
        "-c".into(),
        script.into(),
        log.data().to_str().unwrap().into(),
    ];
    log.spawn();
    log
}

/// Frees the small disk when dropped, so its helper shell always ends.
struct FreeOnDrop(std::path::PathBuf);

impl Drop for FreeOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("free"), b"");
    }
}

#[test]
fn a_full_disk_refuses_appends_until_space_returns_then_resumes() {
    let log = log_on_a_small_disk();
    let _free = FreeOnDrop(log.data().to_path_buf());
    let token = log.token();
    let batch: Vec<Value> = (0..100).map(|_| event("disk", None)).collect();
    let body = serde_json::to_vec(&batch).unwrap();
    let mut acked = 0u64;
    let mut refused = None;
    for _ in 0..400 {
        let r = log
            .http
            .post(format!("{}/v1/events", log.url()))
            .bearer_auth(&token)
            .body(body.clone())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let retry = r.headers().get("retry-after").cloned();
        let text = r.text().unwrap();
        if status == 200 {
            acked += 100;
            continue;
        }
        assert_eq!(status, 503, "{text}");
        refused = Some((retry, text));
        break;
    }
    let (retry, text) = refused.expect("the disk never filled");
    assert!(retry.is_some(), "no Retry-After: {text}");
    assert!(text.contains("temporarily unavailable"), "{text}");
    // Health says so (it may read ok between two retries that found a
    // little room, so look for a moment).
    let deadline = Instant::now() + Duration::from_secs(5);
    let h = loop {
        let (code, hb) = log.get("/healthz", None);
        let h: Value = serde_json::from_slice(&hb).unwrap();
        if code == 503 {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "healthz never said retrying: {h}"
        );
        // Keep the disk full meanwhile.
        let _ = log.post_events(Some(&token), body.clone());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(h["storage"]["status"], "retrying", "{h}");
    assert!(
        h["storage"]["reason"]
            .as_str()
            .unwrap()
            .contains("No space"),
        "{h}"
    );
    // Nothing more is acknowledged while the disk is full.
    let (s, _) = log.post_events(Some(&token), body.clone());
    assert_eq!(s, 503);
    // Space comes back: the log resumes by itself.
    std::fs::write(log.data().join("free"), b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.data().join("freed").exists() {
        assert!(Instant::now() < deadline, "junk was not removed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (s, b) = append_retrying(
        &log,
        &token,
        &body,
        Instant::now() + Duration::from_secs(20),
    );
    assert_eq!(s, 200, "{b}");
    acked += 100;
    let h = log.get_json("/healthz", None);
    assert_eq!(h["status"], "ok", "{h}");
    // Exactly what was acknowledged is in the log, and the tree is sound.
    assert_eq!(log.tree_size(), acked);
    let cp = log.wait_checkpoint(acked);
    let (root, leaves) = recompute_from_tiles(&log, cp.size, &token);
    assert_eq!(root, cp.root);
    assert_eq!(leaves.len() as u64, acked);
}

/// A witness that answers every request with an endless body; counts the
/// bytes it managed to send on each connection.
fn endless_witness() -> (u16, Arc<std::sync::Mutex<Vec<u64>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = sent.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let sent = s2.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let _ = c.read(&mut buf);
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n");
                let chunk = vec![b'a'; 64 << 10];
                let mut n = 0u64;
                while c.write_all(&chunk).is_ok() {
                    n += chunk.len() as u64;
                    if n > 8 << 30 {
                        break;
                    }
                }
                sent.lock().unwrap().push(n);
            });
        }
    });
    (port, sent)
}

#[test]
fn an_endless_witness_answer_does_not_grow_the_log() {
    let (port, sent) = endless_witness();
    let key = SignerKey::from_seed("evil.example/witness", ALG_ED25519, [7; 32]).unwrap();
    let log = Log::start(&[
        "--witness",
        &format!("{}@http://127.0.0.1:{port}", key.verifier().to_vkey()),
        "--witness-timeout",
        "3s",
    ]);
    let pid = log.child.as_ref().unwrap().id();
    let token = log.token();
    assert_eq!(
        log.post_events(Some(&token), serde_json::to_vec(&event("w", None)).unwrap())
            .0,
        200
    );
    let mut peak = 0;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until || sent.lock().unwrap().len() < 2 {
        peak = peak.max(rss_kib(pid).expect("the log died"));
        assert!(
            Instant::now() < until + Duration::from_secs(20),
            "no witness attempts"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(peak < 150 << 10, "the log grew to {peak} KiB");
    let sent = sent.lock().unwrap().clone();
    assert!(
        sent.iter().all(|n| *n < 64 << 20),
        "the log read on past its cap: {sent:?}"
    );
    assert_eq!(log.get("/healthz", None).0, 200);
}

/// A hostile log: serves `checkpoint` at /checkpoint (or, if `None`, an
/// endless body there), an endless body for entry bundles, 404 otherwise.
fn hostile_log(checkpoint: Option<Vec<u8>>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let cp = Arc::new(checkpoint);
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let cp = cp.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let n = c.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let endless = |c: &mut TcpStream| {
                    let _ = c.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
                    let chunk = vec![b'x'; 64 << 10];
                    let mut sent = 0u64;
                    while sent < 16 << 30 && c.write_all(&chunk).is_ok() {
                        sent += chunk.len() as u64;
                    }
                };
                match (path.as_str(), cp.as_ref()) {
                    ("/checkpoint", Some(note)) => {
                        let _ = c.write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                                note.len()
                            )
                            .as_bytes(),
                        );
                        let _ = c.write_all(note);
                    }
                    ("/checkpoint", None) => endless(&mut c),
                    (p, _) if p.starts_with("/tile/entries/") => endless(&mut c),
                    _ => {
                        let _ = c.write_all(
                            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                    }
                }
            });
        }
    });
    port
}

fn signed_checkpoint(key: &SignerKey, size: u64) -> Vec<u8> {
    let cp = Checkpoint {
        origin: key.name.clone(),
        size,
        root: Hash([9; 32]),
        extensions: vec![],
    };
    vellum_spec::Note::sign(&cp.to_text(), &[key])
        .unwrap()
        .to_bytes()
}

#[test]
fn the_verifier_stays_small_against_a_hostile_log() {
    let key = SignerKey::from_seed("evil.example/log", ALG_ED25519, [3; 32]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vkey = dir.path().join("log.vkey");
    std::fs::write(&vkey, key.verifier().to_vkey()).unwrap();
    let cases: [(&str, Option<u64>, &str); 4] = [
        ("size 2^63", Some(1 << 63), ""),
        ("size 2^40", Some(1 << 40), ""),
        ("endless checkpoint", None, "bytes"),
        ("endless entry bundle", Some(5), "bytes"),
    ];
    for (name, size, words) in cases {
        let port = hostile_log(size.map(|s| signed_checkpoint(&key, s)));
        let mut cmd = Command::new(bin("vellum-verify"));
        cmd.args([
            "log",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--full",
            "--quiet",
        ])
        .arg("--log-key")
        .arg(&vkey)
        .env_remove("VELLUM_TOKEN");
        let t = Instant::now();
        let (code, out, err, peak_kib) = run_measured(cmd);
        assert!(code == 1 || code == 3, "{name}: exit {code}\n{out}\n{err}");
        assert!(peak_kib < 200 << 10, "{name}: peak {peak_kib} KiB");
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{name}: took {:?}",
            t.elapsed()
        );
        assert!(
            out.contains(words) || err.contains(words),
            "{name}: {words:?} not in\n{out}\n{err}"
        );
    }
}

#[test]
fn stalled_exports_do_not_hold_up_checkpoints_receipts_or_lookups() {
    let log = Log::start(&["--write-timeout", "2s", "--max-exports", "4"]);
    let token = log.token();
    let admin = String::from_utf8(
        log.cli(&["token", "add", "auditor", "--scopes", "admin"])
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let batch: Vec<Value> = (0..1000).map(|i| event(&format!("a{i}"), None)).collect();
    // Bundles of ~25 MB: more than loopback socket buffers absorb.
    for _ in 0..20 {
        assert_eq!(
            log.post_events(Some(&token), serde_json::to_vec(&batch).unwrap())
                .0,
            200
        );
    }
    log.wait_checkpoint(20_000);
    // 600 exports whose clients never read their bundles.
    let req =
        format!("GET /v1/export HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\n\r\n");
    let mut stalled = Vec::new();
    for _ in 0..600 {
        if let Ok(mut c) = TcpStream::connect(("127.0.0.1", log.port)) {
            let _ = c.write_all(req.as_bytes());
            stalled.push(c);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    // Checkpoints advance and receipts come back meanwhile.
    let t = Instant::now();
    let (s, b) = log.http_post_receipt(&token, &event("during", Some("during-1")));
    assert_eq!(s, 200, "{b}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "receipt took {:?}",
        t.elapsed()
    );
    let (s, _) = log.get("/v1/lookup?gateway=default&event_id=during-1", Some(&token));
    assert_eq!(s, 200);
    // Most exports were refused at once: the limit is 4.
    let mut refused = 0;
    for c in stalled.iter_mut() {
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut head = [0u8; 12];
        if c.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 503" {
            refused += 1;
        }
    }
    assert!(refused >= 590, "only {refused} of 600 exports refused");
    assert!(metric(&log, "vellum_requests_limited_total") >= 590);
    // Once the write timeout passed, the stalled exports are cut off and
    // their slots are free: a reading client gets a whole bundle.
    std::thread::sleep(Duration::from_secs(3));
    let (s, b) = log.get("/v1/export", Some(&admin));
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let last = String::from_utf8_lossy(&b)
        .lines()
        .last()
        .unwrap()
        .to_string();
    let end: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(end["kind"], "end", "{last}");
    drop(stalled);
}

#[test]
fn concurrent_token_commands_lose_nothing_and_revocation_is_immediate() {
    let log = Log::start(&[]);
    let token = log.token();
    assert_eq!(
        log.post_events(Some(&token), serde_json::to_vec(&event("t", None)).unwrap())
            .0,
        200
    );
    let data = log.data().to_path_buf();
    let run = |args: Vec<String>| {
        let data = data.clone();
        std::thread::spawn(move || {
            Command::new(bin("vellum"))
                .args(&args)
                .arg("--data")
                .arg(&data)
                .output()
                .unwrap()
        })
    };
    let adds: Vec<_> = (0..20)
        .map(|i| {
            run(vec![
                "token".into(),
                "add".into(),
                format!("t{i}"),
                "--scopes".into(),
                "read".into(),
            ])
        })
        .collect();
    let mut issued = Vec::new();
    for (i, h) in adds.into_iter().enumerate() {
        let out = h.join().unwrap();
        assert!(out.status.success(), "add t{i}: {out:?}");
        issued.push(String::from_utf8(out.stdout).unwrap().trim().to_string());
    }
    for (i, t) in issued.iter().enumerate() {
        assert_eq!(
            log.get("/v1/entries/0", Some(t)).0,
            200,
            "token t{i} was never stored"
        );
    }
    // Revokes racing adds: a revoke that reports success has happened, in
    // the file and in the running log, before it returns.
    let checks = AtomicU64::new(0);
    for (i, old) in issued.iter().enumerate() {
        let rv = run(vec!["token".into(), "revoke".into(), format!("t{i}")]);
        let ad = run(vec![
            "token".into(),
            "add".into(),
            format!("u{i}"),
            "--scopes".into(),
            "read".into(),
        ]);
        let out = rv.join().unwrap();
        assert!(out.status.success(), "revoke t{i}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("refuses it from now on"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            log.get("/v1/entries/0", Some(old)).0,
            401,
            "t{i} still works"
        );
        checks.fetch_add(1, Ordering::Relaxed);
        let out = ad.join().unwrap();
        assert!(out.status.success(), "add u{i}: {out:?}");
        let u = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert_eq!(log.get("/v1/entries/0", Some(&u)).0, 200, "u{i} lost");
    }
    let listed = String::from_utf8(log.cli(&["token", "list"]).stdout).unwrap();
    for i in 0..20 {
        assert!(!listed.contains(&format!("t{i}\t")), "t{i} still listed");
        assert!(listed.contains(&format!("u{i}\t")), "u{i} not listed");
    }
    assert_eq!(checks.load(Ordering::Relaxed), 20);
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_malformed_headers_are_named() {
    let log = Log::start(&[]);
    let token = log.token();
    let get = |auth: &str| {
        let r = log
            .http
            .get(format!("{}/v1/entries/0", log.url()))
            .header("authorization", auth)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(
        log.post_events(Some(&token), serde_json::to_vec(&event("b", None)).unwrap())
            .0,
        200
    );
    assert_eq!(get(&format!("bearer {token}")).0, 200);
    assert_eq!(get(&format!("BEARER {token}")).0, 200);
    let (s, b) = get(&format!("Basic {token}"));
    assert_eq!(s, 401);
    assert!(
        b.contains("must be `Bearer <token>`") && b.contains("another scheme"),
        "{b}"
    );
    let (s, b) = get("Bearer ");
    assert_eq!(s, 401);
    assert!(b.contains("token is missing"), "{b}");
}

#[test]
fn proof_parameters_given_twice_are_refused() {
    let log = Log::start(&[]);
    let token = log.token();
    let batch: Vec<Value> = (0..3).map(|_| event("p", None)).collect();
    assert_eq!(
        log.post_events(Some(&token), serde_json::to_vec(&batch).unwrap())
            .0,
        200
    );
    for q in [
        "/v1/proof/inclusion?index=0&size=3&index=1",
        "/v1/proof/consistency?from=1&to=3&to=2",
    ] {
        let (s, b) = log.get(q, None);
        assert_eq!(s, 400, "{q}");
        assert!(String::from_utf8_lossy(&b).contains("given twice"), "{q}");
    }
}

/// Reads until the peer closes (or `within` passes); true if it closed.
fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        c.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10)),
        ))
        .unwrap();
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let log = Log::start(&["--idle-timeout", "2s", "--receipt-timeout", "1s"]);
    let mut c = TcpStream::connect(("127.0.0.1", log.port)).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let t = Instant::now();
    assert!(
        closed_within(&mut c, Duration::from_secs(10)),
        "an idle connection stayed open"
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "closed after {took:?}, before the idle timeout"
    );
}

#[test]
fn the_witness_holds_against_a_slowloris() {
    let w = Witness::start(
        "w.example/witness",
        &["--header-timeout", "1s", "--max-connections", "50"],
    );
    let mut flood = Vec::new();
    for _ in 0..200 {
        if let Ok(mut c) = TcpStream::connect(("127.0.0.1", w.port)) {
            let _ = c.write_all(b"POST /add-checkpoint HTTP/1.1\r\n");
            flood.push(c);
        }
    }
    for (i, c) in flood.iter_mut().enumerate() {
        assert!(
            closed_within(c, Duration::from_secs(10)),
            "flood connection {i} still open"
        );
    }
    let r = w.http.get(format!("{}/healthz", w.url())).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let m = w
        .http
        .get(format!("{}/metrics", w.url()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let refused: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("vellum_witness_connections_refused_total "))
        .and_then(|v| v.parse().ok())
        .expect("refused counter");
    assert!(refused >= 100, "{refused} refused\n{m}");
}

#[test]
fn a_body_sent_too_slowly_is_refused_with_408() {
    let log = Log::start(&["--body-timeout", "1s"]);
    let token = log.token();
    let mut c = TcpStream::connect(("127.0.0.1", log.port)).unwrap();
    c.write_all(
        format!(
            "POST /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-length: 1000\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .unwrap();
    let t = Instant::now();
    // Trickle a byte every 200 ms: never idle, never done.
    let mut answer = String::new();
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while t.elapsed() < Duration::from_secs(10) {
        let mut buf = [0u8; 1024];
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.push_str(&String::from_utf8_lossy(&buf[..n]));
                if answer.contains("\r\n\r\n") && answer.ends_with('}') {
                    break;
                }
            }
            Err(_) => {
                let _ = c.write_all(b" ");
            }
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("not received within"), "{answer:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn a_refused_unread_body_closes_the_connection() {
    let log = Log::start(&[]);
    let token = log.token();
    let mut c = TcpStream::connect(("127.0.0.1", log.port)).unwrap();
    // 9 MiB announced, over the 8 MiB limit: refused before it is all read.
    c.write_all(
        format!(
            "POST /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-length: {}\r\n\r\n",
            9 << 20
        )
        .as_bytes(),
    )
    .unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..9 {
        if c.write_all(&chunk).is_err() {
            break;
        }
    }
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(text.starts_with("http/1.1 413"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    // An unauthenticated body is not read either.
    let mut c = TcpStream::connect(("127.0.0.1", log.port)).unwrap();
    c.write_all(b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n0123456789")
        .unwrap();
    let mut answer = Vec::new();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = c.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(
        text.starts_with("http/1.1 401") && text.contains("connection: close"),
        "{text}"
    );
}
