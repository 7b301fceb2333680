//! The audit event, schema v1: validation of what a gateway sends, the
//! fields the server adds, and the leaf bytes (RFC 8785 canonical JSON).

use serde_json::{Map, Value};

use crate::borrowed::{self, Node, Str};
use crate::jcs;
use crate::tile::MAX_ENTRY_SIZE;
use crate::time::parse_utc_millis;

/// Fields a gateway must send.
pub const REQUIRED: &[&str] = &["ts", "agent", "principal", "owner", "tool", "verdict"];
/// Fields a gateway may send.
pub const OPTIONAL: &[&str] = &[
    "event_id",
    "session",
    "target",
    "args_hash",
    "args",
    "provenance",
    "provenance_source",
    "seq",
    "rule",
    "reason",
    "risk",
    "latency_ms",
    "result",
    "attrs",
];
/// Fields only the server sets.
pub const SERVER_FIELDS: &[&str] = &["gateway", "logged_at"];
/// Allowed values of `verdict`.
pub const VERDICTS: &[&str] = &["allow", "deny", "approve", "review"];
/// Allowed values of `provenance`.
pub const PROVENANCES: &[&str] = &["trusted", "untrusted"];
/// Longest `event_id`, in bytes.
pub const MAX_EVENT_ID_LEN: usize = 256;

/// A schema violation, naming the field and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The event is not a JSON object.
    #[error("event must be a JSON object")]
    NotObject,
    /// Fields the schema does not know.
    #[error("unknown field(s): {}", .0.join(", "))]
    Unknown(Vec<String>),
    /// A field only the server may set was sent.
    #[error("field `{0}` is set by the server and must not be sent")]
    ServerField(String),
    /// A required field is absent.
    #[error("missing required field `{0}`")]
    Missing(String),
    /// A field has the wrong type or value.
    #[error("field `{field}`: {rule}")]
    Invalid {
        /// The field, e.g. `risk` or `result.status`.
        field: String,
        /// The rule it breaks.
        rule: String,
    },
    /// The canonical event is larger than an entry bundle allows.
    #[error("event is {0} bytes in canonical form; the limit is 65535")]
    TooLarge(usize),
    /// The stored bytes are not the canonical form of the event they hold.
    #[error("entry is not in RFC 8785 canonical form")]
    NotCanonical,
    /// The bytes are not JSON JCS can represent.
    #[error("entry is not valid JSON: {0}")]
    Json(String),
}

/// Whether `k` is a schema v1 field (kept in step with the lists above).
fn is_known(k: &str) -> bool {
    matches!(
        k,
        "ts" | "agent"
            | "principal"
            | "owner"
            | "tool"
            | "verdict"
            | "event_id"
            | "session"
            | "target"
            | "args_hash"
            | "args"
            | "provenance"
            | "provenance_source"
            | "seq"
            | "rule"
            | "reason"
            | "risk"
            | "latency_ms"
            | "result"
            | "attrs"
            | "gateway"
            | "logged_at"
    )
}

fn invalid(field: &str, rule: &str) -> EventError {
    EventError::Invalid {
        field: field.to_string(),
        rule: rule.to_string(),
    }
}

fn want_string<'a>(obj: &'a Map<String, Value>, f: &str) -> Result<Option<&'a str>, EventError> {
    match obj.get(f) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(f, "must be a string")),
    }
}

fn want_int(obj: &Map<String, Value>, f: &str, max: Option<u64>) -> Result<(), EventError> {
    match obj.get(f) {
        None => Ok(()),
        Some(Value::Number(n)) => {
            let rule = match max {
                Some(m) => format!("must be an integer from 0 to {m}"),
                None => "must be an integer >= 0".to_string(),
            };
            let v = n.as_u64().ok_or_else(|| invalid(f, &rule))?;
            if max.is_some_and(|m| v > m) {
                return Err(invalid(f, &rule));
            }
            Ok(())
        }
        Some(_) => Err(invalid(f, "must be an integer")),
    }
}

/// Whether `v` is an `args_hash`: `sha256:` and 64 hex digits (either
/// case). Checked eight bytes at a time: verifiers run it on every entry.
pub fn is_args_hash(v: &str) -> bool {
    is_args_hash_bytes(v.as_bytes())
}

