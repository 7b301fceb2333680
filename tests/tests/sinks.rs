//! Sinks against real receivers: rsyslog (the Debian package, with its
//! own configuration and a test CA) over UDP, TCP with octet counting and
//! mutual TLS; an HTTP receiver in generic, NDJSON, Splunk HEC (with
//! indexer acknowledgement) and `_bulk` modes; hourly files. And faults:
//! receivers down and back, a log killed with -9 mid-stream, poison
//! batches and items, and a file sink that cannot write.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vellum_tests::receivers::*;
use vellum_tests::*;

/// Starts a log whose configuration file holds `sinks` (TOML).
fn log_with_sinks(sinks: &str) -> Log {
    let mut log = Log::init();
    let conf = log.data().join("vellum.toml");
    std::fs::write(&conf, sinks).unwrap();
    log.args = vec!["--config".into(), conf.display().to_string()];
    log.spawn();
    log
}

/// Events with varied verdicts, risks and awkward reasons.
fn events(n: usize, tag: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut e = event(&format!("{tag}-{i}"), Some(&format!("{tag}-{i}")));
            match i % 4 {
                0 => {
                    e["verdict"] = "deny".into();
                    e["rule"] = "refunds-need-approval".into();
                    e["reason"] = "amount = 480 | over\\limit\nsecond line".into();
                    e["risk"] = 90.into();
                }
                1 => {
                    e["verdict"] = "deny".into();
                    e["rule"] = "no-prod-writes".into();
                    e["reason"] = "write to \"prod\" [blocked]".into();
                }
                2 => e["verdict"] = "review".into(),
                _ => {}
            }
            e
        })
        .collect()
}

fn append(log: &Log, evs: &[Value]) {
    let (s, b) = log.post_events(Some(&log.token()), serde_json::to_vec(evs).unwrap());
    assert_eq!(s, 200, "{b}");
}

#[derive(serde::Deserialize)]
struct Row<'a> {
    index: u64,
    leaf_hash: String,
    #[serde(borrow)]
    event: &'a serde_json::value::RawValue,
}

#[derive(serde::Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    events: Vec<Row<'a>>,
    next_cursor: Option<String>,
}

