//! The event as SIEMs and log pipelines read it: the native record, Elastic
//! Common Schema, OCSF API Activity, ArcSight CEF, and RFC 5424 syslog with
//! RFC 6587 octet-counting framing. One mapping per format, defined here
//! and documented in `spec/siem.md`; the log's sinks and `vellum tail
//! --format` both use it. Every record names the log's origin, the entry's
//! index and its leaf hash, so a copy in a SIEM can be checked against the
//! log.

use std::borrow::Cow;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Vellum's version, as formats name the producing product.
pub const PRODUCT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The ECS version the mapping follows (it uses the `gen_ai.*` fields).
pub const ECS_VERSION: &str = "9.1.0";
/// The OCSF schema version the mapping follows.
pub const OCSF_VERSION: &str = "1.8.0";

/// One entry of the log, as a sink sends it.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// The log's origin.
    pub origin: &'a str,
    /// The entry's index.
    pub index: u64,
    /// Its leaf hash, base64.
    pub leaf_hash: &'a str,
    /// Its leaf bytes (canonical JSON of the event).
    pub leaf: &'a [u8],
}

/// Why a record cannot be formatted (the leaf is not a JSON object).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {0} is not a JSON object")]
pub struct NotAnEvent(pub u64);

/// The output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `{"origin","index","leaf_hash","event"}` with the event verbatim.
    Json,
    /// Elastic Common Schema.
    Ecs,
    /// OCSF API Activity (class 6003).
    Ocsf,
    /// ArcSight Common Event Format.
    Cef,
}

impl Format {
    /// Parses `json`, `ecs`, `ocsf` or `cef`.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "json" => Some(Format::Json),
            "ecs" => Some(Format::Ecs),
            "ocsf" => Some(Format::Ocsf),
            "cef" => Some(Format::Cef),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Ecs => "ecs",
            Format::Ocsf => "ocsf",
            Format::Cef => "cef",
        }
    }

    /// The record in this format, as one line of text (JSON or CEF).
    pub fn render(self, r: &Record, host: &str) -> Result<String, NotAnEvent> {
        match self {
            Format::Json => Ok(native(r)),
            Format::Ecs => ecs_line(r, host),
            Format::Ocsf => ocsf_line(r),
            Format::Cef => cef(r),
        }
    }
}

/// The fields of an event the mappings read, borrowed from the leaf (no
/// tree is built: rendering is most of a sink's work).
#[derive(serde::Deserialize, Default)]
struct Ev<'a> {
    #[serde(borrow, default)]
    agent: Option<&'a RawValue>,
    #[serde(borrow, default)]
    principal: Option<&'a RawValue>,
    #[serde(borrow, default)]
    owner: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool: Option<&'a RawValue>,
    #[serde(borrow, default)]
    target: Option<&'a RawValue>,
    #[serde(borrow, default)]
    session: Option<&'a RawValue>,
    #[serde(borrow, default)]
    seq: Option<&'a RawValue>,
    #[serde(borrow, default)]
    verdict: Option<&'a RawValue>,
    #[serde(borrow, default)]
    rule: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reason: Option<&'a RawValue>,
    #[serde(borrow, default)]
    risk: Option<&'a RawValue>,
    #[serde(borrow, default)]
    latency_ms: Option<&'a RawValue>,
    #[serde(borrow, default)]
    provenance: Option<&'a RawValue>,
    #[serde(borrow, default)]
    provenance_source: Option<&'a RawValue>,
    #[serde(borrow, default)]
    gateway: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    args_hash: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    logged_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
}

fn event<'a>(r: &Record<'a>) -> Result<Ev<'a>, NotAnEvent> {
    // A struct also deserializes from an array: only an object is an event.
    let start = r.leaf.iter().find(|b| !b.is_ascii_whitespace());
    if start != Some(&b'{') {
        return Err(NotAnEvent(r.index));
    }
    serde_json::from_slice(r.leaf).map_err(|_| NotAnEvent(r.index))
}

