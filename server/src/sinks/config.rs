//! `[[sink]]` entries of the TOML configuration: where each sink delivers,
//! in which format, which events (a filter in the query syntax), and how.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use vellum_spec::siem::Format;

use crate::query::params::{Filter, TailQuery};

/// One `[[sink]]` table, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkToml {
    /// Unique name (metrics, cursor and dead-letter file names).
    pub name: String,
    /// `syslog`, `http` or `file`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `json` (default), `ecs`, `ocsf` or `cef`.
    pub format: Option<String>,
    /// Which events, in the query syntax (`verdict=deny&owner=team-a`).
    pub filter: Option<String>,
    /// Where a new sink starts: `beginning` (default) or `end`.
    pub start: Option<String>,
    /// HOSTNAME of syslog messages and `host.name` of ECS records
    /// [default: this machine's host name].
    pub hostname: Option<String>,
    // syslog
    /// `udp`, `tcp` or `tls`.
    pub transport: Option<String>,
    /// `host:port` of the syslog receiver.
    pub address: Option<String>,
    /// Syslog facility [default: 13, log audit].
    pub facility: Option<u8>,
    /// Syslog APP-NAME [default: vellum].
    pub app_name: Option<String>,
    /// SD-ID of the structured data [default: vellum@32473; set your own PEN].
    pub sd_id: Option<String>,
    /// TLS: CA certificates (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// TLS: client certificate chain (PEM).
    pub client_cert: Option<PathBuf>,
    /// TLS: client private key (PEM).
    pub client_key: Option<PathBuf>,
    /// TLS: the name to check the receiver's certificate for [default: the address's host].
    pub server_name: Option<String>,
    // http
    /// URL to POST to (for `bulk`, the `_bulk` endpoint; for `hec`, the HEC base or event URL).
    pub url: Option<String>,
    /// `json` (an array), `ndjson`, `hec` or `bulk` [default: json].
    pub mode: Option<String>,
    /// Events per batch [default: 500; 5000 for files].
    pub batch: Option<usize>,
    /// Longest a partial batch waits for more events [default: 1s].
    pub interval: Option<String>,
    /// Per-request timeout [default: 10s].
    pub timeout: Option<String>,
    /// Extra request headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// File holding the HMAC-SHA256 key for `X-Vellum-Signature`.
    pub hmac_secret_file: Option<PathBuf>,
    /// File holding the Splunk HEC token.
    pub hec_token_file: Option<PathBuf>,
    /// HEC `index`.
    pub hec_index: Option<String>,
    /// HEC `source` [default: vellum].
    pub hec_source: Option<String>,
    /// HEC `sourcetype` [default: _json].
    pub hec_sourcetype: Option<String>,
    /// Use HEC indexer acknowledgement (a request channel, then poll `/ack`).
    pub hec_ack: Option<bool>,
    /// `_bulk`: the index to write to [default: vellum-events].
    pub bulk_index: Option<String>,
    /// HTTP statuses to retry besides 5xx, 408 and 429 (say 401 and 403,
    /// so a rotated token holds the sink back instead of dead-lettering).
    pub retry_status: Option<Vec<u16>>,
    // file
    /// Directory of the hourly NDJSON files.
    pub dir: Option<PathBuf>,
    /// Gzip each hour's file when the hour closes [default: true].
    pub gzip: Option<bool>,
}

/// Syslog transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RFC 5426: one message per datagram, no acknowledgement.
    Udp,
    /// RFC 6587 octet counting over TCP.
    Tcp,
    /// RFC 5425: octet counting over TLS.
    Tls,
}

/// HTTP body shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMode {
    /// A JSON array of records.
    Json,
    /// One record per line.
    Ndjson,
    /// Splunk HEC envelopes, concatenated.
    Hec,
    /// Elasticsearch/OpenSearch `_bulk` action/source pairs.
    Bulk,
}

