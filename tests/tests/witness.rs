//! The witness binary against hostile and honest clients: every refusal in
//! C2SP tlog-witness with its status, state unchanged after each, fork
//! evidence kept, kill -9 durability, racing updates, config reload.
//! The test plays the log: it signs checkpoints of an in-memory tree.

use std::time::Duration;

use vellum_spec::merkle::prove_consistency;
use vellum_spec::merkle::MemoryTree;
use vellum_spec::note::{Note, NoteSignature, SignerKey, ALG_ED25519};
use vellum_spec::witness::AddCheckpoint;
use vellum_spec::{Checkpoint, Hash};
use vellum_tests::{mem_tree, Witness};

const ORIGIN: &str = "hostile.example/log";

fn log_key(seed: u8) -> SignerKey {
    SignerKey::from_seed(ORIGIN, ALG_ED25519, [seed; 32]).unwrap()
}

fn note(key: &SignerKey, size: u64, root: Hash) -> Vec<u8> {
    let text = Checkpoint {
        origin: key.name.clone(),
        size,
        root,
        extensions: vec![],
    }
    .to_text();
    Note::sign(&text, &[key]).unwrap().to_bytes()
}

fn body(old: u64, proof: Vec<Hash>, note: Vec<u8>) -> Vec<u8> {
    AddCheckpoint { old, proof, note }.to_bytes()
}

/// A well-formed request moving the witness from `old` to `new` on `tree`.
fn honest(key: &SignerKey, tree: &MemoryTree, old: u64, new: u64) -> Vec<u8> {
    let proof = if old == 0 {
        vec![]
    } else {
        prove_consistency(old, new, tree).unwrap()
    };
    body(old, proof, note(key, new, root(tree, new)))
}

fn root(t: &MemoryTree, size: u64) -> Hash {
    t.root(size).unwrap()
}

fn state(w: &Witness) -> (Option<u64>, Option<String>) {
    let s = w.status();
    let log = &s["logs"][0];
    (log["size"].as_u64(), log["root"].as_str().map(String::from))
}

