//! The bad-input matrix: each refusal has the right status and a message
//! naming the field or rule, and nothing is written.

use serde_json::{json, Value};
use vellum_tests::*;

/// (case, token, body, expected status, words the message must contain)
type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);

#[test]
fn bad_input_matrix() {
    let log = Log::start(&["--max-batch", "50"]);
    let token = log.token();
    let good = serde_json::to_vec(&event("a", None)).unwrap();
    assert_eq!(log.post_events(Some(&token), good.clone()).0, 200);
    log.wait_checkpoint(1);
    let (cp_before, _) = log.checkpoint();

    let mut unknown = event("a", None);
    unknown["colour"] = json!("red");
    let mut missing = event("a", None);
    missing.as_object_mut().unwrap().remove("verdict");
    let mut wrong_type = event("a", None);
    wrong_type["risk"] = json!("high");
    let mut server_field = event("a", None);
    server_field["gateway"] = json!("spoofed");
    let mut huge = event("a", None);
    huge["args"] = json!("x".repeat(70_000));
    let batch_of = |n: usize| serde_json::to_vec(&vec![event("a", None); n]).unwrap();
    let mut mixed = vec![event("ok", None); 3];
    mixed.push(unknown.clone());
    let mut invalid_utf8 = b"{\"ts\":\"2026-06-20T14:07:31.120Z\",\"agent\":\"".to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(
        b"\",\"principal\":\"p\",\"owner\":\"o\",\"tool\":\"t\",\"verdict\":\"allow\"}",
    );

    let to = |v: &Value| serde_json::to_vec(v).unwrap();
    let cases: Vec<Case> = vec![
        ("no token", None, good.clone(), 401, "Authorization"),
        ("bad token", Some("vlm_notatoken"), good.clone(), 401, "unknown or revoked"),
        ("bad JSON", Some(&token), b"{\"ts\":".to_vec(), 400, "invalid JSON"),
        ("trailing junk", Some(&token), [good.clone(), b"x".to_vec()].concat(), 400, "invalid JSON"),
        ("duplicate key", Some(&token), br#"{"agent":"a","agent":"b"}"#.to_vec(), 400, "duplicate key"),
        ("unknown field", Some(&token), to(&unknown), 400, "colour"),
        ("missing field", Some(&token), to(&missing), 400, "verdict"),
        ("wrong type", Some(&token), to(&wrong_type), 400, "risk"),
        ("server field", Some(&token), to(&server_field), 400, "gateway"),
        ("not an object", Some(&token), b"42".to_vec(), 400, "object"),
        ("empty batch", Some(&token), b"[]".to_vec(), 400, "empty batch"),
        ("one bad in a batch", Some(&token), to(&json!(mixed)), 400, "event [3]"),
        ("oversized event", Some(&token), to(&huge), 413, "65535"),
        ("oversized batch", Some(&token), batch_of(51), 413, "limit of 50"),
        ("oversized body", Some(&token), vec![b' '; 9 << 20], 413, "byte limit"),
        ("invalid UTF-8", Some(&token), invalid_utf8, 400, "UTF-8"),
        ("unsafe integer", Some(&token), br#"{"ts":"2026-06-20T14:07:31.120Z","agent":"a","principal":"p","owner":"o","tool":"t","verdict":"allow","attrs":{"n":9007199254740993}}"#.to_vec(), 400, "2^53"),
        ("integer beyond u64", Some(&token), br#"{"ts":"2026-06-20T14:07:31.120Z","agent":"a","principal":"p","owner":"o","tool":"t","verdict":"allow","attrs":{"n":18446744073709551616}}"#.to_vec(), 400, "field `attrs.n`"),
        ("integer beyond i64", Some(&token), br#"{"ts":"2026-06-20T14:07:31.120Z","agent":"a","principal":"p","owner":"o","tool":"t","verdict":"allow","attrs":{"n":-99999999999999999999}}"#.to_vec(), 400, "field `attrs.n`"),
        ("wide integer in a batch", Some(&token), br#"[{"ts":"2026-06-20T14:07:31.120Z","agent":"a","principal":"p","owner":"o","tool":"t","verdict":"allow","attrs":{"n":99999999999999999999}}]"#.to_vec(), 400, "field `[0].attrs.n`"),
        ("bad time", Some(&token), to(&json!({"ts":"2026-02-30T00:00:00Z","agent":"a","principal":"p","owner":"o","tool":"t","verdict":"allow"})), 400, "ts"),
    ];
    for (name, tok, body, status, words) in cases {
        let (s, b) = log.post_events(tok, body);
        assert_eq!(s, status, "{name}: {b}");
        let v: Value =
            serde_json::from_str(&b).unwrap_or_else(|_| panic!("{name}: body is not JSON: {b}"));
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no error field: {b}"));
        assert!(
            msg.contains(words),
            "{name}: {msg:?} should mention {words:?}"
        );
    }
    // Nothing was written: same tree size, same checkpoint after an interval.
    assert_eq!(log.tree_size(), 1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (cp_after, _) = log.checkpoint();
    assert_eq!(cp_after, cp_before);
    // And the log still works.
    assert_eq!(log.post_events(Some(&token), good).0, 200);
    assert_eq!(log.tree_size(), 2);
}