/// A string member's value (`None` when absent or not a string).
fn st(v: Option<&RawValue>) -> Option<Cow<'_, str>> {
    let raw = v?.get();
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// A non-negative integer member's value.
fn uint(v: Option<&RawValue>) -> Option<u64> {
    v?.get().parse().ok()
}

/// A time member's value in Unix milliseconds.
fn millis(v: Option<&RawValue>) -> Option<i64> {
    st(v).and_then(|t| crate::time::parse_utc_millis(&t).ok())
}

/// Writes `v` as a JSON string, escaped as serde_json escapes.
fn json_str(out: &mut String, v: &str) {
    out.push('"');
    let mut from = 0;
    for (i, b) in v.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&v[from..i]);
        if esc.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(esc);
        }
        from = i + 1;
    }
    out.push_str(&v[from..]);
    out.push('"');
}

/// A JSON object being written; members without a value are left out,
/// and so are objects left empty.
struct Obj<'o> {
    out: &'o mut String,
    empty: bool,
}

impl Obj<'_> {
    fn write(out: &mut String, f: impl FnOnce(&mut Obj)) {
        out.push('{');
        let mut o = Obj { out, empty: true };
        f(&mut o);
        o.out.push('}');
    }

    fn key(&mut self, k: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str("\":");
    }

    fn str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.key(k);
            json_str(self.out, v);
        }
    }

    fn num(&mut self, k: &str, v: Option<impl std::fmt::Display>) {
        if let Some(v) = v {
            self.key(k);
            self.out.push_str(&v.to_string());
        }
    }

    fn raw(&mut self, k: &str, v: Option<&RawValue>) {
        if let Some(v) = v.filter(|v| v.get() != "null") {
            self.key(k);
            self.out.push_str(v.get());
        }
    }

    fn strs(&mut self, k: &str, vs: &[&str]) {
        self.key(k);
        self.out.push('[');
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            json_str(self.out, v);
        }
        self.out.push(']');
    }

    fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj)) {
        let (mark, was_empty) = (self.out.len(), self.empty);
        self.key(k);
        self.out.push('{');
        let mut o = Obj {
            out: self.out,
            empty: true,
        };
        f(&mut o);
        if o.empty {
            self.out.truncate(mark);
            self.empty = was_empty;
        } else {
            self.out.push('}');
        }
    }
}

/// The native record: the event's exact bytes under `event`.
pub fn native(r: &Record) -> String {
    let mut out = String::with_capacity(r.leaf.len() + 128);
    out.push_str("{\"origin\":");
    out.push_str(&Value::String(r.origin.to_string()).to_string());
    out.push_str(&format!(
        ",\"index\":{},\"leaf_hash\":\"{}\",\"event\":",
        r.index, r.leaf_hash
    ));
    out.push_str(&String::from_utf8_lossy(r.leaf));
    out.push('}');
    out
}

/// Did the tool call succeed, fail, or is that unknown?
fn outcome(e: &Ev) -> &'static str {
    let res = e
        .result
        .filter(|r| r.get().starts_with('{'))
        .and_then(|r| serde_json::from_str::<Map<String, Value>>(r.get()).ok());
    if let Some(res) = res {
        let failed = res.get("error").is_some()
            || res
                .get("status")
                .and_then(Value::as_i64)
                .is_some_and(|c| c >= 400);
        return if failed { "failure" } else { "success" };
    }
    match st(e.verdict).as_deref() {
        // A denied call did not run.
        Some("deny") => "failure",
        _ => "unknown",
    }
}

