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
    check_leaf, is_args_hash_bytes, leaf_logged_at, EventError, MAX_EVENT_ID_LEN, PROVENANCES,
    VERDICTS,
};
use crate::time::parse_utc_millis_bytes;

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
///
/// UTF-8 is checked where it can occur, inside strings (a byte of 0x80 or
/// more anywhere else is not JSON), so an ASCII leaf is read once.
pub fn fast(leaf: &[u8]) -> Option<LeafFacts<'_>> {
    let mut s = Scan { b: leaf, i: 0 };
    let mut seen = 0u32;
    let mut facts = LeafFacts {
        logged_at_ms: i64::MIN,
        session: None,
        seq: None,
        verdict: Cow::Borrowed(""),
        who: [None, None, None, None],
    };
    // String contents were checked as UTF-8 by the scan; converting them
    // again costs little for the few short fields returned.
    let decode = |a: usize, b: usize, esc: bool| -> Option<Cow<'_, str>> {
        let raw = std::str::from_utf8(leaf.get(a..b)?).ok()?;
        Some(if esc {
            Cow::Owned(unescape(raw)?)
        } else {
            Cow::Borrowed(raw)
        })
    };
    s.fields(|s, field| {
        match field {
            Field::Agent | Field::Principal | Field::Owner | Field::Tool => {
                let (a, b, esc) = s.string()?;
                if a == b {
                    return None;
                }
                let slot = match field {
                    Field::Agent => Some(0),
                    Field::Principal => Some(1),
                    Field::Owner => Some(2),
                    _ => None,
                };
                if let Some(i) = slot {
                    facts.who[i] = Some(decode(a, b, esc)?);
                }
            }
            Field::Ts => {
                parse_utc_millis_bytes(s.plain_string()?).ok()?;
            }
            Field::LoggedAt => {
                facts.logged_at_ms = parse_utc_millis_bytes(s.plain_string()?).ok()?;
            }
            Field::Verdict => {
                let v = s.plain_string()?;
                facts.verdict = Cow::Borrowed(VERDICTS.iter().find(|k| k.as_bytes() == v)?);
            }
            Field::Provenance => {
                let v = s.plain_string()?;
                if !PROVENANCES.iter().any(|k| k.as_bytes() == v) {
                    return None;
                }
            }
            Field::EventId => {
                let v = s.plain_string()?;
                if v.is_empty() || v.len() > MAX_EVENT_ID_LEN {
                    return None;
                }
            }
            Field::Gateway | Field::Target | Field::ProvenanceSource | Field::Reason => {
                s.string()?;
            }
            Field::Session => {
                let (a, b, esc) = s.string()?;
                if esc {
                    return None;
                }
                facts.session = Some(decode(a, b, false)?);
            }
            Field::Rule => {
                let (a, b, esc) = s.string()?;
                facts.who[3] = Some(decode(a, b, esc)?);
            }
            Field::ArgsHash => {
                if !is_args_hash_bytes(s.plain_string()?) {
                    return None;
                }
            }
            Field::Seq => facts.seq = Some(s.unsigned()?),
            Field::LatencyMs => {
                s.unsigned()?;
            }
            Field::Risk => {
                if s.unsigned()? > 100 {
                    return None;
                }
            }
            Field::Result => s.result()?,
            Field::Attrs => {
                if s.peek()? != b'{' {
                    return None;
                }
                s.value(0)?;
            }
            Field::Args => s.value(0)?,
        }
        seen |= field.required_bit();
        Some(())
    })?;
    if s.i != leaf.len() || seen != ALL_REQUIRED {
        return None;
    }
    Some(facts)
}

/// Bits of the fields every stored leaf must have.
const ALL_REQUIRED: u32 = (1 << 9) - 1;

/// The fields of a stored event, declared in the byte order of their
/// names (RFC 8785 order for ASCII keys), so the order of two keys is the
/// order of their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Agent,
    Args,
    ArgsHash,
    Attrs,
    EventId,
    Gateway,
    LatencyMs,
    LoggedAt,
    Owner,
    Principal,
    Provenance,
    ProvenanceSource,
    Reason,
    Result,
    Risk,
    Rule,
    Seq,
    Session,
    Target,
    Tool,
    Ts,
    Verdict,
}

