//! tlog-witness and tlog-proof: the specs' own examples, and the witness's
//! decision table.

use serde_json::Value;
use vellum_spec::merkle::{prove_consistency, reference_root};
use vellum_spec::proof::TlogProof;
use vellum_spec::witness::{check_update, origin_hash, AddCheckpoint, WitnessError, Witnessed};
use vellum_spec::{leaf_hash, Checkpoint, Hash, EMPTY_ROOT};

mod common;
use common::MemTree;

fn vector() -> Value {
    common::vector("c2sp-witness.json")
}

#[test]
fn c2sp_add_checkpoint_example_parses_and_round_trips() {
    let v = vector();
    let body = v["add_checkpoint_request"].as_str().unwrap().as_bytes();
    let req = AddCheckpoint::parse(body).unwrap();
    assert_eq!(req.old, v["request_old"].as_u64().unwrap());
    assert_eq!(
        req.proof.len(),
        v["request_proof_lines"].as_u64().unwrap() as usize
    );
    let note = vellum_spec::Note::parse(&req.note).unwrap();
    assert_eq!(note.sigs.len(), 2);
    assert_eq!(Checkpoint::parse(&note.text).unwrap().size, 20852163);
    assert_eq!(req.to_bytes(), body);
}

#[test]
fn c2sp_origin_hash_example() {
    let v = vector();
    let o = &v["origin_hash"];
    assert_eq!(
        origin_hash(o["origin"].as_str().unwrap()),
        o["hex"].as_str().unwrap()
    );
}

#[test]
fn c2sp_tlog_proof_example_parses_and_round_trips() {
    let v = vector();
    let text = v["tlog_proof_head"].as_str().unwrap();
    let p = TlogProof::parse(text).unwrap();
    assert_eq!(p.index, v["tlog_proof_index"].as_u64().unwrap());
    assert_eq!(
        p.proof.len(),
        v["tlog_proof_hashes"].as_u64().unwrap() as usize
    );
    assert_eq!(p.extra.as_ref().unwrap().len(), 39);
    assert_eq!(p.to_text(), text);
    // Without extra, and malformed forms.
    let bare = text.replacen(
        "extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n",
        "",
        1,
    );
    assert_eq!(TlogProof::parse(&bare).unwrap().extra, None);
    for bad in [
        text.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1),
        text.replacen("index 73894", "index 073894", 1),
        text.replacen("index 73894", "idx 73894", 1),
        text.replacen("gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=", "gSKy", 1),
        text.replacen("\n\n", "\n", 1),
    ] {
        assert!(TlogProof::parse(&bad).is_err(), "{bad}");
    }
}

#[test]
fn malformed_requests_are_400() {
    let note = "example.com/x\n1\nAAAA\n\n\u{2014} x y\n";
    for bad in [
        "old 1".to_string(),                    // no empty line
        format!("old\n\n{note}"),               // no size
        format!("old 01\n\n{note}"),            // leading zero
        format!("old -1\n\n{note}"),            // sign
        format!("old 1 \n\n{note}"),            // trailing space
        format!("new 1\n\n{note}"),             // wrong keyword
        format!("old 1\nnot-base64\n\n{note}"), // proof line
        format!("old 1\nAAAA\n\n{note}"),       // proof line of 3 bytes
    ] {
        let e = AddCheckpoint::parse(bad.as_bytes()).expect_err(&bad);
        assert_eq!(e.status(), 400, "{bad:?}");
    }
    // The framing is fine here; the note is then refused by open_checkpoint.
    let ok = AddCheckpoint::parse(format!("old 1\n\n{note}").as_bytes()).unwrap();
    assert_eq!((ok.old, ok.proof.len()), (1, 0));
    let e = vellum_spec::witness::open_checkpoint(&ok, |_| None).unwrap_err();
    assert_eq!(e.status(), 400, "{e}");
}

fn cp(size: u64, root: Hash) -> Checkpoint {
    Checkpoint {
        origin: "o".into(),
        size,
        root,
        extensions: vec![],
    }
}

#[test]
fn decision_table() {
    let t = MemTree::new((0..40u32).map(|i| leaf_hash(&i.to_be_bytes())).collect());
    let f = MemTree::new(
        (0..40u32)
            .map(|i| leaf_hash(&(i + 1000).to_be_bytes()))
            .collect(),
    );
    let root = |l: &MemTree, n: u64| reference_root(&l.leaves()[..n as usize]);
    let at10 = Some(Witnessed {
        size: 10,
        root: root(&t, 10),
    });
    let p = |a, b, l: &MemTree| prove_consistency(a, b, l).unwrap();
    let status = |r: Result<(), WitnessError>| r.err().map_or(200, |e| e.status());

    // Never cosigned: old 0, empty proof.
    assert_eq!(
        status(check_update(None, 0, &[], &cp(10, root(&t, 10)))),
        200
    );
    assert_eq!(
        status(check_update(None, 0, &[root(&t, 1)], &cp(10, root(&t, 10)))),
        422
    );
    assert_eq!(status(check_update(None, 0, &[], &cp(0, EMPTY_ROOT))), 200);
    assert_eq!(status(check_update(None, 0, &[], &cp(0, root(&t, 1)))), 422);
    assert_eq!(
        status(check_update(None, 3, &[], &cp(10, root(&t, 10)))),
        409
    );
    // From 10.
    for n in 11..40 {
        assert_eq!(
            status(check_update(at10, 10, &p(10, n, &t), &cp(n, root(&t, n)))),
            200,
            "{n}"
        );
        assert_eq!(
            status(check_update(at10, 10, &p(10, n, &f), &cp(n, root(&f, n)))),
            422,
            "fork {n}"
        );
        let mut bad = p(10, n, &t);
        bad[0].0[31] ^= 1;
        assert_eq!(
            status(check_update(at10, 10, &bad, &cp(n, root(&t, n)))),
            422,
            "bad proof {n}"
        );
        assert_eq!(
            status(check_update(at10, 9, &p(9, n, &t), &cp(n, root(&t, n)))),
            409
        );
    }
    assert_eq!(
        status(check_update(at10, 10, &[], &cp(10, root(&t, 10)))),
        200
    );
    assert!(matches!(
        check_update(at10, 10, &[], &cp(10, root(&f, 10))),
        Err(WitnessError::Fork { size: 10 })
    ));
    assert_eq!(
        status(check_update(
            at10,
            10,
            &[root(&t, 1)],
            &cp(10, root(&t, 10))
        )),
        422
    );
    assert_eq!(
        status(check_update(at10, 10, &[], &cp(5, root(&t, 5)))),
        400
    );
    match check_update(at10, 5, &[], &cp(5, root(&t, 5))) {
        Err(WitnessError::Conflict {
            old: 5,
            current: 10,
        }) => {}
        other => panic!("{other:?}"),
    }
}
