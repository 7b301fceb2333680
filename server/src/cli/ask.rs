//! `vellum query`, `vellum tail`, `vellum stats`: asking a running log
//! from the terminal. Rows print as an 80-column table, JSON, JSON lines
//! or CSV; `--verify` checks every printed row against the signed
//! checkpoint with the log's key (leaf hash recomputed from the event's
//! bytes, inclusion proof checked), and says so. A session listed oldest
//! first marks `seq` gaps between its rows.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use vellum_spec::hash::{leaf_hash, Hash};
use vellum_spec::merkle::verify_inclusion;
use vellum_spec::note::VerifierKey;

use super::TokenArgs;

/// Filters shared by the three commands (each field repeatable: OR).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only this agent (repeatable: any of them).
    #[arg(long)]
    pub agent: Vec<String>,
    /// Only this principal.
    #[arg(long)]
    pub principal: Vec<String>,
    /// Only this owner.
    #[arg(long)]
    pub owner: Vec<String>,
    /// Only this session.
    #[arg(long)]
    pub session: Vec<String>,
    /// Only this tool.
    #[arg(long)]
    pub tool: Vec<String>,
    /// Only this target.
    #[arg(long)]
    pub target: Vec<String>,
    /// Only this verdict: allow, deny, approve, review.
    #[arg(long)]
    pub verdict: Vec<String>,
    /// Only this rule.
    #[arg(long)]
    pub rule: Vec<String>,
    /// Only this provenance: trusted, untrusted.
    #[arg(long)]
    pub provenance: Vec<String>,
    /// Only events appended with this gateway token.
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Only this event_id.
    #[arg(long = "event-id")]
    pub event_id: Vec<String>,
    /// Risk at least this.
    #[arg(long)]
    pub risk_min: Option<u8>,
    /// Risk at most this.
    #[arg(long)]
    pub risk_max: Option<u8>,
    /// Logged within this long before now: 30m, 24h, 7d.
    #[arg(long, value_parser = parse_since, conflicts_with = "from")]
    pub since: Option<Duration>,
    /// Logged at or after this time (RFC 3339 UTC).
    #[arg(long)]
    pub from: Option<String>,
    /// Logged before this time (RFC 3339 UTC).
    #[arg(long)]
    pub to: Option<String>,
}

fn parse_since(s: &str) -> Result<Duration, String> {
    match s.strip_suffix('d') {
        Some(days) => days
            .parse::<u64>()
            .map(|d| Duration::from_secs(d * 86_400))
            .map_err(|_| format!("{s:?}: want e.g. 30m, 24h, 7d")),
        None => vellum_net::parse_duration(s),
    }
}

impl FilterArgs {
    fn params(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let lists: [(&str, &Vec<String>); 11] = [
            ("agent", &self.agent),
            ("principal", &self.principal),
            ("owner", &self.owner),
            ("session", &self.session),
            ("tool", &self.tool),
            ("target", &self.target),
            ("verdict", &self.verdict),
            ("rule", &self.rule),
            ("provenance", &self.provenance),
            ("gateway", &self.gateway),
            ("event_id", &self.event_id),
        ];
        for (k, vs) in lists {
            for v in vs {
                p.push((k.to_string(), v.clone()));
            }
        }
        if let Some(r) = self.risk_min {
            p.push(("risk_min".into(), r.to_string()));
        }
        if let Some(r) = self.risk_max {
            p.push(("risk_max".into(), r.to_string()));
        }
        if let Some(d) = self.since {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|n| n.as_millis() as i64)
                .unwrap_or(0);
            p.push((
                "from".into(),
                vellum_spec::time::format_millis(now - d.as_millis() as i64),
            ));
        }
        if let Some(f) = &self.from {
            p.push(("from".into(), f.clone()));
        }
        if let Some(t) = &self.to {
            p.push(("to".into(), t.clone()));
        }
        p
    }
}

/// Where the log is and how to reach it.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// Base URL of the log.
    #[arg(long, env = "VELLUM_URL", default_value = "http://127.0.0.1:7380")]
    pub url: String,
    /// Token with the read scope [default: DATA/gateway.token].
    #[command(flatten)]
    pub token: TokenArgs,
    /// Data directory whose token (and log key, for --verify) to use.
    #[arg(long, env = "VELLUM_DATA", default_value = "vellum-data")]
    pub data: PathBuf,
}

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An 80-column table.
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header line.
    Csv,
    /// Elastic Common Schema, one JSON object per line (spec/siem.md).
    Ecs,
    /// OCSF API Activity, one JSON object per line (spec/siem.md).
    Ocsf,
    /// ArcSight CEF, one record per line (spec/siem.md).
    Cef,
}

