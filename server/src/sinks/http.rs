//! The HTTP sink: batches POSTed as a JSON array, as NDJSON, as Splunk HEC
//! envelopes (with HEC indexer acknowledgement when enabled) or as an
//! Elasticsearch/OpenSearch `_bulk` body. A batch is delivered when the
//! receiver answers 2xx (and, for `_bulk`, every item succeeded or already
//! exists; for HEC with acknowledgement, once the ack ID is acknowledged).
//!
//! Retried, with the receiver's `Retry-After` when it gives one: connection
//! errors, timeouts, 5xx, 408 and 429 (and any status in `retry_status`).
//! Any other 4xx is a poison batch: dead-lettered, and the sink moves on.
//! With a key, each request carries `X-Vellum-Signature: t=<unix
//! seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use sha2::Sha256;
use vellum_spec::siem::{Format, Record};

use super::config::{Destination, HecSettings, HttpMode, SinkSpec};
use super::{Item, Outcome};
use crate::query::fields::EventFields;

/// Most of a receiver's answer that is read.
const MAX_ANSWER: usize = 16 << 20;
/// How long HEC gets to acknowledge a batch before it is sent again.
const HEC_ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-vellum-signature";

/// What goes on the wire for one record in `mode` (see [`super::Item::wire`]).
pub fn wrap(spec: &SinkSpec, mode: HttpMode, r: &Record, f: &EventFields, record: &str) -> Vec<u8> {
    let Destination::Http {
        hec, bulk_index, ..
    } = &spec.dest
    else {
        return Vec::new();
    };
    let body = || -> String {
        if spec.format == Format::Cef {
            serde_json::to_string(record).unwrap_or_default()
        } else {
            record.to_string()
        }
    };
    match mode {
        HttpMode::Json | HttpMode::Ndjson => Vec::new(),
        HttpMode::Hec => {
            let ms = f.logged_at_ms();
            let str_json = |v: &str| serde_json::to_string(v).unwrap_or_default();
            let mut s = String::with_capacity(record.len() + 160);
            s.push('{');
            if ms != i64::MIN {
                // Seconds with a millisecond fraction, as HEC takes them.
                s.push_str(&format!(
                    "\"time\":{}.{:03},",
                    ms.div_euclid(1000),
                    ms.rem_euclid(1000)
                ));
            }
            s.push_str("\"host\":");
            s.push_str(&str_json(&spec.hostname));
            s.push_str(",\"source\":");
            s.push_str(&str_json(&hec.source));
            s.push_str(",\"sourcetype\":");
            s.push_str(&str_json(&hec.sourcetype));
            if let Some(i) = &hec.index {
                s.push_str(",\"index\":");
                s.push_str(&str_json(i));
            }
            s.push_str(",\"event\":");
            s.push_str(&body());
            s.push_str("}\n");
            s.into_bytes()
        }
        HttpMode::Bulk => {
            let action = serde_json::json!({"create": {"_index": bulk_index, "_id": doc_id(r.origin, r.index)}});
            let doc = if spec.format == Format::Cef {
                serde_json::json!({ "message": record, "vellum": {"origin": r.origin, "index": r.index, "leaf_hash": r.leaf_hash} }).to_string()
            } else {
                record.to_string()
            };
            format!("{action}\n{doc}\n").into_bytes()
        }
    }
}

/// The `_id` of an entry's document: origin and index, so a redelivery
/// finds the document already there instead of adding a second one.
pub fn doc_id(origin: &str, index: u64) -> String {
    format!("{origin}/{index}")
}

/// The signature header's value for `body` at Unix time `t`.
pub fn signature(key: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// An HTTP receiver.
pub struct HttpSink {
    client: reqwest::Client,
    url: String,
    ack_url: Option<String>,
    mode: HttpMode,
    headers: HeaderMap,
    hmac_key: Option<Vec<u8>>,
    retry_status: Vec<u16>,
    duplicates: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s.min(3600)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
            .min(Duration::from_secs(3600)),
    )
}

