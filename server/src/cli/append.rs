//! `vellum append`: sends NDJSON events to a running log in batches and
//! prints one result line per event (index, leaf hash, event_id).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `vellum append`.
#[derive(clap::Args, Debug)]
pub struct AppendArgs {
    /// NDJSON file, one event per line; stdin when absent or `-`.
    pub file: Option<PathBuf>,
    /// Base URL of the log.
    #[arg(long, env = "VELLUM_URL", default_value = "http://127.0.0.1:7380")]
    pub url: String,
    /// Bearer token with the append scope [default: DATA/gateway.token].
    #[command(flatten)]
    pub token: super::TokenArgs,
    /// Data directory whose gateway.token to use when no token is given.
    #[arg(long, env = "VELLUM_DATA", default_value = "vellum-data")]
    pub data: PathBuf,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
}

/// Runs `vellum append`.
pub fn run_append(a: AppendArgs) -> Result<(), String> {
    if a.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    let token = a.token.resolve(Some(&a.data.join("gateway.token")))?;
    let input: Box<dyn BufRead> = match &a.file {
        None => Box::new(std::io::stdin().lock()),
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin().lock()),
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?,
        )),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .pool_idle_timeout(vellum_net::CLIENT_IDLE)
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}/v1/events", a.url.trim_end_matches('/'));
    let mut batch: Vec<String> = Vec::new();
    let mut first_line = 1usize;
    let mut line_no = 0usize;
    let mut out = std::io::stdout().lock();
    let mut sent = 0usize;
    let mut flush = |batch: &mut Vec<String>, first_line: usize| -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let body = format!("[{}]", batch.join(","));
        let text = rt
            .block_on(post_with_retry(&http, &url, &token, body))
            .map_err(|e| format!("lines {first_line}-{}: {e}", first_line + batch.len() - 1))?;
        // Each entry as the log wrote it (index, leaf_hash, event_id, ...).
        #[derive(serde::Deserialize)]
        struct Answer<'a> {
            #[serde(borrow)]
            entries: Vec<&'a serde_json::value::RawValue>,
        }
        let v: Answer =
            serde_json::from_str(&text).map_err(|e| format!("the log's answer: {e}"))?;
        for e in v.entries {
            writeln!(out, "{}", e.get()).map_err(|e| e.to_string())?;
        }
        sent += batch.len();
        batch.clear();
        Ok(())
    };
    for line in input.lines() {
        let line = line.map_err(|e| e.to_string())?;
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        if batch.is_empty() {
            first_line = line_no;
        }
        batch.push(line);
        if batch.len() == a.batch {
            flush(&mut batch, first_line)?;
        }
    }
    flush(&mut batch, first_line)?;
    eprintln!("vellum: appended {sent} events");
    Ok(())
}

async fn post_with_retry(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: String,
) -> Result<String, String> {
    for attempt in 0..10 {
        let resp = http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        if status.as_u16() == 503 || status.as_u16() == 429 {
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait.min(30)) * (attempt + 1)).await;
            continue;
        }
        let text = vellum_net::read_capped_text(resp, super::MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {text}"));
        }
        return Ok(text);
    }
    Err("log stayed overloaded after 10 retries".into())
}