/// A one-line summary for humans.
fn summary(e: &Ev) -> String {
    let verdict = st(e.verdict);
    let verb = match verdict.as_deref().unwrap_or("") {
        "allow" => "allowed",
        "deny" => "denied",
        "approve" => "approved",
        "review" => "held for review",
        other => other,
    };
    let mut m = format!(
        "{} {} {verb}",
        st(e.agent).as_deref().unwrap_or("-"),
        st(e.tool).as_deref().unwrap_or("-")
    );
    if let Some(r) = st(e.rule) {
        m.push_str(" by ");
        m.push_str(&r);
    }
    if let Some(r) = st(e.reason) {
        m.push_str(": ");
        m.push_str(&r);
    }
    m
}

/// The `vellum` object: where the entry is in the log, and the event's
/// fields that no schema field carries as they are.
fn vellum_fields(o: &mut Obj, r: &Record, e: &Ev) {
    o.str("origin", Some(r.origin));
    o.num("index", Some(r.index));
    o.str("leaf_hash", Some(r.leaf_hash));
    o.raw("verdict", e.verdict);
    o.raw("owner", e.owner);
    o.raw("session", e.session);
    o.raw("seq", e.seq);
    o.raw("provenance", e.provenance);
    o.raw("provenance_source", e.provenance_source);
    o.raw("args_hash", e.args_hash);
    o.raw("gateway", e.gateway);
    o.raw("logged_at", e.logged_at);
    o.raw("risk", e.risk);
    o.raw("target", e.target);
}

/// Elastic Common Schema (field table in `spec/siem.md`), as one line.
pub fn ecs_line(r: &Record, host: &str) -> Result<String, NotAnEvent> {
    let e = event(r)?;
    let verdict = st(e.verdict);
    let types: &[&str] = match verdict.as_deref().unwrap_or("") {
        "allow" | "approve" => &["allowed"],
        "deny" => &["denied"],
        _ => &["info"],
    };
    let (agent, tool, principal) = (st(e.agent), st(e.tool), st(e.principal));
    let (rule, target, args_hash) = (st(e.rule), st(e.target), st(e.args_hash));
    let risk = uint(e.risk);
    let mut out = String::with_capacity(r.leaf.len() * 3 + 256);
    Obj::write(&mut out, |o| {
        o.str("@timestamp", st(e.ts).as_deref());
        o.obj("ecs", |o| o.str("version", Some(ECS_VERSION)));
        o.str("message", Some(&summary(&e)));
        o.obj("event", |o| {
            o.str("kind", Some("event"));
            o.strs("category", &["api"]);
            o.strs("type", types);
            o.str("action", tool.as_deref());
            o.str("outcome", Some(outcome(&e)));
            o.str("id", st(e.event_id).as_deref());
            o.num("sequence", Some(r.index));
            o.str("hash", Some(r.leaf_hash));
            o.str("ingested", st(e.logged_at).as_deref());
            o.str("provider", Some("vellum"));
            o.str("dataset", Some("vellum.audit"));
            o.num(
                "duration",
                uint(e.latency_ms).map(|x| x.saturating_mul(1_000_000)),
            );
            o.num("risk_score", risk);
            o.num("risk_score_norm", risk);
            o.str("reason", st(e.reason).as_deref());
        });
        o.obj("gen_ai", |o| {
            o.obj("agent", |o| {
                o.str("id", agent.as_deref());
                o.str("name", agent.as_deref());
            });
            o.obj("operation", |o| o.str("name", Some("execute_tool")));
            o.obj("tool", |o| o.str("name", tool.as_deref()));
        });
        o.obj("user", |o| {
            o.str("id", principal.as_deref());
            o.str("name", principal.as_deref());
        });
        o.obj("service", |o| {
            o.str("name", Some("vellum"));
            o.str("type", Some("audit-log"));
        });
        o.obj("host", |o| o.str("name", Some(host)));
        o.obj("observer", |o| {
            o.str("name", st(e.gateway).as_deref());
            o.str("product", Some("Vellum"));
            o.str("vendor", Some("Vellum"));
            o.str("type", Some("audit-log"));
        });
        o.obj("related", |o| match args_hash.as_deref() {
            Some(a) => o.strs("hash", &[r.leaf_hash, a]),
            None => o.strs("hash", &[r.leaf_hash]),
        });
        o.obj("vellum", |o| vellum_fields(o, r, &e));
        if let Some(x) = rule.as_deref() {
            o.obj("rule", |o| {
                o.str("name", Some(x));
                o.str("id", Some(x));
                o.str("ruleset", Some("vellum"));
            });
        }
        if let Some(x) = target.as_deref() {
            o.obj("destination", |o| {
                o.str("domain", Some(x));
                o.str("address", Some(x));
            });
        }
        o.obj("labels", |o| {
            o.str("owner", st(e.owner).as_deref());
            o.str("session_id", st(e.session).as_deref());
            o.str("provenance", st(e.provenance).as_deref());
        });
    });
    Ok(out)
}