/// Where a sink delivers.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A syslog receiver.
    Syslog {
        /// How.
        transport: Transport,
        /// `host:port`.
        address: String,
        /// Labels of the messages.
        header: vellum_spec::siem::syslog::Header,
        /// TLS settings.
        tls: Option<TlsFiles>,
    },
    /// An HTTP endpoint.
    Http {
        /// POST target.
        url: String,
        /// Body shape.
        mode: HttpMode,
        /// Extra headers.
        headers: BTreeMap<String, String>,
        /// HMAC key, if signing.
        hmac_key: Option<Vec<u8>>,
        /// Per-request timeout.
        timeout: Duration,
        /// HEC settings.
        hec: HecSettings,
        /// `_bulk` index.
        bulk_index: String,
        /// CA certificates to trust besides the system's (HTTPS).
        ca_file: Option<PathBuf>,
        /// Further statuses to retry.
        retry_status: Vec<u16>,
    },
    /// Hourly files.
    File {
        /// Directory.
        dir: PathBuf,
        /// Gzip closed hours.
        gzip: bool,
    },
}

/// TLS files of a syslog sink.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA bundle.
    pub ca_file: PathBuf,
    /// Client certificate and key, for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
    /// Name to verify.
    pub server_name: String,
}

/// Splunk HEC settings.
#[derive(Debug, Clone, Default)]
pub struct HecSettings {
    /// The token (from its file).
    pub token: Option<String>,
    /// `index`.
    pub index: Option<String>,
    /// `source`.
    pub source: String,
    /// `sourcetype`.
    pub sourcetype: String,
    /// Indexer acknowledgement.
    pub ack: bool,
}

/// A validated sink.
#[derive(Debug, Clone)]
pub struct SinkSpec {
    /// Its name.
    pub name: String,
    /// Record format.
    pub format: Format,
    /// Which events.
    pub filter: Filter,
    /// The filter as written (for display).
    pub filter_text: String,
    /// Start at the log's end rather than its beginning (new sinks only).
    pub from_end: bool,
    /// Host name for records.
    pub hostname: String,
    /// Events per batch.
    pub batch: usize,
    /// Longest wait for a batch to fill.
    pub interval: Duration,
    /// Where.
    pub dest: Destination,
}

fn read_secret(p: &std::path::Path, what: &str) -> Result<String, String> {
    crate::secrets::check_mode(p);
    let t = std::fs::read_to_string(p).map_err(|e| format!("{what} {}: {e}", p.display()))?;
    let t = t.trim().to_string();
    if t.is_empty() {
        return Err(format!("{what} {} is empty", p.display()));
    }
    Ok(t)
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if r != 0 {
        return "-".into();
    }
    let n = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Parses a sink filter (the query syntax, filters only).
pub fn parse_filter(text: &str) -> Result<Filter, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(text).map_err(|e| format!("filter {text:?}: {e}"))?;
    if pairs.iter().any(|(k, _)| k == "after") {
        return Err(format!("filter {text:?}: `after` is not a filter"));
    }
    TailQuery::parse(&pairs, None)
        .map(|q| q.filter)
        .map_err(|e| format!("filter {text:?}: {e}"))
}

