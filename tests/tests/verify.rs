//! `vellum-verify` against real binaries: an honest witnessed log passes
//! every command; a tampering proxy between verifier and log (entry bytes,
//! tile hashes, an entry rewritten together with its level-0 tile, a
//! forked checkpoint signed with the real log key, a stripped witness
//! cosignature, a rollback) is caught with exit code 1 and the check named.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vellum_spec::hash::{leaf_hash, Hash};
use vellum_spec::note::{Note, SignerKey};
use vellum_spec::tile::{parse_bundle, push_bundle_entry};
use vellum_spec::Checkpoint;
use vellum_tests::{event, verify, Log, TamperProxy, Witness};

fn append(log: &Log, token: &str, events: &[Value]) {
    let (st, body) = log.post_events(Some(token), serde_json::to_vec(events).unwrap());
    assert_eq!(st, 200, "{body}");
}

/// A note for `cp` signed with the log's real private key.
fn forge(log: &Log, cp: &Checkpoint) -> Vec<u8> {
    let skey = std::fs::read_to_string(log.data().join("log.key")).unwrap();
    let signer = SignerKey::parse(skey.trim()).unwrap();
    Note::sign(&cp.to_text(), &[&signer]).unwrap().to_bytes()
}

fn flip_in(body: &[u8], needle: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    let at = b
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in body")
        + needle.len();
    b[at] ^= 0x01;
    b
}

fn assert_fails(r: (i32, String, String), check: &str) -> String {
    let (code, out, err) = r;
    assert_eq!(
        code, 1,
        "want exit 1 ({check}); stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        out.contains(&format!("{check} check failed")),
        "the report should name the {check} check:\n{out}"
    );
    out
}

