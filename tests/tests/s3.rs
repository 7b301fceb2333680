//! The S3 backend against a real SeaweedFS: a read-only replica serving
//! verified proofs while the writer appends; the bucket's files alone, read
//! through a plain HTTP server, verified by `vellum-verify --full`; a second
//! writer refused while the first is live, then taking over and fencing
//! it, without a fork; the object store killed during appends (503,
//! nothing acknowledged lost, resumes); the start-up probe refusing a store
//! that ignores conditional writes; `vellum migrate`.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vellum_spec::hash::Hash;
use vellum_spec::merkle::{verify_consistency, verify_inclusion};
use vellum_spec::note::Note;
use vellum_spec::Checkpoint;
use vellum_tests::objectstore::{IgnoringS3, Seaweed};
use vellum_tests::*;

/// A log (not yet started) on `sw` under `prefix`, with `extra` flags.
fn s3_log(sw: &Seaweed, prefix: &str, extra: &[&str]) -> Log {
    let mut log = Log::init();
    log.args = sw.serve_args(prefix);
    log.args.extend(extra.iter().map(|s| s.to_string()));
    log.env = s3_env();
    log
}

/// Appends `n` events in batches of 100; returns (index, leaf hash) acked.
fn append_n(log: &Log, token: &str, tag: &str, n: usize) -> Vec<(u64, Hash)> {
    let mut out = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let evs: Vec<Value> = chunk
            .iter()
            .map(|i| event(tag, Some(&format!("{tag}-{i}"))))
            .collect();
        let (s, b) = log.post_events(Some(token), serde_json::to_vec(&evs).unwrap());
        assert_eq!(s, 200, "{b}");
        let v: Value = serde_json::from_str(&b).unwrap();
        for e in v["entries"].as_array().unwrap() {
            out.push((e["index"].as_u64().unwrap(), hash_field(&e["leaf_hash"])));
        }
    }
    out
}

/// The checkpoint at `url`, verified with `vkey`.
fn checkpoint_at(url: &str, vkey: &vellum_spec::note::VerifierKey) -> Checkpoint {
    let b = reqwest::blocking::get(format!("{url}/checkpoint"))
        .unwrap()
        .bytes()
        .unwrap();
    let n = Note::parse(&b).expect("checkpoint parses");
    n.verify(std::slice::from_ref(vkey)).expect("log signature");
    Checkpoint::parse(&n.text).unwrap()
}

fn verify_static(sw: &Seaweed, prefix: &str, log: &Log) {
    let key = log.vkey().to_vkey();
    let (code, out, err) = verify(&[
        "log",
        "--url",
        &sw.static_url(prefix),
        "--log-key",
        &key,
        "--full",
        "--quiet",
    ]);
    assert_eq!(
        code, 0,
        "vellum-verify on the bucket's files:\n{out}\n{err}"
    );
    assert!(out.contains("RESULT: OK"), "{out}");
}