/// Elastic Common Schema, as a JSON value (see [`ecs_line`]).
pub fn ecs(r: &Record, host: &str) -> Result<Value, NotAnEvent> {
    let line = ecs_line(r, host)?;
    serde_json::from_str(&line).map_err(|_| NotAnEvent(r.index))
}

/// OCSF severity: deny is Medium, High at risk 80 and above; review Low;
/// allow and approve Informational.
pub fn ocsf_severity(verdict: &str, risk: Option<u64>) -> (u8, &'static str) {
    match verdict {
        "deny" if risk.unwrap_or(0) >= 80 => (4, "High"),
        "deny" => (3, "Medium"),
        "review" => (2, "Low"),
        _ => (1, "Informational"),
    }
}

/// OCSF API Activity, class 6003, with the Security Control profile
/// (field table in `spec/siem.md`), as one line.
pub fn ocsf_line(r: &Record) -> Result<String, NotAnEvent> {
    let e = event(r)?;
    let verdict = st(e.verdict);
    let verdict = verdict.as_deref().unwrap_or("");
    let risk = uint(e.risk);
    let (severity_id, severity) = ocsf_severity(verdict, risk);
    let (status_id, status) = match outcome(&e) {
        "success" => (1, "Success"),
        "failure" => (2, "Failure"),
        _ => (0, "Unknown"),
    };
    let (action_id, action) = match verdict {
        "deny" => (2, "Denied"),
        "allow" | "approve" => (1, "Allowed"),
        _ => (3, "Observed"),
    };
    let (disposition_id, disposition) = match verdict {
        "allow" => (1, "Allowed"),
        "deny" => (2, "Blocked"),
        "approve" => (8, "Approved"),
        _ => (14, "Delayed"),
    };
    let (agent, principal, tool) = (st(e.agent), st(e.principal), st(e.tool));
    let (event_id, session, target) = (st(e.event_id), st(e.session), st(e.target));
    let (rule, reason) = (st(e.rule), st(e.reason));
    let mut out = String::with_capacity(r.leaf.len() * 3 + 256);
    Obj::write(&mut out, |o| {
        o.num("class_uid", Some(6003));
        o.str("class_name", Some("API Activity"));
        o.num("category_uid", Some(6));
        o.str("category_name", Some("Application Activity"));
        o.num("activity_id", Some(99));
        o.str("activity_name", Some("Other"));
        o.num("type_uid", Some(600399));
        o.str("type_name", Some("API Activity: Other"));
        o.num("time", millis(e.ts));
        o.num("severity_id", Some(severity_id));
        o.str("severity", Some(severity));
        o.num("status_id", Some(status_id));
        o.str("status", Some(status));
        o.str("status_detail", reason.as_deref());
        o.num("action_id", Some(action_id));
        o.str("action", Some(action));
        o.num("disposition_id", Some(disposition_id));
        o.str("disposition", Some(disposition));
        o.str("message", Some(&summary(&e)));
        o.num("risk_score", risk);
        o.num("duration", uint(e.latency_ms));
        o.obj("metadata", |o| {
            o.str("version", Some(OCSF_VERSION));
            o.obj("product", |o| {
                o.str("name", Some("Vellum"));
                o.str("vendor_name", Some("Vellum"));
                o.str("version", Some(PRODUCT_VERSION));
            });
            o.str("uid", event_id.as_deref());
            o.num("sequence", Some(r.index));
            o.str("log_name", Some(r.origin));
            o.num("logged_time", millis(e.logged_at));
            o.str("correlation_uid", session.as_deref());
            o.strs("profiles", &["security_control"]);
        });
        o.obj("actor", |o| {
            o.obj("user", |o| {
                o.str("name", principal.as_deref());
                o.str("uid", principal.as_deref());
            });
            o.str("app_name", agent.as_deref());
            o.str("app_uid", agent.as_deref());
            o.obj("session", |o| o.str("uid", session.as_deref()));
        });
        o.obj("api", |o| {
            o.str("operation", tool.as_deref());
            o.obj("request", |o| o.str("uid", event_id.as_deref()));
            o.obj("service", |o| o.str("name", target.as_deref()));
        });
        o.obj("src_endpoint", |o| {
            o.str("name", Some(st(e.gateway).as_deref().unwrap_or("unknown")))
        });
        o.obj("dst_endpoint", |o| o.str("hostname", target.as_deref()));
        if let Some(x) = rule.as_deref() {
            o.obj("policy", |o| {
                o.str("name", Some(x));
                o.str("uid", Some(x));
                o.str("desc", reason.as_deref());
            });
        }
        o.obj("unmapped", |o| o.obj("vellum", |o| vellum_fields(o, r, &e)));
    });
    Ok(out)
}

