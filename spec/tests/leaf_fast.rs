//! The fast leaf check agrees with the full one: whenever the scanner
//! accepts a leaf, `check_leaf` accepts it too and the facts are the same;
//! on honest leaves the scanner decides (the fast path is taken). Checked
//! on sealed random events and on many single-byte and structural
//! mutations of them.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use vellum_spec::event::{check_leaf, seal};
use vellum_spec::leaf::{check_leaf_facts, fast};

fn random_event(r: &mut StdRng) -> Value {
    let s = |r: &mut StdRng, n: usize| -> String {
        let pool = [
            "a", "b", "Z", "é", "\"", "\\", "\n", "\u{1}", "/", " ", "日", "😀", "\u{7f}",
            "\u{2028}", "0",
        ];
        (0..r.gen_range(1..n))
            .map(|_| pool[r.gen_range(0..pool.len())])
            .collect()
    };
    let mut e = json!({
        "ts": "2026-06-20T14:07:31.120Z", "agent": s(r, 6), "principal": s(r, 6),
        "owner": s(r, 4), "tool": s(r, 8),
        "verdict": (["allow", "deny", "approve", "review"][r.gen_range(0..4)]),
    });
    let o = e.as_object_mut().unwrap();
    if r.gen_bool(0.5) {
        o.insert("session".into(), json!(s(r, 5)));
    }
    if r.gen_bool(0.5) {
        o.insert("seq".into(), json!(r.gen_range(0..1_000_000u64)));
    }
    if r.gen_bool(0.3) {
        o.insert("risk".into(), json!(r.gen_range(0..=100)));
    }
    if r.gen_bool(0.3) {
        o.insert("latency_ms".into(), json!(r.gen_range(0..100_000)));
    }
    if r.gen_bool(0.3) {
        o.insert(
            "result".into(),
            json!({"status": r.gen_range(-5..600), "error": s(r, 4)}),
        );
    }
    if r.gen_bool(0.3) {
        o.insert(
            "provenance".into(),
            json!((["trusted", "untrusted"][r.gen_range(0..2)])),
        );
    }
    if r.gen_bool(0.3) {
        o.insert(
            "args_hash".into(),
            json!(format!("sha256:{}", "aB3".repeat(21) + "f")),
        );
    }
    if r.gen_bool(0.3) {
        o.insert("args".into(), json!({"x": [1, -2, 3.5, 1e300, true, null, {"k": s(r, 4)}], "é": 1, "": {}, "big": 12345678901234568.0f64}));
    }
    if r.gen_bool(0.3) {
        o.insert("attrs".into(), json!({"a": {"b": [s(r, 3)]}, "n": 0}));
    }
    if r.gen_bool(0.3) {
        o.insert("rule".into(), json!(s(r, 5)));
    }
    e
}

