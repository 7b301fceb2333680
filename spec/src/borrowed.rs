//! A borrowed JSON tree over the input bytes, for the append path: one
//! strict parse that keeps strings and integer literals as slices of the
//! input, and the RFC 8785 canonical writer over that tree.
//!
//! It is a fast path, not a second definition: [`parse`] answers `None`
//! for anything it does not take in the common form (every refusal, and
//! rare forms such as integer literals of 16 digits or more or nesting
//! deeper than [`MAX_DEPTH`]). The caller then uses [`crate::jcs`], which
//! gives the same bytes or the exact error; differential tests hold the
//! two to the same output.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::jcs::{cmp_utf16, write_string, NEEDS_ESCAPE};

/// Deepest nesting the fast path takes (the general parser allows 128).
pub const MAX_DEPTH: usize = 64;

/// A JSON value whose strings borrow from the input where they hold no
/// escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer literal of at most 15 digits (so exact), other than `-0`.
    Int(i64, &'a str),
    /// Any other number, as the double it denotes (finite).
    Float(f64),
    /// A string, decoded.
    Str(Str<'a>),
    /// An array.
    Array(Vec<Node<'a>>),
    /// An object, its members in RFC 8785 order (UTF-16 code units of the
    /// keys), no key twice.
    Object(Vec<(Str<'a>, Node<'a>)>),
}

/// A decoded string; `raw` when the input spelled it without escapes, so
/// that its canonical form is the input's bytes between the quotes.
#[derive(Debug, Clone, PartialEq)]
pub struct Str<'a> {
    /// The string's value.
    pub text: Cow<'a, str>,
    /// No escapes in the input: canonical form = `"` + text + `"`.
    pub raw: bool,
}

impl<'a> Str<'a> {
    /// A string from outside the input, written with the canonical
    /// writer's escaping.
    pub fn value(s: &'a str) -> Str<'a> {
        Str {
            text: Cow::Borrowed(s),
            raw: false,
        }
    }
    /// The value.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl<'a> Node<'a> {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Object(m) => find(m, key),
            _ => None,
        }
    }
}

/// The member `key` among sorted members.
pub fn find<'m, 'a>(members: &'m [(Str<'a>, Node<'a>)], key: &str) -> Option<&'m Node<'a>> {
    members
        .binary_search_by(|(k, _)| cmp_utf16(k.as_str(), key))
        .ok()
        .map(|i| &members[i].1)
}