#[test]
fn every_refusal_has_the_spec_status_and_leaves_state_unchanged() {
    let key = log_key(1);
    let vkey = key.verifier().to_vkey();
    let mut w = Witness::start("w.example/attacks", &["--log", &vkey]);
    let wkey = w.vkey();
    let tree = mem_tree("honest", 64);

    // First contact: old 0, no proof.
    let (st, _, line) = w.add_checkpoint(honest(&key, &tree, 0, 5));
    assert_eq!(st, 200, "{line}");
    let sig = NoteSignature::parse_line(line.trim_end()).unwrap();
    let text = Checkpoint {
        origin: ORIGIN.into(),
        size: 5,
        root: root(&tree, 5),
        extensions: vec![],
    }
    .to_text();
    let ts = wkey
        .verify(text.as_bytes(), &sig.sig)
        .expect("cosignature verifies with the witness key")
        .expect("cosignature/v1 has a timestamp");
    assert!(ts > 1_700_000_000);
    let at5 = state(&w);
    assert_eq!(at5.0, Some(5));

    let forked = mem_tree("forked", 64);
    let other_key = SignerKey::from_seed(ORIGIN, ALG_ED25519, [9; 32]).unwrap();
    let stranger = SignerKey::from_seed("stranger.example/log", ALG_ED25519, [1; 32]).unwrap();
    let too_many = vec![Hash::default(); 64];
    let mut bad_proof = prove_consistency(5, 8, &tree).unwrap();
    bad_proof[0].0[0] ^= 1;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("garbage", b"hello".to_vec(), 400, "empty line"),
        (
            "non-canonical old",
            {
                let mut b = honest(&key, &tree, 5, 8);
                b.splice(0..5, b"old 05".iter().copied());
                b
            },
            400,
            "leading zeros",
        ),
        (
            "proof line not a hash",
            {
                let mut b = b"old 5\nAAAA\n\n".to_vec();
                b.extend(note(&key, 8, root(&tree, 8)));
                b
            },
            400,
            "proof line 1",
        ),
        (
            "64 proof lines",
            body(5, too_many, note(&key, 8, root(&tree, 8))),
            400,
            "63",
        ),
        (
            "unknown origin",
            body(0, vec![], note(&stranger, 5, root(&tree, 5))),
            404,
            "unknown log",
        ),
        (
            "signed by another key",
            body(
                5,
                prove_consistency(5, 8, &tree).unwrap(),
                note(&other_key, 8, root(&tree, 8)),
            ),
            403,
            "signature",
        ),
        (
            "rollback: old beyond size",
            body(5, vec![], note(&key, 3, root(&tree, 3))),
            400,
            "larger than",
        ),
        (
            "fork at the witnessed size",
            body(5, vec![], note(&key, 5, root(&forked, 5))),
            422,
            "fork",
        ),
        (
            "bad consistency proof",
            body(5, bad_proof, note(&key, 8, root(&tree, 8))),
            422,
            "consistency",
        ),
        (
            "forked tree, honest-looking proof",
            body(
                5,
                prove_consistency(5, 8, &forked).unwrap(),
                note(&key, 8, root(&forked, 8)),
            ),
            422,
            "consistency",
        ),
        (
            "old 0 probe",
            body(0, vec![root(&tree, 1)], note(&key, 8, root(&tree, 8))),
            409,
            "",
        ),
    ];
    for (name, b, want, needle) in cases {
        let (st, ct, text) = w.add_checkpoint(b);
        assert_eq!(st, want, "{name}: {text}");
        assert!(text.contains(needle), "{name}: {text:?} lacks {needle:?}");
        if st == 409 {
            assert_eq!(ct, "text/x.tlog.size", "{name}");
            assert_eq!(text, "5\n", "{name}");
        }
        assert_eq!(state(&w), at5, "{name} changed the witness state");
    }

    // `old` that does not match: 409 with the witness's size, so a log can retry.
    let (st, ct, text) = w.add_checkpoint(honest(&key, &tree, 4, 8));
    assert_eq!(
        (st, ct.as_str(), text.as_str()),
        (409, "text/x.tlog.size", "5\n")
    );
    // A rollback presented with a matching `old` is still refused.
    let (st, _, _) = w.add_checkpoint(body(3, vec![], note(&key, 3, root(&tree, 3))));
    assert_eq!(st, 409);
    assert_eq!(state(&w), at5);

    // The fork was kept as evidence, with both notes.
    let ev = w
        .http
        .get(format!("{}/evidence", w.url()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(ev.contains(&root(&tree, 5).to_base64()), "{ev}");
    assert!(ev.contains(&root(&forked, 5).to_base64()), "{ev}");
    assert_eq!(w.status()["forks_seen"], 1);

    // Oversized body: 413, nothing stored.
    let (st, _, _) = w.add_checkpoint(vec![b'x'; 1_200_000]);
    assert_eq!(st, 413);

    // The honest next step works, and its cosignature is not older.
    let (st, _, line) = w.add_checkpoint(honest(&key, &tree, 5, 8));
    assert_eq!(st, 200, "{line}");
    let sig = NoteSignature::parse_line(line.trim_end()).unwrap();
    let text8 = Checkpoint {
        origin: ORIGIN.into(),
        size: 8,
        root: root(&tree, 8),
        extensions: vec![],
    }
    .to_text();
    let ts8 = wkey.verify(text8.as_bytes(), &sig.sig).unwrap().unwrap();
    assert!(ts8 >= ts);
    // Same checkpoint again (same size, same root, empty proof): cosigned again.
    let (st, _, _) = w.add_checkpoint(honest(&key, &tree, 8, 8));
    assert_eq!(st, 200);

    // The monitoring path serves the cosigned checkpoint.
    let hash = vellum_spec::witness::origin_hash(ORIGIN);
    let cp = w
        .http
        .get(format!("{}/{hash}/checkpoint", w.url()))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let n = Note::parse(&cp).unwrap();
    assert_eq!(n.verify(&[key.verifier(), wkey.clone()]).unwrap().len(), 2);

    // kill -9 and restart: the state survives; a replay of the old step is refused.
    w.kill9();
    w.spawn();
    assert_eq!(state(&w).0, Some(8));
    let (st, _, text) = w.add_checkpoint(honest(&key, &tree, 5, 8));
    assert_eq!((st, text.as_str()), (409, "8\n"));
    let (st, _, _) = w.add_checkpoint(honest(&key, &tree, 8, 20));
    assert_eq!(st, 200);
}

#[test]
fn racing_updates_for_one_log_one_wins() {
    let key = log_key(2);
    let vkey = key.verifier().to_vkey();
    let w = Witness::start("w.example/race", &["--log", &vkey, "--rate", "0"]);
    let tree = mem_tree("race", 300);
    let mut size = 1;
    assert_eq!(w.add_checkpoint(honest(&key, &tree, 0, size)).0, 200);
    for round in 0..20 {
        // Two different extensions of the same state, sent at once.
        let a = honest(&key, &tree, size, size + 3);
        let b = honest(&key, &tree, size, size + 7);
        let (ra, rb) = std::thread::scope(|s| {
            let ha = s.spawn(|| w.add_checkpoint(a).0);
            let hb = s.spawn(|| w.add_checkpoint(b).0);
            (ha.join().unwrap(), hb.join().unwrap())
        });
        let mut got = [ra, rb];
        got.sort();
        assert_eq!(got, [200, 409], "round {round}");
        let now = state(&w).0.unwrap();
        assert!(now == size + 3 || now == size + 7);
        size = now;
    }
}

#[test]
fn rate_limit_and_log_list_reload() {
    let key = log_key(3);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("logs.toml");
    std::fs::write(&cfg, "").unwrap();
    let w = Witness::start(
        "w.example/config",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--rate",
            "1",
            "--burst",
            "2",
        ],
    );
    let tree = mem_tree("cfg", 20);
    assert_eq!(w.add_checkpoint(honest(&key, &tree, 0, 1)).0, 404);
    // Add the log to the file: accepted within a second, without a restart.
    std::fs::write(
        &cfg,
        format!("[[log]]\nvkey = \"{}\"\n", key.verifier().to_vkey()),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let st = w.add_checkpoint(honest(&key, &tree, 0, 1)).0;
        if st == 200 {
            break;
        }
        assert_eq!(st, 404);
        assert!(std::time::Instant::now() < deadline, "config not reloaded");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Burst of 2 (one used): the next one passes, then 429.
    let codes: Vec<u16> = (2..6)
        .map(|n| w.add_checkpoint(honest(&key, &tree, n - 1, n)).0)
        .collect();
    assert!(codes.contains(&429), "{codes:?}");
    // A broken file keeps the previous list.
    std::fs::write(&cfg, "[[log]]\nvkey = \"not a key\"\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let st = w.add_checkpoint(honest(&key, &tree, 0, 1)).0;
    assert_ne!(st, 404, "a bad file must not drop the logs");
}

/// Interoperability: the witness accepts and cosigns a real checkpoint
/// published by Google's arche2025h1.staging.ct.transparency.dev log (a
/// static-ct log: its note also carries an RFC 6962 line of a key type we
/// do not verify, which must be ignored), and refuses it once altered.
#[test]
fn witnesses_a_real_published_ct_checkpoint() {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../spec/vectors/signed-note.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let c = &v["real_cosigned_checkpoint"];
    let log_vkey = c["log_vkey"].as_str().unwrap();
    let real = c["note"].as_str().unwrap().as_bytes().to_vec();
    let w = Witness::start("w.example/interop", &["--log", log_vkey]);
    let wkey = w.vkey();

    let mut forged = real.clone();
    let at = forged.windows(10).position(|x| x == b"1432088532").unwrap();
    forged[at + 9] = b'3';
    let (st, _, _) = w.add_checkpoint(body(0, vec![], forged));
    assert_eq!(st, 403, "an altered checkpoint fails the log signature");

    let (st, _, line) = w.add_checkpoint(body(0, vec![], real.clone()));
    assert_eq!(st, 200, "{line}");
    let mut n = Note::parse(&real).unwrap();
    n.sigs
        .push(NoteSignature::parse_line(line.trim_end()).unwrap());
    let log = vellum_spec::VerifierKey::parse(log_vkey).unwrap();
    assert_eq!(n.verify(&[log, wkey]).unwrap().len(), 2);
    assert_eq!(state(&w).0, Some(1_432_088_532));
}
