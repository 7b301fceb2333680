//! The log with real witnesses: three witnesses and quorum 2; one down,
//! checkpoints still published with two cosignatures; two down, nothing is
//! published below quorum, and publishing resumes when one returns. Plus
//! receipts verified offline.

use std::time::{Duration, Instant};

use serde_json::Value;
use vellum_spec::merkle::verify_consistency;
use vellum_spec::note::{Note, VerifierKey};
use vellum_spec::proof::{ProofFileError, TlogProof};
use vellum_spec::Checkpoint;
use vellum_tests::{event, proof_field, Log, Witness};

/// The published checkpoint and the witness keys that validly cosigned it.
fn published(log: &Log, witnesses: &[VerifierKey]) -> (Checkpoint, Vec<VerifierKey>) {
    let (cp, raw) = log.checkpoint();
    let n = Note::parse(&raw).unwrap();
    let ok = n
        .verify_each(witnesses)
        .into_iter()
        .filter_map(|(k, v)| v.map(|_| k))
        .collect();
    (cp, ok)
}

fn append(log: &Log, token: &str, n: usize, tag: &str) -> u64 {
    let batch: Vec<Value> = (0..n).map(|i| event(&format!("{tag}-{i}"), None)).collect();
    let (st, body) = log.post_events(Some(token), serde_json::to_vec(&batch).unwrap());
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["entries"].as_array().unwrap().last().unwrap()["index"]
        .as_u64()
        .unwrap()
}

