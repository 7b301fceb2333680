//! The log's HTTP API against the real binary: append, checkpoints, tiles,
//! bundles, proofs checked with vellum-spec, dedup, access control,
//! token management on a running log, and restarts.

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};
use vellum_spec::merkle::{tree_root, verify_consistency, verify_inclusion};
use vellum_tests::*;

fn append(log: &Log, token: &str, events: &[Value]) -> Vec<Value> {
    let (s, b) = log.post_events(Some(token), serde_json::to_vec(events).unwrap());
    assert_eq!(s, 200, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    v["entries"].as_array().unwrap().clone()
}

#[test]
fn append_tiles_proofs_and_root_agree() {
    let log = Log::start(&[]);
    let token = log.token();
    // 700 entries: two full level-0 tiles plus a partial one, in several requests.
    let mut acked = Vec::new();
    for chunk in 0..7 {
        let evs: Vec<Value> = (0..100)
            .map(|i| event(&format!("a{chunk}-{i}"), None))
            .collect();
        let res = append(&log, &token, &evs);
        assert_eq!(res.len(), 100);
        acked.extend(res);
    }
    for (i, a) in acked.iter().enumerate() {
        assert_eq!(
            a["index"].as_u64().unwrap(),
            i as u64,
            "indexes in request order"
        );
    }
    let cp = log.wait_checkpoint(700);
    assert_eq!(cp.size, 700);
    assert_eq!(cp.origin, "test.example/log");

    // Recompute the tree from bundles and tiles: same root as the checkpoint.
    let (root, leaves) = recompute_from_tiles(&log, cp.size, &token);
    assert_eq!(root, cp.root);
    for (a, leaf) in acked.iter().zip(&leaves) {
        assert_eq!(hash_field(&a["leaf_hash"]), vellum_spec::leaf_hash(leaf));
        vellum_spec::event::check_leaf(leaf).expect("stored leaf is a canonical, valid event");
    }
    // The independent HTTP tile reader agrees on the root too.
    assert_eq!(
        tree_root(
            cp.size,
            &HttpTiles {
                log: &log,
                size: cp.size
            }
        )
        .unwrap(),
        cp.root
    );

    // Inclusion proofs from the API verify for a spread of indexes.
    for i in [0u64, 1, 255, 256, 511, 512, 699] {
        let p = log.get_json(
            &format!("/v1/proof/inclusion?index={i}&size={}", cp.size),
            None,
        );
        assert_eq!(p["index"], json!(i));
        assert_eq!(p["size"], json!(cp.size));
        let leaf = hash_field(&acked[i as usize]["leaf_hash"]);
        verify_inclusion(i, cp.size, &leaf, &proof_field(&p["proof"]), &cp.root).unwrap();
    }
    // Consistency proofs between every earlier checkpoint size we can name.
    for m in [0u64, 1, 100, 256, 300, 699, 700] {
        let p = log.get_json(&format!("/v1/proof/consistency?from={m}&to=700"), None);
        let old = tree_root(
            m,
            &HttpTiles {
                log: &log,
                size: 700,
            },
        )
        .unwrap();
        verify_consistency(m, 700, &old, &cp.root, &proof_field(&p["proof"])).unwrap();
    }

    // /v1/entries returns the stored event with the server's fields.
    let e = log.get_json("/v1/entries/5", Some(&token));
    assert_eq!(e["index"], json!(5));
    assert_eq!(e["leaf_hash"], acked[5]["leaf_hash"]);
    assert_eq!(e["event"]["agent"], json!("a0-5"));
    assert_eq!(e["event"]["gateway"], json!("default"));
    assert!(e["event"]["logged_at"].as_str().unwrap().ends_with('Z'));

    // Headers per C2SP.
    let r = log
        .http
        .get(format!("{}/checkpoint", log.url()))
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let r = log
        .http
        .get(format!("{}/tile/0/000", log.url()))
        .send()
        .unwrap();
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(r.bytes().unwrap().len(), 8192);
}

#[test]
fn out_of_range_and_bad_paths_name_the_bound() {
    let log = Log::start(&[]);
    let token = log.token();
    append(&log, &token, &[event("a", None), event("b", None)]);
    log.wait_checkpoint(2);
    for (path, status, words) in [
        ("/v1/proof/inclusion?index=2&size=2", 400, "below size 2"),
        (
            "/v1/proof/inclusion?index=0&size=3",
            400,
            "beyond the tree size 2",
        ),
        (
            "/v1/proof/inclusion?index=0",
            400,
            "missing query parameter size",
        ),
        ("/v1/proof/inclusion?index=x&size=1", 400, "index"),
        (
            "/v1/proof/consistency?from=2&to=1",
            400,
            "from 2 must not be larger than to 1",
        ),
        (
            "/v1/proof/consistency?from=0&to=3",
            400,
            "beyond the tree size 2",
        ),
        ("/tile/0/000.p/3", 404, "tree size 2"),
        ("/tile/0/000", 404, "tree size 2"),
        ("/tile/1/000.p/1", 404, "tree size 2"),
        ("/tile/0/0", 400, "tile path"),
        ("/tile/0/000.p/0", 400, "width"),
        ("/tile/entries/000.p/3", 404, "tree size 2"),
    ] {
        let (s, b) = log.get(path, Some(&token));
        let b = String::from_utf8_lossy(&b);
        assert_eq!(s, status, "{path}: {b}");
        assert!(b.contains(words), "{path}: {b} should mention {words:?}");
    }
    let (s, b) = log.get("/v1/entries/2", Some(&token));
    assert_eq!(s, 404);
    assert!(String::from_utf8_lossy(&b).contains("not below the tree size 2"));
    // Empty proofs for from == 0 and from == to.
    assert_eq!(
        log.get_json("/v1/proof/consistency?from=2&to=2", None)["proof"],
        json!([])
    );
    assert_eq!(
        log.get_json("/v1/proof/consistency?from=0&to=2", None)["proof"],
        json!([])
    );
}

#[test]
fn dedup_by_gateway_and_event_id() {
    let log = Log::start(&[]);
    let token = log.token();
    let first = append(
        &log,
        &token,
        &[event("a", Some("evt-1")), event("b", Some("evt-2"))],
    );
    // Resent (even with other content), in a batch with a new one and an
    // in-batch repeat: original indexes, no new leaves for the repeats.
    let again = append(
        &log,
        &token,
        &[
            event("changed", Some("evt-2")),
            event("c", Some("evt-3")),
            event("d", Some("evt-3")),
        ],
    );
    assert_eq!(again[0]["index"], first[1]["index"]);
    assert_eq!(again[0]["leaf_hash"], first[1]["leaf_hash"]);
    assert_eq!(again[0]["duplicate"], json!(true));
    assert_eq!(again[1]["index"], json!(2));
    assert_eq!(again[2]["index"], json!(2));
    assert_eq!(log.tree_size(), 3);
    // Another gateway may use the same event_id.
    let out = log.cli(&["token", "add", "gw2", "--scopes", "append"]);
    assert!(out.status.success());
    let t2 = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let other = append(&log, &t2, &[event("a", Some("evt-1"))]);
    assert_eq!(other[0]["index"], json!(3));
    let e = log.get_json("/v1/entries/3", Some(&token));
    assert_eq!(e["event"]["gateway"], json!("gw2"));
    // Dedup survives a restart.
    let mut log = log;
    log.kill9();
    log.spawn();
    let again = append(&log, &token, &[event("a", Some("evt-1"))]);
    assert_eq!(again[0]["index"], json!(0));
    assert_eq!(log.tree_size(), 4);
}

#[test]
fn access_control_tokens_and_restart() {
    let mut log = Log::start(&[]);
    let token = log.token();
    // Secrets are 0600; the verifier key is the one printed.
    for f in ["log.key", "gateway.token", "tokens.json"] {
        let mode = std::fs::metadata(log.data().join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let tokens_json = std::fs::read_to_string(log.data().join("tokens.json")).unwrap();
    assert!(!tokens_json.contains(&token), "tokens are stored hashed");
    append(&log, &token, &[event("a", None)]);
    log.wait_checkpoint(1);
    // Hashes are public; entries need the read scope.
    assert_eq!(log.get("/tile/0/000.p/1", None).0, 200);
    assert_eq!(log.get("/v1/proof/inclusion?index=0&size=1", None).0, 200);
    assert_eq!(log.get("/tile/entries/000.p/1", None).0, 401);
    assert_eq!(log.get("/v1/entries/0", None).0, 401);
    assert_eq!(log.get("/v1/entries/0", Some("vlm_nope")).0, 401);
    // An append-only token cannot read; a read-only token cannot append.
    let add = |name: &str, scopes: &str| {
        let out = log.cli(&["token", "add", name, "--scopes", scopes]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let writer = add("writer", "append");
    let reader = add("reader", "read");
    let (s, b) = log.get("/v1/entries/0", Some(&writer));
    assert_eq!(s, 403, "{}", String::from_utf8_lossy(&b));
    assert!(String::from_utf8_lossy(&b).contains("read scope"));
    assert_eq!(log.get("/v1/entries/0", Some(&reader)).0, 200);
    let (s, b) = log.post_events(
        Some(&reader),
        serde_json::to_vec(&event("x", None)).unwrap(),
    );
    assert_eq!(s, 403);
    assert!(b.contains("append scope"));
    assert_eq!(
        log.post_events(
            Some(&writer),
            serde_json::to_vec(&event("x", None)).unwrap()
        )
        .0,
        200
    );
    // `token list` shows names and scopes, never secrets.
    let out = log.cli(&["token", "list"]);
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(
        list.contains("writer\tappend") && list.contains("default\tappend,read"),
        "{list}"
    );
    assert!(!list.contains(&writer));
    // Revoking takes effect on the running log.
    assert!(log.cli(&["token", "revoke", "writer"]).status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (s, _) = log.post_events(
            Some(&writer),
            serde_json::to_vec(&event("x", None)).unwrap(),
        );
        if s == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revoked token still accepted"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A restart reuses the key and keeps the log and the published checkpoint.
    let vkey = log.vkey();
    let (before, _) = log.checkpoint();
    log.kill9();
    log.spawn();
    assert_eq!(log.vkey(), vkey);
    let (after, _) = log.checkpoint();
    assert!(after.size >= before.size);
    assert_eq!(log.token(), token);
    // A second log on the same directory is refused while the first runs,
    // naming the process that holds it.
    let out = log.cli(&["serve", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let pid = log.child.as_ref().unwrap().id();
    assert!(
        err.contains("another vellum is already using") && err.contains(&format!("(pid {pid})")),
        "{err}"
    );
    // A different origin on an existing directory is refused.
    log.kill9();
    let out = log.cli(&[
        "serve",
        "--origin",
        "other.example/log",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("other.example/log"));
}

#[test]
fn public_entries_option() {
    let log = Log::start(&["--public-entries"]);
    append(&log, &log.token(), &[event("a", None)]);
    assert_eq!(log.get("/v1/entries/0", None).0, 200);
    assert_eq!(log.get("/tile/entries/000.p/1", None).0, 200);
    // Appends still need a token.
    assert_eq!(
        log.post_events(None, serde_json::to_vec(&event("a", None)).unwrap())
            .0,
        401
    );
}

#[test]
fn append_command_sends_ndjson() {
    let log = Log::start(&[]);
    let file = log.data().join("events.ndjson");
    let lines: Vec<String> = (0..250)
        .map(|i| event(&format!("n{i}"), None).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = log.cli(&[
        "append",
        "--url",
        &log.url(),
        "--batch",
        "100",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 250);
    assert_eq!(results[249]["index"], json!(249));
    assert_eq!(log.tree_size(), 250);
    // A bad line is reported with its line numbers and nothing of its batch is written.
    std::fs::write(&file, format!("{}\n{{\"bad\":1}}\n", lines[0])).unwrap();
    let out = log.cli(&["append", "--url", &log.url(), file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lines 1-2") && err.contains("bad"), "{err}");
    assert_eq!(log.tree_size(), 250);
}

#[test]
fn metrics_and_health() {
    let log = Log::start(&[]);
    append(&log, &log.token(), &[event("a", None), event("b", None)]);
    log.wait_checkpoint(2);
    let (s, b) = log.get("/metrics", None);
    assert_eq!(s, 200);
    let m = String::from_utf8(b).unwrap();
    for want in [
        "vellum_appended_entries_total 2",
        "vellum_tree_size 2",
        "vellum_checkpoint_size 2",
        "vellum_fsync_seconds_count",
        "vellum_commit_batch_entries_bucket",
        "vellum_integration_seconds_count",
    ] {
        assert!(m.contains(want), "metrics lack {want}:\n{m}");
    }
    assert_eq!(log.get_json("/healthz", None)["status"], json!("ok"));
}

#[test]
fn a_waiting_receipt_gets_an_early_checkpoint() {
    // The interval is far longer than the receipt timeout: only an early
    // checkpoint, signed because a receipt waits, can answer in time.
    let log = Log::start(&["--checkpoint-interval", "60s", "--receipt-timeout", "5s"]);
    let token = log.token();
    for i in 0..3 {
        let (s, body) = log.http_post_receipt(&token, &event("early", Some(&format!("early-{i}"))));
        assert_eq!(s, 200, "receipt {i}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["entries"][0]["receipt"].is_string(), "{body}");
    }
    // Without receipts waiting, the interval holds: no checkpoint for
    // plain appends.
    let before = log.checkpoint().0.size;
    append(&log, &token, &[event("plain", Some("plain-1"))]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(log.checkpoint().0.size, before);
}