#[test]
fn honest_log_passes_and_every_tampering_is_caught() {
    let mut log = Log::init();
    let lkey = log.vkey().to_vkey();
    let w = Witness::start("w1.example", &["--log", &lkey]);
    let wkey = w.vkey().to_vkey();
    log.args = vec![
        "--witness".into(),
        w.log_arg(),
        "--witness-quorum".into(),
        "1".into(),
    ];
    log.spawn();
    let token = log.token();

    // 4 writers at once (so the sequencer restamps logged_at), plus a
    // session whose seq skips 3.
    std::thread::scope(|s| {
        for t in 0..4 {
            let (log, token) = (&log, &token);
            s.spawn(move || {
                for b in 0..5 {
                    let evs: Vec<Value> = (0..30)
                        .map(|i| event(&format!("w{t}-{b}-{i}"), None))
                        .collect();
                    append(log, token, &evs);
                }
            });
        }
    });
    let seq: Vec<Value> = [0, 1, 2, 4]
        .iter()
        .map(|q| {
            let mut e = event("seq", None);
            e["session"] = json!("gappy");
            e["seq"] = json!(q);
            e
        })
        .collect();
    append(&log, &token, &seq);
    let size = 604;
    let honest_note = log.wait_note(size).1;

    let proxy = TamperProxy::start(&log.url());
    let url = proxy.url();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.note");
    let st = state.to_str().unwrap();
    // `vellum-verify CMD` against the proxy, with or without the witness key.
    let args = |cmd: &str, witness: bool, extra: &[&str]| -> Vec<String> {
        let mut v = vec![cmd, "--url", &url, "--log-key", &lkey, "--token", &token];
        if witness {
            v.extend(["--witness-key", wkey.as_str()]);
        }
        if cmd == "log" {
            v.push("--quiet");
        }
        v.extend(extra);
        v.into_iter().map(String::from).collect()
    };
    let base = |extra: &[&str]| args("log", true, extra);
    let plain = |extra: &[&str]| args("log", false, extra);
    let run = |args: Vec<String>| verify(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // Honest: every command exits 0.
    let (code, out, err) = run(base(&["--full", "--state", st]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("entries verified: {size}/{size}")),
        "{out}"
    );
    assert!(out.contains("w1.example"), "the witness is named:\n{out}");
    assert!(
        out.contains("seq 3 is missing"),
        "the seq gap is reported:\n{out}"
    );
    assert!(std::fs::read(&state)
        .unwrap()
        .starts_with(b"test.example/log\n604\n"));
    let (code, out, _) = run(base(&["--json"]));
    assert_eq!(code, 0);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["ok"], true);
    assert_eq!(j["checkpoint"]["size"], size);
    // Without the witness's key its line is reported, not verified, not counted.
    let (code, out, _) = verify(&["log", "--url", &url, "--log-key", &lkey]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("w1.example+") && out.contains("not verified, not counted"),
        "{out}"
    );
    let (code, out, _) = run(base(&["--full", "--strict-seq"]));
    assert_eq!(code, 1, "--strict-seq turns the gap into a failure:\n{out}");
    assert!(out.contains("sequence check failed"), "{out}");

    let (code, out, _) = run(args("event", true, &["--index", "17"]));
    assert_eq!(code, 0, "{out}");
    let entry = log.get_json("/v1/entries/42", Some(&token));
    let pretty = dir.path().join("event.json");
    std::fs::write(&pretty, serde_json::to_vec_pretty(&entry["event"]).unwrap()).unwrap();
    let (code, out, _) = run(args("event", true, &["--file", pretty.to_str().unwrap()]));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("entry 42 is in the checkpoint's tree"),
        "{out}"
    );
    let (s, receipt) = log.get("/v1/receipt/9", Some(&token));
    assert_eq!(s, 200);
    let rfile = dir.path().join("receipt.txt");
    std::fs::write(&rfile, &receipt).unwrap();
    let (code, out, _) = verify(&[
        "receipt",
        rfile.to_str().unwrap(),
        "--log-key",
        &lkey,
        "--witness-key",
        &wkey,
    ]);
    assert_eq!(code, 0, "{out}");
    let bad = String::from_utf8(receipt.clone())
        .unwrap()
        .replacen("\nindex 9\n", "\nindex 8\n", 1);
    std::fs::write(&rfile, &bad).unwrap();
    let (code, out, _) = verify(&[
        "receipt",
        rfile.to_str().unwrap(),
        "--log-key",
        &lkey,
        "--witness-key",
        &wkey,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("inclusion check failed"), "{out}");

    // 1. One byte flipped in an entry bundle.
    proxy.set(Some(Box::new(|p: &str, b: Vec<u8>| {
        if p.starts_with("/tile/entries/001") {
            flip_in(&b, b"\"tool\":\"db.")
        } else {
            b
        }
    })));
    let out = assert_fails(run(base(&["--full"])), "tile");
    assert!(out.contains("tile 0/001"), "names the tile:\n{out}");

    // 2. One hash changed in a level-0 tile.
    proxy.set(Some(Box::new(|p: &str, mut b: Vec<u8>| {
        if p == "/tile/0/000" {
            b[32 * 7 + 3] ^= 0x80;
        }
        b
    })));
    let out = assert_fails(run(base(&["--full"])), "tile");
    assert!(out.contains("tile 0/000 position 7"), "{out}");
    let (code, out, _) = run(base(&["--full", "--json"]));
    assert_eq!(code, 1);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["ok"], false);
    assert_eq!(j["failure"]["kind"], "verification");
    assert_eq!(j["failure"]["check"], "tile");
    assert_eq!(j["failure"]["index"], 7);
    assert!(
        j["failure"]["expected"].is_string() && j["failure"]["got"].is_string(),
        "{j}"
    );

    // 3. An entry rewritten together with its level-0 tile: the pitfall of
    // checking only the tiles on the path to the root.
    // The level-0 tile must carry the rewritten leaf hash: compute it here.
    let bundle0 = log.get("/tile/entries/000", Some(&token)).1;
    let e5 = parse_bundle(&bundle0).unwrap()[5].to_vec();
    let forged5: Hash = leaf_hash(
        String::from_utf8(e5)
            .unwrap()
            .replace("db.query", "db.qu3ry")
            .as_bytes(),
    );
    proxy.set(Some(Box::new(move |p: &str, b: Vec<u8>| {
        if p == "/tile/entries/000" {
            let entries = parse_bundle(&b).unwrap();
            let mut out = Vec::new();
            for (i, e) in entries.iter().enumerate() {
                let e = if i == 5 {
                    String::from_utf8(e.to_vec())
                        .unwrap()
                        .replace("db.query", "db.qu3ry")
                        .into_bytes()
                } else {
                    e.to_vec()
                };
                push_bundle_entry(&mut out, &e).unwrap();
            }
            out
        } else if p == "/tile/0/000" {
            let mut b = b;
            b[5 * 32..6 * 32].copy_from_slice(&forged5.0);
            b
        } else {
            b
        }
    })));
    let out = assert_fails(run(base(&["--full"])), "tile");
    assert!(
        out.contains("tile 1/000.p/2 position 0"),
        "caught one level up:\n{out}"
    );

    // 4. A checkpoint re-signed with the real log key over a forked tree.
    let honest = Checkpoint::parse(&Note::parse(&honest_note).unwrap().text).unwrap();
    let fork_same = forge(
        &log,
        &Checkpoint {
            root: Hash([7; 32]),
            ..honest.clone()
        },
    );
    let fs = fork_same.clone();
    proxy.set(Some(Box::new(move |p: &str, b: Vec<u8>| {
        if p == "/checkpoint" {
            fs.clone()
        } else {
            b
        }
    })));
    // Without witnesses, --state catches it (same size, other root) ...
    assert_fails(run(plain(&["--state", st])), "fork");
    // ... and so does --full (the root of the served entries differs).
    assert_fails(run(plain(&["--full"])), "root");
    // ... and a witness quorum refuses it outright.
    assert_fails(run(base(&[])), "quorum");
    // A larger forked tree: the consistency proof from the trusted state fails.
    append(
        &log,
        &token,
        &(0..10)
            .map(|i| event(&format!("more-{i}"), None))
            .collect::<Vec<_>>(),
    );
    log.wait_note(size + 10);
    let fork_big = forge(
        &log,
        &Checkpoint {
            size: size + 10,
            root: Hash([9; 32]),
            ..honest.clone()
        },
    );
    proxy.set(Some(Box::new(move |p: &str, b: Vec<u8>| {
        if p == "/checkpoint" {
            fork_big.clone()
        } else {
            b
        }
    })));
    assert_fails(run(plain(&["--state", st])), "consistency");

    // 5. The witness's cosignature stripped while a quorum is required.
    proxy.set(Some(Box::new(|p: &str, b: Vec<u8>| {
        if p != "/checkpoint" {
            return b;
        }
        let text = String::from_utf8(b).unwrap();
        text.lines()
            .filter(|l| !l.starts_with("— w1.example"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes()
    })));
    let out = assert_fails(run(base(&[])), "quorum");
    assert!(
        out.contains("0 valid witness cosignature(s), the policy requires 1"),
        "{out}"
    );

    // 6. Rollback: the state now holds a larger tree than the log shows.
    proxy.set(None);
    let (code, out, _) = run(base(&["--state", st]));
    assert_eq!(code, 0, "honest growth is accepted:\n{out}");
    let old = honest_note.clone();
    proxy.set(Some(Box::new(move |p: &str, b: Vec<u8>| {
        if p == "/checkpoint" {
            old.clone()
        } else {
            b
        }
    })));
    let out = assert_fails(run(base(&["--state", st])), "rollback");
    assert!(
        out.contains(&format!("expected: tree size ≥ {}", size + 10)),
        "{out}"
    );
    // The refused checkpoint did not replace the trusted one.
    assert!(std::fs::read(&state)
        .unwrap()
        .starts_with(format!("test.example/log\n{}\n", size + 10).as_bytes()));

    // 7. --follow: runs until the first failure, then writes the evidence.
    proxy.set(None);
    let evidence = dir.path().join("evidence.json");
    let mut child = std::process::Command::new(vellum_tests::bin("vellum-verify"))
        .args(base(&[
            "--follow",
            "--interval",
            "200ms",
            "--full",
            "--evidence",
            evidence.to_str().unwrap(),
        ]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "--follow keeps running while the log is honest"
    );
    append(
        &log,
        &token,
        &(0..5)
            .map(|i| event(&format!("follow-{i}"), None))
            .collect::<Vec<_>>(),
    );
    std::thread::sleep(Duration::from_millis(800));
    proxy.set(Some(Box::new(|p: &str, b: Vec<u8>| {
        if p.starts_with("/tile/entries/") {
            flip_in(&b, b"\"tool\":\"db.")
        } else {
            b
        }
    })));
    append(
        &log,
        &token,
        &(0..5)
            .map(|i| event(&format!("follow2-{i}"), None))
            .collect::<Vec<_>>(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "--follow did not stop on tampering"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1));
    let ev: Value = serde_json::from_slice(&std::fs::read(&evidence).unwrap()).unwrap();
    // The partial tile verified in an earlier round comes back altered.
    assert_eq!(ev["failure"]["check"], "entry", "{ev}");
    assert!(ev["trusted_checkpoint"]
        .as_str()
        .unwrap()
        .starts_with("test.example/log\n"));
    assert!(ev["served_checkpoint"]
        .as_str()
        .unwrap()
        .starts_with("test.example/log\n"));

    // Exit codes for what is not a verification failure.
    let (code, _, _) = verify(&["log", "--url", "http://127.0.0.1:1", "--log-key", &lkey]);
    assert_eq!(code, 3, "network error");
    let (code, out, _) = verify(&[
        "log",
        "--url",
        "http://127.0.0.1:1",
        "--log-key",
        &lkey,
        "--json",
    ]);
    assert_eq!(code, 3);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["failure"]["kind"], "operational", "{j}");
    let (code, _, _) = verify(&["log", "--url", &url, "--log-key", "not-a-key"]);
    assert_eq!(code, 2, "bad key");
    let (code, _, _) = verify(&["log", "--url", &url, "--log-key", &lkey, "--quorum", "2"]);
    assert_eq!(code, 2, "quorum larger than the witness keys given");
}

#[test]
fn wrong_keys_and_unreachable_logs_are_named_for_what_they_are() {
    let mut log = Log::init();
    let w = Witness::start("w9.example/witness", &["--log", &log.vkey().to_vkey()]);
    log.args = vec!["--witness".into(), w.log_arg()];
    log.spawn();
    let token = log.token();
    append(&log, &token, &[event("k", None)]);
    log.wait_checkpoint(1);
    let url = log.url();
    // The witness's key given as the log's: a usage error naming the key.
    let wkey = w.dir.path().join("witness.vkey");
    let (code, out, _) = verify(&["log", "--url", &url, "--log-key", wkey.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("w9.example/witness") && out.contains("not a log's key"),
        "{out}"
    );
    // Another log's key: a usage error naming both origins.
    let other = SignerKey::from_seed("other.example/log", vellum_spec::note::ALG_ED25519, [5; 32])
        .unwrap()
        .verifier()
        .to_vkey();
    let (code, out, _) = verify(&["log", "--url", &url, "--log-key", &other]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("other.example/log") && out.contains("test.example/log"),
        "{out}"
    );
    // A key file that does not exist.
    let (code, out, _) = verify(&["log", "--url", &url, "--log-key", "nosuchfile"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no such file"), "{out}");
    // Nothing listens: operational, naming the host and the cause.
    let lkey = log.data().join("log.vkey");
    let port = vellum_tests::free_port();
    let (code, out, _) = verify(&[
        "log",
        "--url",
        &format!("http://127.0.0.1:{port}"),
        "--log-key",
        lkey.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(&format!("cannot connect to 127.0.0.1:{port}")) && out.contains("refused"),
        "{out}"
    );
    // Sessions without seq are counted as such.
    let (code, out, _) = verify(&[
        "log",
        "--url",
        &url,
        "--log-key",
        lkey.to_str().unwrap(),
        "--token",
        &token,
        "--full",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("0 entries with a seq in 0 sessions; 1 entries with a session but no seq"),
        "{out}"
    );
}
