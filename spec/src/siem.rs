//! The event as SIEMs and log pipelines read it: the native record, Elastic
//! Common Schema, OCSF API Activity, ArcSight CEF, and RFC 5424 syslog with
//! RFC 6587 octet-counting framing. One mapping per format, defined here
//! and documented in `spec/siem.md`; the log's sinks and `vellum tail
//! --format` both use it. Every record names the log's origin, the entry's
//! index and its leaf hash, so a copy in a SIEM can be checked against the
//! log.

use serde_json::{json, Map, Value};

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
            Format::Ecs => Ok(ecs(r, host)?.to_string()),
            Format::Ocsf => Ok(ocsf(r)?.to_string()),
            Format::Cef => cef(r),
        }
    }
}

fn event(r: &Record) -> Result<Map<String, Value>, NotAnEvent> {
    match serde_json::from_slice(r.leaf) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(NotAnEvent(r.index)),
    }
}

fn s<'a>(e: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    e.get(k).and_then(Value::as_str)
}

fn ms(e: &Map<String, Value>, k: &str) -> Option<i64> {
    s(e, k).and_then(|t| crate::time::parse_utc_millis(t).ok())
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
fn outcome(e: &Map<String, Value>) -> &'static str {
    let verdict = s(e, "verdict").unwrap_or("");
    if let Some(res) = e.get("result").and_then(Value::as_object) {
        let failed = res.get("error").is_some()
            || res
                .get("status")
                .and_then(Value::as_i64)
                .is_some_and(|c| c >= 400);
        return if failed { "failure" } else { "success" };
    }
    match verdict {
        // A denied call did not run.
        "deny" => "failure",
        _ => "unknown",
    }
}

/// A one-line summary for humans.
fn summary(e: &Map<String, Value>) -> String {
    let verb = match s(e, "verdict").unwrap_or("") {
        "allow" => "allowed",
        "deny" => "denied",
        "approve" => "approved",
        "review" => "held for review",
        other => other,
    };
    let mut m = format!(
        "{} {} {verb}",
        s(e, "agent").unwrap_or("-"),
        s(e, "tool").unwrap_or("-")
    );
    if let Some(r) = s(e, "rule") {
        m.push_str(&format!(" by {r}"));
    }
    if let Some(r) = s(e, "reason") {
        m.push_str(&format!(": {r}"));
    }
    m
}

fn vellum_fields(r: &Record, e: &Map<String, Value>) -> Value {
    let mut v = json!({
        "origin": r.origin,
        "index": r.index,
        "leaf_hash": r.leaf_hash,
    });
    for k in [
        "verdict",
        "owner",
        "session",
        "seq",
        "provenance",
        "provenance_source",
        "args_hash",
        "gateway",
        "logged_at",
        "risk",
        "target",
    ] {
        if let Some(x) = e.get(k) {
            v[k] = x.clone();
        }
    }
    v
}

/// Elastic Common Schema (field table in `spec/siem.md`).
pub fn ecs(r: &Record, host: &str) -> Result<Value, NotAnEvent> {
    let e = event(r)?;
    let verdict = s(&e, "verdict").unwrap_or("");
    let types: &[&str] = match verdict {
        "allow" | "approve" => &["allowed"],
        "deny" => &["denied"],
        _ => &["info"],
    };
    let mut v = json!({
        "@timestamp": s(&e, "ts"),
        "ecs": {"version": ECS_VERSION},
        "message": summary(&e),
        "event": {
            "kind": "event",
            "category": ["api"],
            "type": types,
            "action": s(&e, "tool"),
            "outcome": outcome(&e),
            "id": s(&e, "event_id"),
            "sequence": r.index,
            "hash": r.leaf_hash,
            "ingested": s(&e, "logged_at"),
            "provider": "vellum",
            "dataset": "vellum.audit",
        },
        "gen_ai": {
            "agent": {"id": s(&e, "agent"), "name": s(&e, "agent")},
            "operation": {"name": "execute_tool"},
            "tool": {"name": s(&e, "tool")},
        },
        "user": {"id": s(&e, "principal"), "name": s(&e, "principal")},
        "service": {"name": "vellum", "type": "audit-log"},
        "host": {"name": host},
        "observer": {"name": s(&e, "gateway"), "product": "Vellum", "vendor": "Vellum", "type": "audit-log"},
        "related": {"hash": [r.leaf_hash]},
        "vellum": vellum_fields(r, &e),
    });
    if let Some(x) = e.get("latency_ms").and_then(Value::as_u64) {
        v["event"]["duration"] = json!(x.saturating_mul(1_000_000));
    }
    if let Some(x) = e.get("risk").and_then(Value::as_u64) {
        v["event"]["risk_score"] = json!(x);
        v["event"]["risk_score_norm"] = json!(x);
    }
    if let Some(x) = s(&e, "reason") {
        v["event"]["reason"] = json!(x);
    }
    if let Some(x) = s(&e, "rule") {
        v["rule"] = json!({"name": x, "id": x, "ruleset": "vellum"});
    }
    if let Some(x) = s(&e, "target") {
        v["destination"] = json!({"domain": x, "address": x});
    }
    if let Some(x) = s(&e, "args_hash") {
        if let Some(h) = v["related"]["hash"].as_array_mut() {
            h.push(json!(x));
        }
    }
    let mut labels = Map::new();
    for (k, label) in [
        ("owner", "owner"),
        ("session", "session_id"),
        ("provenance", "provenance"),
    ] {
        if let Some(x) = s(&e, k) {
            labels.insert(label.into(), json!(x));
        }
    }
    if !labels.is_empty() {
        v["labels"] = Value::Object(labels);
    }
    Ok(strip_nulls(v))
}