impl Format {
    /// The SIEM format this names, if it is one.
    fn siem(self) -> Option<vellum_spec::siem::Format> {
        match self {
            Format::Ecs => Some(vellum_spec::siem::Format::Ecs),
            Format::Ocsf => Some(vellum_spec::siem::Format::Ocsf),
            Format::Cef => Some(vellum_spec::siem::Format::Cef),
            _ => None,
        }
    }
}

/// What SIEM records name besides the entry: the log's origin (from its
/// checkpoint) and its host.
struct SiemCtx {
    format: vellum_spec::siem::Format,
    origin: String,
    host: String,
}

impl SiemCtx {
    /// Reads the origin from the log's checkpoint, if `f` is a SIEM format.
    async fn fetch(
        f: Format,
        http: &reqwest::Client,
        base: &str,
    ) -> Result<Option<SiemCtx>, String> {
        let Some(format) = f.siem() else {
            return Ok(None);
        };
        let url = format!("{}/checkpoint", base.trim_end_matches('/'));
        let r = http
            .get(&url)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("{url}: HTTP {}", r.status()));
        }
        let text = vellum_net::read_capped_text(r, 1 << 20)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let origin = text.lines().next().unwrap_or_default().to_string();
        let host = reqwest::Url::parse(base)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "-".into());
        Ok(Some(SiemCtx {
            format,
            origin,
            host,
        }))
    }

    fn line(&self, o: &Out) -> String {
        let r = vellum_spec::siem::Record {
            origin: &self.origin,
            index: o.index,
            leaf_hash: &o.leaf_hash,
            leaf: o.raw.as_bytes(),
        };
        self.format
            .render(&r, &self.host)
            .unwrap_or_else(|e| format!("# {e}"))
    }
}

/// Flags of `vellum query`.
#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    filter: FilterArgs,
    /// Rows to print (paged through as needed).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// desc (newest first) or asc.
    #[arg(long, default_value = "desc")]
    order: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Check every row's inclusion proof against the signed checkpoint.
    #[arg(long)]
    verify: bool,
    /// The log's verifier key (file or text) for --verify [default: DATA/log.vkey].
    #[arg(long)]
    log_key: Option<String>,
}

/// Flags of `vellum tail`.
#[derive(clap::Args, Debug)]
pub struct TailArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    filter: FilterArgs,
    /// Start after this entry index [default: from now on].
    #[arg(long)]
    after: Option<u64>,
    /// Stop after printing this many events.
    #[arg(long)]
    count: Option<u64>,
    /// Output format: table, json lines, CSV, or a SIEM format (ecs,
    /// ocsf, cef) to pipe into a shipper.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// Flags of `vellum stats`.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    filter: FilterArgs,
    /// Bucket size: 1m, 5m, 1h, 1d.
    #[arg(long, default_value = "1h")]
    bucket: String,
    /// Count by: verdict, agent, principal, owner, rule, tool, gateway.
    #[arg(long, default_value = "verdict")]
    group_by: String,
    /// Groups in the top list.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Output format (table or json).
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

fn token(t: &Target) -> Result<String, String> {
    t.token.resolve(Some(&t.data.join("gateway.token")))
}

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(vellum_net::CLIENT_IDLE)
        .build()
        .map_err(|e| e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

async fn get_text(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    params: &[(String, String)],
) -> Result<String, String> {
    let r = http
        .get(url)
        .bearer_auth(token)
        .query(params)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = r.status();
    let text = vellum_net::read_capped_text(r, super::MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(text);
        return Err(format!("HTTP {status}: {msg}"));
    }
    Ok(text)
}

#[derive(Deserialize)]
struct Row<'a> {
    index: u64,
    leaf_hash: String,
    #[serde(borrow)]
    event: &'a RawValue,
    #[serde(default)]
    proof: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct PageBody<'a> {
    #[serde(borrow)]
    events: Vec<Row<'a>>,
    next_cursor: Option<String>,
    checkpoint_size: u64,
    #[serde(default)]
    checkpoint: Option<String>,
}

/// A printed row: index, leaf hash, the event's exact bytes, parsed.
struct Out {
    index: u64,
    leaf_hash: String,
    raw: String,
    event: Value,
}