/// The log's first `n` entries as the query API returns them once the
/// indexer has reached them: index -> (leaf hash, the event's exact bytes).
fn entries(log: &Log, n: usize) -> BTreeMap<u64, (String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = entries_now(log);
        if out.len() >= n || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn entries_now(log: &Log) -> BTreeMap<u64, (String, String)> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = "/v1/events?order=asc&limit=1000".to_string();
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let (s, b) = log.get(&q, Some(&log.token()));
        assert_eq!(s, 200);
        let page: Page = serde_json::from_slice(&b).unwrap();
        for r in page.events {
            out.insert(r.index, (r.leaf_hash, r.event.get().to_string()));
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// Splits a CEF record into its seven header fields and its extension
/// (an independent reading of the CEF rules: `\|` and `\\` in the header;
/// `\=`, `\\`, `\n`, `\r` in extension values, keys without spaces).
fn parse_cef(line: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let mut header = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    while header.len() < 7 {
        match chars.next().expect("CEF header ends early") {
            '\\' => cur.push(chars.next().unwrap()),
            '|' => header.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    let ext: String = chars.collect();
    // Keys are the words right before an unescaped '='.
    let mut pairs: Vec<(String, String)> = Vec::new();
    let b: Vec<char> = ext.chars().collect();
    let mut i = 0;
    let mut key_start = 0;
    let mut val = String::new();
    let mut key: Option<String> = None;
    while i < b.len() {
        let c = b[i];
        if c == '\\' && i + 1 < b.len() {
            val.push(match b[i + 1] {
                'n' => '\n',
                'r' => '\r',
                o => o,
            });
            i += 2;
            continue;
        }
        if c == '=' {
            // The key is the last space-free word of what was read.
            let sp = val.rfind(' ');
            let (v, k) = match sp {
                Some(p) => (val[..p].to_string(), val[p + 1..].to_string()),
                None => (String::new(), val.clone()),
            };
            if let Some(prev) = key.take() {
                pairs.push((prev, v));
            }
            key = Some(k);
            val.clear();
            key_start = i + 1;
            i += 1;
            continue;
        }
        val.push(c);
        i += 1;
    }
    let _ = key_start;
    if let Some(k) = key {
        pairs.push((k, val));
    }
    (header, pairs.into_iter().collect())
}

/// The structured data rsyslog parsed, as name -> value.
fn sd_params(sd: &str) -> BTreeMap<String, String> {
    let inner = sd.trim_start_matches('[').trim_end_matches(']');
    let mut out = BTreeMap::new();
    let mut rest = inner.split_once(' ').map(|x| x.1).unwrap_or("");
    while let Some((k, v)) = rest.split_once("=\"") {
        let mut val = String::new();
        let mut end = 0;
        let mut esc = false;
        for (j, c) in v.char_indices() {
            if esc {
                val.push(c);
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                end = j;
                break;
            } else {
                val.push(c);
            }
        }
        out.insert(k.trim().to_string(), val);
        rest = &v[end + 1..];
    }
    out
}

#[test]
fn syslog_reaches_rsyslog_over_udp_tcp_and_mutual_tls_with_every_field() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::make(&tmp.path().join("ca"));
    let rs = Rsyslog::start(&tmp.path().join("rsyslog"), &ca);
    let log = log_with_sinks(&format!(
        r#"
[[sink]]
name = "udp-json"
type = "syslog"
transport = "udp"
address = "127.0.0.1:{udp}"
hostname = "vellum-test"
batch = 10
interval = "100ms"

[[sink]]
name = "tcp-cef-denials"
type = "syslog"
transport = "tcp"
address = "127.0.0.1:{tcp}"
format = "cef"
filter = "verdict=deny"
facility = 4
app_name = "vellum-audit"
hostname = "vellum-test"
interval = "100ms"

[[sink]]
name = "tls-ecs"
type = "syslog"
transport = "tls"
address = "127.0.0.1:{tls}"
server_name = "localhost"
ca_file = "{ca}"
client_cert = "{cert}"
client_key = "{key}"
format = "ecs"
hostname = "vellum-test"
interval = "100ms"
"#,
        udp = rs.udp,
        tcp = rs.tcp,
        tls = rs.tls,
        ca = ca.file("ca.pem"),
        cert = ca.file("client.pem"),
        key = ca.file("client.key"),
    ));
    let evs = events(40, "sys");
    append(&log, &evs);
    let all = entries(&log, evs.len());
    assert_eq!(all.len(), 40);
    let denials = all
        .values()
        .filter(|(_, e)| e.contains("\"verdict\":\"deny\""))
        .count();
    assert_eq!(denials, 20);

    let within = Duration::from_secs(20);
    let udp = rs.wait_lines("udp.fields", 40, within);
    let tcp = rs.wait_lines("tcp.fields", denials, within);
    let tls = rs.wait_lines("tls.fields", 40, within);
    let ctx = || {
        format!(
            "rsyslogd: {}\nvellum: {}",
            rs.log(),
            log.stderr.as_ref().unwrap().text()
        )
    };
    assert_eq!(udp.len(), 40, "{}", ctx());
    assert_eq!(tcp.len(), denials, "{}", ctx());
    assert_eq!(tls.len(), 40, "{}", ctx());

    for (file, lines, facility, app) in [
        ("udp", &udp, 13u32, "vellum"),
        ("tcp", &tcp, 4, "vellum-audit"),
        ("tls", &tls, 13, "vellum"),
    ] {
        let mut last = None;
        for line in lines.iter() {
            let f: Vec<&str> = line.splitn(8, '\t').collect();
            assert_eq!(f.len(), 8, "{file}: {line}");
            let sd = sd_params(f[6]);
            assert!(f[6].starts_with("[vellum@32473 "), "{file}: {}", f[6]);
            let index: u64 = sd["index"].parse().unwrap();
            assert!(last.is_none_or(|l| index > l), "{file}: in index order");
            last = Some(index);
            let (leaf_hash, raw) = &all[&index];
            let ev: Value = serde_json::from_str(raw).unwrap();
            assert_eq!(&sd["leaf_hash"], leaf_hash, "{file}");
            assert_eq!(
                leaf_hash,
                &vellum_spec::hash::leaf_hash(raw.as_bytes()).to_base64(),
                "{file}: the leaf hash is the RFC 9162 hash of the event's bytes"
            );
            assert_eq!(sd["origin"], "test.example/log");
            assert_eq!(sd["event_id"], ev["event_id"].as_str().unwrap());
            assert_eq!(sd["verdict"], ev["verdict"].as_str().unwrap());
            let sev = match (
                ev["verdict"].as_str().unwrap(),
                ev["risk"].as_u64().unwrap(),
            ) {
                ("deny", r) if r >= 80 => 3,
                ("deny", _) => 4,
                ("review", _) => 5,
                _ => 6,
            };
            assert_eq!(
                f[0].parse::<u32>().unwrap(),
                facility * 8 + sev,
                "{file}: PRI"
            );
            let reported = vellum_spec::time::parse_utc_millis(&f[1].replace("+00:00", "Z"));
            assert_eq!(
                reported.ok(),
                vellum_spec::time::parse_utc_millis(ev["logged_at"].as_str().unwrap()).ok(),
                "{file}: TIMESTAMP {}",
                f[1]
            );
            assert_eq!(f[2], "vellum-test");
            assert_eq!(f[3], app);
            assert_eq!(f[4], "-");
            assert_eq!(f[5], "tool_call");
            let msg = f[7];
            match file {
                "udp" => {
                    let m: Value = serde_json::from_str(msg).unwrap();
                    assert_eq!(m["origin"], "test.example/log");
                    assert_eq!(m["index"], index);
                    assert_eq!(m["leaf_hash"].as_str().unwrap(), leaf_hash);
                    assert_eq!(m["event"], ev);
                }
                "tcp" => {
                    let (h, ext) = parse_cef(msg);
                    assert_eq!(h[0], "CEF:0");
                    assert_eq!(&h[1..3], ["Vellum", "Vellum"]);
                    assert_eq!(
                        h[4],
                        format!("tool_call.{}", ev["verdict"].as_str().unwrap())
                    );
                    assert_eq!(
                        ext["reason"],
                        ev["reason"].as_str().unwrap(),
                        "CEF escaping round trip: {msg}"
                    );
                    assert_eq!(ext["cs5"], *leaf_hash);
                    assert_eq!(ext["cn1"], index.to_string());
                    let sev: u32 = h[6].parse().unwrap();
                    assert!((0..=10).contains(&sev));
                }
                _ => {
                    let m: Value = serde_json::from_str(msg).unwrap();
                    assert_eq!(m["event"]["sequence"], index);
                    assert_eq!(m["vellum"]["leaf_hash"].as_str().unwrap(), leaf_hash);
                    assert_eq!(m["host"]["name"], "vellum-test");
                }
            }
        }
    }
    // The raw message of a TCP receiver is the message without its
    // octet count: rsyslog took the framing.
    let raw = rs.lines("tcp.raw");
    assert!(raw[0].starts_with('<'), "{}", raw[0]);
}

/// Checks an `X-Vellum-Signature` with the openssl command (an HMAC
/// implementation from outside the project).
fn check_signature(key_file: &std::path::Path, header: &str, body: &[u8]) {
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("signature header {header:?}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - t.parse::<i64>().unwrap()).abs() < 120,
        "timestamp {t}"
    );
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("m");
    std::fs::write(&msg, &signed).unwrap();
    let key = std::fs::read_to_string(key_file).unwrap();
    let out = must(
        std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-hex", "-mac", "HMAC", "-macopt"])
            .arg(format!("key:{}", key.trim()))
            .arg(&msg),
    );
    let want = out.trim().rsplit(' ').next().unwrap();
    assert_eq!(v1, want, "HMAC-SHA256 over \"<t>.\" + body");
}

fn metric(log: &Log, name: &str, sink: &str) -> f64 {
    let text = String::from_utf8(log.get("/metrics", None).1).unwrap();
    let key = format!("{name}{{sink=\"{sink}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in /metrics"))
        .parse()
        .unwrap()
}

fn dead_letters(log: &Log, sink: &str) -> Vec<Value> {
    std::fs::read_to_string(log.data().join("sinks").join(format!("{sink}.dead.ndjson")))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The index a delivered record names, whatever its format.
fn index_of(v: &Value) -> u64 {
    v.get("index")
        .or_else(|| v.pointer("/vellum/index"))
        .or_else(|| v.pointer("/unmapped/vellum/index"))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no index in {v}"))
}

#[test]
fn http_sinks_generic_ndjson_hec_with_acks_and_bulk_with_item_errors() {
    use std::sync::{Arc, Mutex};
    let tmp = tempfile::tempdir().unwrap();
    let hmac_key = tmp.path().join("hmac.key");
    std::fs::write(&hmac_key, "s3cret-signing-key\n").unwrap();
    let hec_token = tmp.path().join("hec.token");
    std::fs::write(&hec_token, "11111111-2222-3333-4444-555555555555\n").unwrap();
    for f in [&hmac_key, &hec_token] {
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    // The receiver's state: HEC ack IDs (polled once before acknowledged),
    // _bulk documents by _id, items answered 429 once.
    let acks: Arc<Mutex<BTreeMap<u64, u32>>> = Arc::default();
    let docs: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
    let busy_once: Arc<Mutex<bool>> = Arc::default();
    // A document already in the index: its redelivery answers 409.
    docs.lock()
        .unwrap()
        .insert("test.example/log/3".into(), json!({}));
    let (a2, d2, b2) = (acks.clone(), docs.clone(), busy_once.clone());
    let recv = HttpReceiver::start(move |r| match r.path.split('?').next().unwrap() {
        "/hook" => {
            if String::from_utf8_lossy(&r.body).contains("\"agent\":\"poison-") {
                Reply::json(400, &json!({"error": "unprocessable record"}))
            } else {
                Reply::json(200, &json!({"ok": true}))
            }
        }
        "/nd" => Reply::json(202, &json!({})),
        "/services/collector/event" => {
            if r.header("authorization") != Some("Splunk 11111111-2222-3333-4444-555555555555") {
                return Reply::json(401, &json!({"text": "Invalid authorization", "code": 3}));
            }
            let mut a = a2.lock().unwrap();
            let id = a.len() as u64;
            a.insert(id, 0);
            Reply::json(200, &json!({"text": "Success", "code": 0, "ackId": id}))
        }
        "/services/collector/ack" => {
            let q: Value = serde_json::from_slice(&r.body).unwrap();
            let mut a = a2.lock().unwrap();
            let mut out = serde_json::Map::new();
            for id in q["acks"].as_array().unwrap() {
                let id = id.as_u64().unwrap();
                let polls = a.entry(id).or_default();
                *polls += 1;
                out.insert(id.to_string(), Value::Bool(*polls > 1));
            }
            Reply::json(200, &json!({ "acks": out }))
        }
        "/_bulk" => {
            let text = String::from_utf8(r.body.clone()).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let mut items = Vec::new();
            let mut errors = false;
            let mut d = d2.lock().unwrap();
            for pair in lines.chunks(2) {
                let action: Value = serde_json::from_str(pair[0]).unwrap();
                let doc: Value = serde_json::from_str(pair[1]).unwrap();
                let meta = &action["create"];
                let id = meta["_id"].as_str().unwrap().to_string();
                let agent = doc
                    .pointer("/gen_ai/agent/id")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let (status, error) = if agent.starts_with("poison") {
                    (
                        400,
                        json!({"type": "document_parsing_exception", "reason": "failed to parse field [x]"}),
                    )
                } else if d.contains_key(&id) {
                    (
                        409,
                        json!({"type": "version_conflict_engine_exception", "reason": "document already exists"}),
                    )
                } else if agent.starts_with("busy") && !*b2.lock().unwrap() {
                    *b2.lock().unwrap() = true;
                    (
                        429,
                        json!({"type": "es_rejected_execution_exception", "reason": "queue full"}),
                    )
                } else {
                    d.insert(id.clone(), doc);
                    (201, Value::Null)
                };
                errors |= status >= 300;
                let mut item = json!({"_index": meta["_index"], "_id": id, "status": status});
                if !error.is_null() {
                    item["error"] = error;
                }
                items.push(json!({ "create": item }));
            }
            Reply::json(200, &json!({"took": 1, "errors": errors, "items": items}))
        }
        _ => Reply::json(404, &json!({})),
    });
    let u = recv.url();
    let log = log_with_sinks(&format!(
        r#"
[[sink]]
name = "hook"
type = "http"
url = "{u}/hook"
batch = 5
interval = "100ms"
hmac_secret_file = "{hmac}"
headers = {{ "X-Team" = "soc" }}

[[sink]]
name = "nd"
type = "http"
url = "{u}/nd"
mode = "ndjson"
format = "ocsf"
filter = "verdict=deny"
interval = "100ms"

[[sink]]
name = "hec"
type = "http"
url = "{u}"
mode = "hec"
format = "ecs"
hec_token_file = "{hec}"
hec_index = "audit"
hec_sourcetype = "vellum:ecs"
hec_ack = true
batch = 8
interval = "100ms"

[[sink]]
name = "bulk"
type = "http"
url = "{u}/_bulk"
mode = "bulk"
format = "ecs"
bulk_index = "vellum-audit"
batch = 10
interval = "100ms"
"#,
        hmac = hmac_key.display(),
        hec = hec_token.display(),
    ));
    let mut evs = events(30, "http");
    evs[12]["agent"] = "poison-1".into();
    evs[17]["agent"] = "busy-1".into();
    append(&log, &evs);
    let all = entries(&log, evs.len());
    let n = all.len() as u64;
    assert_eq!(n, 30);
    let within = Duration::from_secs(30);

    // Generic JSON: every batch signed; the poison batch (entries 10-14)
    // dead-lettered; every other entry delivered once, in order.
    let hook = recv.wait(within, |g| {
        g.iter()
            .filter(|r| r.path == "/hook")
            .map(|r| serde_json::from_slice::<Vec<Value>>(&r.body).unwrap().len())
            .sum::<usize>()
            >= 30
    });
    let mut got = Vec::new();
    for r in hook.iter().filter(|r| r.path == "/hook") {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-team"), Some("soc"));
        check_signature(
            &hmac_key,
            r.header("x-vellum-signature").expect("signed"),
            &r.body,
        );
        let batch: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
        assert!(batch.len() <= 5);
        for rec in batch {
            let i = index_of(&rec);
            assert_eq!(rec["origin"], "test.example/log");
            assert_eq!(rec["leaf_hash"].as_str().unwrap(), all[&i].0);
            assert_eq!(rec["event"].to_string(), all[&i].1);
            got.push(i);
        }
    }
    let poison: Vec<u64> = (10..15).collect();
    let delivered: Vec<u64> = got
        .iter()
        .copied()
        .filter(|i| !poison.contains(i))
        .collect();
    let want: Vec<u64> = (0..n).filter(|i| !poison.contains(i)).collect();
    assert_eq!(
        delivered, want,
        "every entry but the poison batch, in order, once"
    );
    let dead = recv_wait_dead(&log, "hook", 5);
    let dead_idx: Vec<u64> = dead.iter().map(|d| d["index"].as_u64().unwrap()).collect();
    assert_eq!(dead_idx, poison);
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("400"),
        "{}",
        dead[0]
    );
    assert_eq!(metric(&log, "vellum_sink_dead_lettered_total", "hook"), 5.0);

    // NDJSON in OCSF: the denials only.
    let nd = recv.wait(within, |g| {
        g.iter()
            .filter(|r| r.path == "/nd")
            .map(|r| {
                r.body
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count()
            })
            .sum::<usize>()
            >= 15
    });
    let mut nd_idx = Vec::new();
    for r in nd.iter().filter(|r| r.path == "/nd") {
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        assert!(r.header("x-vellum-signature").is_none());
        for l in r.body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_slice(l).unwrap();
            assert_eq!(v["class_uid"], 6003);
            assert_eq!(v["disposition"], "Blocked");
            assert_eq!(
                v["unmapped"]["vellum"]["leaf_hash"].as_str().unwrap(),
                all[&index_of(&v)].0
            );
            nd_idx.push(index_of(&v));
        }
    }
    let denials: Vec<u64> = all
        .iter()
        .filter(|(_, (_, e))| e.contains("\"verdict\":\"deny\""))
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(nd_idx, denials);

    // HEC: concatenated envelopes with the token, channel, index and
    // sourcetype; a batch counts once its ack ID is acknowledged.
    let hec = recv.wait(within, |g| {
        let events: usize = g
            .iter()
            .filter(|r| r.path == "/services/collector/event")
            .map(|r| {
                serde_json::Deserializer::from_slice(&r.body)
                    .into_iter::<Value>()
                    .count()
            })
            .sum();
        events >= 30
    });
    let mut hec_idx = Vec::new();
    let mut channel = None;
    for r in hec.iter().filter(|r| r.path == "/services/collector/event") {
        let ch = r
            .header("x-splunk-request-channel")
            .expect("a request channel")
            .to_string();
        assert_eq!(ch.len(), 36, "a UUID: {ch}");
        assert!(
            channel.get_or_insert(ch.clone()) == &ch,
            "one channel per sink"
        );
        for env in serde_json::Deserializer::from_slice(&r.body).into_iter::<Value>() {
            let env = env.unwrap();
            let keys: Vec<&str> = env
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                ["event", "host", "index", "source", "sourcetype", "time"],
                "{env}"
            );
            assert_eq!(env["index"], "audit");
            assert_eq!(env["sourcetype"], "vellum:ecs");
            assert_eq!(env["source"], "vellum");
            assert!(env["time"].as_f64().unwrap() > 1.7e9);
            hec_idx.push(env["event"]["event"]["sequence"].as_u64().unwrap());
        }
    }
    assert_eq!(hec_idx, (0..n).collect::<Vec<_>>());
    let polls = hec
        .iter()
        .filter(|r| r.path == "/services/collector/ack")
        .count();
    assert!(
        polls >= 4,
        "each of the 4 batches polled until acknowledged: {polls}"
    );
    wait_for(within, || {
        metric(&log, "vellum_sink_delivered_total", "hec") == 30.0
    });

    // _bulk: create actions with _id = origin/index; the 409 counts as a
    // duplicate, the 429 item goes again alone, the 400 item is
    // dead-lettered and the rest of its batch delivered.
    wait_for(within, || docs.lock().unwrap().len() == 29);
    let d = docs.lock().unwrap().clone();
    for i in (0..n).filter(|i| *i != 12 && *i != 3) {
        let doc = &d[&format!("test.example/log/{i}")];
        assert_eq!(doc["vellum"]["index"], i);
        assert_eq!(doc["vellum"]["leaf_hash"].as_str().unwrap(), all[&i].0);
    }
    let bulk_reqs: Vec<Request> = recv
        .got()
        .into_iter()
        .filter(|r| r.path == "/_bulk")
        .collect();
    assert_eq!(
        bulk_reqs[0].header("content-type"),
        Some("application/x-ndjson")
    );
    // Every document in the order sent: the 429 item goes again at the
    // head of the next request, ahead of everything after it.
    let sent: Vec<u64> = bulk_reqs
        .iter()
        .flat_map(|r| {
            String::from_utf8_lossy(&r.body)
                .lines()
                .step_by(2)
                .map(|l| {
                    let a: Value = serde_json::from_str(l).unwrap();
                    let id = a["create"]["_id"].as_str().unwrap().to_string();
                    id.rsplit('/').next().unwrap().parse::<u64>().unwrap()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut expect: Vec<u64> = (0..20).collect();
    expect.push(17);
    expect.extend(20..30);
    assert_eq!(sent, expect, "the 429 item again, first, then the rest");
    let dead = recv_wait_dead(&log, "bulk", 1);
    assert_eq!(dead[0]["index"], 12);
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("document_parsing_exception"),
        "{}",
        dead[0]
    );
    assert_eq!(metric(&log, "vellum_sink_duplicates_total", "bulk"), 1.0);
    assert_eq!(metric(&log, "vellum_sink_dead_lettered_total", "bulk"), 1.0);
    wait_for(within, || {
        metric(&log, "vellum_sink_lag_entries", "bulk") == 0.0
    });
    assert!(metric(&log, "vellum_sink_seconds_since_success", "bulk") >= 0.0);

    // `vellum sinks` prints the same figures.
    let out = log.cli(&["sinks", "--url", &log.url()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("hook "))
        .unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..3], ["hook", "http", "json"], "{row}");
    assert_eq!(cols[3], "25", "delivered: {row}");
    assert_eq!(cols[6], "5", "dead-lettered: {row}");
}

fn wait_for(within: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn recv_wait_dead(log: &Log, sink: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = dead_letters(log, sink);
        if d.len() >= n || Instant::now() > deadline {
            return d;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Appends batches of `per` events from a thread of its own until told to
/// stop, riding out a log that is down; returns how many were acknowledged.
struct Appender {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Appender {
    fn start(url: String, token: String, per: usize) -> Appender {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut acked = 0u64;
            let mut round = 0usize;
            while !s2.load(Ordering::SeqCst) {
                let body = serde_json::to_vec(&events(per, &format!("bg{round}"))).unwrap();
                let r = http
                    .post(format!("{url}/v1/events"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send();
                match r {
                    Ok(r) if r.status().is_success() => {
                        acked += per as u64;
                        round += 1;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            acked
        });
        Appender {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// The indices of the records in NDJSON bodies, in the order received.
fn ndjson_indices(bodies: impl Iterator<Item = Vec<u8>>) -> Vec<u64> {
    let mut out = Vec::new();
    for b in bodies {
        for l in b.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(l)));
            out.push(index_of(&v));
        }
    }
    out
}

/// Checks that `got` holds every index below `n`, each first seen in index
/// order (a redelivery only ever goes back to resend), and returns how many
/// records were duplicates.
fn check_at_least_once(what: &str, got: &[u64], n: u64) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    let mut next = 0u64;
    for i in got {
        if seen.insert(*i) {
            assert_eq!(*i, next, "{what}: index {i} first seen before {next}");
            next += 1;
        }
    }
    assert_eq!(next, n, "{what}: {} of {n} indices delivered", seen.len());
    got.len() - seen.len()
}

/// Every line of every hour file under `dir` (plain or gzip, read with the
/// gzip command), as indices.
fn file_sink_indices(dir: &std::path::Path) -> Vec<u64> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut bodies = Vec::new();
    for f in files {
        let name = f.to_string_lossy().to_string();
        if name.ends_with(".ndjson") {
            bodies.push(std::fs::read(&f).unwrap());
        } else if name.ends_with(".ndjson.gz") {
            bodies.push(must(std::process::Command::new("gzip").arg("-dc").arg(&f)).into_bytes());
        }
    }
    ndjson_indices(bodies.into_iter())
}

#[test]
fn nothing_is_lost_across_receiver_outages_a_killed_log_and_an_unwritable_directory() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    // A regular file where the blocked sink wants a directory: ENOTDIR.
    let blocker = tmp.path().join("blocker");
    std::fs::write(&blocker, "not a directory").unwrap();
    let hang = Arc::new(AtomicU32::new(0));
    let h2 = hang.clone();
    let mut recv = HttpReceiver::start(move |_| {
        if h2.load(Ordering::SeqCst) > 0 {
            h2.fetch_sub(1, Ordering::SeqCst);
            Reply::Hang
        } else {
            Reply::json(200, &json!({}))
        }
    });
    let batch = 50;
    let mut log = log_with_sinks(&format!(
        r#"
[[sink]]
name = "hook"
type = "http"
url = "{u}/nd"
mode = "ndjson"
batch = {batch}
interval = "50ms"
timeout = "2s"

[[sink]]
name = "archive"
type = "file"
dir = "{archive}"
batch = {batch}
interval = "50ms"

[[sink]]
name = "blocked"
type = "file"
dir = "{blocked}"
interval = "50ms"
"#,
        u = recv.url(),
        archive = tmp.path().join("archive").display(),
        blocked = blocker.join("sub").display(),
    ));
    let app = Appender::start(log.url(), log.token(), 20);
    std::thread::sleep(Duration::from_millis(800));

    // The receiver goes away for two seconds, then answers again.
    recv.stop();
    std::thread::sleep(Duration::from_secs(2));
    recv.resume();
    std::thread::sleep(Duration::from_millis(800));
    // One request read and never answered (the sink times out, resends).
    hang.store(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(3));

    // The blocked file sink fails loudly; the others and appends go on.
    assert_eq!(metric(&log, "vellum_sink_failing", "blocked"), 1.0);
    assert_eq!(metric(&log, "vellum_sink_failing", "archive"), 0.0);
    let st = log.get_json("/v1/sinks", Some(&log.token()));
    let blocked = st["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "blocked")
        .unwrap()
        .clone();
    assert!(
        blocked["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("Not a directory"),
        "{blocked}"
    );
    let err = log.stderr.as_ref().unwrap().text();
    assert!(
        err.lines()
            .any(|l| l.contains("ERROR") && l.contains("blocked") && l.contains("Not a directory")),
        "the failing sink is logged at ERROR:\n{err}"
    );

    // The outage and the unanswered request were retried.
    assert!(metric(&log, "vellum_sink_retries_total", "hook") >= 2.0);

    // The log is killed with -9 mid-stream and started again.
    log.kill9();
    std::thread::sleep(Duration::from_millis(300));
    log.spawn();
    std::thread::sleep(Duration::from_millis(800));
    let acked = app.finish();
    // The blocker goes; the blocked sink catches up from its cursor.
    std::fs::remove_file(&blocker).unwrap();

    let n = log.tree_size();
    assert!(n >= acked, "{n} entries, {acked} acknowledged");
    let within = Duration::from_secs(60);
    wait_for(within, || {
        ["hook", "archive", "blocked"]
            .iter()
            .all(|s| metric(&log, "vellum_sink_cursor", s) >= n as f64)
    });
    let hook: Vec<u64> = ndjson_indices(
        recv.got()
            .into_iter()
            .filter(|r| r.path == "/nd")
            .map(|r| r.body),
    );
    let dup_hook = check_at_least_once("hook", &hook, n);
    let dup_archive = check_at_least_once(
        "archive",
        &file_sink_indices(&tmp.path().join("archive")),
        n,
    );
    let dup_blocked = check_at_least_once("blocked", &file_sink_indices(&blocker.join("sub")), n);
    println!(
        "{n} entries: duplicates hook {dup_hook} (outage, hang, kill -9), archive {dup_archive} (kill -9), blocked {dup_blocked}; batch {batch}"
    );
    // At most a batch per fault: the one in flight when the receiver went,
    // the one it never answered, the one in flight at the kill.
    assert!(dup_hook <= 3 * batch, "hook: {dup_hook} duplicates");
    assert!(dup_archive <= batch, "archive: {dup_archive} duplicates");
    assert_eq!(metric(&log, "vellum_sink_failing", "blocked"), 0.0);
}

#[test]
fn a_tcp_syslog_sink_resends_what_a_restarted_rsyslog_never_took() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::make(tmp.path());
    let mut rs = Rsyslog::start(tmp.path(), &ca);
    let batch = 25;
    let log = log_with_sinks(&format!(
        r#"
[[sink]]
name = "tcp"
type = "syslog"
transport = "tcp"
address = "127.0.0.1:{tcp}"
batch = {batch}
interval = "50ms"
"#,
        tcp = rs.tcp
    ));
    let within = Duration::from_secs(30);
    append(&log, &events(100, "a"));
    rs.wait_lines("tcp.fields", 100, within);
    rs.stop();
    append(&log, &events(100, "b"));
    std::thread::sleep(Duration::from_secs(1));
    rs.spawn();
    append(&log, &events(100, "c"));
    wait_for(within, || {
        metric(&log, "vellum_sink_cursor", "tcp") >= 300.0
    });
    let lines = rs.wait_lines("tcp.fields", 300, within);
    let got: Vec<u64> = lines
        .iter()
        .map(|l| {
            let msg = l.split('\t').nth(7).unwrap();
            let v: Value = serde_json::from_str(msg).unwrap();
            index_of(&v)
        })
        .collect();
    let dups = check_at_least_once("tcp", &got, 300);
    println!("rsyslog restart: {dups} duplicates; batch {batch}");
    assert!(dups <= 2 * batch, "{dups} duplicates");
}

#[test]
fn a_bad_sink_configuration_is_refused_naming_the_sink_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    for (toml, want) in [
        (
            "[[sink]]\nname = \"s\"\ntype = \"kafka\"\n",
            "sink \"s\": type \"kafka\"",
        ),
        (
            "[[sink]]\nname = \"s\"\ntype = \"syslog\"\ntransport = \"sctp\"\naddress = \"h:1\"\n",
            "transport \"sctp\"",
        ),
        (
            "[[sink]]\nname = \"s\"\ntype = \"http\"\nurl = \"ftp://x\"\n",
            "url \"ftp://x\"",
        ),
        (
            "[[sink]]\nname = \"s\"\ntype = \"file\"\ndir = \"/tmp/x\"\nfilter = \"verdict=maybe\"\n",
            "filter",
        ),
        (
            "[[sink]]\nname = \"s\"\ntype = \"file\"\ndir = \"/tmp/x\"\nurl = \"http://x\"\n",
            "url does not apply to a file sink",
        ),
        (
            "[[sink]]\nname = \"s\"\ntype = \"http\"\n",
            "url is required",
        ),
        (
            "[[sink]]\nname = \"s\"\ntype = \"file\"\ndir = \"/tmp/x\"\n[[sink]]\nname = \"s\"\ntype = \"file\"\ndir = \"/tmp/y\"\n",
            "configured twice",
        ),
        (
            "[[sink]]\nname = \"s\"\ntype = \"http\"\nurl = \"http://x\"\nhmac_secret_file = \"/nonexistent/k\"\n",
            "/nonexistent/k",
        ),
    ] {
        let conf = tmp.path().join("bad.toml");
        std::fs::write(&conf, toml).unwrap();
        let data = tmp.path().join("data");
        let out = std::process::Command::new(bin("vellum"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .arg("--config")
            .arg(&conf)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{toml}: started");
        assert!(err.contains(want), "{toml}: want {want:?} in\n{err}");
        assert!(!data.exists(), "{toml}: created a log before refusing");
    }
}