/// Removes `null` members (fields the event does not have).
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k, strip_nulls(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        x => x,
    }
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
/// (field table in `spec/siem.md`).
pub fn ocsf(r: &Record) -> Result<Value, NotAnEvent> {
    let e = event(r)?;
    let verdict = s(&e, "verdict").unwrap_or("");
    let risk = e.get("risk").and_then(Value::as_u64);
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
    let mut v = json!({
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": 99,
        "activity_name": "Other",
        "type_uid": 600399,
        "type_name": "API Activity: Other",
        "time": ms(&e, "ts"),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "action_id": action_id,
        "action": action,
        "disposition_id": disposition_id,
        "disposition": disposition,
        "message": summary(&e),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "Vellum", "vendor_name": "Vellum", "version": PRODUCT_VERSION},
            "uid": s(&e, "event_id"),
            "sequence": r.index,
            "log_name": r.origin,
            "logged_time": ms(&e, "logged_at"),
            "correlation_uid": s(&e, "session"),
            "profiles": ["security_control"],
        },
        "actor": {
            "user": {"name": s(&e, "principal"), "uid": s(&e, "principal")},
            "app_name": s(&e, "agent"),
            "app_uid": s(&e, "agent"),
        },
        "api": {
            "operation": s(&e, "tool"),
            "request": {"uid": s(&e, "event_id")},
        },
        "src_endpoint": {"name": s(&e, "gateway").unwrap_or("unknown")},
        "unmapped": {"vellum": vellum_fields(r, &e)},
    });
    if let Some(x) = s(&e, "session") {
        v["actor"]["session"] = json!({"uid": x});
    }
    if let Some(x) = s(&e, "target") {
        v["api"]["service"] = json!({"name": x});
        v["dst_endpoint"] = json!({"hostname": x});
    }
    if let Some(x) = s(&e, "rule") {
        v["policy"] = json!({"name": x, "uid": x});
        if let Some(d) = s(&e, "reason") {
            v["policy"]["desc"] = json!(d);
        }
    }
    if let Some(x) = s(&e, "reason") {
        v["status_detail"] = json!(x);
    }
    if let Some(x) = risk {
        v["risk_score"] = json!(x);
    }
    if let Some(x) = e.get("latency_ms").and_then(Value::as_u64) {
        v["duration"] = json!(x);
    }
    Ok(strip_nulls(v))
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
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '=' => o.push_str("\\="),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            c => o.push(c),
        }
    }
    o
}

/// ArcSight CEF (field table in `spec/siem.md`).
pub fn cef(r: &Record) -> Result<String, NotAnEvent> {
    let e = event(r)?;
    let verdict = s(&e, "verdict").unwrap_or("");
    let risk = e.get("risk").and_then(Value::as_u64);
    let name = match verdict {
        "allow" => "Tool call allowed",
        "deny" => "Tool call denied",
        "approve" => "Tool call approved",
        "review" => "Tool call held for review",
        _ => "Tool call",
    };
    let mut ext: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            ext.push((k.to_string(), v));
        }
    };
    put("rt", ms(&e, "logged_at").map(|t| t.to_string()));
    put("start", ms(&e, "ts").map(|t| t.to_string()));
    put("act", Some(verdict.to_string()));
    put("outcome", Some(outcome(&e).to_string()));
    put("suser", s(&e, "principal").map(str::to_string));
    put("dhost", s(&e, "target").map(str::to_string));
    put("reason", s(&e, "reason").map(str::to_string));
    put("externalId", s(&e, "event_id").map(str::to_string));
    put("deviceExternalId", s(&e, "gateway").map(str::to_string));
    put("msg", Some(summary(&e)));
    let labelled: [(&str, &str, Option<String>); 6] = [
        ("cs1", "agent", s(&e, "agent").map(str::to_string)),
        ("cs2", "tool", s(&e, "tool").map(str::to_string)),
        ("cs3", "rule", s(&e, "rule").map(str::to_string)),
        ("cs4", "session", s(&e, "session").map(str::to_string)),
        ("cs5", "leafHash", Some(r.leaf_hash.to_string())),
        ("cs6", "origin", Some(r.origin.to_string())),
    ];
    for (k, label, v) in labelled {
        if v.is_some() {
            put(&format!("{k}Label"), Some(label.to_string()));
            put(k, v);
        }
    }
    let numbers: [(&str, &str, Option<u64>); 3] = [
        ("cn1", "index", Some(r.index)),
        ("cn2", "risk", risk),
        (
            "cn3",
            "latencyMs",
            e.get("latency_ms").and_then(Value::as_u64),
        ),
    ];
    for (k, label, v) in numbers {
        if let Some(v) = v {
            put(&format!("{k}Label"), Some(label.to_string()));
            put(k, Some(v.to_string()));
        }
    }
    put(
        "flexString1Label",
        s(&e, "owner").map(|_| "owner".to_string()),
    );
    put("flexString1", s(&e, "owner").map(str::to_string));
    put(
        "flexString2Label",
        s(&e, "provenance").map(|_| "provenance".to_string()),
    );
    put("flexString2", s(&e, "provenance").map(str::to_string));
    let ext: Vec<String> = ext
        .into_iter()
        .map(|(k, v)| format!("{k}={}", cef_value_escape(&v)))
        .collect();
    Ok(format!(
        "CEF:0|Vellum|Vellum|{}|{}|{}|{}|{}",
        cef_header_escape(PRODUCT_VERSION),
        cef_header_escape(&format!("tool_call.{verdict}")),
        cef_header_escape(name),
        cef_severity(verdict, risk),
        ext.join(" ")
    ))
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
