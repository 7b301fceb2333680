//! Checking stored leaves at hashing speed, for verifiers that read the
//! whole log.
//!
//! [`check_leaf_facts`] gives the same verdict as
//! [`event::check_leaf`](crate::event::check_leaf) (canonical RFC 8785 form
//! of a schema-valid event) and returns the few fields a verifier needs. A
//! one-pass, allocation-free scanner confirms the common case: ASCII keys,
//! integers of at most 15 digits, canonical escapes. Anything else (floats,
//! long integers, escaped or non-ASCII keys, unusual escapes, any doubt)
//! falls back to the full check, which also produces every error message.
//! The scanner only ever accepts; it never rejects on its own.

use std::borrow::Cow;

use serde_json::Value;

use crate::event::{
    check_leaf, leaf_logged_at, EventError, MAX_EVENT_ID_LEN, PROVENANCES, VERDICTS,
};
use crate::time::parse_utc_millis;

/// What a verifier needs from a valid leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafFacts<'a> {
    /// `logged_at` in Unix milliseconds (`i64::MIN` if it is not a time).
    pub logged_at_ms: i64,
    /// `session`, if present.
    pub session: Option<Cow<'a, str>>,
    /// `seq`, if present.
    pub seq: Option<u64>,
    /// `verdict`.
    pub verdict: Cow<'a, str>,
    /// `agent`, `principal`, `owner` and `rule` (if present), in that order.
    pub who: [Option<Cow<'a, str>>; 4],
}

impl LeafFacts<'_> {
    /// The value of a filterable string field (`agent`, `principal`,
    /// `owner`, `session`, `rule`, `verdict`).
    pub fn get(&self, field: &str) -> Option<&str> {
        match field {
            "agent" => self.who[0].as_deref(),
            "principal" => self.who[1].as_deref(),
            "owner" => self.who[2].as_deref(),
            "rule" => self.who[3].as_deref(),
            "session" => self.session.as_deref(),
            "verdict" => Some(&self.verdict),
            _ => None,
        }
    }
}

const WHO: [&str; 4] = ["agent", "principal", "owner", "rule"];

/// The decoded value of a string with escapes, from its raw content.
fn unescape(raw: &str) -> Option<String> {
    serde_json::from_str(&format!("\"{raw}\"")).ok()
}

/// Checks a stored leaf exactly as `check_leaf` does and returns its facts.
pub fn check_leaf_facts(leaf: &[u8]) -> Result<LeafFacts<'_>, EventError> {
    if let Some(f) = fast(leaf) {
        return Ok(f);
    }
    let obj = check_leaf(leaf)?;
    let text = |f: &str| {
        obj.get(f)
            .and_then(Value::as_str)
            .map(|s| Cow::Owned(s.to_string()))
    };
    Ok(LeafFacts {
        logged_at_ms: leaf_logged_at(&obj).unwrap_or(i64::MIN),
        session: text("session"),
        seq: obj.get("seq").and_then(Value::as_u64),
        verdict: text("verdict").unwrap_or_default(),
        who: WHO.map(text),
    })
}

/// Confirms a leaf in the common case; `None` means "ask the full check".
pub fn fast(leaf: &[u8]) -> Option<LeafFacts<'_>> {
    let text = std::str::from_utf8(leaf).ok()?;
    let mut s = Scan { b: leaf, i: 0 };
    let mut seen = 0u32;
    let mut facts = LeafFacts {
        logged_at_ms: i64::MIN,
        session: None,
        seq: None,
        verdict: Cow::Borrowed(""),
        who: [None, None, None, None],
    };
    let decode = |a: usize, b: usize, esc: bool| -> Option<Cow<'_, str>> {
        let raw = text.get(a..b)?;
        Some(if esc {
            Cow::Owned(unescape(raw)?)
        } else {
            Cow::Borrowed(raw)
        })
    };
    s.object(|s, key| {
        let bit = match key {
            b"agent" | b"principal" | b"owner" | b"tool" => {
                let (a, b, esc) = s.string()?;
                if a == b {
                    return None;
                }
                let slot = match key {
                    b"agent" => Some(0),
                    b"principal" => Some(1),
                    b"owner" => Some(2),
                    _ => None,
                };
                if let Some(i) = slot {
                    facts.who[i] = Some(decode(a, b, esc)?);
                }
                field_bit(key)
            }
            b"ts" => {
                let v = s.plain_string(text)?;
                parse_utc_millis(v).ok()?;
                field_bit(key)
            }
            b"logged_at" => {
                let v = s.plain_string(text)?;
                facts.logged_at_ms = parse_utc_millis(v).ok()?;
                field_bit(key)
            }
            b"verdict" => {
                let v = s.plain_string(text)?;
                if !VERDICTS.contains(&v) {
                    return None;
                }
                facts.verdict = Cow::Borrowed(v);
                field_bit(key)
            }
            b"provenance" => {
                if !PROVENANCES.contains(&s.plain_string(text)?) {
                    return None;
                }
                0
            }
            b"event_id" => {
                let v = s.plain_string(text)?;
                if v.is_empty() || v.len() > MAX_EVENT_ID_LEN {
                    return None;
                }
                field_bit(key)
            }
            b"gateway" => {
                s.string()?;
                field_bit(key)
            }
            b"session" => {
                facts.session = Some(Cow::Borrowed(s.plain_string(text)?));
                0
            }
            b"rule" => {
                let (a, b, esc) = s.string()?;
                facts.who[3] = Some(decode(a, b, esc)?);
                0
            }
            b"target" | b"provenance_source" | b"reason" => {
                s.string()?;
                0
            }
            b"args_hash" => {
                let v = s.plain_string(text)?;
                let ok = v
                    .strip_prefix("sha256:")
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
                if !ok {
                    return None;
                }
                0
            }
            b"seq" => {
                facts.seq = Some(s.unsigned()?);
                0
            }
            b"latency_ms" => {
                s.unsigned()?;
                0
            }
            b"risk" => {
                if s.unsigned()? > 100 {
                    return None;
                }
                0
            }
            b"result" => {
                s.result()?;
                0
            }
            b"attrs" => {
                if s.peek()? != b'{' {
                    return None;
                }
                s.value(0)?;
                0
            }
            b"args" => {
                s.value(0)?;
                0
            }
            _ => return None,
        };
        seen |= bit;
        Some(())
    })?;
    if s.i != leaf.len() || seen != ALL_REQUIRED {
        return None;
    }
    Some(facts)
}