/// [`is_args_hash`] on bytes.
pub fn is_args_hash_bytes(v: &[u8]) -> bool {
    let Some(hex) = v.strip_prefix(b"sha256:") else {
        return false;
    };
    hex.len() == 64 && hex.chunks_exact(8).all(hex8)
}

/// Whether eight bytes are all ASCII hex digits (SWAR: per-byte range
/// checks on a u64 whose lanes stay below 0x80, so no carry crosses them).
fn hex8(chunk: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut w = [0u8; 8];
    w.copy_from_slice(chunk);
    let x = u64::from_le_bytes(w);
    if x & HIGHS != 0 {
        return false;
    }
    // Above `c`, per byte: the high bit of byte + (0x7f - c).
    let gt = |y: u64, c: u8| y.wrapping_add(ONES * u64::from(0x7f - c)) & HIGHS;
    let digit = gt(x, b'0' - 1) & !gt(x, b'9');
    // Letters folded to lower case: only A-F and a-f land on a-f.
    let y = x | (ONES * 0x20);
    let letter = gt(y, b'a' - 1) & !gt(y, b'f');
    digit | letter == HIGHS
}

/// Validates an event object as a gateway sends it (no server fields).
pub fn validate_submitted(obj: &Map<String, Value>) -> Result<(), EventError> {
    if let Some(f) = SERVER_FIELDS.iter().find(|f| obj.contains_key(**f)) {
        return Err(EventError::ServerField(f.to_string()));
    }
    validate_fields(obj)
}

fn validate_fields(obj: &Map<String, Value>) -> Result<(), EventError> {
    let unknown: Vec<String> = obj.keys().filter(|k| !is_known(k)).cloned().collect();
    if !unknown.is_empty() {
        return Err(EventError::Unknown(unknown));
    }
    for f in REQUIRED {
        if !obj.contains_key(*f) {
            return Err(EventError::Missing(f.to_string()));
        }
    }
    let ts = want_string(obj, "ts")?.unwrap_or_default();
    parse_utc_millis(ts).map_err(|e| invalid("ts", &format!("not an RFC 3339 UTC time: {e}")))?;
    for f in ["agent", "principal", "owner", "tool"] {
        if want_string(obj, f)?.is_some_and(str::is_empty) {
            return Err(invalid(f, "must not be empty"));
        }
    }
    let verdict = want_string(obj, "verdict")?.unwrap_or_default();
    if !VERDICTS.contains(&verdict) {
        return Err(invalid(
            "verdict",
            "must be one of allow, deny, approve, review",
        ));
    }
    if let Some(id) = want_string(obj, "event_id")? {
        if id.is_empty() || id.len() > MAX_EVENT_ID_LEN {
            return Err(invalid("event_id", "must be 1 to 256 bytes long"));
        }
    }
    for f in ["session", "target", "provenance_source", "rule", "reason"] {
        want_string(obj, f)?;
    }
    if let Some(h) = want_string(obj, "args_hash")? {
        if !is_args_hash(h) {
            return Err(invalid(
                "args_hash",
                "must be sha256: followed by 64 hex digits",
            ));
        }
    }
    if let Some(p) = want_string(obj, "provenance")? {
        if !PROVENANCES.contains(&p) {
            return Err(invalid("provenance", "must be trusted or untrusted"));
        }
    }
    want_int(obj, "seq", None)?;
    want_int(obj, "risk", Some(100))?;
    want_int(obj, "latency_ms", None)?;
    match obj.get("result") {
        None => {}
        Some(Value::Object(r)) => {
            if let Some(k) = r.keys().find(|k| *k != "status" && *k != "error") {
                return Err(invalid(
                    &format!("result.{k}"),
                    "unknown field; result holds only status and error",
                ));
            }
            match r.get("status") {
                None => {}
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {}
                Some(_) => return Err(invalid("result.status", "must be an integer")),
            }
            if r.get("error").is_some_and(|e| !e.is_string()) {
                return Err(invalid("result.error", "must be a string"));
            }
        }
        Some(_) => return Err(invalid("result", "must be an object")),
    }
    if obj.get("attrs").is_some_and(|a| !a.is_object()) {
        return Err(invalid("attrs", "must be an object"));
    }
    Ok(())
}

/// An event ready to append: its ID and leaf bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The gateway's `event_id`, or the one assigned.
    pub event_id: String,
    /// RFC 8785 canonical JSON of the stored event: the Merkle leaf.
    pub leaf: Vec<u8>,
    /// Byte offset in `leaf` of the `logged_at` string value (its opening
    /// quote), so the sequencer can keep `logged_at` non-decreasing.
    pub logged_at_offset: usize,
}

