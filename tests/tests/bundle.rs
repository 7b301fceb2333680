//! Evidence bundles end to end: `vellum export` of a time window resolves
//! to exactly the entries logged in it, verifies offline with
//! `vellum-verify bundle` (also with `--since` and a witness quorum), and
//! each edit on disk (event changed, event removed, proof altered,
//! checkpoint swapped, file cut short) fails with exit 1 naming the check.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use vellum_spec::bundle::{manifest_statement, Header};
use vellum_spec::note::{Note, SignerKey, ALG_COSIGNATURE_V1};
use vellum_spec::proof::verify_checkpoint;
use vellum_tests::{event, verify, Log, Witness};

fn append(log: &Log, token: &str, tag: &str, n: usize) -> Vec<u64> {
    let evs: Vec<Value> = (0..n)
        .map(|i| {
            let mut e = event(&format!("{tag}-{}", i % 3), None);
            e["verdict"] = Value::from(if i % 4 == 0 { "deny" } else { "allow" });
            e
        })
        .collect();
    let (st, body) = log.post_events(Some(token), serde_json::to_vec(&evs).unwrap());
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect()
}

fn logged_at(log: &Log, token: &str, index: u64) -> String {
    log.get_json(&format!("/v1/entries/{index}"), Some(token))["event"]["logged_at"]
        .as_str()
        .unwrap()
        .to_string()
}