/// OCSF API Activity as a JSON value (see [`ocsf_line`]).
pub fn ocsf(r: &Record) -> Result<Value, NotAnEvent> {
    let line = ocsf_line(r)?;
    serde_json::from_str(&line).map_err(|_| NotAnEvent(r.index))
}

/// CEF severity 0–10: a base per verdict (allow 1, approve 3, review 5,
/// deny 7), raised to risk / 10 when that is higher.
pub fn cef_severity(verdict: &str, risk: Option<u64>) -> u8 {
    let base = match verdict {
        "allow" => 1,
        "approve" => 3,
        "review" => 5,
        "deny" => 7,
        _ => 0,
    };
    let by_risk = risk.map(|r| r.min(100).div_ceil(10) as u8).unwrap_or(0);
    base.max(by_risk).min(10)
}

/// Escapes a CEF header field: `\` and `|`.
pub fn cef_header_escape(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '|' => o.push_str("\\|"),
            '\n' | '\r' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// Escapes a CEF extension value: `\`, `=`, and line breaks.
pub fn cef_value_escape(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    cef_value_escape_into(&mut o, v);
    o
}

fn cef_value_escape_into(o: &mut String, v: &str) {
    let mut from = 0;
    for (i, b) in v.bytes().enumerate() {
        let esc = match b {
            b'\\' => "\\\\",
            b'=' => "\\=",
            b'\n' => "\\n",
            b'\r' => "\\r",
            _ => continue,
        };
        o.push_str(&v[from..i]);
        o.push_str(esc);
        from = i + 1;
    }
    o.push_str(&v[from..]);
}

/// ArcSight CEF (field table in `spec/siem.md`).
pub fn cef(r: &Record) -> Result<String, NotAnEvent> {
    let e = event(r)?;
    let verdict = st(e.verdict);
    let verdict = verdict.as_deref().unwrap_or("");
    let risk = uint(e.risk);
    let name = match verdict {
        "allow" => "Tool call allowed",
        "deny" => "Tool call denied",
        "approve" => "Tool call approved",
        "review" => "Tool call held for review",
        _ => "Tool call",
    };
    let mut out = String::with_capacity(r.leaf.len() + 256);
    out.push_str("CEF:0|Vellum|Vellum|");
    out.push_str(&cef_header_escape(PRODUCT_VERSION));
    out.push('|');
    out.push_str(&cef_header_escape(&format!("tool_call.{verdict}")));
    out.push('|');
    out.push_str(&cef_header_escape(name));
    out.push('|');
    out.push_str(&cef_severity(verdict, risk).to_string());
    out.push('|');
    let mut first = true;
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            if !first {
                out.push(' ');
            }
            first = false;
            out.push_str(k);
            out.push('=');
            cef_value_escape_into(&mut out, v);
        }
    };
    put("rt", millis(e.logged_at).map(|t| t.to_string()).as_deref());
    put("start", millis(e.ts).map(|t| t.to_string()).as_deref());
    put("act", Some(verdict));
    put("outcome", Some(outcome(&e)));
    put("suser", st(e.principal).as_deref());
    put("dhost", st(e.target).as_deref());
    put("reason", st(e.reason).as_deref());
    put("externalId", st(e.event_id).as_deref());
    put("deviceExternalId", st(e.gateway).as_deref());
    put("msg", Some(&summary(&e)));
    let labelled = [
        ("cs1Label", "cs1", "agent", st(e.agent)),
        ("cs2Label", "cs2", "tool", st(e.tool)),
        ("cs3Label", "cs3", "rule", st(e.rule)),
        ("cs4Label", "cs4", "session", st(e.session)),
        (
            "cs5Label",
            "cs5",
            "leafHash",
            Some(Cow::Borrowed(r.leaf_hash)),
        ),
        ("cs6Label", "cs6", "origin", Some(Cow::Borrowed(r.origin))),
    ];
    for (kl, k, label, v) in &labelled {
        if let Some(v) = v {
            put(kl, Some(label));
            put(k, Some(v));
        }
    }
    let numbers = [
        ("cn1Label", "cn1", "index", Some(r.index)),
        ("cn2Label", "cn2", "risk", risk),
        ("cn3Label", "cn3", "latencyMs", uint(e.latency_ms)),
    ];
    for (kl, k, label, v) in numbers {
        if let Some(v) = v {
            put(kl, Some(label));
            put(k, Some(&v.to_string()));
        }
    }
    let owner = st(e.owner);
    put("flexString1Label", owner.as_ref().map(|_| "owner"));
    put("flexString1", owner.as_deref());
    let provenance = st(e.provenance);
    put(
        "flexString2Label",
        provenance.as_ref().map(|_| "provenance"),
    );
    put("flexString2", provenance.as_deref());
    Ok(out)
}