impl Field {
    /// The field a key names: one jump on (length, first byte, last
    /// byte), which is unique among the schema's 22 names, then one
    /// fixed-length comparison to confirm.
    fn of(key: &[u8]) -> Option<Field> {
        let (&first, &last) = (key.first()?, key.last()?);
        Some(match (key.len(), first, last) {
            (2, b't', b's') if key == b"ts" => Field::Ts,
            (5, b'a', b't') if key == b"agent" => Field::Agent,
            (9, b'p', b'l') if key == b"principal" => Field::Principal,
            (5, b'o', b'r') if key == b"owner" => Field::Owner,
            (4, b't', b'l') if key == b"tool" => Field::Tool,
            (7, b'v', b't') if key == b"verdict" => Field::Verdict,
            (8, b'e', b'd') if key == b"event_id" => Field::EventId,
            (7, b'g', b'y') if key == b"gateway" => Field::Gateway,
            (9, b'l', b't') if key == b"logged_at" => Field::LoggedAt,
            (7, b's', b'n') if key == b"session" => Field::Session,
            (6, b't', b't') if key == b"target" => Field::Target,
            (4, b'a', b's') if key == b"args" => Field::Args,
            (9, b'a', b'h') if key == b"args_hash" => Field::ArgsHash,
            (10, b'p', b'e') if key == b"provenance" => Field::Provenance,
            (17, b'p', b'e') if key == b"provenance_source" => Field::ProvenanceSource,
            (3, b's', b'q') if key == b"seq" => Field::Seq,
            (4, b'r', b'e') if key == b"rule" => Field::Rule,
            (6, b'r', b'n') if key == b"reason" => Field::Reason,
            (4, b'r', b'k') if key == b"risk" => Field::Risk,
            (10, b'l', b's') if key == b"latency_ms" => Field::LatencyMs,
            (6, b'r', b't') if key == b"result" => Field::Result,
            (5, b'a', b's') if key == b"attrs" => Field::Attrs,
            _ => return None,
        })
    }

    /// Its bit in [`ALL_REQUIRED`], or 0 for an optional field.
    fn required_bit(self) -> u32 {
        match self {
            Field::Ts => 1,
            Field::Agent => 2,
            Field::Principal => 4,
            Field::Owner => 8,
            Field::Tool => 16,
            Field::Verdict => 32,
            Field::EventId => 64,
            Field::Gateway => 128,
            Field::LoggedAt => 256,
            _ => 0,
        }
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
    /// it holds escapes. Bytes of 0x80 and more must form UTF-8.
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
                0x80..=0xff => {
                    // A run of non-ASCII bytes ends at an ASCII byte, which
                    // is never inside a UTF-8 sequence: check the run whole.
                    let from = self.i - 1;
                    let run = self.b[from..].iter().position(|&c| c < 0x80)?;
                    std::str::from_utf8(&self.b[from..from + run]).ok()?;
                    self.i = from + run;
                }
                _ => {}
            }
        }
    }

    /// Skips string bytes that need no attention (not `"`, `\\`, a
    /// control character or a non-ASCII byte), eight at a time.
    fn skip_plain(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let x = u64::from_le_bytes(w);
            // A byte of 0x80 or more, below 0x20, or equal to '"' or '\\'.
            // Borrows in the subtractions only start at a flagged byte, so
            // the lowest flag is exact.
            let low = x.wrapping_sub(0x2020_2020_2020_2020) & !x & HIGHS;
            let special = (x & HIGHS)
                | low
                | zero_byte(x ^ (ONES * b'"' as u64))
                | zero_byte(x ^ (ONES * b'\\' as u64));
            if special != 0 {
                self.i += (special.trailing_zeros() / 8) as usize;
                return;
            }
            self.i += 8;
        }
    }

    /// The content of a string without escapes.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        let (a, b, esc) = self.string()?;
        if esc {
            return None;
        }
        self.b.get(a..b)
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

    /// The top-level object of an event: every key a schema field, in
    /// strictly increasing order, each value read by `member`.
    fn fields(&mut self, mut member: impl FnMut(&mut Self, Field) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        let mut prev: Option<Field> = None;
        loop {
            let key = self.plain_string()?;
            let field = Field::of(key)?;
            if prev >= Some(field) {
                return None;
            }
            prev = Some(field);
            self.eat(b':')?;
            member(self, field)?;
            match self.next()? {
                b',' => continue,
                b'}' => return Some(()),
                _ => return None,
            }
        }
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

#[cfg(test)]
mod tests {
    use super::Field;
    use crate::event::{OPTIONAL, REQUIRED, SERVER_FIELDS};

    #[test]
    fn every_schema_field_and_nothing_else_is_found() {
        let all: Vec<&str> = REQUIRED
            .iter()
            .chain(OPTIONAL)
            .chain(SERVER_FIELDS)
            .copied()
            .collect();
        let mut found: Vec<u8> = all
            .iter()
            .map(|k| Field::of(k.as_bytes()).expect(k) as u8)
            .collect();
        found.sort();
        found.dedup();
        assert_eq!(found.len(), all.len());
        // The declaration order of the fields is the byte order of their
        // names: the scanner compares keys by field.
        let mut names = all.clone();
        names.sort();
        let fields: Vec<Field> = names
            .iter()
            .map(|k| Field::of(k.as_bytes()).unwrap())
            .collect();
        assert!(fields.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        for k in [
            "",
            "t",
            "tx",
            "agents",
            "risq",
            "provenance_sourcE",
            "reasun",
        ] {
            assert_eq!(Field::of(k.as_bytes()), None, "{k}");
        }
    }
}