/// Length of a `logged_at` value in the leaf, quotes included.
pub const LOGGED_AT_LEN: usize = 26;

/// Replaces the `logged_at` value at `offset` (from [`Sealed`]) with
/// `logged_at`, which must have the same length. The key order is
/// unchanged, so the leaf stays canonical. Returns false if it does not fit.
pub fn restamp(leaf: &mut [u8], offset: usize, logged_at: &str) -> bool {
    let v = format!("\"{logged_at}\"");
    match leaf.get_mut(offset..offset + v.len()) {
        Some(dst)
            if v.len() == LOGGED_AT_LEN
                && dst.len() == LOGGED_AT_LEN
                && dst[0] == b'"'
                && dst[LOGGED_AT_LEN - 1] == b'"'
                && std::str::from_utf8(&dst[1..LOGGED_AT_LEN - 1])
                    .is_ok_and(|t| parse_utc_millis(t).is_ok()) =>
        {
            dst.copy_from_slice(v.as_bytes());
            true
        }
        _ => false,
    }
}

/// The `logged_at` of stored leaf bytes, in Unix milliseconds.
pub fn leaf_logged_at(obj: &Map<String, Value>) -> Option<i64> {
    obj.get("logged_at")
        .and_then(Value::as_str)
        .and_then(|s| parse_utc_millis(s).ok())
}

/// Validates a submitted event, adds `event_id` (from `assign_id` when
/// absent), `gateway` and `logged_at`, and returns its canonical leaf bytes.
pub fn seal(
    value: Value,
    gateway: &str,
    logged_at: &str,
    assign_id: impl FnOnce() -> String,
) -> Result<Sealed, EventError> {
    let Value::Object(mut obj) = value else {
        return Err(EventError::NotObject);
    };
    validate_submitted(&obj)?;
    let event_id = match obj.get("event_id") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            let id = assign_id();
            obj.insert("event_id".into(), Value::String(id.clone()));
            id
        }
    };
    obj.insert("gateway".into(), Value::String(gateway.to_string()));
    obj.insert("logged_at".into(), Value::String(logged_at.to_string()));
    let (leaf, at) = jcs::canonicalize_locating(&obj, "logged_at")
        .map_err(|e| EventError::Json(e.to_string()))?;
    if leaf.len() > MAX_ENTRY_SIZE {
        return Err(EventError::TooLarge(leaf.len()));
    }
    Ok(Sealed {
        event_id,
        leaf,
        logged_at_offset: at.unwrap_or(0),
    })
}

/// What a body held: one event (an object) or a batch (an array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyShape {
    /// A single event object.
    Single,
    /// An array of events.
    Batch,
}

/// The fast path of sealing a whole append body (one event or an array of
/// at most `max_batch`): parsed once into a [`borrowed`] tree, checked
/// against the schema and written canonically from it. `None` when the
/// body is refused or needs the general path; [`crate::jcs::parse_strict`]
/// and [`seal`] then give the exact error, or the same leaves (the
/// differential tests hold the two paths to the same output).
pub fn seal_body_fast(
    body: &str,
    gateway: &str,
    logged_at: &str,
    max_batch: usize,
    mut assign_id: impl FnMut() -> String,
) -> Option<(Vec<Sealed>, BodyShape)> {
    let (events, shape) = match borrowed::parse(body)? {
        Node::Array(a) => (a, BodyShape::Batch),
        one @ Node::Object(_) => (vec![one], BodyShape::Single),
        _ => return None,
    };
    if events.is_empty() || events.len() > max_batch {
        return None;
    }
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let Node::Object(members) = e else {
            return None;
        };
        out.push(seal_members(members, gateway, logged_at, &mut assign_id)?);
    }
    Some((out, shape))
}