fn short(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        return format!("{s:<w$}");
    }
    let t: String = s.chars().take(w.saturating_sub(1)).collect();
    format!("{t}…")
}

fn time_of(e: &Value) -> String {
    // "2026-06-20T14:07:31.120Z" -> "06-20 14:07:31"
    let t = e["logged_at"].as_str().unwrap_or("");
    match (t.get(5..10), t.get(11..19)) {
        (Some(d), Some(h)) => format!("{d} {h}"),
        _ => t.to_string(),
    }
}

const HEADER: &str = "TIME           AGENT          TOOL             VERDICT  RULE / REASON";

fn table_row(e: &Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
    let why = match (e["rule"].as_str(), e["reason"].as_str()) {
        (Some(r), Some(x)) => format!("{r}: {x}"),
        (Some(r), None) => r.to_string(),
        (None, Some(x)) => x.to_string(),
        (None, None) => String::new(),
    };
    // 14 + 1 + 14 + 1 + 16 + 1 + 7 + 1 + 25 = 80 columns.
    format!(
        "{} {} {} {} {}",
        short(&time_of(e), 14),
        short(&s("agent"), 14),
        short(&s("tool"), 16),
        short(&s("verdict"), 7),
        short(&why, 25).trim_end()
    )
}

const CSV_FIELDS: [&str; 14] = [
    "index",
    "logged_at",
    "ts",
    "agent",
    "session",
    "seq",
    "principal",
    "owner",
    "tool",
    "target",
    "verdict",
    "rule",
    "reason",
    "risk",
];

