//! The properties every parser of outside bytes must keep, one function per
//! fuzz target. Each takes arbitrary bytes and panics only if a property
//! fails: a parser never panics, and what it accepts round-trips. The
//! coverage-guided targets in `fuzz/` call these; `tests/fuzz_corpus.rs`
//! replays the checked-in corpora and every crash found through them on
//! stable Rust, so a regression fails the ordinary test suite.

use crate::{bundle, checkpoint, event, jcs, leaf, note, proof, tile, witness};

/// A property check over arbitrary bytes.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name (as in `fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: &[(&str, Check)] = &[
    ("event", event),
    ("jcs", jcs),
    ("leaf", leaf),
    ("note", note),
    ("checkpoint", checkpoint),
    ("witness_request", witness_request),
    ("receipt", receipt),
    ("tile_path", tile_path),
    ("entry_bundle", entry_bundle),
    ("evidence_bundle", evidence_bundle),
];

/// A gateway's request body, as `POST /v1/events` reads it: strict JSON,
/// then each event sealed. A sealed leaf is canonical, within the size
/// limit, and passes the stored-leaf check, fast and full alike. The
/// one-pass fast path seals exactly as the general path does, or defers.
pub fn event(data: &[u8]) {
    const AT: &str = "2026-06-20T14:07:31.120Z";
    let id = || "00000000000000000000000000000000".to_string();
    let fast = std::str::from_utf8(data)
        .ok()
        .and_then(|t| event::seal_body_fast(t, "fuzz-gw", AT, 64, id));
    let Ok(v) = jcs::parse_strict(data) else {
        assert!(
            fast.is_none(),
            "the fast path sealed a body strict JSON refuses"
        );
        return;
    };
    if let Some((fast, _)) = &fast {
        let values = match v.clone() {
            serde_json::Value::Array(a) => a,
            other => vec![other],
        };
        let slow: Vec<event::Sealed> = values
            .into_iter()
            .map(|v| event::seal(v, "fuzz-gw", AT, id).expect("the general path seals it too"))
            .collect();
        assert_eq!(fast, &slow, "fast and general sealing differ");
    }
    let values = match v {
        serde_json::Value::Array(a) => a,
        other => vec![other],
    };
    for v in values.into_iter().take(64) {
        let Ok(sealed) = event::seal(v, "fuzz-gw", "2026-06-20T14:07:31.120Z", || {
            "00000000000000000000000000000000".into()
        }) else {
            continue;
        };
        assert!(sealed.leaf.len() <= tile::MAX_ENTRY_SIZE);
        let full = event::check_leaf(&sealed.leaf).expect("a sealed leaf passes check_leaf");
        let again = jcs::canonicalize(&serde_json::Value::Object(full)).expect("canonical");
        assert_eq!(again, sealed.leaf, "a sealed leaf is in canonical form");
        leaf::check_leaf_facts(&sealed.leaf).expect("the fast check accepts a sealed leaf");
        let at = sealed.logged_at_offset;
        assert_eq!(
            &sealed.leaf[at..at + event::LOGGED_AT_LEN],
            b"\"2026-06-20T14:07:31.120Z\""
        );
    }
}

/// RFC 8785: what the strict parser accepts, serde_json accepts too, and
/// its canonical form re-parses and canonicalizes to itself; the borrowed
/// parser takes only what it accepts, with the same canonical form.
pub fn jcs(data: &[u8]) {
    let fast = std::str::from_utf8(data)
        .ok()
        .and_then(crate::borrowed::parse);
    let Ok(v) = jcs::parse_strict(data) else {
        assert!(
            fast.is_none(),
            "the borrowed parser took what strict JSON refuses"
        );
        return;
    };
    if let Some(tree) = &fast {
        let mut out = Vec::new();
        crate::borrowed::write(tree, &mut out);
        assert_eq!(
            Some(out),
            jcs::canonicalize(&v).ok(),
            "borrowed and general canonical forms differ"
        );
    }
    assert!(
        serde_json::from_slice::<serde_json::Value>(data).is_ok(),
        "strict accepted what serde_json refuses"
    );
    let Ok(c) = jcs::canonicalize(&v) else {
        return;
    };
    let v2 = jcs::parse_strict(&c).expect("canonical output re-parses");
    assert_eq!(
        jcs::canonicalize(&v2).expect("canonical"),
        c,
        "JCS is idempotent"
    );
}