#[test]
fn fast_path_agrees_with_the_full_check() {
    let mut r = StdRng::seed_from_u64(9162);
    let (mut taken, mut honest) = (0, 0);
    let mut mutated_accepts = 0;
    for n in 0..3000 {
        let ev = random_event(&mut r);
        let leaf = seal(ev, "gw", "2026-06-20T14:07:32.000Z", || format!("id-{n}"))
            .unwrap()
            .leaf;
        honest += 1;
        let full = check_leaf(&leaf).expect("sealed leaves are valid");
        let facts = check_leaf_facts(&leaf).unwrap();
        assert_eq!(facts.seq, full.get("seq").and_then(Value::as_u64));
        assert_eq!(
            facts.session.as_deref(),
            full.get("session").and_then(Value::as_str)
        );
        for f in ["agent", "principal", "owner", "rule", "verdict"] {
            assert_eq!(facts.get(f), full.get(f).and_then(Value::as_str), "{f}");
        }
        if fast(&leaf).is_some() {
            taken += 1;
        }
        for _ in 0..20 {
            let mut m = leaf.clone();
            match r.gen_range(0..4) {
                0 => {
                    let i = r.gen_range(0..m.len());
                    m[i] = r.gen();
                }
                1 => {
                    let i = r.gen_range(0..m.len());
                    m.remove(i);
                }
                2 => {
                    let i = r.gen_range(0..m.len());
                    let c = b" ,:\"\\{}[]0-.eu"[r.gen_range(0..14)];
                    m.insert(i, c);
                }
                _ => {
                    let i = r.gen_range(0..m.len());
                    let j = r.gen_range(0..m.len());
                    m.swap(i, j);
                }
            }
            if let Some(f) = fast(&m) {
                mutated_accepts += 1;
                let obj = check_leaf(&m).unwrap_or_else(|e| {
                    panic!(
                        "fast path accepted what the full check refuses ({e}): {}",
                        String::from_utf8_lossy(&m)
                    )
                });
                assert_eq!(f.seq, obj.get("seq").and_then(Value::as_u64));
                assert_eq!(
                    f.session.as_deref(),
                    obj.get("session").and_then(Value::as_str)
                );
                for k in ["agent", "principal", "owner", "rule", "verdict"] {
                    assert_eq!(f.get(k), obj.get(k).and_then(Value::as_str), "{k}");
                }
            }
        }
    }
    // Many honest leaves take the fast path (the others hold floats,
    // long integers or non-ASCII keys in args, or an escaped session).
    assert!(
        taken * 10 > honest * 4,
        "fast path taken for only {taken} of {honest}"
    );
    // Some mutations stay valid (e.g. a changed letter) and must be accepted by both.
    assert!(mutated_accepts > 100, "{mutated_accepts}");
}

/// The scanner checks UTF-8 only inside strings: every malformed sequence
/// in any string is refused by both checks, and well-formed non-ASCII text
/// is accepted by the scanner itself with the same facts.
#[test]
fn utf8_inside_strings_is_checked_by_the_scanner() {
    let leaf = seal(
        json!({"ts": "2026-06-20T14:07:31.120Z", "agent": "agent-7", "principal": "p",
               "owner": "o", "tool": "t", "verdict": "allow", "session": "s-1", "seq": 4,
               "reason": "r", "rule": "q"}),
        "gw",
        "2026-06-20T14:07:32.000Z",
        || "id-1".to_string(),
    )
    .unwrap()
    .leaf;
    let text = String::from_utf8(leaf).unwrap();
    let bad: [&[u8]; 9] = [
        b"\x80",             // lone continuation byte
        b"\xc0\x80",         // overlong NUL
        b"\xc1\xbf",         // overlong
        b"\xe0\x80\xaf",     // overlong '/'
        b"\xed\xa0\x80",     // UTF-16 surrogate
        b"\xe6\x97",         // truncated
        b"\xf4\x90\x80\x80", // above U+10FFFF
        b"\xf5\x80\x80\x80", // never a lead byte
        b"\xff",
    ];
    for field in ["agent", "principal", "session", "reason", "rule", "tool"] {
        let at = text.find(&format!("\"{field}\":\"")).unwrap() + field.len() + 4;
        for b in bad {
            for pos in [at, at + 1] {
                let mut m = text.as_bytes().to_vec();
                m.splice(pos..pos, b.iter().copied());
                assert!(fast(&m).is_none(), "{field}: {b:x?} at {pos}");
                assert!(check_leaf_facts(&m).is_err(), "{field}: {b:x?}");
            }
        }
        for good in ["é", "日本", "😀x", "aé日😀"] {
            let mut m = text.as_bytes().to_vec();
            m.splice(at..at, good.bytes());
            let f = fast(&m).unwrap_or_else(|| panic!("{field}: {good} not taken"));
            let full = check_leaf(&m).unwrap();
            for k in ["agent", "principal", "owner", "rule", "verdict", "session"] {
                assert_eq!(f.get(k), full.get(k).and_then(Value::as_str), "{k}");
            }
        }
    }
    // Outside strings a non-ASCII byte is never JSON.
    let mut m = text.as_bytes().to_vec();
    m.splice(1..1, "é".bytes());
    assert!(fast(&m).is_none() && check_leaf_facts(&m).is_err());
}