fn snippet(b: &[u8]) -> String {
    let t = String::from_utf8_lossy(&b[..b.len().min(300)]);
    t.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl HttpSink {
    /// The sink of `spec` (an HTTP destination); `duplicates` counts
    /// records the receiver already had.
    pub fn new(
        spec: &SinkSpec,
        duplicates: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<HttpSink, String> {
        let Destination::Http {
            url,
            mode,
            headers,
            hmac_key,
            timeout,
            hec,
            ca_file,
            retry_status,
            ..
        } = &spec.dest
        else {
            return Err("not an HTTP sink".into());
        };
        let err = |m: String| format!("sink {:?}: {m}", spec.name);
        let mut b = reqwest::Client::builder()
            .timeout(*timeout)
            .connect_timeout(*timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(2)
            .pool_idle_timeout(vellum_net::CLIENT_IDLE);
        if let Some(p) = ca_file {
            let pem = std::fs::read(p).map_err(|e| err(format!("ca_file {}: {e}", p.display())))?;
            for c in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| err(format!("ca_file {}: {e}", p.display())))?
            {
                b = b.add_root_certificate(c);
            }
        }
        let client = b.build().map_err(|e| err(format!("HTTP client: {e}")))?;
        let mut h = HeaderMap::new();
        let ctype = match mode {
            HttpMode::Json | HttpMode::Hec => "application/json",
            HttpMode::Ndjson | HttpMode::Bulk => "application/x-ndjson",
        };
        h.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static(ctype),
        );
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| err(format!("header name {k:?} is not valid")))?;
            let mut value = HeaderValue::from_str(v)
                .map_err(|_| err(format!("header {k:?}: the value is not valid")))?;
            value.set_sensitive(true);
            h.insert(name, value);
        }
        let (url, ack_url) = match mode {
            HttpMode::Hec => hec_urls(url, hec),
            _ => (url.clone(), None),
        };
        if *mode == HttpMode::Hec {
            let token = hec.token.as_deref().unwrap_or_default();
            let mut v = HeaderValue::from_str(&format!("Splunk {token}"))
                .map_err(|_| err("hec_token_file: the token is not a valid header value".into()))?;
            v.set_sensitive(true);
            h.insert(reqwest::header::AUTHORIZATION, v);
            if hec.ack {
                let channel = uuid_v4();
                h.insert(
                    HeaderName::from_static("x-splunk-request-channel"),
                    HeaderValue::from_str(&channel).expect("a UUID is a valid header value"),
                );
            }
        }
        Ok(HttpSink {
            client,
            url,
            ack_url,
            mode: *mode,
            headers: h,
            hmac_key: hmac_key.clone(),
            retry_status: retry_status.clone(),
            duplicates,
        })
    }

    fn body(&self, items: &[Item]) -> Vec<u8> {
        let n: usize = items.iter().map(|i| i.bytes().len() + 1).sum();
        let mut b = Vec::with_capacity(n + 2);
        match self.mode {
            HttpMode::Json => {
                b.push(b'[');
                for (k, it) in items.iter().enumerate() {
                    if k > 0 {
                        b.push(b',');
                    }
                    b.extend_from_slice(it.bytes());
                }
                b.push(b']');
            }
            HttpMode::Ndjson => {
                for it in items {
                    b.extend_from_slice(it.bytes());
                    b.push(b'\n');
                }
            }
            HttpMode::Hec | HttpMode::Bulk => {
                for it in items {
                    b.extend_from_slice(it.bytes());
                }
            }
        }
        b
    }

    async fn post(
        &self,
        url: &str,
        body: Vec<u8>,
    ) -> Result<(reqwest::StatusCode, HeaderMap, Vec<u8>), String> {
        let mut req = self.client.post(url).headers(self.headers.clone());
        if let Some(key) = &self.hmac_key {
            let t = super::now_ms() / 1000;
            req = req.header(SIGNATURE_HEADER, signature(key, t, &body));
        }
        let resp = req.body(body).send().await.map_err(|e| describe(&e, url))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let answer = vellum_net::capped::read_capped(resp, MAX_ANSWER)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        Ok((status, headers, answer))
    }

    /// Sends a batch.
    pub async fn deliver(&mut self, items: &[Item]) -> Outcome {
        let body = self.body(items);
        let (status, headers, answer) = match self.post(&self.url, body).await {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(e, None),
        };
        let code = status.as_u16();
        if status.is_success() {
            return match self.mode {
                HttpMode::Bulk => self.bulk_outcome(items, &answer),
                HttpMode::Hec if self.ack_url.is_some() => self.hec_ack(&answer).await,
                _ => Outcome::Delivered,
            };
        }
        let why = format!("{} answered {status}: {}", self.url, snippet(&answer));
        if status.is_server_error()
            || code == 429
            || code == 408
            || self.retry_status.contains(&code)
        {
            return Outcome::Retry(why, retry_after(&headers));
        }
        if status.is_client_error() {
            return Outcome::Poison(why);
        }
        Outcome::Retry(why, None)
    }

    /// A `_bulk` answer: per-item results. Created (or already there, 409)
    /// is delivered; 429 and 5xx items are sent again; other failures are
    /// poison.
    fn bulk_outcome(&self, items: &[Item], answer: &[u8]) -> Outcome {
        let v: Value = match serde_json::from_slice(answer) {
            Ok(v) => v,
            Err(e) => {
                return Outcome::Retry(
                    format!("{}: the _bulk answer is not JSON: {e}", self.url),
                    None,
                )
            }
        };
        if v.get("errors") == Some(&Value::Bool(false)) {
            return Outcome::Delivered;
        }
        let Some(results) = v.get("items").and_then(Value::as_array) else {
            return Outcome::Retry(format!("{}: the _bulk answer has no items", self.url), None);
        };
        if results.len() != items.len() {
            return Outcome::Retry(
                format!(
                    "{}: the _bulk answer has {} items for {} sent",
                    self.url,
                    results.len(),
                    items.len()
                ),
                None,
            );
        }
        let mut poison = Vec::new();
        let mut retry = Vec::new();
        for (k, r) in results.iter().enumerate() {
            let r = r.as_object().and_then(|o| o.values().next());
            let status = r
                .and_then(|r| r.get("status"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            match status {
                200..=299 => {}
                409 => {
                    self.duplicates
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                429 | 500..=599 | 0 => retry.push(k),
                _ => {
                    let e = r.and_then(|r| r.get("error")).map(|e| {
                        let kind = e.get("type").and_then(Value::as_str).unwrap_or("error");
                        let reason = e.get("reason").and_then(Value::as_str).unwrap_or("");
                        format!("{kind}: {reason}")
                    });
                    poison.push((
                        k,
                        format!("_bulk item status {status}: {}", e.unwrap_or_default()),
                    ));
                }
            }
        }
        if poison.is_empty() && retry.is_empty() {
            Outcome::Delivered
        } else {
            Outcome::Partial { poison, retry }
        }
    }

    /// HEC with indexer acknowledgement: waits until the batch's ack ID is
    /// acknowledged (polling `/services/collector/ack`).
    async fn hec_ack(&self, answer: &[u8]) -> Outcome {
        let Some(ack_url) = &self.ack_url else {
            return Outcome::Delivered;
        };
        let id = serde_json::from_slice::<Value>(answer)
            .ok()
            .and_then(|v| v.get("ackId").and_then(Value::as_u64));
        let Some(id) = id else {
            return Outcome::Retry(
                format!(
                    "{}: HEC answered without an ackId: {}",
                    self.url,
                    snippet(answer)
                ),
                None,
            );
        };
        let started = Instant::now();
        let mut wait = Duration::from_millis(50);
        while started.elapsed() < HEC_ACK_TIMEOUT {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            let body = serde_json::json!({ "acks": [id] }).to_string().into_bytes();
            let (status, _, a) = match self.post(ack_url, body).await {
                Ok(r) => r,
                Err(e) => return Outcome::Retry(format!("HEC ack: {e}"), None),
            };
            if !status.is_success() {
                return Outcome::Retry(
                    format!("{ack_url} answered {status}: {}", snippet(&a)),
                    None,
                );
            }
            let done = serde_json::from_slice::<Value>(&a).ok().and_then(|v| {
                v.get("acks")
                    .and_then(|m| m.get(id.to_string()))
                    .and_then(Value::as_bool)
            });
            if done == Some(true) {
                return Outcome::Delivered;
            }
        }
        Outcome::Retry(
            format!("HEC did not acknowledge ackId {id} within {HEC_ACK_TIMEOUT:?}"),
            None,
        )
    }
}

/// The event and ack URLs of a HEC base or event URL.
fn hec_urls(url: &str, hec: &HecSettings) -> (String, Option<String>) {
    let base = url
        .trim_end_matches('/')
        .trim_end_matches("/services/collector/event")
        .trim_end_matches("/services/collector")
        .to_string();
    let event = format!("{base}/services/collector/event");
    let ack = hec.ack.then(|| format!("{base}/services/collector/ack"));
    (event, ack)
}

/// A random UUID (version 4), for the HEC request channel.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A transport error, without the URL's query (which may hold a secret).
fn describe(e: &reqwest::Error, url: &str) -> String {
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    let shown = url.split('?').next().unwrap_or(url);
    if detail.is_empty() {
        format!("{shown}: {what}")
    } else {
        format!("{shown}: {what}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_time_dot_body() {
        // Computed outside the project: Python's
        // hmac.new(b"k", b"1700000000.[]", hashlib.sha256).hexdigest()
        assert_eq!(
            signature(b"k", 1_700_000_000, b"[]"),
            "t=1700000000,v1=e187e0cc44db6fb2387bd5824a3ce76c08329290c7aef1f563d05c789d5d85a0"
        );
    }

    #[test]
    fn hec_urls_from_a_base_or_an_event_url() {
        let h = HecSettings {
            ack: true,
            ..Default::default()
        };
        for u in [
            "https://s:8088",
            "https://s:8088/",
            "https://s:8088/services/collector",
            "https://s:8088/services/collector/event",
        ] {
            let (e, a) = hec_urls(u, &h);
            assert_eq!(e, "https://s:8088/services/collector/event");
            assert_eq!(a.as_deref(), Some("https://s:8088/services/collector/ack"));
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
    }
}
