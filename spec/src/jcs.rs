//! RFC 8785 JSON Canonicalization Scheme (JCS), and a strict JSON parser
//! that refuses what JCS cannot represent faithfully: duplicate object keys
//! and integers outside the I-JSON safe range (±(2^53−1)).

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::fmt;

use crate::jsonscan;

/// Largest integer magnitude a JSON number keeps exactly as an IEEE double.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Parses JSON strictly: no duplicate keys, integers within ±(2^53−1)
/// unless already in canonical double form, nothing after the value.
/// Strings must be valid Unicode (no lone surrogates). Errors name the
/// path of the offending value.
pub fn parse_strict(input: &[u8]) -> Result<Value, StrictError> {
    let wide = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(input);
    let v = StrictSeed { wide: &wide }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| StrictError::locate(input, e))?;
    if wide.get() {
        check_wide_integers(input)?;
    }
    Ok(v)
}

/// Why [`parse_strict`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}{}", path.as_ref().map(|p| format!("field `{p}`: ")).unwrap_or_default(),
    position.map(|(l, c)| format!(" (line {l}, column {c})")).unwrap_or_default())]
pub struct StrictError {
    /// What is wrong.
    pub message: String,
    /// Path of the value at fault (`attrs.n`, `[2].risk`), when inside one.
    pub path: Option<String>,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
}

impl StrictError {
    fn locate(input: &[u8], e: serde_json::Error) -> StrictError {
        let full = e.to_string();
        let (line, column) = (e.line(), e.column());
        let suffix = format!(" at line {line} column {column}");
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        if line == 0 {
            return StrictError {
                message,
                path: None,
                position: None,
            };
        }
        let offset = jsonscan::offset_of(input, line, column);
        let path = jsonscan::path_at(input, offset);
        StrictError {
            message,
            path: (!path.is_empty()).then_some(path),
            position: Some((line, column)),
        }
    }
}

/// Doubles at or beyond 2^63 in magnitude: where serde_json may have read
/// an integer literal too wide for 64 bits as a double.
const WIDE: f64 = 9_223_372_036_854_775_808.0;

/// An integer literal too wide for 64 bits reaches the parser only as a
/// double, without its text. Find such literals in the text and hold them
/// to the rule of [`large_integer`]: kept only if already canonical.
fn check_wide_integers(input: &[u8]) -> Result<(), StrictError> {
    for n in jsonscan::number_literals(input) {
        let digits = n.text.strip_prefix('-').unwrap_or(n.text);
        if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() < 19 {
            continue; // a fraction or exponent is a double by its form
        }
        if n.text.parse::<i64>().is_ok() || n.text.parse::<u64>().is_ok() {
            continue; // checked by the parser itself
        }
        let f: f64 = n.text.parse().unwrap_or(f64::INFINITY);
        let mut buf = ryu_js::Buffer::new();
        if !f.is_finite() || buf.format_finite(f) != n.text {
            return Err(StrictError {
                message: unsafe_integer_message(n.text),
                path: (!n.path.is_empty()).then_some(n.path),
                position: None,
            });
        }
    }
    Ok(())
}

fn unsafe_integer_message(literal: &str) -> String {
    format!(
        "integer {literal} is outside the exact range ±(2^53-1) and would change in canonical form; send it as a string"
    )
}

/// An integer literal beyond ±(2^53−1) is a double in RFC 8785. It is
/// kept (as that double) only when the literal is already the double's
/// canonical form, e.g. `209495624604671740`, so nothing the sender wrote
/// is lost; otherwise (e.g. `9007199254740993`) it is refused.
fn large_integer<E: de::Error>(literal: &str, f: f64) -> Result<Value, E> {
    let mut buf = ryu_js::Buffer::new();
    if buf.format_finite(f) == literal {
        if let Some(n) = serde_json::Number::from_f64(f) {
            return Ok(Value::Number(n));
        }
    }
    Err(E::custom(unsafe_integer_message(literal)))
}

#[derive(Clone, Copy)]
struct StrictSeed<'a> {
    /// Set when a double wide enough to be a 64-bit-overflowing integer
    /// literal was read (see [`check_wide_integers`]).
    wide: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        if v.unsigned_abs() <= MAX_SAFE_INTEGER {
            return Ok(Value::from(v));
        }
        large_integer(&v.to_string(), v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        if v <= MAX_SAFE_INTEGER {
            return Ok(Value::from(v));
        }
        large_integer(&v.to_string(), v as f64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        if v.abs() >= WIDE && v.fract() == 0.0 {
            self.wide.set(true);
        }
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!("duplicate key {k:?}")));
            }
            let v = map.next_value_seed(self)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// Why a value cannot be canonicalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JcsError {
    /// An integer outside ±(2^53−1) has no exact canonical form.
    #[error("integer {0} is outside the exact range ±(2^53-1)")]
    UnsafeInteger(String),
}