fn csv_cell(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_row(o: &Out) -> String {
    CSV_FIELDS
        .iter()
        .map(|f| {
            if *f == "index" {
                o.index.to_string()
            } else {
                csv_cell(&o.event[*f])
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn json_row(o: &Out) -> String {
    format!(
        "{{\"index\":{},\"leaf_hash\":\"{}\",\"event\":{}}}",
        o.index, o.leaf_hash, o.raw
    )
}

fn log_key(arg: Option<&str>, data: &std::path::Path) -> Result<VerifierKey, String> {
    let s = match arg {
        Some(s) => s.to_string(),
        None => data.join("log.vkey").display().to_string(),
    };
    if let Ok(k) = VerifierKey::parse(s.trim()) {
        return Ok(k);
    }
    let text = std::fs::read_to_string(&s).map_err(|e| format!("--log-key {s}: {e}"))?;
    VerifierKey::parse(text.trim()).map_err(|e| format!("--log-key {s}: {e}"))
}

/// Runs `vellum query`.
pub fn run_query(a: QueryArgs) -> Result<(), String> {
    if !["asc", "desc"].contains(&a.order.as_str()) {
        return Err(format!("--order {:?}: want asc or desc", a.order));
    }
    let token = token(&a.target)?;
    let key = if a.verify {
        Some(log_key(a.log_key.as_deref(), &a.target.data)?)
    } else {
        None
    };
    let rt = runtime()?;
    let http = client()?;
    let url = format!("{}/v1/events", a.target.url.trim_end_matches('/'));
    let mut rows: Vec<Out> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut verified: Option<(String, u64)> = None;
    while rows.len() < a.limit {
        let mut p = a.filter.params();
        p.push(("order".into(), a.order.clone()));
        p.push(("limit".into(), (a.limit - rows.len()).min(1000).to_string()));
        if a.verify {
            p.push(("proofs".into(), "true".into()));
        }
        if let Some(c) = &cursor {
            p.push(("cursor".into(), c.clone()));
        }
        let text = rt.block_on(get_text(&http, &url, &token, &p))?;
        let page: PageBody =
            serde_json::from_str(&text).map_err(|e| format!("the log's answer: {e}"))?;
        if let Some(key) = &key {
            let v = verify_page(&page, key)?;
            verified = Some(v);
        }
        for r in &page.events {
            rows.push(Out {
                index: r.index,
                leaf_hash: r.leaf_hash.clone(),
                raw: r.event.get().to_string(),
                event: serde_json::from_str(r.event.get()).map_err(|e| e.to_string())?,
            });
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let siem = rt.block_on(SiemCtx::fetch(a.format, &http, &a.target.url))?;
    let mut out = std::io::stdout().lock();
    let session_asc = a.order == "asc" && a.filter.session.len() == 1;
    print_rows(&mut out, &rows, a.format, session_asc, siem.as_ref()).map_err(|e| e.to_string())?;
    if let Some((origin, size)) = verified {
        eprintln!(
            "verified: all {} rows are in the checkpoint of {origin} at size {size}, signed with the log's key: leaf hashes recomputed from the events' bytes, inclusion proofs checked",
            rows.len()
        );
    }
    Ok(())
}

/// Checks a page's checkpoint signature and each row's leaf hash and
/// inclusion proof; returns (origin, size).
fn verify_page(page: &PageBody, key: &VerifierKey) -> Result<(String, u64), String> {
    let note = page
        .checkpoint
        .as_ref()
        .ok_or("the log sent no checkpoint with its proofs")?;
    let (_, cp, _) = vellum_spec::proof::verify_checkpoint(note.as_bytes(), key, &[], 0)
        .map_err(|e| format!("VERIFY FAILED: the checkpoint: {e}"))?;
    if cp.size != page.checkpoint_size {
        return Err(format!(
            "VERIFY FAILED: proofs are for size {}, the signed checkpoint is {}",
            page.checkpoint_size, cp.size
        ));
    }
    for r in &page.events {
        let lh = leaf_hash(r.event.get().as_bytes());
        if lh.to_base64() != r.leaf_hash {
            return Err(format!(
                "VERIFY FAILED: entry {}: the event's bytes do not hash to its leaf hash",
                r.index
            ));
        }
        let Some(proof) = &r.proof else {
            return Err(format!(
                "VERIFY FAILED: entry {} is beyond the checkpoint (size {}); retry in a second",
                r.index, cp.size
            ));
        };
        let proof: Vec<Hash> = proof
            .iter()
            .map(|h| Hash::from_base64(h).map_err(|_| format!("entry {}: bad proof hash", r.index)))
            .collect::<Result<_, _>>()?;
        verify_inclusion(r.index, cp.size, &lh, &proof, &cp.root)
            .map_err(|e| format!("VERIFY FAILED: entry {}: {e}", r.index))?;
    }
    Ok((cp.origin, cp.size))
}

fn print_rows(
    out: &mut impl Write,
    rows: &[Out],
    f: Format,
    session_asc: bool,
    siem: Option<&SiemCtx>,
) -> std::io::Result<()> {
    if let Some(ctx) = siem {
        for o in rows {
            writeln!(out, "{}", ctx.line(o))?;
        }
        return Ok(());
    }
    match f {
        Format::Table => {
            writeln!(out, "{HEADER}")?;
            let mut last_seq: Option<u64> = None;
            for o in rows {
                if session_asc {
                    if let (Some(prev), Some(seq)) = (last_seq, o.event["seq"].as_u64()) {
                        if seq > prev + 1 {
                            let n = seq - prev - 1;
                            writeln!(
                                out,
                                "               ··· seq {}{} missing ({n} event{}: omitted, or not logged) ···",
                                prev + 1,
                                if n > 1 { format!("..{}", seq - 1) } else { String::new() },
                                if n > 1 { "s" } else { "" }
                            )?;
                        }
                    }
                    last_seq = o.event["seq"].as_u64().or(last_seq);
                }
                writeln!(out, "{}", table_row(&o.event))?;
            }
        }
        Format::Json => {
            let all: Vec<Value> = rows
                .iter()
                .map(|o| serde_json::json!({"index": o.index, "leaf_hash": o.leaf_hash, "event": o.event}))
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&all).unwrap_or_default()
            )?;
        }
        Format::Jsonl => {
            for o in rows {
                writeln!(out, "{}", json_row(o))?;
            }
        }
        Format::Csv => {
            writeln!(out, "{}", CSV_FIELDS.join(","))?;
            for o in rows {
                writeln!(out, "{}", csv_row(o))?;
            }
        }
        Format::Ecs | Format::Ocsf | Format::Cef => {}
    }
    Ok(())
}

/// Runs `vellum tail`: prints matching events as they are logged, until
/// interrupted; reconnects (resuming after the last event) if the
/// connection drops.
pub fn run_tail(a: TailArgs) -> Result<(), String> {
    if a.format == Format::Json {
        return Err("--format json does not stream; use jsonl".into());
    }
    let token = token(&a.target)?;
    let rt = runtime()?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}/v1/events/tail", a.target.url.trim_end_matches('/'));
    let mut after = a.after;
    let mut printed = 0u64;
    let mut out = std::io::stdout();
    match a.format {
        Format::Table => println!("{HEADER}"),
        Format::Csv => println!("{}", CSV_FIELDS.join(",")),
        _ => {}
    }
    rt.block_on(async {
        let siem = SiemCtx::fetch(a.format, &http, &a.target.url).await?;
        let mut failures = 0u32;
        loop {
            let mut p = a.filter.params();
            if let Some(i) = after {
                p.push(("after".into(), i.to_string()));
            }
            let resp = http.get(&url).bearer_auth(&token).query(&p).send().await;
            let mut resp = match resp {
                Ok(r) if r.status().is_success() => r,
                Ok(r) => {
                    let status = r.status();
                    let text = vellum_net::read_capped_text(r, 64 << 10)
                        .await
                        .unwrap_or_default();
                    if status.as_u16() != 503 {
                        return Err(format!("HTTP {status}: {text}"));
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    if failures > 30 {
                        return Err(format!("{url}: {e}"));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            failures = 0;
            let mut buf = Vec::new();
            loop {
                let chunk = match tokio::time::timeout(Duration::from_secs(45), resp.chunk()).await
                {
                    Ok(Ok(Some(c))) => c,
                    _ => break,
                };
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                    let frame: Vec<u8> = buf.drain(..end + 2).collect();
                    let text = String::from_utf8_lossy(&frame);
                    let data = text.lines().find_map(|l| l.strip_prefix("data: "));
                    let is_entry = text.lines().any(|l| l == "event: entry");
                    if let (true, Some(d)) = (is_entry, data) {
                        let row: Row = serde_json::from_str(d).map_err(|e| e.to_string())?;
                        after = Some(row.index);
                        let o = Out {
                            index: row.index,
                            leaf_hash: row.leaf_hash.clone(),
                            raw: row.event.get().to_string(),
                            event: serde_json::from_str(row.event.get())
                                .map_err(|e| e.to_string())?,
                        };
                        let line = match (a.format, &siem) {
                            (_, Some(ctx)) => ctx.line(&o),
                            (Format::Jsonl, _) => json_row(&o),
                            (Format::Csv, _) => csv_row(&o),
                            _ => table_row(&o.event),
                        };
                        writeln!(out, "{line}").map_err(|e| e.to_string())?;
                        out.flush().map_err(|e| e.to_string())?;
                        printed += 1;
                        if a.count.is_some_and(|c| printed >= c) {
                            return Ok(());
                        }
                    }
                }
                if buf.len() > super::MAX_RESPONSE_BYTES {
                    return Err("a tail frame over the size limit".into());
                }
            }
            // The connection ended: resume after the last event.
        }
    })
}

/// Runs `vellum stats`.
pub fn run_stats(a: StatsArgs) -> Result<(), String> {
    let token = token(&a.target)?;
    let rt = runtime()?;
    let http = client()?;
    if a.format.siem().is_some() {
        return Err("stats print as a table or json; ecs, ocsf and cef are for events".into());
    }
    let url = format!("{}/v1/stats", a.target.url.trim_end_matches('/'));
    let mut p = a.filter.params();
    p.push(("bucket".into(), a.bucket.clone()));
    p.push(("group_by".into(), a.group_by.clone()));
    p.push(("top".into(), a.top.to_string()));
    let text = rt.block_on(get_text(&http, &url, &token, &p))?;
    if a.format != Format::Table {
        println!("{text}");
        return Ok(());
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let top: Vec<String> = v["top"]
        .as_array()
        .into_iter()
        .flatten()
        .take(4)
        .filter_map(|t| t["value"].as_str().map(str::to_string))
        .collect();
    println!(
        "{} by {} per {} from {} to {}",
        v["total"],
        a.group_by,
        a.bucket,
        v["from"].as_str().unwrap_or(""),
        v["to"].as_str().unwrap_or("")
    );
    let mut head = format!("{:<20} {:>8}", "BUCKET", "TOTAL");
    for t in &top {
        head.push_str(&format!(" {:>10}", short(t, 10).trim_end()));
    }
    println!("{head}");
    for b in v["buckets"].as_array().into_iter().flatten() {
        if b["total"].as_u64() == Some(0) {
            continue;
        }
        let mut line = format!(
            "{:<20} {:>8}",
            b["start"].as_str().unwrap_or("").get(..16).unwrap_or(""),
            b["total"]
        );
        for t in &top {
            line.push_str(&format!(" {:>10}", b["counts"][t].as_u64().unwrap_or(0)));
        }
        println!("{line}");
    }
    println!("top {}:", a.group_by);
    for t in v["top"].as_array().into_iter().flatten() {
        println!(
            "  {:<40} {:>10}",
            short(t["value"].as_str().unwrap_or(""), 40).trim_end(),
            t["count"]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_row_fits_80_columns() {
        let e: Value = serde_json::from_str(r#"{"logged_at":"2026-06-20T14:07:31.120Z","agent":"a-very-long-agent-name-indeed","tool":"stripe.refunds.create.with.idempotency","verdict":"approve","rule":"refunds-need-approval","reason":"amount 480.00 EUR is over 100 EUR and came from an untrusted email"}"#).unwrap();
        let row = table_row(&e);
        assert!(
            row.chars().count() <= 80,
            "{} columns: {row}",
            row.chars().count()
        );
        assert!(row.contains('…'));
        assert!(HEADER.chars().count() <= 80);
        assert_eq!(
            csv_cell(&Value::String("a,\"b\"".into())),
            "\"a,\"\"b\"\"\""
        );
    }
}

/// Flags of `vellum sinks`.
#[derive(clap::Args, Debug)]
pub struct SinksArgs {
    #[command(flatten)]
    target: Target,
    /// Output format (table or json).
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// First wait, up to this long (e.g. 30s), until every sink has
    /// delivered the whole durable log; exit 1 if one has not by then.
    #[arg(long, value_parser = vellum_net::parse_duration)]
    wait: Option<std::time::Duration>,
}

/// Whether every sink in a `/v1/sinks` answer is caught up.
fn sinks_caught_up(v: &Value) -> bool {
    v["sinks"].as_array().is_some_and(|l| {
        l.iter()
            .all(|s| s["lag"].as_u64() == Some(0) && s["failing"].as_bool() != Some(true))
    })
}

/// Runs `vellum sinks`: each sink's delivered, batches, retries,
/// dead-lettered, lag and time since the last success, as `/metrics` has
/// them.
pub fn run_sinks(a: SinksArgs) -> Result<(), String> {
    let token = token(&a.target)?;
    let rt = runtime()?;
    let http = client()?;
    let url = format!("{}/v1/sinks", a.target.url.trim_end_matches('/'));
    let mut text = rt.block_on(get_text(&http, &url, &token, &[]))?;
    let mut late = false;
    if let Some(wait) = a.wait {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let v: Value =
                serde_json::from_str(&text).map_err(|e| format!("the log's answer: {e}"))?;
            if sinks_caught_up(&v) {
                break;
            }
            if std::time::Instant::now() >= deadline {
                late = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            text = rt.block_on(get_text(&http, &url, &token, &[]))?;
        }
    }
    let r = print_sinks(&text, a.format);
    if late {
        return Err(format!(
            "not every sink caught up within {}",
            humantime_secs(a.wait.unwrap_or_default())
        ));
    }
    r
}

fn humantime_secs(d: std::time::Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn print_sinks(text: &str, format: Format) -> Result<(), String> {
    if format != Format::Table {
        println!("{text}");
        return Ok(());
    }
    let v: Value = serde_json::from_str(text).map_err(|e| format!("the log's answer: {e}"))?;
    let list = v["sinks"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no sinks configured ([[sink]] in the configuration file)");
        return Ok(());
    }
    println!(
        "{:<16} {:<6} {:<5} {:>10} {:>8} {:>7} {:>6} {:>8} {:>10}  STATE",
        "SINK", "TYPE", "FMT", "DELIVERED", "BATCHES", "RETRIES", "DEAD", "LAG", "LAST OK"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for s in &list {
        let n = |k: &str| s[k].as_u64().unwrap_or(0);
        let last = s["last_success"]
            .as_str()
            .and_then(|t| vellum_spec::time::parse_utc_millis(t).ok())
            .map(|t| format!("{:.1}s ago", (now - t).max(0) as f64 / 1000.0))
            .unwrap_or_else(|| "never".into());
        let state = match (s["failing"].as_bool(), s["last_error"].as_str()) {
            (Some(true), Some(e)) => format!("failing: {e}"),
            (_, Some(e)) => format!("ok (last: {e})"),
            _ => "ok".into(),
        };
        println!(
            "{:<16} {:<6} {:<5} {:>10} {:>8} {:>7} {:>6} {:>8} {:>10}  {}",
            short(s["name"].as_str().unwrap_or(""), 16).trim_end(),
            s["type"].as_str().unwrap_or(""),
            s["format"].as_str().unwrap_or(""),
            n("delivered"),
            n("batches"),
            n("retries"),
            n("dead_lettered"),
            n("lag"),
            last,
            state
        );
    }
    Ok(())
}
