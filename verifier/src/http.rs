//! Reading a log over HTTP: the checkpoint, tiles, entry bundles, proofs
//! and entries. Every error is operational (the log could not be read);
//! judging what was read is the callers' job. Every body is read with a
//! cap fitting what it should hold, so a hostile log cannot make the
//! verifier hold more than that, and every request with a timeout.

use std::io::Read;
use std::time::Duration;

use vellum_spec::hash::Hash;
use vellum_spec::tile::TileId;

use crate::report::Failure;

/// A log's read API.
#[derive(Clone)]
pub struct Log {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

/// Caps on what the verifier reads, by what it asked for.
pub mod caps {
    /// A signed checkpoint: a few lines and signatures (C2SP notes are
    /// small; generous room for many cosignatures).
    pub const CHECKPOINT: usize = 64 << 10;
    /// A hash tile: 256 hashes of 32 bytes.
    pub const TILE: usize = 256 * 32;
    /// An entry bundle: 256 entries of at most 65,535 bytes, each with its
    /// 2-byte length.
    pub const BUNDLE: usize = 256 * (2 + 65_535);
    /// A proof answer (at most 64 hashes) or an entry answer (one event of
    /// at most 64 KiB, escaped).
    pub const JSON: usize = 512 << 10;
    /// An error answer, of which the first 300 bytes are shown.
    pub const ERROR: usize = 64 << 10;
}

/// Reads at most `limit` bytes of `r`; an error if there is more.
fn read_capped(r: impl Read, limit: usize, url: &str) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| op(format!("{url}: reading the answer: {e}")))?;
    if out.len() > limit {
        return Err(op(format!(
            "{url}: the answer is over {limit} bytes, more than it can hold; refusing to read it"
        )));
    }
    Ok(out)
}

/// A request error with its causes ("connection refused"), naming the host.
fn describe(e: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let t = c.to_string();
        if !causes.contains(&t) {
            causes.push(t);
        }
        src = c.source();
    }
    let what = if e.is_connect() {
        let host = e
            .url()
            .and_then(|u| {
                u.host_str()
                    .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
            })
            .unwrap_or_default();
        format!("cannot connect to {host}")
    } else if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    match causes.last() {
        Some(root) => format!("{what}: {root}"),
        None => what,
    }
}

/// What a GET returned.
pub enum Got {
    /// 200 and the body.
    Body(Vec<u8>),
    /// 404.
    NotFound,
}

fn op(m: impl Into<String>) -> Failure {
    Failure::Operational(m.into())
}

impl Log {
    /// A client for the log at `base`, sending `token` where entries need it.
    pub fn new(base: &str, token: Option<String>) -> Result<Log, Failure> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            // Below the 10 s after which Vellum servers close idle connections.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| op(format!("HTTP client: {e}")))?;
        Ok(Log {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GETs `path`, reading at most `limit` bytes of its body; 404 is
    /// returned, other non-200 statuses are errors.
    pub fn get(&self, path: &str, limit: usize) -> Result<Got, Failure> {
        let url = format!("{}{path}", self.base);
        let mut last = String::new();
        for attempt in 0..3 {
            let mut req = self.http.get(&url);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            match req.send() {
                Ok(resp) => {
                    let status = resp.status();
                    if status.as_u16() == 404 {
                        return Ok(Got::NotFound);
                    }
                    let cap = if status.is_success() {
                        limit
                    } else {
                        caps::ERROR
                    };
                    let body = read_capped(resp, cap, &url)?;
                    if status.is_success() {
                        return Ok(Got::Body(body));
                    }
                    let msg = format!(
                        "{url}: HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    );
                    if status.is_server_error() {
                        last = msg;
                    } else {
                        let hint = if status.as_u16() == 401 || status.as_u16() == 403 {
                            " (entries need a token with the read scope: --token or VELLUM_TOKEN)"
                        } else {
                            ""
                        };
                        return Err(op(format!("{msg}{hint}")));
                    }
                }
                Err(e) => last = format!("{url}: {}", describe(&e)),
            }
            std::thread::sleep(Duration::from_millis(200 << attempt));
        }
        Err(op(last))
    }

    /// GETs `path` and requires a body of at most `limit` bytes.
    pub fn get_body(&self, path: &str, limit: usize) -> Result<Vec<u8>, Failure> {
        match self.get(path, limit)? {
            Got::Body(b) => Ok(b),
            Got::NotFound => Err(op(format!("{}{path}: 404 not found", self.base))),
        }
    }

    /// GETs `path` as JSON.
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value, Failure> {
        let b = self.get_body(path, caps::JSON)?;
        serde_json::from_slice(&b).map_err(|e| op(format!("{}{path}: not JSON: {e}", self.base)))
    }

    /// The signed checkpoint note.
    pub fn checkpoint(&self) -> Result<Vec<u8>, Failure> {
        self.get_body("/checkpoint", caps::CHECKPOINT)
    }

    /// A tile (`entries`: its entry bundle) of width `id.width`. A partial
    /// tile the log no longer serves is read from the full tile and cut to
    /// width, as C2SP tlog-tiles advises clients.
    pub fn tile(&self, id: TileId, entries: bool) -> Result<Vec<u8>, Failure> {
        let prefix = if entries { "/tile/entries/" } else { "/tile/" };
        let path = format!("{prefix}{}", id.path(entries));
        let cap = if entries { caps::BUNDLE } else { caps::TILE };
        match self.get(&path, cap)? {
            Got::Body(b) => Ok(b),
            Got::NotFound if !id.is_full() => {
                let full = TileId::full(id.level, id.index);
                let b = self.get_body(&format!("{prefix}{}", full.path(entries)), cap)?;
                Ok(if entries {
                    cut_bundle(&b, id.width as usize)
                } else {
                    b[..(id.width as usize * 32).min(b.len())].to_vec()
                })
            }
            Got::NotFound => Err(op(format!("{}{path}: 404 not found", self.base))),
        }
    }

    /// A consistency proof between two sizes.
    pub fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, Failure> {
        let v = self.get_json(&format!("/v1/proof/consistency?from={from}&to={to}"))?;
        proof_hashes(&v)
    }

    /// An inclusion proof for `index` in the tree of `size`.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, Failure> {
        let v = self.get_json(&format!("/v1/proof/inclusion?index={index}&size={size}"))?;
        proof_hashes(&v)
    }
}

/// The first `width` entries of an entry bundle (the whole bundle if it
/// does not parse: the caller's check then reports it).
fn cut_bundle(b: &[u8], width: usize) -> Vec<u8> {
    match vellum_spec::tile::parse_bundle(b) {
        Ok(entries) => {
            let len: usize = entries.iter().take(width).map(|e| 2 + e.len()).sum();
            b[..len].to_vec()
        }
        Err(_) => b.to_vec(),
    }
}

fn proof_hashes(v: &serde_json::Value) -> Result<Vec<Hash>, Failure> {
    v["proof"]
        .as_array()
        .ok_or_else(|| op("proof response has no `proof` array"))?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|s| Hash::from_base64(s).ok())
                .ok_or_else(|| {
                    Failure::check(
                        "proof",
                        format!("served proof hash {h} is not base64 of 32 bytes"),
                    )
                })
        })
        .collect()
}