/// Serializes `v` in RFC 8785 canonical form.
pub fn canonicalize(v: &Value) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::with_capacity(256);
    write_value(v, &mut out)?;
    Ok(out)
}

/// Appends the canonical form of `v` to `out`.
pub fn write_value(v: &Value, out: &mut Vec<u8>) -> Result<(), JcsError> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(a) => {
            out.push(b'[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(e, out)?;
            }
            out.push(b']');
        }
        Value::Object(m) => {
            out.push(b'{');
            // serde_json's map iterates in UTF-8 byte order, which equals
            // UTF-16 order unless a key holds a character at or above
            // U+E000 (UTF-8 lead byte 0xEE or more); only then re-sort.
            if m.keys().any(|k| k.bytes().any(|b| b >= 0xEE)) {
                let mut keys: Vec<(&String, &Value)> = m.iter().collect();
                keys.sort_by(|a, b| cmp_utf16(a.0, b.0));
                write_members(keys.into_iter(), out)?;
            } else {
                write_members(m.iter(), out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Serializes an object in canonical form and returns, with the bytes, the
/// offset of the value of its top-level member `key` (if present).
pub fn canonicalize_locating(
    m: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<(Vec<u8>, Option<usize>), JcsError> {
    let mut keys: Vec<(&String, &Value)> = m.iter().collect();
    // As in `write_value`: the map's order is UTF-16 order unless a key
    // holds a character at or above U+E000.
    if keys.iter().any(|(k, _)| k.bytes().any(|b| b >= 0xEE)) {
        keys.sort_by(|a, b| cmp_utf16(a.0, b.0));
    }
    let mut out = Vec::with_capacity(256);
    let mut at = None;
    out.push(b'{');
    for (i, (k, v)) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(k, &mut out);
        out.push(b':');
        if k == key {
            at = Some(out.len());
        }
        write_value(v, &mut out)?;
    }
    out.push(b'}');
    Ok((out, at))
}

fn write_members<'a>(
    members: impl Iterator<Item = (&'a String, &'a Value)>,
    out: &mut Vec<u8>,
) -> Result<(), JcsError> {
    for (i, (k, v)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(k, out);
        out.push(b':');
        write_value(v, out)?;
    }
    Ok(())
}

/// Orders strings by their UTF-16 code units, as RFC 8785 §3.2.3 requires.
pub fn cmp_utf16(a: &str, b: &str) -> std::cmp::Ordering {
    // UTF-8 byte order is code point order, which is UTF-16 order except
    // where a supplementary-plane character (lead byte 0xF0..0xF4, a
    // surrogate pair in UTF-16) meets one in U+E000..U+FFFF (lead 0xEE or
    // 0xEF): there the supplementary one comes first. Only the first
    // differing character decides, and both strings start it at the same
    // byte, since everything before it is equal.
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let Some(i) = x.iter().zip(y).position(|(p, q)| p != q) else {
        return x.len().cmp(&y.len());
    };
    let mut start = i;
    while start > 0 && x[start] & 0xC0 == 0x80 {
        start -= 1;
    }
    let (lx, ly) = (x[start], y[start]);
    let high_bmp = |l: u8| l == 0xEE || l == 0xEF;
    if lx >= 0xF0 && high_bmp(ly) {
        return std::cmp::Ordering::Less;
    }
    if ly >= 0xF0 && high_bmp(lx) {
        return std::cmp::Ordering::Greater;
    }
    x[i].cmp(&y[i])
}

fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) -> Result<(), JcsError> {
    if let Some(u) = n.as_u64() {
        if u > MAX_SAFE_INTEGER {
            return Err(JcsError::UnsafeInteger(u.to_string()));
        }
        out.extend_from_slice(u.to_string().as_bytes());
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(JcsError::UnsafeInteger(i.to_string()));
        }
        out.extend_from_slice(i.to_string().as_bytes());
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        if f == 0.0 {
            // ECMAScript prints both +0 and -0 as "0".
            out.push(b'0');
        } else {
            let mut buf = ryu_js::Buffer::new();
            out.extend_from_slice(buf.format_finite(f).as_bytes());
        }
    }
    Ok(())
}