/// Parses `input` (valid UTF-8) strictly, or `None` if it is refused or
/// in a form left to the general parser.
pub fn parse(input: &str) -> Option<Node<'_>> {
    let mut p = Parser {
        s: input,
        b: input.as_bytes(),
        i: 0,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    (p.i == p.b.len()).then_some(v)
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

/// String bytes that end a run of plain characters: `"`, `\` and controls
/// (the same set the canonical form escapes).
const STOP: [bool; 256] = NEEDS_ESCAPE;

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> Option<()> {
        let end = self.i + lit.len();
        (self.b.get(self.i..end)? == lit).then(|| self.i = end)
    }

    fn value(&mut self, depth: usize) -> Option<Node<'a>> {
        match *self.b.get(self.i)? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(Node::Str),
            b'n' => self.eat(b"null").map(|()| Node::Null),
            b't' => self.eat(b"true").map(|()| Node::Bool(true)),
            b'f' => self.eat(b"false").map(|()| Node::Bool(false)),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn array(&mut self, depth: usize) -> Option<Node<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        let mut out = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Some(Node::Array(out));
        }
        loop {
            self.ws();
            out.push(self.value(depth)?);
            self.ws();
            match self.b.get(self.i)? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(Node::Array(out));
                }
                _ => return None,
            }
        }
    }

    fn object(&mut self, depth: usize) -> Option<Node<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        let mut out: Vec<(Str<'a>, Node<'a>)> = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Some(Node::Object(out));
        }
        let mut sorted = true;
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return None;
            }
            let k = self.string()?;
            self.ws();
            self.eat(b":")?;
            self.ws();
            let v = self.value(depth)?;
            if let Some((last, _)) = out.last() {
                sorted &= cmp_utf16(last.as_str(), k.as_str()) == Ordering::Less;
            }
            out.push((k, v));
            self.ws();
            match self.b.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        if !sorted {
            out.sort_by(|a, b| cmp_utf16(a.0.as_str(), b.0.as_str()));
            // A key twice is refused (by the general parser, with its message).
            if out.windows(2).any(|w| w[0].0.text == w[1].0.text) {
                return None;
            }
        }
        Some(Node::Object(out))
    }

    fn string(&mut self) -> Option<Str<'a>> {
        self.i += 1; // the opening quote
        let start = self.i;
        while !STOP[*self.b.get(self.i)? as usize] {
            self.i += 1;
        }
        if self.b[self.i] == b'"' {
            let text = &self.s[start..self.i];
            self.i += 1;
            return Some(Str {
                text: Cow::Borrowed(text),
                raw: true,
            });
        }
        let mut out = String::from(&self.s[start..self.i]);
        loop {
            let run = self.i;
            while !STOP[*self.b.get(self.i)? as usize] {
                self.i += 1;
            }
            out.push_str(&self.s[run..self.i]);
            match self.b[self.i] {
                b'"' => {
                    self.i += 1;
                    return Some(Str {
                        text: Cow::Owned(out),
                        raw: false,
                    });
                }
                b'\\' => {
                    self.i += 1;
                    let c = match *self.b.get(self.i)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            self.i += 1;
                            let hi = self.hex4()?;
                            let c = match hi {
                                0xD800..=0xDBFF => {
                                    self.eat(b"\\u")?;
                                    let lo = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&lo) {
                                        return None;
                                    }
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                }
                                0xDC00..=0xDFFF => return None,
                                _ => hi,
                            };
                            out.push(char::from_u32(c)?);
                            continue;
                        }
                        _ => return None,
                    };
                    self.i += 1;
                    out.push(c);
                }
                _ => return None, // a raw control character
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.i..self.i + 4)?;
        let mut v = 0;
        for &d in h {
            v = v << 4 | (d as char).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }

    fn number(&mut self) -> Option<Node<'a>> {
        let start = self.i;
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        let digits = self.i;
        match *self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        let int_end = self.i;
        let mut float = false;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            float = true;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            float = true;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            self.digits()?;
        }
        let text = &self.s[start..self.i];
        if !float {
            if int_end - digits > 15 {
                return None; // near or beyond 2^53: the general parser's rules
            }
            if text == "-0" {
                // What serde_json reads as the double -0.0.
                return Some(Node::Float(-0.0));
            }
            return Some(Node::Int(text.parse().ok()?, text));
        }
        let f: f64 = text.parse().ok()?;
        f.is_finite().then_some(Node::Float(f))
    }

    fn digits(&mut self) -> Option<()> {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        (self.i > start).then_some(())
    }
}

/// Appends the canonical form of `v` to `out`.
pub fn write(v: &Node<'_>, out: &mut Vec<u8>) {
    match v {
        Node::Null => out.extend_from_slice(b"null"),
        Node::Bool(true) => out.extend_from_slice(b"true"),
        Node::Bool(false) => out.extend_from_slice(b"false"),
        Node::Int(_, text) => out.extend_from_slice(text.as_bytes()),
        Node::Float(f) => {
            if *f == 0.0 {
                out.push(b'0');
            } else {
                out.extend_from_slice(ryu_js::Buffer::new().format_finite(*f).as_bytes());
            }
        }
        Node::Str(s) => write_str(s, out),
        Node::Array(a) => {
            out.push(b'[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(e, out);
            }
            out.push(b']');
        }
        Node::Object(m) => {
            out.push(b'{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write(v, out);
            }
            out.push(b'}');
        }
    }
}

