//! The fields of a stored event that queries filter on, read from its leaf
//! bytes without building a JSON tree.

use std::borrow::Cow;

use serde::Deserialize;

/// The fields a query can filter on, in index order (see [`Field::ALL`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// `agent`.
    Agent,
    /// `principal`.
    Principal,
    /// `owner`.
    Owner,
    /// `session`.
    Session,
    /// `tool`.
    Tool,
    /// `target`.
    Target,
    /// `verdict`.
    Verdict,
    /// `rule`.
    Rule,
    /// `provenance`.
    Provenance,
    /// `gateway` (the token the event was appended with).
    Gateway,
}

impl Field {
    /// Every indexed string field.
    pub const ALL: [Field; 10] = [
        Field::Agent,
        Field::Principal,
        Field::Owner,
        Field::Session,
        Field::Tool,
        Field::Target,
        Field::Verdict,
        Field::Rule,
        Field::Provenance,
        Field::Gateway,
    ];

    /// The fields stats can group by (they are kept as columns too).
    pub const GROUPS: [Field; 7] = [
        Field::Verdict,
        Field::Agent,
        Field::Principal,
        Field::Owner,
        Field::Rule,
        Field::Tool,
        Field::Gateway,
    ];

    /// The field's JSON name (also its query parameter).
    pub fn name(self) -> &'static str {
        match self {
            Field::Agent => "agent",
            Field::Principal => "principal",
            Field::Owner => "owner",
            Field::Session => "session",
            Field::Tool => "tool",
            Field::Target => "target",
            Field::Verdict => "verdict",
            Field::Rule => "rule",
            Field::Provenance => "provenance",
            Field::Gateway => "gateway",
        }
    }

    /// The field named `s`.
    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == s)
    }

    /// Position in [`Field::ALL`].
    pub fn slot(self) -> usize {
        self as usize
    }
}

/// An event's filterable fields, borrowed from its leaf where possible.
#[derive(Debug, Default, Deserialize)]
pub struct EventFields<'a> {
    #[serde(borrow, default)]
    agent: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    principal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    owner: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    session: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    target: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    verdict: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    rule: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    provenance: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    gateway: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    logged_at: Option<Cow<'a, str>>,
    /// `risk`, 0–100.
    #[serde(default)]
    pub risk: Option<u8>,
}

impl<'a> EventFields<'a> {
    /// Reads the fields of a leaf (canonical JSON of a valid event); other
    /// members are skipped. A one-pass scan of the top-level members, with
    /// serde_json as the fallback for anything it does not expect.
    pub fn parse(leaf: &'a [u8]) -> Result<EventFields<'a>, serde_json::Error> {
        match scan(leaf) {
            Some(f) => Ok(f),
            None => serde_json::from_slice(leaf),
        }
    }

    /// The same through serde_json alone (the reference for the scan).
    pub fn parse_slow(leaf: &'a [u8]) -> Result<EventFields<'a>, serde_json::Error> {
        serde_json::from_slice(leaf)
    }

    /// The value of `f`, if present.
    pub fn get(&self, f: Field) -> Option<&str> {
        match f {
            Field::Agent => self.agent.as_deref(),
            Field::Principal => self.principal.as_deref(),
            Field::Owner => self.owner.as_deref(),
            Field::Session => self.session.as_deref(),
            Field::Tool => self.tool.as_deref(),
            Field::Target => self.target.as_deref(),
            Field::Verdict => self.verdict.as_deref(),
            Field::Rule => self.rule.as_deref(),
            Field::Provenance => self.provenance.as_deref(),
            Field::Gateway => self.gateway.as_deref(),
        }
    }

    /// `event_id`.
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_deref()
    }

    /// `logged_at` as written.
    pub fn logged_at(&self) -> Option<&str> {
        self.logged_at.as_deref()
    }

    /// `logged_at` in Unix milliseconds (`i64::MIN` if absent or malformed).
    pub fn logged_at_ms(&self) -> i64 {
        self.logged_at
            .as_deref()
            .and_then(|t| vellum_spec::time::parse_utc_millis(t).ok())
            .unwrap_or(i64::MIN)
    }
}

/// The end of the JSON string whose opening quote is at `i` (index of the
/// closing quote), and whether it holds an escape.
fn string_end(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut j = i + 1;
    let mut esc = false;
    loop {
        match *b.get(j)? {
            b'"' => return Some((j, esc)),
            b'\\' => {
                esc = true;
                j += 2;
            }
            _ => j += 1,
        }
    }
}

/// The end (exclusive) of the JSON value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i).map(|(e, _)| e + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?.0 + 1;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']') {
                j += 1;
            }
            Some(j)
        }
    }
}