/// A stored leaf: the allocation-free scanner agrees with the full check,
/// verdict and facts alike.
pub fn leaf(data: &[u8]) {
    let full = event::check_leaf(data);
    let fast = leaf::check_leaf_facts(data);
    assert_eq!(full.is_ok(), fast.is_ok(), "fast and full checks disagree");
    if let (Ok(obj), Ok(f)) = (full, fast) {
        let s = |k: &str| obj.get(k).and_then(|v| v.as_str());
        assert_eq!(f.session.as_deref(), s("session"));
        assert_eq!(f.verdict, s("verdict").unwrap_or_default());
        assert_eq!(f.seq, obj.get("seq").and_then(|v| v.as_u64()));
        assert_eq!(f.get("agent"), s("agent"));
        assert_eq!(f.get("rule"), s("rule"));
    }
}

/// C2SP signed-note: a parsed note serializes and re-parses to itself; a
/// checkpoint inside it round-trips exactly.
pub fn note(data: &[u8]) {
    let Ok(n) = note::Note::parse(data) else {
        return;
    };
    let again = note::Note::parse(&n.to_bytes()).expect("a parsed note re-parses");
    assert_eq!(again, n);
    if let Ok(cp) = checkpoint::Checkpoint::parse(&n.text) {
        assert_eq!(cp.to_text(), n.text, "a checkpoint round-trips exactly");
    }
    let key = note::VerifierKey::parse(FUZZ_VKEY).expect("fuzz key");
    let _ = n.verify(std::slice::from_ref(&key));
    let _ = n.verify_each(&[key]);
}

/// C2SP tlog-checkpoint text: what parses prints back identically.
pub fn checkpoint(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cp) = checkpoint::Checkpoint::parse(s) {
        assert_eq!(cp.to_text(), s);
    }
    if let Some(n) = checkpoint::parse_canonical_u64(s) {
        assert_eq!(n.to_string(), s);
    }
}

/// C2SP tlog-witness `add-checkpoint` bodies and the 409 size body.
pub fn witness_request(data: &[u8]) {
    if let Ok(req) = witness::AddCheckpoint::parse(data) {
        let again = witness::AddCheckpoint::parse(&req.to_bytes()).expect("re-parses");
        assert_eq!(again.old, req.old);
        assert_eq!(again.proof, req.proof);
        assert_eq!(again.note, req.note);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(n) = witness::parse_size_body(s) {
            assert_eq!(witness::parse_size_body(&format!("{n}\n")), Some(n));
        }
    }
}

/// C2SP tlog-proof receipts: what parses re-parses from its text form.
pub fn receipt(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = proof::TlogProof::parse(s) else {
        return;
    };
    let again = proof::TlogProof::parse(&p.to_text()).expect("a parsed receipt re-parses");
    assert_eq!(again.index, p.index);
    assert_eq!(again.proof, p.proof);
    assert_eq!(again.extra, p.extra);
    let key = note::VerifierKey::parse(FUZZ_VKEY).expect("fuzz key");
    let _ = p.verify(None, &key, &[], 0);
}

/// C2SP tlog-tiles paths: a parsed path is the canonical path of its tile.
pub fn tile_path(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = tile::parse_tile_path(s) {
        assert_eq!(id.path(false), s);
    }
    if let Ok(id) = tile::parse_entries_path(s) {
        assert_eq!(id.path(true), s);
    }
}

/// C2SP entry bundles: a parsed bundle re-encodes to the same bytes.
pub fn entry_bundle(data: &[u8]) {
    let Ok(entries) = tile::parse_bundle(data) else {
        return;
    };
    let mut again = Vec::with_capacity(data.len());
    for e in &entries {
        tile::push_bundle_entry(&mut again, e).expect("a parsed entry re-encodes");
    }
    assert_eq!(again, data);
    let _ = tile::tile_hashes(data);
}

/// Evidence bundles (`vellum-bundle/v1`): the streaming checker reads any
/// bytes without panicking, line by line, header first.
pub fn evidence_bundle(data: &[u8]) {
    let key = note::VerifierKey::parse(FUZZ_VKEY).expect("fuzz key");
    let mut lines = data.split(|b| *b == b'\n');
    let Some(header) = lines.next() else {
        return;
    };
    let Ok(mut check) = bundle::BundleCheck::open(header, &key, &[], 0, None) else {
        return;
    };
    for line in lines.take(10_000) {
        if line.is_empty() {
            continue;
        }
        if check.record(line).is_err() {
            return;
        }
    }
    let _ = check.finish();
}

/// The verifier key the fuzz seeds are signed with (seed `[42; 32]`, name
/// `fuzz.example/log`), so that signature checks can pass and the
/// fuzzers reach what lies behind them.
pub const FUZZ_VKEY: &str =
    "fuzz.example/log+464a03a3+ARl/ayPhbIUyxqvIOPrNXqeJvgx2spIDNAOb+os9No1h";
