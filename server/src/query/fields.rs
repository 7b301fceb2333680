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
    /// members are skipped.
    pub fn parse(leaf: &'a [u8]) -> Result<EventFields<'a>, serde_json::Error> {
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

    /// `logged_at` in Unix milliseconds (`i64::MIN` if absent or malformed).
    pub fn logged_at_ms(&self) -> i64 {
        self.logged_at
            .as_deref()
            .and_then(|t| vellum_spec::time::parse_utc_millis(t).ok())
            .unwrap_or(i64::MIN)
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
}