/// RFC 5424 syslog.
pub mod syslog {
    use super::Record;

    /// Facility 13, "log audit".
    pub const FACILITY_AUDIT: u8 = 13;

    /// How messages are labelled.
    #[derive(Clone, Debug)]
    pub struct Header {
        /// Facility, 0–23.
        pub facility: u8,
        /// HOSTNAME (PRINTUSASCII, at most 255; `-` if unknown).
        pub hostname: String,
        /// APP-NAME (at most 48).
        pub app_name: String,
        /// The SD-ID of Vellum's structured data (`name@<IANA PEN>`).
        pub sd_id: String,
    }

    /// Syslog severity: deny 4 (warning), 3 (error) at risk 80 and above;
    /// review 5 (notice); allow and approve 6 (informational).
    pub fn severity(verdict: &str, risk: Option<u64>) -> u8 {
        match verdict {
            "deny" if risk.unwrap_or(0) >= 80 => 3,
            "deny" => 4,
            "review" => 5,
            _ => 6,
        }
    }

    /// Keeps PRINTUSASCII (33–126), at most `max` characters; `-` if empty.
    pub fn printable(s: &str, max: usize) -> String {
        let t: String = s
            .chars()
            .filter(|c| ('!'..='~').contains(c))
            .take(max)
            .collect();
        if t.is_empty() {
            "-".into()
        } else {
            t
        }
    }