/// Bits of the fields every stored leaf must have.
const ALL_REQUIRED: u32 = (1 << 9) - 1;

fn field_bit(key: &[u8]) -> u32 {
    match key {
        b"ts" => 1,
        b"agent" => 2,
        b"principal" => 4,
        b"owner" => 8,
        b"tool" => 16,
        b"verdict" => 32,
        b"event_id" => 64,
        b"gateway" => 128,
        b"logged_at" => 256,
        _ => 0,
    }
}

/// Deepest nesting the scanner follows (the full check handles deeper).
const MAX_DEPTH: usize = 32;

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// A string in canonical form; returns its content range and whether
    /// it holds escapes.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        self.eat(b'"')?;
        let start = self.i;
        let mut esc = false;
        loop {
            self.skip_plain();
            let c = self.next()?;
            match c {
                b'"' => return Some((start, self.i - 1, esc)),
                b'\\' => {
                    esc = true;
                    match self.next()? {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let h = self.b.get(self.i..self.i + 4)?;
                            self.i += 4;
                            // Only controls without a short form, lowercase hex.
                            let code = match (h[0], h[1], h[2], h[3]) {
                                (b'0', b'0', a @ b'0'..=b'1', d) => {
                                    let lo = match d {
                                        b'0'..=b'9' => d - b'0',
                                        b'a'..=b'f' => d - b'a' + 10,
                                        _ => return None,
                                    };
                                    (a - b'0') * 16 + lo
                                }
                                _ => return None,
                            };
                            if matches!(code, 8 | 9 | 10 | 12 | 13) {
                                return None;
                            }
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => {}
            }
        }
    }

    /// Skips string bytes that need no attention (not `"`, `\\` or a
    /// control character), eight at a time.
    fn skip_plain(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let x = u64::from_le_bytes(w);
            // A byte below 0x20 (ignoring bytes >= 0x80, which are never
            // special), or equal to '"' or '\\'.
            let low = x.wrapping_sub(0x2020_2020_2020_2020) & !x & HIGHS;
            let special =
                low | zero_byte(x ^ (ONES * b'"' as u64)) | zero_byte(x ^ (ONES * b'\\' as u64));
            if special != 0 {
                self.i += (special.trailing_zeros() / 8) as usize;
                return;
            }
            self.i += 8;
        }
    }

    /// A string without escapes, as `&str` (the leaf is valid UTF-8).
    fn plain_string(&mut self, text: &'a str) -> Option<&'a str> {
        let (a, b, esc) = self.string()?;
        if esc {
            return None;
        }
        text.get(a..b)
    }

    /// A canonical integer of at most 15 digits (exact in a double).
    fn integer(&mut self) -> Option<(bool, u64)> {
        let neg = self.peek()? == b'-';
        if neg {
            self.i += 1;
        }
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            v = v * 10 + (c - b'0') as u64;
            self.i += 1;
            if self.i - start > 15 {
                return None;
            }
        }
        let digits = &self.b[start..self.i];
        if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
            return None;
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some((neg, v))
    }

    fn unsigned(&mut self) -> Option<u64> {
        match self.integer()? {
            (false, v) => Some(v),
            _ => None,
        }
    }

    /// `result`: an object with only `error` (string) and `status` (integer).
    fn result(&mut self) -> Option<()> {
        self.object(|s, key| match key {
            b"error" => s.string().map(|_| ()),
            b"status" => s.integer().map(|_| ()),
            _ => None,
        })
    }

    /// An object in canonical form: ASCII keys without escapes in strictly
    /// increasing byte order (which is UTF-16 order for ASCII), each value
    /// read by `member`.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        let bytes: &'a [u8] = self.b;
        let mut prev: &[u8] = b"";
        loop {
            let (a, b, esc) = self.string()?;
            let key = &bytes[a..b];
            if esc || !key.is_ascii() || key <= prev {
                return None;
            }
            prev = key;
            self.eat(b':')?;
            member(self, key)?;
            match self.next()? {
                b',' => continue,
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// Any value in canonical form.
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => self.object(|s, _| s.value(depth + 1)),
            b'[' => {
                self.i += 1;
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    match self.next()? {
                        b',' => continue,
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.integer().map(|_| ()),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }
}