/// Bytes that RFC 8785 escapes in strings: `"`, `\\` and U+0000–U+001F.
pub(crate) const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Appends `s` as a canonical JSON string (RFC 8785 §3.2.2.2).
pub fn write_string(s: &str, out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[b as usize] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0a => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0d => out.extend_from_slice(b"\\r"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jcs(s: &str) -> String {
        String::from_utf8(canonicalize(&parse_strict(s.as_bytes()).unwrap()).unwrap()).unwrap()
    }

    proptest::proptest! {
        #[test]
        fn utf16_order_matches_the_code_units(
            a in "[a\u{7f}\u{80}\u{e000}\u{ffff}\u{10000}\u{10ffff}é]{0,4}",
            b in "[a\u{7f}\u{80}\u{e000}\u{ffff}\u{10000}\u{10ffff}é]{0,4}",
        ) {
            proptest::prop_assert_eq!(cmp_utf16(&a, &b), a.encode_utf16().cmp(b.encode_utf16()));
        }
    }

    #[test]
    fn rfc8785_section_3_2_2_example() {
        // RFC 8785 §3.2.2's sample input and its canonical output.
        let input = r#"{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#;
        assert_eq!(
            jcs(input),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn rfc8785_sorting_example() {
        // RFC 8785 §3.2.3: keys sorted by UTF-16 code units.
        let input = "{\"\\u20ac\":\"Euro Sign\",\"\\r\":\"Carriage Return\",\"\\ufb33\":\"Hebrew Letter Dalet With Dagesh\",\"1\":\"One\",\"\\ud83d\\ude00\":\"Emoji: Grinning Face\",\"\\u0080\":\"Control\",\"\\u00f6\":\"Latin Small Letter O With Diaeresis\"}";
        let out = jcs(input);
        let keys: Vec<String> = {
            let v: serde_json::Map<String, Value> = serde_json::from_str(input).unwrap();
            let mut k: Vec<String> = v.keys().cloned().collect();
            k.sort_by(|a, b| cmp_utf16(a, b));
            k
        };
        let values: Vec<&str> = keys.iter().map(|_| "").collect();
        assert_eq!(values.len(), 7);
        let order: Vec<usize> = [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh",
        ]
        .iter()
        .map(|v| out.find(v).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    }

    #[test]
    fn es6_number_forms() {
        // Samples from RFC 8785 Appendix B (IEEE 754 value -> JCS text).
        for (input, want) in [
            ("0", "0"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("9007199254740991", "9007199254740991"),
            ("-9007199254740991", "-9007199254740991"),
            ("295147905179352830000", "295147905179352830000"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("0.000001", "0.000001"),
            ("0.0000001", "1e-7"),
            ("1.0", "1"),
        ] {
            assert_eq!(jcs(input), want, "{input}");
        }
    }

    #[test]
    fn strict_parser_refusals() {
        for bad in [
            r#"{"a":1,"a":2}"#,
            r#"{"x":{"b":1,"b":1}}"#,
            "9007199254740993",
            "-9007199254740993",
            "12345678901234567",
            "18446744073709551616",
            "-18446744073709551617",
            "99999999999999999999",
            "-99999999999999999999",
            r#"{"n":[1,123456789012345678901234567890]}"#,
            r#""\ud800""#,
            "{} x",
            "1e400",
        ] {
            assert!(parse_strict(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn large_integers_in_canonical_double_form_round_trip() {
        // A double's canonical form can be a long integer; it must parse.
        for ok in [
            "209495624604671740",
            "9007199254740992",
            "-16588755102619410",
            "1e21",
            "100000000000000000000",
            "18446744073709552000",
            "1.8446744073709551616e19",
        ] {
            let v = parse_strict(ok.as_bytes()).unwrap_or_else(|e| panic!("{ok}: {e}"));
            let c = canonicalize(&v).unwrap();
            assert_eq!(
                parse_strict(&c).map(|v| canonicalize(&v).unwrap()).unwrap(),
                c
            );
        }
        assert_eq!(jcs("2.0949562460467174e17"), "209495624604671740");
    }

    #[test]
    fn refusals_name_the_field() {
        for (input, path) in [
            (r#"{"attrs":{"n":18446744073709551616}}"#, "attrs.n"),
            (r#"{"attrs":{"n":9007199254740993}}"#, "attrs.n"),
            (r#"[{"a":1},{"risk":-99999999999999999999}]"#, "[1].risk"),
        ] {
            let e = parse_strict(input.as_bytes()).unwrap_err();
            assert_eq!(e.path.as_deref(), Some(path), "{input}: {e}");
            assert!(e.to_string().contains(&format!("`{path}`")), "{e}");
        }
    }

    #[test]
    fn escapes_and_unicode_kept() {
        assert_eq!(
            jcs(r#""\u2028\u007f\u0001é""#),
            "\"\u{2028}\u{7f}\\u0001é\""
        );
    }
}