/// Seals one event's members (sorted), or `None` if they break a rule.
fn seal_members<'a>(
    members: Vec<(Str<'a>, Node<'a>)>,
    gateway: &str,
    logged_at: &str,
    assign_id: &mut impl FnMut() -> String,
) -> Option<Sealed> {
    if !valid_fast(&members) {
        return None;
    }
    let (event_id, id_node) = match borrowed::find(&members, "event_id") {
        Some(id) => (id.as_str()?.to_string(), None),
        None => {
            let id = assign_id();
            (id.clone(), Some(id))
        }
    };
    // The same members, for a lifetime that also covers the added values.
    let mut members: Vec<(Str<'_>, Node<'_>)> = members;
    // Every top-level key is a schema field (ASCII), so byte order is the
    // canonical order; the server's fields go in their places.
    let mut extra: Vec<(&str, &str)> = vec![("gateway", gateway), ("logged_at", logged_at)];
    if let Some(id) = &id_node {
        extra.push(("event_id", id));
    }
    for (k, v) in extra {
        let at = members.partition_point(|(m, _)| m.as_str() < k);
        members.insert(at, (Str::value(k), Node::Str(Str::value(v))));
    }
    let mut leaf = Vec::with_capacity(256);
    let mut at = 0;
    leaf.push(b'{');
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            leaf.push(b',');
        }
        borrowed::write_str(k, &mut leaf);
        leaf.push(b':');
        if k.as_str() == "logged_at" {
            at = leaf.len();
        }
        borrowed::write(v, &mut leaf);
    }
    leaf.push(b'}');
    if leaf.len() > MAX_ENTRY_SIZE {
        return None;
    }
    Some(Sealed {
        event_id,
        leaf,
        logged_at_offset: at,
    })
}

/// [`validate_submitted`] over a borrowed tree: true only where it would
/// accept.
fn valid_fast(m: &[(Str<'_>, Node<'_>)]) -> bool {
    let get = |f: &str| borrowed::find(m, f);
    let string = |f: &str| match get(f) {
        None => Some(None),
        Some(Node::Str(s)) => Some(Some(s.as_str())),
        Some(_) => None,
    };
    let int = |f: &str, max: u64| match get(f) {
        None => true,
        Some(Node::Int(v, _)) => *v >= 0 && (*v as u64) <= max,
        Some(_) => false,
    };
    if m.iter().any(|(k, _)| {
        let k = k.as_str();
        !is_known(k) || SERVER_FIELDS.contains(&k)
    }) {
        return false;
    }
    let required = |f: &str| string(f).flatten().is_some_and(|s| !s.is_empty());
    if !["agent", "principal", "owner", "tool"]
        .into_iter()
        .all(required)
    {
        return false;
    }
    if string("ts")
        .flatten()
        .is_none_or(|t| parse_utc_millis(t).is_err())
    {
        return false;
    }
    if !string("verdict")
        .flatten()
        .is_some_and(|v| VERDICTS.contains(&v))
    {
        return false;
    }
    let Some(id) = string("event_id") else {
        return false;
    };
    if id.is_some_and(|id| id.is_empty() || id.len() > MAX_EVENT_ID_LEN) {
        return false;
    }
    if ["session", "target", "provenance_source", "rule", "reason"]
        .into_iter()
        .any(|f| string(f).is_none())
    {
        return false;
    }
    match string("args_hash") {
        None => return false,
        Some(Some(h)) => {
            if !is_args_hash(h) {
                return false;
            }
        }
        Some(None) => {}
    }
    match string("provenance") {
        None => return false,
        Some(Some(p)) if !PROVENANCES.contains(&p) => return false,
        _ => {}
    }
    if !(int("seq", u64::MAX) && int("risk", 100) && int("latency_ms", u64::MAX)) {
        return false;
    }
    match get("result") {
        None => {}
        Some(Node::Object(r)) => {
            let ok = r.iter().all(|(k, v)| {
                matches!(
                    (k.as_str(), v),
                    ("status", Node::Int(..)) | ("error", Node::Str(_))
                )
            });
            if !ok {
                return false;
            }
        }
        Some(_) => return false,
    }
    !matches!(get("attrs"), Some(n) if !matches!(n, Node::Object(_)))
}