/// Appends a string in canonical form.
pub fn write_str(s: &Str<'_>, out: &mut Vec<u8>) {
    if s.raw {
        out.reserve(s.text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.text.as_bytes());
        out.push(b'"');
    } else {
        write_string(&s.text, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fast path either refuses or agrees with the general one.
    fn agree(input: &str) -> bool {
        let Some(v) = parse(input) else {
            return false;
        };
        let mut fast = Vec::new();
        write(&v, &mut fast);
        let slow = crate::jcs::parse_strict(input.as_bytes())
            .ok()
            .and_then(|v| crate::jcs::canonicalize(&v).ok());
        assert_eq!(
            Some(String::from_utf8(fast).unwrap()),
            slow.map(|s| String::from_utf8(s).unwrap()),
            "input {input:?}"
        );
        true
    }

    #[test]
    fn common_forms_agree_with_the_general_parser() {
        for s in [
            r#"{"b":1,"a":[true,false,null,"x\"y\u00e9\ud83d\ude00"],"c":{"z":-5,"y":1.50}}"#,
            r#" [ 1e3 , 0.1 , -0 , 0 , 123456789012345 , "\/\b\f\n\r\t" ] "#,
            r#"{"\u00e9":1,"e":2,"\ud83d\ude00":3,"\uffff":4}"#,
            r#"{}"#,
            r#"[]"#,
            r#""plain""#,
            r#"1E-7"#,
        ] {
            assert!(agree(s), "{s} should take the fast path");
        }
    }

    #[test]
    fn refusals_and_rare_forms_go_to_the_general_parser() {
        for s in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,}"#,
            r#"[1,]"#,
            r#"01"#,
            r#"1."#,
            r#"9007199254740993"#,
            r#"1234567890123456"#,
            r#""\ud800""#,
            r#""\udc00x""#,
            "\"a\u{1}\"",
            r#""\x""#,
            r#"1e400"#,
            r#"{"a":1} x"#,
            r#"nul"#,
            "",
        ] {
            assert!(parse(s).is_none(), "{s:?} must not take the fast path");
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).is_none());
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(agree(&ok));
    }

    #[test]
    fn agrees_with_serde_json_canonicalizer() {
        let s = r#"{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}"#;
        let v = parse(s).unwrap();
        let mut fast = Vec::new();
        write(&v, &mut fast);
        let theirs = serde_json_canonicalizer::to_vec(
            &serde_json::from_str::<serde_json::Value>(s).unwrap(),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(fast).unwrap(),
            String::from_utf8(theirs).unwrap()
        );
    }

    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            any::<i32>().prop_map(|i| i.to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            "-?(0|[1-9][0-9]{0,17})(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,3})?",
            "\"([ -!#-\\[\\]-~]|\\\\[\"\\\\/bfnrt]|\\\\u[0-9a-fA-F]{4}|[\u{80}-\u{10ffff}]){0,8}\"",
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|v| format!("[{}]", v.join(" , "))),
                prop::collection::vec(
                    ("\"([a-e]|\\\\u00e9|\u{e000}|\u{1f600}){0,3}\"", inner),
                    0..5
                )
                .prop_map(|m| {
                    let members: Vec<String> =
                        m.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn fast_path_agrees_or_defers(s in json_text()) {
            agree(&s);
        }

        #[test]
        fn general_parser_acceptance_is_mostly_taken(s in json_text()) {
            // Where both accept, outputs are the same (checked in agree);
            // here: what the fast path refuses, the general parser
            // refuses too, unless it is one of the forms left to it.
            if parse(&s).is_none() && crate::jcs::parse_strict(s.as_bytes()).is_ok() {
                let rare = s.contains("\\ud") || s.contains("\\uD")
                    || s.split(|c: char| !c.is_ascii_digit()).any(|d| d.len() > 15);
                prop_assert!(rare, "fast path refused {s:?}, which the general parser takes");
            }
        }
    }
}