impl SinkToml {
    /// Checks the table and reads its secret files.
    pub fn validate(&self) -> Result<SinkSpec, String> {
        let name = &self.name;
        let err = |m: String| format!("sink {name:?}: {m}");
        let ok_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok_name {
            return Err(err(
                "name must be 1-64 letters, digits, '-', '_' or '.'".into()
            ));
        }
        let format = match &self.format {
            None => Format::Json,
            Some(f) => Format::parse(f)
                .ok_or_else(|| err(format!("format {f:?}: want json, ecs, ocsf or cef")))?,
        };
        let filter_text = self.filter.clone().unwrap_or_default();
        let filter = parse_filter(&filter_text).map_err(err)?;
        let from_end = match self.start.as_deref() {
            None | Some("beginning") => false,
            Some("end") => true,
            Some(s) => return Err(err(format!("start {s:?}: want beginning or end"))),
        };
        let dur = |v: &Option<String>, d: Duration, what: &str| -> Result<Duration, String> {
            match v {
                None => Ok(d),
                Some(s) => vellum_net::parse_duration(s).map_err(|e| err(format!("{what}: {e}"))),
            }
        };
        // A file batch costs one fsync: larger batches keep the sink's syncs
        // from competing with the log's own group commits.
        let batch = self
            .batch
            .unwrap_or(if self.kind == "file" { 5000 } else { 500 });
        if !(1..=10_000).contains(&batch) {
            return Err(err("batch must be 1-10000".into()));
        }
        let hostname = self.hostname.clone().unwrap_or_else(hostname);
        let need = |v: &Option<String>, what: &str| -> Result<String, String> {
            v.clone().ok_or_else(|| err(format!("{what} is required")))
        };
        let allowed: &[&str] = match self.kind.as_str() {
            "syslog" => &[
                "transport",
                "address",
                "facility",
                "app_name",
                "sd_id",
                "ca_file",
                "client_cert",
                "client_key",
                "server_name",
            ],
            "http" => &[
                "url",
                "mode",
                "timeout",
                "headers",
                "hmac_secret_file",
                "hec_token_file",
                "hec_index",
                "hec_source",
                "hec_sourcetype",
                "hec_ack",
                "bulk_index",
                "ca_file",
                "retry_status",
            ],
            "file" => &["dir", "gzip"],
            k => return Err(err(format!("type {k:?}: want syslog, http or file"))),
        };
        for (k, set) in self.settings() {
            if set && !allowed.contains(&k) {
                return Err(err(format!("{k} does not apply to a {} sink", self.kind)));
            }
        }
        let dest = match self.kind.as_str() {
            "syslog" => {
                let transport = match self.transport.as_deref() {
                    Some("udp") => Transport::Udp,
                    None | Some("tcp") => Transport::Tcp,
                    Some("tls") => Transport::Tls,
                    Some(t) => return Err(err(format!("transport {t:?}: want udp, tcp or tls"))),
                };
                let address = need(&self.address, "address")?;
                let host = address
                    .rsplit_once(':')
                    .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
                    .ok_or_else(|| err(format!("address {address:?}: want host:port")))?;
                if self.retry_status.is_some() {
                    return Err(err("retry_status applies to http sinks".into()));
                }
                let tls = match transport {
                    Transport::Tls => Some(TlsFiles {
                        ca_file: self
                            .ca_file
                            .clone()
                            .ok_or_else(|| err("ca_file is required for tls".into()))?,
                        client: match (&self.client_cert, &self.client_key) {
                            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
                            (None, None) => None,
                            _ => return Err(err("client_cert and client_key go together".into())),
                        },
                        server_name: self.server_name.clone().unwrap_or(host),
                    }),
                    _ => {
                        if self.ca_file.is_some() || self.client_cert.is_some() {
                            return Err(err(
                                "ca_file and client_cert need transport = \"tls\"".into()
                            ));
                        }
                        None
                    }
                };
                let facility = self
                    .facility
                    .unwrap_or(vellum_spec::siem::syslog::FACILITY_AUDIT);
                if facility > 23 {
                    return Err(err("facility must be 0-23".into()));
                }
                Destination::Syslog {
                    transport,
                    address,
                    header: vellum_spec::siem::syslog::Header {
                        facility,
                        hostname: hostname.clone(),
                        app_name: self.app_name.clone().unwrap_or_else(|| "vellum".into()),
                        sd_id: self.sd_id.clone().unwrap_or_else(|| "vellum@32473".into()),
                    },
                    tls,
                }
            }
            "http" => {
                let url = need(&self.url, "url")?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(err(format!("url {url:?}: want http:// or https://")));
                }
                let mode = match self.mode.as_deref() {
                    None | Some("json") => HttpMode::Json,
                    Some("ndjson") => HttpMode::Ndjson,
                    Some("hec") => HttpMode::Hec,
                    Some("bulk") => HttpMode::Bulk,
                    Some(m) => {
                        return Err(err(format!("mode {m:?}: want json, ndjson, hec or bulk")))
                    }
                };
                let hmac_key = match &self.hmac_secret_file {
                    Some(p) => Some(
                        read_secret(p, "hmac_secret_file")
                            .map_err(err)?
                            .into_bytes(),
                    ),
                    None => None,
                };
                let token = match &self.hec_token_file {
                    Some(p) => Some(read_secret(p, "hec_token_file").map_err(err)?),
                    None => None,
                };
                if mode == HttpMode::Hec && token.is_none() {
                    return Err(err("mode = \"hec\" needs hec_token_file".into()));
                }
                Destination::Http {
                    url,
                    mode,
                    headers: self.headers.clone().unwrap_or_default(),
                    hmac_key,
                    timeout: dur(&self.timeout, Duration::from_secs(10), "timeout")?,
                    hec: HecSettings {
                        token,
                        index: self.hec_index.clone(),
                        source: self.hec_source.clone().unwrap_or_else(|| "vellum".into()),
                        sourcetype: self
                            .hec_sourcetype
                            .clone()
                            .unwrap_or_else(|| "_json".into()),
                        ack: self.hec_ack.unwrap_or(false),
                    },
                    bulk_index: self
                        .bulk_index
                        .clone()
                        .unwrap_or_else(|| "vellum-events".into()),
                    ca_file: self.ca_file.clone(),
                    retry_status: self.retry_status.clone().unwrap_or_default(),
                }
            }
            _ => Destination::File {
                dir: self
                    .dir
                    .clone()
                    .ok_or_else(|| err("dir is required".into()))?,
                gzip: self.gzip.unwrap_or(true),
            },
        };
        Ok(SinkSpec {
            name: name.clone(),
            format,
            filter,
            filter_text,
            from_end,
            hostname,
            batch,
            interval: dur(&self.interval, Duration::from_secs(1), "interval")?,
            dest,
        })
    }

    /// Which destination-specific settings are given.
    fn settings(&self) -> [(&'static str, bool); 23] {
        [
            ("transport", self.transport.is_some()),
            ("address", self.address.is_some()),
            ("facility", self.facility.is_some()),
            ("app_name", self.app_name.is_some()),
            ("sd_id", self.sd_id.is_some()),
            ("ca_file", self.ca_file.is_some()),
            ("client_cert", self.client_cert.is_some()),
            ("client_key", self.client_key.is_some()),
            ("server_name", self.server_name.is_some()),
            ("url", self.url.is_some()),
            ("mode", self.mode.is_some()),
            ("timeout", self.timeout.is_some()),
            ("headers", self.headers.is_some()),
            ("hmac_secret_file", self.hmac_secret_file.is_some()),
            ("hec_token_file", self.hec_token_file.is_some()),
            ("hec_index", self.hec_index.is_some()),
            ("hec_source", self.hec_source.is_some()),
            ("hec_sourcetype", self.hec_sourcetype.is_some()),
            ("hec_ack", self.hec_ack.is_some()),
            ("bulk_index", self.bulk_index.is_some()),
            ("dir", self.dir.is_some()),
            ("gzip", self.gzip.is_some()),
            ("retry_status", self.retry_status.is_some()),
        ]
    }
}

/// Validates every sink; names must be unique.
pub fn validate_all(sinks: &[SinkToml]) -> Result<Vec<SinkSpec>, String> {
    let mut out: Vec<SinkSpec> = Vec::new();
    for s in sinks {
        let v = s.validate()?;
        if out.iter().any(|o| o.name == v.name) {
            return Err(format!("sink {:?} is configured twice", v.name));
        }
        out.push(v);
    }
    Ok(out)
}