/// Checks stored leaf bytes: strict JSON, a schema-valid event with the
/// server's fields, in canonical form. Returns the event.
pub fn check_leaf(leaf: &[u8]) -> Result<Map<String, Value>, EventError> {
    let v = jcs::parse_strict(leaf).map_err(|e| EventError::Json(e.to_string()))?;
    let Value::Object(obj) = v else {
        return Err(EventError::NotObject);
    };
    validate_fields(&obj)?;
    for f in ["event_id", "gateway", "logged_at"] {
        if !obj.get(f).is_some_and(Value::is_string) {
            return Err(EventError::Missing(f.to_string()));
        }
    }
    let canon = jcs::canonicalize(&Value::Object(obj.clone()))
        .map_err(|e| EventError::Json(e.to_string()))?;
    if canon != leaf {
        return Err(EventError::NotCanonical);
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"ts":"2026-06-20T14:07:31.120Z","agent":"a","principal":"p","owner":"o","tool":"t","verdict":"allow"})
    }

    fn with(k: &str, v: Value) -> Value {
        let mut b = base();
        b.as_object_mut().unwrap().insert(k.into(), v);
        b
    }

    fn seal_it(v: Value) -> Result<Sealed, EventError> {
        seal(v, "gw", "2026-06-20T14:07:32.000Z", || "id-1".into())
    }

    #[test]
    fn seals_canonically_whatever_the_input_order() {
        let a = seal_it(base()).unwrap();
        let b = seal_it(
            crate::jcs::parse_strict(
                br#"{ "verdict":"allow","tool":"t","owner":"o","principal":"p","agent":"\u0061","ts":"2026-06-20T14:07:31.120Z" }"#,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            String::from_utf8(a.leaf.clone()).unwrap(),
            r#"{"agent":"a","event_id":"id-1","gateway":"gw","logged_at":"2026-06-20T14:07:32.000Z","owner":"o","principal":"p","tool":"t","ts":"2026-06-20T14:07:31.120Z","verdict":"allow"}"#
        );
        assert!(check_leaf(&a.leaf).is_ok());
    }

    #[test]
    fn restamp_keeps_the_leaf_canonical() {
        let mut s = seal_it(with("attrs", json!({"logged_at": "x"}))).unwrap();
        assert!(restamp(
            &mut s.leaf,
            s.logged_at_offset,
            "2026-06-20T14:07:33.500Z"
        ));
        let obj = check_leaf(&s.leaf).unwrap();
        assert_eq!(obj["logged_at"], "2026-06-20T14:07:33.500Z");
        assert_eq!(obj["attrs"]["logged_at"], "x");
        assert!(!restamp(&mut s.leaf, s.logged_at_offset, "short"));
        assert!(!restamp(&mut s.leaf, 1, "2026-06-20T14:07:33.500Z"));
    }

    #[test]
    fn errors_name_the_field() {
        let cases: Vec<(Value, &str)> = vec![
            (with("colour", json!("red")), "colour"),
            (with("gateway", json!("x")), "gateway"),
            (with("risk", json!(101)), "risk"),
            (with("risk", json!(-1)), "risk"),
            (with("seq", json!(1.5)), "seq"),
            (with("latency_ms", json!("5")), "latency_ms"),
            (with("verdict", json!("maybe")), "verdict"),
            (with("provenance", json!("web")), "provenance"),
            (with("args_hash", json!("sha256:abc")), "args_hash"),
            (with("ts", json!("yesterday")), "ts"),
            (with("result", json!({"status":"ok"})), "result.status"),
            (with("result", json!({"code":1})), "result.code"),
            (with("attrs", json!([])), "attrs"),
            (with("agent", json!("")), "agent"),
            (with("event_id", json!("")), "event_id"),
        ];
        for (v, field) in cases {
            let e = seal_it(v).unwrap_err().to_string();
            assert!(e.contains(field), "{e} should name {field}");
        }
        let mut missing = base();
        missing.as_object_mut().unwrap().remove("owner");
        assert_eq!(seal_it(missing), Err(EventError::Missing("owner".into())));
    }

    /// The general path for a body, as the server ran it before the fast
    /// path: strict parse, then [`seal`] per event.
    fn seal_body_slow(body: &str, max_batch: usize) -> Result<Vec<Sealed>, String> {
        let v = crate::jcs::parse_strict(body.as_bytes()).map_err(|e| e.to_string())?;
        let events = match v {
            Value::Array(a) => a,
            other => vec![other],
        };
        if events.is_empty() || events.len() > max_batch {
            return Err("batch size".into());
        }
        let mut n = 0;
        events
            .into_iter()
            .map(|e| {
                seal(e, "gw\"1", "2026-06-20T14:07:32.000Z", || {
                    n += 1;
                    format!("id-{n}")
                })
                .map_err(|e| e.to_string())
            })
            .collect()
    }

    fn seal_body_both(body: &str) -> Option<Vec<Sealed>> {
        let mut n = 0;
        let fast = seal_body_fast(body, "gw\"1", "2026-06-20T14:07:32.000Z", 10, || {
            n += 1;
            format!("id-{n}")
        });
        let slow = seal_body_slow(body, 10);
        let (fast, _) = fast?;
        assert_eq!(Ok(fast.clone()), slow, "body {body}");
        for s in &fast {
            check_leaf(&s.leaf).unwrap();
            let v: Value = serde_json::from_slice(&s.leaf).unwrap();
            assert_eq!(serde_json_canonicalizer::to_vec(&v).unwrap(), s.leaf);
            assert_eq!(
                &s.leaf[s.logged_at_offset..][..LOGGED_AT_LEN],
                b"\"2026-06-20T14:07:32.000Z\""
            );
        }
        Some(fast)
    }

    #[test]
    fn fast_path_seals_as_the_general_path_does() {
        let full = r#"{"verdict":"deny","ts":"2026-06-20T14:07:31.12Z","agent":"a\u00e9\n","principal":"p","owner":"o","tool":"t",
            "event_id":"e1","session":"s","target":"db","args_hash":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "args":{"z":[1,2.5,-3,1e21],"\u20ac":"x","a":null},"provenance":"untrusted","provenance_source":"web","seq":7,"rule":"r","reason":"why \"not\"",
            "risk":100,"latency_ms":0,"result":{"status":-1,"error":"e"},"attrs":{"b":{"c":true},"a":"\ud83d\ude00"}}"#;
        assert_eq!(seal_body_both(full).unwrap()[0].event_id, "e1");
        let batch = format!("[{full},{}]", serde_json::to_string(&base()).unwrap());
        let sealed = seal_body_both(&batch).unwrap();
        assert_eq!(sealed[1].event_id, "id-1");
        for refused in [r#"{"verdict":"allow"}"#, r#"[]"#, r#"[1]"#, r#""x""#] {
            assert!(seal_body_both(refused).is_none(), "{refused}");
        }
        let eleven = format!(
            "[{}]",
            vec![serde_json::to_string(&base()).unwrap(); 11].join(",")
        );
        assert!(seal_body_both(&eleven).is_none());
        let mut big = base();
        big["args"] = json!("x".repeat(70_000));
        assert!(seal_body_both(&big.to_string()).is_none());
    }

    fn field_value() -> impl Strategy<Value = (String, String)> {
        let s = || "\"([a-z]|\\\\n|\\\\u00e9|\u{1f600}|\\\\\"){0,4}\"";
        prop_oneof![
            Just("ts").prop_flat_map(|k| (
                Just(k.to_string()),
                prop_oneof![
                    Just("\"2026-06-20T14:07:31Z\"".to_string()),
                    Just("\"2026-02-30T14:07:31Z\"".to_string()),
                    Just("\"2026-06-20T14:07:31.5+01:00\"".to_string()),
                    Just("5".to_string()),
                ]
            )),
            prop::sample::select(vec![
                "agent",
                "principal",
                "owner",
                "tool",
                "session",
                "target",
                "provenance_source",
                "rule",
                "reason",
                "event_id",
                "colour",
                "gateway",
                "logged_at"
            ])
            .prop_flat_map(move |k| (
                Just(k.to_string()),
                prop_oneof![
                    s().prop_map(|v| v.to_string()),
                    Just("\"\"".to_string()),
                    Just("1".to_string()),
                    Just(format!("\"{}\"", "i".repeat(257))),
                ]
            )),
            prop::sample::select(vec!["verdict", "provenance"]).prop_flat_map(|k| (
                Just(k.to_string()),
                prop::sample::select(vec![
                    "\"allow\"",
                    "\"deny\"",
                    "\"approve\"",
                    "\"review\"",
                    "\"trusted\"",
                    "\"untrusted\"",
                    "\"maybe\"",
                    "null"
                ])
                .prop_map(str::to_string)
            )),
            prop::sample::select(vec!["seq", "risk", "latency_ms"]).prop_flat_map(|k| (
                Just(k.to_string()),
                prop::sample::select(vec![
                    "0",
                    "-0",
                    "100",
                    "101",
                    "-1",
                    "1.0",
                    "1e2",
                    "9007199254740991",
                    "\"5\""
                ])
                .prop_map(str::to_string)
            )),
            Just("args_hash").prop_flat_map(|k| (
                Just(k.to_string()),
                prop::sample::select(vec![
                    format!("\"sha256:{}\"", "ab".repeat(32)),
                    format!("\"sha256:{}\"", "g".repeat(64)),
                    "\"sha256:\"".to_string(),
                    "{}".to_string()
                ])
            )),
            Just("result").prop_flat_map(|k| (
                Just(k.to_string()),
                prop::sample::select(vec![
                    "{}",
                    "{\"status\":200}",
                    "{\"status\":-0}",
                    "{\"status\":1.5,\"error\":\"x\"}",
                    "{\"error\":\"x\",\"status\":3}",
                    "{\"code\":1}",
                    "{\"error\":1}",
                    "[]"
                ])
                .prop_map(str::to_string)
            )),
            prop::sample::select(vec!["attrs", "args"]).prop_flat_map(|k| (
                Just(k.to_string()),
                prop::sample::select(vec![
                    "{}",
                    "{\"b\":1,\"a\":[true,{\"\\u00e9\":0.1}]}",
                    "[]",
                    "\"x\"",
                    "{\"a\":1,\"a\":2}",
                    "{\"\u{e000}\":1,\"\u{1f600}\":2}"
                ])
                .prop_map(str::to_string)
            )),
        ]
    }

    fn event_text() -> impl Strategy<Value = String> {
        let required = vec![
            ("ts".to_string(), "\"2026-06-20T14:07:31.120Z\"".to_string()),
            ("agent".to_string(), "\"a\"".to_string()),
            ("principal".to_string(), "\"p\"".to_string()),
            ("owner".to_string(), "\"o\"".to_string()),
            ("tool".to_string(), "\"t\"".to_string()),
            ("verdict".to_string(), "\"allow\"".to_string()),
        ];
        (
            prop::collection::vec(field_value(), 0..6),
            Just(required).prop_shuffle(),
            0..7usize,
            prop::sample::select(vec!["", " ", "\n\t "]),
        )
            .prop_map(|(extra, mut req, drop, ws)| {
                if drop < 6 && extra.len() % 3 == 0 {
                    req.remove(drop);
                }
                req.extend(extra);
                let members: Vec<String> = req
                    .into_iter()
                    .map(|(k, v)| format!("{ws}\"{k}\"{ws}:{ws}{v}"))
                    .collect();
                format!("{{{}{ws}}}", members.join(","))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn fast_sealing_agrees_or_defers(events in prop::collection::vec(event_text(), 1..4), single in any::<bool>()) {
            let body = if single { events[0].clone() } else { format!("[{}]", events.join(",")) };
            let fast = seal_body_both(&body).is_some();
            // What the general path accepts, the fast path takes too,
            // except for the forms it leaves (16-digit integers).
            if !fast && seal_body_slow(&body, 10).is_ok() {
                prop_assert!(body.contains("9007199254740991"), "fast path refused {body}");
            }
        }
    }

    #[test]
    fn args_hash_check_matches_the_byte_rule() {
        let slow = |v: &str| {
            v.strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        };
        let base = "0123456789abcdefABCDEF0123456789abcdef0123456789abcdef0123456789";
        assert_eq!(base.len(), 64);
        for b in 0..=255u8 {
            for at in [0, 7, 8, 63] {
                let mut v = base.as_bytes().to_vec();
                v[at] = b;
                if let Ok(h) = String::from_utf8([b"sha256:".as_slice(), &v].concat()) {
                    assert_eq!(is_args_hash(&h), slow(&h), "byte {b:#x} at {at}");
                }
            }
        }
        assert!(!is_args_hash(&format!("sha256:{}", &base[..63])));
        assert!(!is_args_hash(&format!("sha1:{base}")));
    }

    #[test]
    fn known_fields_match_the_lists() {
        for f in REQUIRED.iter().chain(OPTIONAL).chain(SERVER_FIELDS) {
            assert!(is_known(f), "{f}");
        }
        assert_eq!(REQUIRED.len() + OPTIONAL.len() + SERVER_FIELDS.len(), 22);
        assert!(!is_known("colour"));
    }

    #[test]
    fn size_limit_and_non_canonical_leaf() {
        let big = with("args", json!("x".repeat(70_000)));
        assert!(matches!(seal_it(big), Err(EventError::TooLarge(_))));
        let leaf = seal_it(base()).unwrap().leaf;
        let mut spaced = b"{ ".to_vec();
        spaced.extend_from_slice(&leaf[1..]);
        assert_eq!(check_leaf(&spaced), Err(EventError::NotCanonical));
    }
}