    /// Escapes an SD-PARAM value: `"`, `\` and `]`.
    pub fn param_escape(v: &str) -> String {
        let mut o = String::with_capacity(v.len());
        for c in v.chars() {
            if matches!(c, '"' | '\\' | ']') {
                o.push('\\');
            }
            o.push(c);
        }
        o
    }

    /// What labels a message: the event's members the header and the
    /// structured data carry.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Labels<'a> {
        /// `logged_at` (the TIMESTAMP).
        pub logged_at: Option<&'a str>,
        /// `event_id`.
        pub event_id: Option<&'a str>,
        /// `verdict`.
        pub verdict: &'a str,
        /// `risk`.
        pub risk: Option<u64>,
    }

    impl<'a> Labels<'a> {
        /// The labels of a parsed event.
        pub fn of(event: &'a serde_json::Value) -> Labels<'a> {
            let st = |k: &str| event.get(k).and_then(serde_json::Value::as_str);
            Labels {
                logged_at: st("logged_at"),
                event_id: st("event_id"),
                verdict: st("verdict").unwrap_or(""),
                risk: event.get("risk").and_then(serde_json::Value::as_u64),
            }
        }
    }

    /// The message (without framing): header, structured data (origin,
    /// index, leaf hash, event ID, verdict) and `msg`. MSG is sent as
    /// RFC 5424 MSG-ANY (no BOM), which JSON and CEF parsers expect.
    pub fn message(h: &Header, r: &Record, l: &Labels, msg: &str) -> Vec<u8> {
        let pri = h.facility.min(23) as u16 * 8 + severity(l.verdict, l.risk) as u16;
        // RFC 3339 with at most 6 fraction digits; logged_at has 3.
        let ts = l
            .logged_at
            .map(|t| printable(t, 32))
            .unwrap_or_else(|| "-".into());
        let mut sd = format!(
            "[{} origin=\"{}\" index=\"{}\" leaf_hash=\"{}\"",
            printable(&h.sd_id, 32),
            param_escape(r.origin),
            r.index,
            param_escape(r.leaf_hash)
        );
        if let Some(id) = l.event_id {
            sd.push_str(&format!(" event_id=\"{}\"", param_escape(id)));
        }
        sd.push_str(&format!(" verdict=\"{}\"]", param_escape(l.verdict)));
        let mut out = format!(
            "<{pri}>1 {ts} {} {} - tool_call {sd} ",
            printable(&h.hostname, 255),
            printable(&h.app_name, 48)
        )
        .into_bytes();
        out.extend_from_slice(msg.as_bytes());
        out
    }

    /// RFC 6587 octet counting: `<length> <message>`.
    pub fn frame(msg: &[u8]) -> Vec<u8> {
        let mut out = format!("{} ", msg.len()).into_bytes();
        out.extend_from_slice(msg);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é\u{2028}😀\\\"/");
        for v in [all.as_str(), "", "plain", "a\"b", "\\", "\u{1f}x\u{7f}"] {
            let mut out = String::new();
            json_str(&mut out, v);
            assert_eq!(out, serde_json::to_string(v).unwrap());
        }
    }

    #[test]
    fn a_leaf_that_is_not_an_object_is_not_an_event() {
        for leaf in [&b"[1]"[..], b"\"x\"", b"3", b"{\"agent\":"] {
            let r = Record {
                origin: "o",
                index: 9,
                leaf_hash: "h",
                leaf,
            };
            assert_eq!(ecs_line(&r, "h"), Err(NotAnEvent(9)));
            assert_eq!(ocsf_line(&r), Err(NotAnEvent(9)));
        }
    }

    const LEAF: &[u8] = br#"{"agent":"billing-bot","args_hash":"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","event_id":"e-1","gateway":"gw","latency_ms":31,"logged_at":"2026-06-20T14:07:31.200Z","owner":"payments","principal":"svc@corp.example","provenance":"untrusted","reason":"amount = 480 | over\nlimit","risk":85,"rule":"refunds-need-approval","session":"s-42","target":"api.stripe.com","tool":"stripe.refund","ts":"2026-06-20T14:07:31.120Z","verdict":"deny"}"#;

    fn rec() -> Record<'static> {
        Record {
            origin: "example.com/log",
            index: 42,
            leaf_hash: "qPEGO8/ZNmckspVgZ0HBTLvbwTnuDvL1pQQACgG5lzo=",
            leaf: LEAF,
        }
    }

    #[test]
    fn ecs_maps_the_categorization_fields_to_allowed_values() {
        let v = ecs(&rec(), "log-1").unwrap();
        assert_eq!(v["@timestamp"], "2026-06-20T14:07:31.120Z");
        assert_eq!(v["event"]["type"], json!(["denied"]));
        assert_eq!(v["event"]["outcome"], "failure");
        assert_eq!(v["event"]["duration"], 31_000_000);
        assert_eq!(v["event"]["sequence"], 42);
        assert_eq!(v["vellum"]["origin"], "example.com/log");
        assert_eq!(v["gen_ai"]["agent"]["id"], "billing-bot");
        assert_eq!(v["rule"]["name"], "refunds-need-approval");
        assert!(
            v.get("agent").is_none(),
            "ECS agent.* is the shipper, not the AI agent"
        );
    }

    #[test]
    fn ocsf_is_api_activity_with_the_security_control_profile() {
        let v = ocsf(&rec()).unwrap();
        assert_eq!(v["class_uid"], 6003);
        assert_eq!(v["type_uid"], 600399);
        assert_eq!(v["severity_id"], 4);
        assert_eq!(v["disposition_id"], 2);
        assert_eq!(v["time"], 1_781_964_451_120i64);
        assert_eq!(v["metadata"]["sequence"], 42);
        assert_eq!(v["src_endpoint"]["name"], "gw");
        assert_eq!(v["api"]["operation"], "stripe.refund");
    }

    #[test]
    fn cef_escapes_header_and_extension() {
        let c = cef(&rec()).unwrap();
        assert!(c.starts_with("CEF:0|Vellum|Vellum|"), "{c}");
        assert!(c.contains("|tool_call.deny|Tool call denied|9|"), "{c}");
        assert!(c.contains(r"reason=amount \= 480 | over\nlimit"), "{c}");
        assert!(
            c.contains("cs5Label=leafHash cs5=qPEGO8/ZNmckspVgZ0HBTLvbwTnuDvL1pQQACgG5lzo\\="),
            "{c}"
        );
        assert!(c.contains("cn1Label=index cn1=42"), "{c}");
        assert_eq!(cef_header_escape("a|b\\c"), "a\\|b\\\\c");
    }

    #[test]
    fn syslog_message_and_octet_counting() {
        let h = syslog::Header {
            facility: syslog::FACILITY_AUDIT,
            hostname: "log 1".into(),
            app_name: "vellum".into(),
            sd_id: "vellum@32473".into(),
        };
        let ev: Value = serde_json::from_slice(LEAF).unwrap();
        let m = syslog::message(&h, &rec(), &syslog::Labels::of(&ev), "hello");
        let text = String::from_utf8(m.clone()).unwrap();
        assert_eq!(
            text,
            "<107>1 2026-06-20T14:07:31.200Z log1 vellum - tool_call [vellum@32473 origin=\"example.com/log\" index=\"42\" leaf_hash=\"qPEGO8/ZNmckspVgZ0HBTLvbwTnuDvL1pQQACgG5lzo=\" event_id=\"e-1\" verdict=\"deny\"] hello"
        );
        let f = syslog::frame(&m);
        assert!(f.starts_with(format!("{} <107>", m.len()).as_bytes()));
        assert_eq!(syslog::param_escape(r#"a"b]c\"#), r#"a\"b\]c\\"#);
    }
}