fn wait_published(
    log: &Log,
    size: u64,
    keys: &[VerifierKey],
    secs: u64,
) -> (Checkpoint, Vec<VerifierKey>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (cp, ok) = published(log, keys);
        if cp.size >= size {
            return (cp, ok);
        }
        assert!(
            Instant::now() < deadline,
            "checkpoint stuck at {} (want {size})",
            cp.size
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn consistent(log: &Log, a: &Checkpoint, b: &Checkpoint) {
    let v = log.get_json(
        &format!("/v1/proof/consistency?from={}&to={}", a.size, b.size),
        None,
    );
    verify_consistency(a.size, b.size, &a.root, &b.root, &proof_field(&v["proof"])).unwrap();
}

#[test]
fn quorum_of_two_among_three_witnesses() {
    let mut log = Log::init();
    let lkey = log.vkey().to_vkey();
    let mut ws: Vec<Witness> = (1..=3)
        .map(|i| Witness::start(&format!("w{i}.example"), &["--log", &lkey]))
        .collect();
    let keys: Vec<VerifierKey> = ws.iter().map(|w| w.vkey()).collect();
    log.args = ws
        .iter()
        .flat_map(|w| ["--witness".to_string(), w.log_arg()])
        .chain(
            [
                "--witness-quorum",
                "2",
                "--witness-timeout",
                "1s",
                "--receipt-timeout",
                "2s",
            ]
            .map(String::from),
        )
        .collect();
    log.spawn();
    let token = log.token();

    // All up: a checkpoint with (eventually) all three cosignatures.
    let last = append(&log, &token, 50, "all");
    let (cp1, ok) = wait_published(&log, last + 1, &keys, 20);
    assert!(ok.len() >= 2, "published with {} cosignatures", ok.len());

    // One down: still published, with the two others.
    ws[2].kill9();
    let last = append(&log, &token, 50, "one-down");
    let (cp2, ok) = wait_published(&log, last + 1, &keys, 20);
    assert_eq!(ok.len(), 2, "two live witnesses cosign");
    assert!(!ok.contains(&keys[2]));
    consistent(&log, &cp1, &cp2);

    // Two down: the new entries are durable but no checkpoint is published.
    ws[1].kill9();
    let last = append(&log, &token, 50, "two-down");
    assert_eq!(log.tree_size(), last + 1);
    std::thread::sleep(Duration::from_secs(3));
    let (stuck, _) = published(&log, &keys);
    assert_eq!(stuck.size, cp2.size, "published below quorum");
    // A receipt cannot be had now: 504, and the body says the events are durable.
    let (st, body) = log.http_post_receipt(&token, &event("stuck", None));
    assert_eq!(st, 504, "{body}");
    assert!(body.contains("durable"), "{body}");

    // One returns (with its state): publishing resumes.
    ws[1].spawn();
    let (cp3, ok) = wait_published(&log, last + 2, &keys, 30);
    assert_eq!(ok.len(), 2);
    assert!(ok.contains(&keys[1]) && ok.contains(&keys[0]));
    consistent(&log, &cp2, &cp3);

    // Every witness's view agrees with the log: what each last cosigned is
    // a checkpoint of this tree.
    for w in &ws[..2] {
        let s = w.status();
        let size = s["logs"][0]["size"].as_u64().unwrap();
        let root = s["logs"][0]["root"].as_str().unwrap();
        let v = log.get_json(
            &format!("/v1/proof/consistency?from={size}&to={}", cp3.size),
            None,
        );
        let old = vellum_spec::Hash::from_base64(root).unwrap();
        verify_consistency(size, cp3.size, &old, &cp3.root, &proof_field(&v["proof"])).unwrap();
    }
    let m = String::from_utf8(log.get("/metrics", None).1).unwrap();
    assert!(
        m.contains("vellum_witness_failures_total{witness=\"w3.example\"}"),
        "{m}"
    );
    assert!(m.contains("vellum_witness_quorum_seconds_count"), "{m}");
}

#[test]
fn receipts_verify_offline_with_a_quorum() {
    let mut log = Log::init();
    let lkey = log.vkey();
    let ws: Vec<Witness> = (1..=2)
        .map(|i| Witness::start(&format!("r{i}.example"), &["--log", &lkey.to_vkey()]))
        .collect();
    let keys: Vec<VerifierKey> = ws.iter().map(|w| w.vkey()).collect();
    log.args = ws
        .iter()
        .flat_map(|w| ["--witness".to_string(), w.log_arg()])
        .chain(["--witness-quorum", "2"].map(String::from))
        .collect();
    log.spawn();
    let token = log.token();
    append(&log, &token, 10, "before");

    let mut latencies = vec![];
    for i in 0..5 {
        let t = Instant::now();
        let (st, body) = log.http_post_receipt(&token, &event(&format!("r-{i}"), None));
        latencies.push(t.elapsed());
        assert_eq!(st, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let e = &v["entries"][0];
        let text = e["receipt"].as_str().unwrap();
        let p = TlogProof::parse(text).unwrap();
        assert_eq!(p.index, e["index"].as_u64().unwrap());
        let ok = p.verify(None, &lkey, &keys, 2).unwrap();
        assert_eq!(ok.cosigned.len(), 2);
        assert_eq!(ok.leaf_hash.to_base64(), e["leaf_hash"].as_str().unwrap());
        // Text round trip is exact.
        assert_eq!(p.to_text(), text);

        // Tampering: the event, the proof, the checkpoint, the quorum.
        let mut bad = p.clone();
        let leaf = bad.extra.as_mut().unwrap();
        let pos = leaf.len() / 2;
        leaf[pos] ^= 1;
        assert!(matches!(
            bad.verify(None, &lkey, &keys, 2),
            Err(ProofFileError::Inclusion { .. })
        ));
        if !p.proof.is_empty() {
            let mut bad = p.clone();
            bad.proof[0].0[0] ^= 1;
            assert!(bad.verify(None, &lkey, &keys, 2).is_err());
        }
        let mut bad = p.clone();
        let s = String::from_utf8(bad.checkpoint.clone()).unwrap();
        let cut: String = s
            .lines()
            .filter(|l| !l.contains("r2.example"))
            .map(|l| format!("{l}\n"))
            .collect();
        bad.checkpoint = cut.into_bytes();
        assert!(matches!(
            bad.verify(None, &lkey, &keys, 2),
            Err(ProofFileError::Quorum { got: 1, want: 2 })
        ));
        assert!(bad.verify(None, &lkey, &keys, 1).is_ok());
    }

    // Resending an event with its event_id returns the original index and
    // a receipt for it.
    let ev = event("again", Some("fixed-id-1"));
    let (_, a) = log.http_post_receipt(&token, &ev);
    let (_, b) = log.http_post_receipt(&token, &ev);
    let a: Value = serde_json::from_str(&a).unwrap();
    let b: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(a["entries"][0]["index"], b["entries"][0]["index"]);
    assert_eq!(b["entries"][0]["duplicate"], true);
    TlogProof::parse(b["entries"][0]["receipt"].as_str().unwrap())
        .unwrap()
        .verify(None, &lkey, &keys, 2)
        .unwrap();

    // GET /v1/receipt/<index> for an older entry.
    let (st, body) = log.get("/v1/receipt/3", Some(&token));
    assert_eq!(st, 200);
    let p = TlogProof::parse(std::str::from_utf8(&body).unwrap()).unwrap();
    assert_eq!(p.index, 3);
    p.verify(None, &lkey, &keys, 2).unwrap();
    let (st, _) = log.get("/v1/receipt/3", None);
    assert_eq!(st, 401);
    let (st, _) = log.get("/v1/receipt/999999", Some(&token));
    assert_eq!(st, 404);
    let (st, _) = log.post_events_query(&token, "?receipt=maybe", &event("q", None));
    assert_eq!(st, 400);

    latencies.sort();
    eprintln!("receipt latencies (append to cosigned receipt, 100 ms interval): {latencies:?}");
}

#[test]
fn healthz_says_degraded_while_the_quorum_is_unreachable() {
    let mut w = Witness::start("w1.example/witness", &[]);
    let mut log = Log::init();
    w.args.extend(["--log".to_string(), log.vkey().to_vkey()]);
    w.kill9();
    w.spawn();
    log.args = vec![
        "--witness".into(),
        w.log_arg(),
        "--witness-timeout".into(),
        "500ms".into(),
    ];
    log.spawn();
    let token = log.token();
    append(&log, &token, 3, "up");
    wait_published(&log, 3, &[w.vkey()], 20);
    let h = log.get_json("/healthz", None);
    assert_eq!(h["status"], "ok", "{h}");
    w.kill9();
    append(&log, &token, 1, "down");
    // Appends are still accepted (200), but checkpoints fall behind.
    let deadline = Instant::now() + Duration::from_secs(20);
    let h = loop {
        let (code, body) = log.get("/healthz", None);
        assert_eq!(
            code,
            200,
            "degraded is not down: {}",
            String::from_utf8_lossy(&body)
        );
        let h: Value = serde_json::from_slice(&body).unwrap();
        if h["status"] == "degraded" {
            break h;
        }
        assert!(Instant::now() < deadline, "never degraded: {h}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(h["checkpoint"]["behind_entries"], 1, "{h}");
    assert!(
        h["checkpoint"]["behind_seconds"].as_f64().unwrap() >= 2.0,
        "{h}"
    );
    let reason = h["checkpoint"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("quorum (1 of 1)") && reason.contains("w1.example/witness"),
        "{reason}"
    );
    assert_eq!(log.get("/livez", None).0, 200);
    // The witness returns: the checkpoint catches up, health is ok again.
    w.spawn();
    wait_published(&log, 4, &[w.vkey()], 30);
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.get_json("/healthz", None)["status"] != "ok" {
        assert!(
            Instant::now() < deadline,
            "still degraded after catching up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
