//! `vellum export`: downloads an evidence bundle from a running log
//! (`GET /v1/export`, admin token) and writes it to a file, streaming. The
//! file appears under its name only once the bundle's end line arrived.

use std::io::Write;
use std::path::PathBuf;

/// Flags of `vellum export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Where to write the bundle (`-` for stdout).
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Base URL of the log.
    #[arg(long, env = "VELLUM_URL", default_value = "http://127.0.0.1:7380")]
    pub url: String,
    /// Bearer token with the admin scope.
    #[command(flatten)]
    pub token: super::TokenArgs,
    /// Window start, inclusive (RFC 3339 UTC, compared with `logged_at`).
    #[arg(long)]
    pub from: Option<String>,
    /// Window end, exclusive.
    #[arg(long)]
    pub to: Option<String>,
    /// Only events of this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only events of this principal.
    #[arg(long)]
    pub principal: Option<String>,
    /// Only events of this owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only events of this session.
    #[arg(long)]
    pub session: Option<String>,
    /// Only events decided by this rule.
    #[arg(long)]
    pub rule: Option<String>,
    /// Only events with this verdict.
    #[arg(long)]
    pub verdict: Option<String>,
    /// Include a consistency proof from the checkpoint of this size you hold.
    #[arg(long)]
    pub since: Option<u64>,
}

impl ExportArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        let fields: [(&'static str, &Option<String>); 8] = [
            ("from", &self.from),
            ("to", &self.to),
            ("agent", &self.agent),
            ("principal", &self.principal),
            ("owner", &self.owner),
            ("session", &self.session),
            ("rule", &self.rule),
            ("verdict", &self.verdict),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        if let Some(s) = self.since {
            q.push(("since", s.to_string()));
        }
        q
    }
}

/// Runs `vellum export`.
pub fn run_export(a: ExportArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(download(&a))
}

/// Longest the download waits for the next bytes (the log counts the
/// window's events before it sends the first byte).
const STALL: std::time::Duration = std::time::Duration::from_secs(300);

async fn download(a: &ExportArgs) -> Result<(), String> {
    let token = a.token.resolve(None)?;
    let url = format!("{}/v1/export", a.url.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .read_timeout(STALL)
        .build()
        .map_err(|e| e.to_string())?;
    let mut resp = http
        .get(&url)
        .bearer_auth(&token)
        .query(&a.query())
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        let text = vellum_net::read_capped_text(resp, 64 << 10)
            .await
            .unwrap_or_default();
        return Err(format!("HTTP {status}: {text}"));
    }
    let to_stdout = a.output.as_os_str() == "-";
    let partial = a.output.with_extension("partial");
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(&partial).map_err(|e| format!("{}: {e}", partial.display()))?,
        ))
    };
    let (mut bytes, mut tail) = (0u64, Vec::new());
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                out.write_all(&c).map_err(|e| e.to_string())?;
                bytes += c.len() as u64;
                tail.extend_from_slice(&c);
                if tail.len() > 4096 {
                    tail.drain(..tail.len() - 4096);
                }
            }
            Ok(None) => break,
            Err(e) => return Err(format!("download cut short after {bytes} bytes: {e}")),
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    let last = tail
        .strip_suffix(b"\n")
        .and_then(|t| t.rsplit(|b| *b == b'\n').next())
        .unwrap_or_default();
    let end: Option<u64> = serde_json::from_slice::<serde_json::Value>(last)
        .ok()
        .filter(|v| v["kind"] == "end")
        .and_then(|v| v["events"].as_u64());
    let Some(events) = end else {
        return Err(format!(
            "the bundle has no end line after {bytes} bytes: the log stopped mid-export"
        ));
    };
    if !to_stdout {
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .and_then(|_| std::fs::rename(&partial, &a.output))
            .map_err(|e| format!("{}: {e}", a.output.display()))?;
        eprintln!(
            "vellum: wrote {} ({events} events, {bytes} bytes); verify it with `vellum-verify bundle {} --log-key <VKEY>`",
            a.output.display(),
            a.output.display()
        );
    }
    Ok(())
}