/// A string value's text: borrowed, or decoded if it has escapes.
fn text(b: &[u8], i: usize) -> Option<(Cow<'_, str>, usize)> {
    if *b.get(i)? != b'"' {
        return None;
    }
    let (end, esc) = string_end(b, i)?;
    let raw = std::str::from_utf8(&b[i + 1..end]).ok()?;
    let t = if esc {
        Cow::Owned(serde_json::from_str::<String>(&format!("\"{raw}\"")).ok()?)
    } else {
        Cow::Borrowed(raw)
    };
    Some((t, end + 1))
}

/// One pass over the members of a canonical leaf (no whitespace): the
/// fields of interest read, every other value skipped. `None` on anything
/// unexpected; the caller then asks serde_json.
fn scan(b: &[u8]) -> Option<EventFields<'_>> {
    let mut f = EventFields::default();
    if *b.first()? != b'{' {
        return None;
    }
    let mut i = 1;
    if b.get(i) == Some(&b'}') {
        return (i + 1 == b.len()).then_some(f);
    }
    loop {
        if *b.get(i)? != b'"' {
            return None;
        }
        let (kend, kesc) = string_end(b, i)?;
        if kesc {
            return None;
        }
        let key = &b[i + 1..kend];
        i = kend + 1;
        if *b.get(i)? != b':' {
            return None;
        }
        i += 1;
        let slot: Option<&mut Option<Cow<'_, str>>> = match key {
            b"agent" => Some(&mut f.agent),
            b"principal" => Some(&mut f.principal),
            b"owner" => Some(&mut f.owner),
            b"session" => Some(&mut f.session),
            b"tool" => Some(&mut f.tool),
            b"target" => Some(&mut f.target),
            b"verdict" => Some(&mut f.verdict),
            b"rule" => Some(&mut f.rule),
            b"provenance" => Some(&mut f.provenance),
            b"gateway" => Some(&mut f.gateway),
            b"event_id" => Some(&mut f.event_id),
            b"logged_at" => Some(&mut f.logged_at),
            _ => None,
        };
        match slot {
            Some(slot) => {
                let (t, end) = text(b, i)?;
                *slot = Some(t);
                i = end;
            }
            None if key == b"risk" => {
                let end = value_end(b, i)?;
                f.risk = Some(std::str::from_utf8(&b[i..end]).ok()?.parse().ok()?);
                i = end;
            }
            None => i = value_end(b, i)?,
        }
        match *b.get(i)? {
            b',' => i += 1,
            b'}' => return (i + 1 == b.len()).then_some(f),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_filterable_fields_of_a_leaf() {
        let leaf = br#"{"agent":"a\u00e9","args":{"x":[1,2]},"event_id":"e1","gateway":"gw","logged_at":"2026-06-20T14:07:31.120Z","owner":"o","principal":"p","risk":80,"seq":3,"tool":"t","ts":"2026-06-20T14:07:31Z","verdict":"deny"}"#;
        let f = EventFields::parse(leaf).unwrap();
        assert_eq!(f.get(Field::Agent), Some("aé"));
        assert_eq!(f.get(Field::Verdict), Some("deny"));
        assert_eq!(f.get(Field::Rule), None);
        assert_eq!((f.risk, f.event_id()), (Some(80), Some("e1")));
        assert_eq!(f.logged_at_ms(), 1_781_964_451_120);
        for field in Field::ALL {
            assert_eq!(Field::parse(field.name()), Some(field));
        }
    }

    #[test]
    fn the_scan_agrees_with_serde() {
        let leaves: [&[u8]; 6] = [
            br#"{"agent":"a\"b\\c","args":{"q":"}{\"","n":[1,{"x":"]"}]},"event_id":"e","gateway":"g","logged_at":"2026-06-20T14:07:31.120Z","owner":"o","principal":"p","result":{"error":"x","status":500},"risk":0,"rule":"r","session":"s","target":"t","tool":"t","ts":"2026-06-20T14:07:31Z","verdict":"allow"}"#,
            br#"{"agent":"\u00e9t\u00e9","risk":100,"verdict":"deny"}"#,
            br#"{}"#,
            br#"{"attrs":{},"agent":"a"}"#,
            br#"{"risk":7}"#,
            br#"{"a":"x" }"#,
        ];
        for l in leaves {
            let slow = EventFields::parse_slow(l).ok();
            let fast = scan(l);
            match (slow, fast) {
                (Some(s), Some(f)) => {
                    for field in Field::ALL {
                        assert_eq!(
                            s.get(field),
                            f.get(field),
                            "{field:?} in {}",
                            String::from_utf8_lossy(l)
                        );
                    }
                    assert_eq!(
                        (s.risk, s.event_id(), s.logged_at_ms()),
                        (f.risk, f.event_id(), f.logged_at_ms())
                    );
                }
                (_, None) => {} // falls back to serde
                (None, Some(_)) => panic!(
                    "scan accepted what serde refuses: {}",
                    String::from_utf8_lossy(l)
                ),
            }
        }
    }
}