fn export(log: &Log, admin: &str, out: &Path, args: &[&str]) {
    let o = std::process::Command::new(vellum_tests::bin("vellum"))
        .args([
            "export",
            "--url",
            &log.url(),
            "--token",
            admin,
            "-o",
            out.to_str().unwrap(),
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "vellum export: {o:?}");
}

fn edit(src: &Path, dst: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let text = std::fs::read_to_string(src).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    f(&mut lines);
    std::fs::write(dst, lines.join("\n") + "\n").unwrap();
}

#[test]
fn bundles_prove_a_window_and_every_edit_is_caught() {
    let mut log = Log::init();
    let lkey = log.vkey().to_vkey();
    let w = Witness::start("w1.example", &["--log", &lkey]);
    let wkey = w.vkey().to_vkey();
    log.args = vec!["--witness".into(), w.log_arg()];
    log.spawn();
    let token = log.token();
    let out = log.cli(&["token", "add", "auditor", "--scopes", "admin"]);
    assert!(out.status.success(), "{out:?}");
    let admin = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .to_string();

    let a = append(&log, &token, "a", 300);
    let held = log.wait_note(300).1;
    std::thread::sleep(Duration::from_millis(30));
    let b = append(&log, &token, "b", 300);
    std::thread::sleep(Duration::from_millis(30));
    let c = append(&log, &token, "c", 100);
    log.wait_note(700);
    let (from, to) = (logged_at(&log, &token, b[0]), logged_at(&log, &token, c[0]));
    assert!(logged_at(&log, &token, a[299]) < from);

    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let held_file = p("held.note");
    std::fs::write(&held_file, &held).unwrap();

    // The window of batch b: exactly indexes 300..600, complete.
    export(
        &log,
        &admin,
        &p("b.jsonl"),
        &["--from", &from, "--to", &to, "--since", "300"],
    );
    let head: Value = serde_json::from_str(
        std::fs::read_to_string(p("b.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let scope = &head["manifest"]["scope"];
    assert_eq!(
        (scope["first_index"].as_u64(), scope["end_index"].as_u64()),
        (Some(300), Some(600))
    );
    assert_eq!(scope["complete"], true);
    assert_eq!(head["manifest"]["counts"]["events"], 300);
    assert_eq!(head["manifest"]["counts"]["deny"], 75);
    let bundle = |file: &str, extra: &[&str]| {
        let f = p(file);
        let mut args = vec![
            "bundle",
            f.to_str().unwrap(),
            "--log-key",
            &lkey,
            "--witness-key",
            &wkey,
        ];
        args.extend_from_slice(extra);
        verify(&args)
    };
    let report = p("report.html");
    let (code, out, err) = bundle(
        "b.jsonl",
        &[
            "--since",
            held_file.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("all 300 entries of indexes 300..600 are present"),
        "{out}"
    );
    assert!(
        out.contains("extends your earlier checkpoint (size 300)"),
        "{out}"
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("VERIFIED") && html.contains("w1.example") && html.contains("vellum-verify"),
        "{html}"
    );

    // Access and bad parameters.
    assert_eq!(log.get("/v1/export", None).0, 401);
    assert_eq!(
        log.get("/v1/export", Some(&token)).0,
        403,
        "the gateway token has no admin scope"
    );
    for (q, names) in [
        ("verdict=maybe", "verdict"),
        ("colour=red", "colour"),
        ("from=yesterday", "from"),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "after"),
        ("since=100000", "since"),
        ("agent=a&agent=b", "agent"),
    ] {
        let (st, body) = log.get(&format!("/v1/export?{q}"), Some(&admin));
        let body = String::from_utf8_lossy(&body);
        assert_eq!(st, 400, "{q}: {body}");
        assert!(body.contains(names), "{q}: {body}");
    }

    // Whole log; and a filtered export says what it does not prove.
    export(&log, &admin, &p("all.jsonl"), &[]);
    let (code, out, _) = bundle("all.jsonl", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("entries verified: 700/700"), "{out}");
    export(
        &log,
        &admin,
        &p("deny.jsonl"),
        &["--verdict", "deny", "--agent", "b-0"],
    );
    let (code, out, _) = bundle("deny.jsonl", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("NOT proven"), "{out}");

    // Edits on disk, each caught.
    let src = p("b.jsonl");
    let case = |name: &str, f: &dyn Fn(&mut Vec<String>), check: &str| {
        edit(&src, &p(name), |l| f(l));
        let (code, out, err) = bundle(name, &[]);
        assert_eq!(code, 1, "{name}: {out}\n{err}");
        assert!(
            out.contains(&format!("{check} check failed")),
            "{name} should fail {check}:\n{out}"
        );
    };
    case(
        "changed.jsonl",
        &|l| l[10] = l[10].replacen("db.query", "db.qvery", 1),
        "inclusion",
    );
    case(
        "removed.jsonl",
        &|l| {
            l.remove(50);
        },
        "completeness",
    );
    case(
        "proof.jsonl",
        &|l| {
            let at = l[20].find("\"proof\":[\"").unwrap() + 10;
            let c = if &l[20][at..at + 1] == "A" { "B" } else { "A" };
            l[20].replace_range(at..at + 1, c);
        },
        "inclusion",
    );
    let held_text = String::from_utf8(held.clone()).unwrap();
    case(
        "swapped.jsonl",
        &|l| {
            let mut h: Value = serde_json::from_str(&l[0]).unwrap();
            h["checkpoint"] = Value::from(held_text.clone());
            l[0] = h.to_string();
        },
        "manifest",
    );
    case(
        "swapped-and-resized.jsonl",
        &|l| {
            let mut h: Value = serde_json::from_str(&l[0]).unwrap();
            h["checkpoint"] = Value::from(held_text.clone());
            h["manifest"]["checkpoint_size"] = Value::from(300);
            h["manifest"]["scope"]["end_index"] = Value::from(300);
            l[0] = h.to_string();
        },
        "manifest",
    );
    case(
        "truncated.jsonl",
        &|l| {
            l.pop();
        },
        "truncated",
    );
    // Counts edited: the log's signature over the manifest no longer holds;
    // re-signed with the log's real key, the recount still catches it.
    let recount = |l: &mut Vec<String>, resign: bool| {
        let mut h: Header = serde_json::from_str(&l[0]).unwrap();
        *h.manifest.counts.get_mut("deny").unwrap() = 1;
        if resign {
            let (_, cp, _) =
                verify_checkpoint(h.checkpoint.as_bytes(), &log.vkey(), &[], 0).unwrap();
            let skey = std::fs::read_to_string(log.data().join("log.key")).unwrap();
            let signer = SignerKey::parse(skey.trim()).unwrap();
            let text = manifest_statement(&h.manifest, &cp);
            h.manifest_signature =
                String::from_utf8(Note::sign(&text, &[&signer]).unwrap().to_bytes()).unwrap();
        }
        l[0] = serde_json::to_string(&h).unwrap();
    };
    case("recounted.jsonl", &|l| recount(l, false), "manifest");
    case("recounted-resigned.jsonl", &|l| recount(l, true), "counts");
    case(
        "end-line.jsonl",
        &|l| {
            let last = l.len() - 1;
            l[last] = r#"{"kind":"end","events":299}"#.into();
        },
        "counts",
    );
    // The boundary record moved: the window would start later than claimed.
    case(
        "no-before.jsonl",
        &|l| {
            l.remove(1);
        },
        "order",
    );
    // A quorum the bundle's checkpoint does not meet: a second witness
    // that never cosigned.
    let other = SignerKey::from_seed("w2.example", ALG_COSIGNATURE_V1, [5; 32])
        .unwrap()
        .verifier()
        .to_vkey();
    let (code, out, _) = verify(&[
        "bundle",
        src.to_str().unwrap(),
        "--log-key",
        &lkey,
        "--witness-key",
        &wkey,
        "--witness-key",
        &other,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("quorum check failed"), "{out}");
    // Operational and usage errors are not verification failures.
    let (code, _, _) = verify(&[
        "bundle",
        p("missing.jsonl").to_str().unwrap(),
        "--log-key",
        &lkey,
    ]);
    assert_eq!(code, 3);
    let (code, _, _) = verify(&["bundle", src.to_str().unwrap(), "--log-key", "nonsense"]);
    assert_eq!(code, 2);
}