#[test]
fn a_replica_serves_verified_proofs_while_the_writer_appends_and_the_bucket_is_a_static_read_api() {
    let sw = Seaweed::start();
    let mut w = s3_log(&sw, "rep", &[]);
    w.spawn();
    let token = w.token();
    let vkey = w.vkey();
    let acked = append_n(&w, &token, "first", 700);
    w.wait_checkpoint(700);

    let mut r = s3_log(&sw, "rep", &["--read-only", "--follow-interval", "100ms"]);
    r.spawn();
    let start = checkpoint_at(&r.url(), &vkey);
    assert!(
        start.size >= 700,
        "the replica serves the writer's checkpoint"
    );

    // The writer keeps appending while proofs are fetched from the replica.
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (url, token, stop) = (w.url(), token.clone(), stop.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let evs: Vec<Value> = (0..50)
                    .map(|j| event("more", Some(&format!("more-{n}-{j}"))))
                    .collect();
                let r = http
                    .post(format!("{url}/v1/events"))
                    .bearer_auth(&token)
                    .json(&evs)
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 200);
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        })
    };
    let mut proofs = 0;
    let mut sizes = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        let cp = checkpoint_at(&r.url(), &vkey);
        sizes.insert(cp.size);
        for (i, leaf) in acked.iter().step_by(97) {
            let p = r.get_json(
                &format!("/v1/proof/inclusion?index={i}&size={}", cp.size),
                None,
            );
            verify_inclusion(*i, cp.size, leaf, &proof_field(&p["proof"]), &cp.root)
                .expect("a replica's proof verifies against the writer's signed checkpoint");
            proofs += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let batches = appender.join().unwrap();
    assert!(
        batches > 10,
        "the writer kept appending ({batches} batches)"
    );
    assert!(proofs >= 50, "{proofs} proofs verified");
    assert!(
        sizes.len() >= 3,
        "the replica followed the writer's checkpoints: {sizes:?}"
    );

    // The replica follows to the end, answers queries and entries, and
    // refuses appends and exports with 405, naming the writer.
    let final_size = w.tree_size();
    let cp = w.wait_checkpoint(final_size);
    let t0 = Instant::now();
    while checkpoint_at(&r.url(), &vkey).size < cp.size {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "replica did not catch up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rtoken = r.token();
    let (s, body) = r.get(&format!("/v1/entries/{}", final_size - 1), Some(&rtoken));
    assert_eq!(s, 200);
    let (ws, wbody) = w.get(&format!("/v1/entries/{}", final_size - 1), Some(&token));
    assert_eq!(
        (ws, &wbody),
        (200, &body),
        "the replica serves the writer's entries"
    );
    let t0 = Instant::now();
    loop {
        let q = r.get_json("/v1/events?agent=first&limit=1000", Some(&rtoken));
        let rows = q["events"].as_array().map(|a| a.len()).unwrap_or(0);
        if rows == 700 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "replica query: {q}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (s, b) = r.post_events(
        Some(&rtoken),
        serde_json::to_vec(&vec![event("x", None)]).unwrap(),
    );
    assert_eq!(s, 405, "{b}");
    assert!(b.contains("read-only replica"), "{b}");
    let (s, b) = r.get("/v1/export?from=0&to=1", Some(&rtoken));
    assert_eq!(
        s,
        405,
        "export on a replica: {}",
        String::from_utf8_lossy(&b)
    );

    // The bucket's files alone, through a plain HTTP server, verify.
    verify_static(&sw, "rep", &w);
}

#[test]
fn a_second_writer_is_refused_then_takes_over_and_fences_the_first_without_a_fork() {
    let sw = Seaweed::start();
    let mut a = s3_log(&sw, "two", &["--s3-lease", "2s"]);
    a.spawn();
    let token_a = a.token();
    let vkey = a.vkey();
    append_n(&a, &token_a, "a", 300);
    let cp_a = a.wait_checkpoint(300);
    let mut seen: BTreeMap<u64, Hash> = BTreeMap::new();
    seen.insert(cp_a.size, cp_a.root);

    // B: the same log key in another data directory (another machine).
    let mut b = s3_log(&sw, "two", &["--s3-lease", "2s"]);
    for f in ["log.key", "log.vkey"] {
        std::fs::copy(a.data().join(f), b.data().join(f)).unwrap();
    }
    let mut cmd = Command::new(bin("vellum"));
    cmd.args(["serve", "--data"])
        .arg(b.data())
        .args(["--listen", &format!("127.0.0.1:{}", b.port)])
        .args(&b.args)
        .envs(s3_env());
    let (code, _, err, _) = run_measured(cmd);
    assert_ne!(
        code, 0,
        "a second writer must not start while the first is live"
    );
    assert!(
        err.contains("is being written by another vellum"),
        "refusal names the live writer: {err}"
    );

    // A stalls (stopped) past its lease; B takes over.
    let pid_a = a.child.as_ref().unwrap().id() as i32;
    unsafe { libc::kill(pid_a, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(2600));
    b.spawn();
    let token_b = b.token();
    append_n(&b, &token_b, "b", 250);
    let cp_b = b.wait_checkpoint(550);
    seen.insert(cp_b.size, cp_b.root);

    // A resumes, with an append waiting for it: it is fenced and exits,
    // and acknowledges nothing.
    let pending = {
        let (url, token) = (a.url(), token_a.clone());
        std::thread::spawn(move || {
            reqwest::blocking::Client::new()
                .post(format!("{url}/v1/events"))
                .bearer_auth(token)
                .json(&json!([event("late", Some("late-1"))]))
                .timeout(Duration::from_secs(20))
                .send()
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    unsafe { libc::kill(pid_a, libc::SIGCONT) };
    let child = a.child.as_mut().unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the fenced writer did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(3), "a fenced writer exits with 3");
    let err = a.stderr.as_ref().unwrap().text();
    assert!(err.contains("fenced"), "{err}");
    assert_ne!(
        pending.join().unwrap(),
        200,
        "a fenced writer acknowledged an append"
    );
    a.child = None;

    // B goes on; the log never forked: every checkpoint seen is consistent
    // with the final one, and the bucket verifies.
    append_n(&b, &token_b, "b2", 100);
    let fin = b.wait_checkpoint(650);
    for (size, root) in &seen {
        let p = b.get_json(
            &format!("/v1/proof/consistency?from={size}&to={}", fin.size),
            None,
        );
        verify_consistency(*size, fin.size, root, &fin.root, &proof_field(&p["proof"]))
            .unwrap_or_else(|e| panic!("checkpoint {size} is not consistent with the final: {e}"));
    }
    let last = checkpoint_at(&sw.static_url("two"), &vkey);
    assert_eq!(last.size, fin.size);
    verify_static(&sw, "two", &b);
}

#[test]
fn the_object_store_killed_during_appends_gives_503_loses_nothing_and_the_log_resumes() {
    let mut sw = Seaweed::start();
    let mut log = s3_log(&sw, "kill", &[]);
    log.spawn();
    let token = log.token();
    let mut acked = append_n(&log, &token, "before", 400);

    let stop = Arc::new(AtomicBool::new(false));
    let statuses: Arc<Mutex<BTreeMap<u16, usize>>> = Arc::default();
    let more: Arc<Mutex<Vec<(u64, Hash)>>> = Arc::default();
    let writer = {
        let (url, token, stop, statuses, more) = (
            log.url(),
            token.clone(),
            stop.clone(),
            statuses.clone(),
            more.clone(),
        );
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let evs: Vec<Value> = (0..20)
                    .map(|j| event("during", Some(&format!("during-{n}-{j}"))))
                    .collect();
                let Ok(r) = http
                    .post(format!("{url}/v1/events"))
                    .bearer_auth(&token)
                    .json(&evs)
                    .send()
                else {
                    continue;
                };
                let s = r.status().as_u16();
                *statuses.lock().unwrap().entry(s).or_default() += 1;
                if s == 200 {
                    let v: Value = r.json().unwrap();
                    let mut m = more.lock().unwrap();
                    for e in v["entries"].as_array().unwrap() {
                        m.push((e["index"].as_u64().unwrap(), hash_field(&e["leaf_hash"])));
                    }
                } else {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    sw.kill9();
    // Appends are refused with 503 while the store is gone.
    let t0 = Instant::now();
    while statuses.lock().unwrap().get(&503).copied().unwrap_or(0) < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no 503 while the object store is down: {:?}",
            statuses.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, health) = log.get("/healthz", None);
    let health: Value = serde_json::from_slice(&health).unwrap();
    assert_eq!(code, 503, "{health}");
    assert_eq!(health["storage"]["status"], "retrying", "{health}");
    let before_restart = statuses.lock().unwrap().get(&200).copied().unwrap_or(0);
    std::thread::sleep(Duration::from_millis(500));
    sw.spawn();
    // The log resumes by itself.
    let t0 = Instant::now();
    while statuses.lock().unwrap().get(&200).copied().unwrap_or(0) < before_restart + 5 {
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "appends did not resume: {:?}",
            statuses.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let st = statuses.lock().unwrap().clone();
    assert!(
        st.keys().all(|s| *s == 200 || *s == 503),
        "only 200 and 503: {st:?}"
    );
    acked.extend(more.lock().unwrap().iter().cloned());

    // Every acknowledged event is in the log, and survives a restart.
    log.kill9();
    log.spawn();
    let size = log.tree_size();
    let cp = log.wait_checkpoint(size);
    let (root, leaves) = recompute_from_tiles(&log, cp.size, &token);
    assert_eq!(root, cp.root);
    for (i, leaf) in &acked {
        assert_eq!(
            vellum_spec::leaf_hash(&leaves[*i as usize]),
            *leaf,
            "entry {i}"
        );
    }
    for (i, leaf) in acked.iter().step_by(7) {
        let p = log.get_json(
            &format!("/v1/proof/inclusion?index={i}&size={}", cp.size),
            None,
        );
        verify_inclusion(*i, cp.size, leaf, &proof_field(&p["proof"]), &cp.root).unwrap();
    }
    verify_static(&sw, "kill", &log);
}

#[test]
fn the_probe_refuses_a_store_that_ignores_conditional_writes() {
    let fake = IgnoringS3::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin("vellum"));
    cmd.args(["serve", "--data"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args([
            "--storage",
            "s3",
            "--s3-endpoint",
            &format!("http://127.0.0.1:{}", fake.port),
            "--s3-bucket",
            "b",
        ])
        .envs(s3_env());
    let (code, _, err, _) = run_measured(cmd);
    assert_ne!(code, 0);
    assert!(
        err.contains("does not enforce conditional writes"),
        "the refusal says why: {err}"
    );
    let seen = fake.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|(m, _, cond)| m == "PUT" && *cond),
        "the probe sent conditional PUTs: {seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|(_, p, _)| p.contains("vellum/lock") || p.contains("tile/")),
        "nothing but the probe was written: {seen:?}"
    );
}

#[test]
fn migrate_copies_an_embedded_log_into_a_bucket_and_verifies_it() {
    let sw = Seaweed::start();
    let mut log = Log::init();
    log.spawn();
    let token = log.token();
    let acked = append_n(&log, &token, "old", 1300);
    let cp = log.wait_checkpoint(1300);
    log.kill9();

    let run = |to: &str| {
        let mut cmd = Command::new(bin("vellum"));
        cmd.args(["migrate", "--from"])
            .arg(log.data())
            .args(["--to", to, "--s3-endpoint", &sw.endpoint()])
            .envs(s3_env());
        run_measured(cmd)
    };
    let (code, out, err, _) = run("s3://vellum/moved");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("verified"), "{out}");
    assert!(out.contains(&format!("at size {}", cp.size)), "{out}");
    // Into a prefix that holds a log: refused.
    let (code, _, err, _) = run("s3://vellum/moved");
    assert_ne!(code, 0);
    assert!(err.contains("already holds a log of 1300 entries"), "{err}");

    // The same data directory now serves the bucket: same tree, same
    // checkpoint key, the old event IDs still deduplicated.
    log.args = sw.serve_args("moved");
    log.env = s3_env();
    log.spawn();
    let now = log.checkpoint().0;
    assert_eq!((now.size, now.root), (cp.size, cp.root));
    let (s, b) = log.post_events(
        Some(&token),
        serde_json::to_vec(&vec![event("old", Some("old-5"))]).unwrap(),
    );
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["entries"][0]["index"].as_u64().unwrap(), acked[5].0);
    append_n(&log, &token, "new", 100);
    log.wait_checkpoint(1400);
    verify_static(&sw, "moved", &log);
}

#[test]
fn many_concurrent_batched_appenders_all_land_and_the_bucket_verifies() {
    // Enough clients that a batch is staged while the one before it is
    // published, every time.
    let sw = Seaweed::start();
    let mut log = s3_log(&sw, "load", &[]);
    log.spawn();
    let token = log.token();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in 0..16 {
        let (url, token, stop) = (log.url(), token.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            let mut acked = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let evs: Vec<Value> = (0..100)
                    .map(|j| event(&format!("t{t}"), Some(&format!("t{t}-{n}-{j}"))))
                    .collect();
                n += 1;
                let r = http
                    .post(format!("{url}/v1/events"))
                    .bearer_auth(&token)
                    .json(&evs)
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
                let v: Value = r.json().unwrap();
                for e in v["entries"].as_array().unwrap() {
                    acked.push((e["index"].as_u64().unwrap(), hash_field(&e["leaf_hash"])));
                }
            }
            acked
        }));
    }
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    let mut acked: Vec<(u64, Hash)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    acked.sort();
    let size = log.tree_size();
    assert_eq!(
        acked.len() as u64,
        size,
        "every entry was acknowledged once"
    );
    assert!(acked
        .iter()
        .enumerate()
        .all(|(i, (index, _))| *index == i as u64));
    let cp = log.wait_checkpoint(size);
    let (root, leaves) = recompute_from_tiles(&log, cp.size, &token);
    assert_eq!(root, cp.root);
    for (i, leaf) in &acked {
        assert_eq!(vellum_spec::leaf_hash(&leaves[*i as usize]), *leaf);
    }
    verify_static(&sw, "load", &log);
}
