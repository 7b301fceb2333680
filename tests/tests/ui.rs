//! The dashboard in a real browser: Debian's Chromium, headless, driven by
//! chromedriver over WebDriver. The log (with a witness) is the real
//! binary; the page signs in, streams, opens an event and verifies it
//! itself; behind a tampering proxy the matching check fails; and the
//! page's own verification code passes the outside vectors of
//! `spec/vectors/`. Screenshots of the main screens go to
//! `target/ui-screenshots/`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use vellum_tests::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct Browser {
    driver: Child,
    client: Client,
    _profile: tempfile::TempDir,
    _log: Captured,
}

impl Browser {
    async fn start() -> Browser {
        for p in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(p).exists(),
                "{p} is missing: run scripts/test, which installs Debian's chromium and chromium-driver"
            );
        }
        let port = free_port();
        let (log, err) = Captured::new(capture_dir(), "chromedriver");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("starting chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--disable-sync", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        Browser {
            driver,
            client,
            _profile: profile,
            _log: log,
        }
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }

    async fn shot(&self, name: &str) {
        // Test artifacts: target/ui-screenshots/<name>.png.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn sign_in(&self, base: &str, token: &str) {
        let c = &self.client;
        c.goto(&format!("{base}/ui/")).await.unwrap();
        let field = c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id("token"))
            .await
            .unwrap();
        field.send_keys(token).await.unwrap();
        c.find(Locator::Css("#signin-form button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Runs `script` (an async function body with `args`) in the page.
    async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        let wrapped = format!(
            "const done = arguments[arguments.length - 1]; (async (args) => {{ {script} }})(Array.from(arguments).slice(0, -1)).then(done, (e) => done({{error: String(e && e.stack || e)}}));"
        );
        self.client
            .execute_async(&wrapped, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Runs `script` every 50 ms until `done` holds for its result (at
    /// most 10 s); returns the last result.
    async fn poll(&self, script: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.run(script, vec![]).await;
            if done(&v) || Instant::now() > deadline {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the verification panel is done; returns its result and
    /// each step's (result, text).
    async fn verification(&self) -> (String, Vec<(String, String)>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self
                .run(
                    "const s = document.getElementById('verify-steps'); return {done: s.dataset.done || '', steps: [...s.children].map(li => [li.dataset.result || '', li.innerText])};",
                    vec![],
                )
                .await;
            let done = v["done"].as_str().unwrap_or("").to_string();
            if !done.is_empty() {
                // A verdict, once given, stands: the page must not change
                // it while later steps finish.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let later = self
                    .run(
                        "return document.getElementById('verify-steps').dataset.done || '';",
                        vec![],
                    )
                    .await;
                assert_eq!(
                    later.as_str().unwrap_or(""),
                    done,
                    "the page changed its verdict after giving it"
                );
            }
            if !done.is_empty() || Instant::now() > deadline {
                let steps = v["steps"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|s| {
                        (
                            s[0].as_str().unwrap_or("").to_string(),
                            s[1].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect();
                return (done, steps);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn witnessed_log() -> (Log, Witness) {
    let mut log = Log::init();
    let w = Witness::start("w1.example", &["--log", &log.vkey().to_vkey()]);
    log.args = vec!["--witness".into(), w.log_arg()];
    log.spawn();
    (log, w)
}

fn post(log: &Log, evs: &[Value]) {
    let (s, b) = log.post_events(Some(&log.token()), serde_json::to_vec(evs).unwrap());
    assert_eq!(s, 200, "{b}");
}

#[test]
fn the_dashboard_streams_events_and_verifies_one_in_the_browser() {
    let (log, _w) = witnessed_log();
    let mut evs: Vec<Value> = (0..300)
        .map(|i| event(&format!("agent-{}", i % 7), None))
        .collect();
    evs[250]["provenance"] = "untrusted".into();
    evs[250]["verdict"] = "deny".into();
    post(&log, &evs);
    // Then the README's sample traffic, so the newest rows look real.
    let sample: Vec<Value> = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/events.ndjson"
    ))
    .unwrap()
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    post(&log, &sample);
    let total = 300 + sample.len() as u64;
    log.wait_checkpoint(total);
    let rt = runtime();
    let b = rt.block_on(Browser::start());
    rt.block_on(b.sign_in(&log.url(), &log.token()));
    // The newest events fill the table.
    let rows = rt.block_on(async {
        b.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#events tbody tr"))
            .await
            .unwrap();
        b.client
            .find_all(Locator::Css("#events tbody tr"))
            .await
            .unwrap()
            .len()
    });
    assert_eq!(rows, 100, "the first page");
    // Older events page in below, from the query's cursor.
    let more = rt.block_on(async {
        b.client.find(Locator::Id("older")).await.unwrap().click().await.unwrap();
        b.poll("const r = document.querySelectorAll('#events tbody tr'); return [r.length, r[r.length - 1].dataset.index];", |v| v[0].as_u64().unwrap() >= 200).await
    });
    assert_eq!(more[0], 200, "{more}");
    assert_eq!(
        more[1].as_str().unwrap(),
        (total - 200).to_string(),
        "{more}"
    );
    // A new event appears on screen within a second of its append.
    let t = Instant::now();
    post(&log, &[event("fresh-agent", Some("fresh-1"))]);
    let seen = rt.block_on(async {
        loop {
            let text = b
                .client
                .find(Locator::Css("#events tbody tr"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if text.contains("fresh-agent") {
                break t.elapsed();
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "the new event never showed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    println!("append -> on screen: {} ms", seen.as_millis());
    assert!(seen < Duration::from_secs(1), "{seen:?}");
    rt.block_on(b.shot("live"));

    // 24 hours at a glance: totals, a bar per hour, top agents by denials.
    let glance = rt.block_on(async {
        b.poll("return {total: document.getElementById('glance-total').innerText, bars: document.querySelectorAll('#chart g.bar').length, agents: [...document.querySelectorAll('#top-agents li')].map(li => li.innerText)};", |v| v["bars"].as_u64().unwrap_or(0) > 0 && !v["agents"].as_array().unwrap().is_empty()).await
    });
    let total_text = glance["total"].as_str().unwrap();
    let shown: u64 = total_text.split(' ').next().unwrap().parse().unwrap();
    assert!(shown == total || shown == total + 1, "{glance}");
    assert!(glance["bars"].as_u64().unwrap() >= 24, "{glance}");
    assert!(
        glance["agents"][0].as_str().unwrap().contains("denial"),
        "{glance}"
    );
    // A click on the newest hour's bar filters the table to that hour.
    rt.block_on(async {
        b.client
            .execute(
                "const bars = [...document.querySelectorAll('#chart g.bar')]; bars[bars.length - 1].dispatchEvent(new MouseEvent('click', {bubbles: true}));",
                vec![],
            )
            .await
            .unwrap();
    });
    let hash = rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.run("return location.hash;", vec![]).await
    });
    assert!(hash.as_str().unwrap().contains("from="), "{hash}");
    // An agent's page: only its events.
    rt.block_on(
        b.client
            .goto(&format!("{}/ui/#/agent/billing-bot", log.url())),
    )
    .unwrap();
    let agents = rt.block_on(async {
        b.poll("return {title: document.getElementById('live-title').innerText, agents: [...document.querySelectorAll('#events tbody tr td:nth-child(3)')].map(td => td.innerText)};", |v| !v["agents"].as_array().unwrap().is_empty()).await
    });
    assert_eq!(agents["title"], "Agent billing-bot");
    let list = agents["agents"].as_array().unwrap();
    assert!(
        !list.is_empty() && list.iter().all(|a| a == "billing-bot"),
        "{agents}"
    );
    // Pause, append, resume: the event paused over is not lost.
    rt.block_on(b.client.goto(&format!("{}/ui/#/live", log.url())))
        .unwrap();
    rt.block_on(async {
        b.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#events tbody tr"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.client
            .find(Locator::Id("pause"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    });
    post(&log, &[event("while-paused", Some("paused-1"))]);
    let top_text = |b: &Browser| {
        rt.block_on(async {
            b.client
                .find(Locator::Css("#events tbody tr"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(!top_text(&b).contains("while-paused"), "paused");
    rt.block_on(async {
        b.client
            .find(Locator::Id("pause"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !top_text(&b).contains("while-paused") {
        assert!(
            Instant::now() < deadline,
            "the event appended while paused never showed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Open entry 250 (in a full bundle) and the newest (in the partial one).
    log.wait_checkpoint(total + 2);
    for index in [250, total + 1] {
        rt.block_on(b.client.goto(&format!("{}/ui/#/event/{index}", log.url())))
            .unwrap();
        let (done, steps) = rt.block_on(b.verification());
        assert_eq!(done, "pass", "entry {index}: {steps:#?}");
        assert_eq!(steps.len(), 6);
        for (r, text) in &steps {
            assert_eq!(r, "pass", "entry {index}: {text}");
        }
        assert!(steps[2].1.contains("w1.example"), "{}", steps[2].1);
    }
    rt.block_on(b.client.goto(&format!("{}/ui/#/event/250", log.url())))
        .unwrap();
    let (done, _) = rt.block_on(b.verification());
    assert_eq!(done, "pass");
    let untrusted = rt.block_on(async {
        b.client
            .find(Locator::Css("#detail-fields dd.untrusted"))
            .await
            .is_ok()
    });
    assert!(untrusted, "untrusted provenance is highlighted");
    rt.block_on(b.shot("event"));

    // The log's status: origin, witness cosignature, checkpoint.
    rt.block_on(b.client.goto(&format!("{}/ui/#/status", log.url())))
        .unwrap();
    let status = rt.block_on(async {
        b.poll("return {fields: document.getElementById('status-fields').innerText, witnesses: document.getElementById('status-witnesses').innerText};", |v| v["witnesses"].as_str().unwrap_or("").contains("w1.example")).await
    });
    assert!(
        status["fields"]
            .as_str()
            .unwrap()
            .contains("test.example/log"),
        "{status}"
    );
    assert!(
        status["witnesses"]
            .as_str()
            .unwrap()
            .contains("cosigned the current checkpoint at"),
        "{status}"
    );
    rt.block_on(b.shot("status"));
    // The evidence bundle needs an admin token: refused here, said here.
    rt.block_on(b.client.goto(&format!("{}/ui/#/live", log.url())))
        .unwrap();
    let refused = rt.block_on(async {
        b.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#events tbody tr"))
            .await
            .unwrap();
        b.client
            .find(Locator::Id("export-bundle"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.poll(
            "return document.getElementById('export-state').innerText;",
            |t| t.as_str().unwrap_or("").contains("refused"),
        )
        .await
    });
    assert!(refused.as_str().unwrap().contains("(403)"), "{refused}");

    // Readable on a 390-px-wide phone: no horizontal scrolling.
    rt.block_on(async {
        b.client.set_window_size(390, 844).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let widths = rt.block_on(b.run(
        "return [document.documentElement.scrollWidth, window.innerWidth, [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && e.offsetParent !== null).slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))];",
        vec![],
    ));
    assert!(
        widths[0].as_u64().unwrap() <= widths[1].as_u64().unwrap() + 1,
        "the page is wider than the phone: {widths}"
    );
    rt.block_on(b.shot("phone"));
    rt.block_on(async { b.client.set_window_size(1280, 800).await.unwrap() });

    // A wrong token gets a clear screen.
    rt.block_on(async {
        b.client
            .execute("sessionStorage.clear(); location.hash = '#/live';", vec![])
            .await
            .unwrap();
    });
    rt.block_on(b.sign_in(&log.url(), "not-a-token"));
    let err = rt.block_on(b.poll(
        "return document.getElementById('signin-error').innerText;",
        |t| !t.as_str().unwrap_or("").is_empty(),
    ));
    let err = err.as_str().unwrap_or("");
    assert!(err.contains("refused this token (401)"), "{err}");
    rt.block_on(b.close());
}

#[test]
fn tampering_behind_a_proxy_fails_the_matching_check() {
    let (log, _w) = witnessed_log();
    let evs: Vec<Value> = (0..20).map(|i| event(&format!("a{i}"), None)).collect();
    post(&log, &evs);
    log.wait_checkpoint(20);
    let proxy = TamperProxy::start(&log.url());
    let rt = runtime();
    let b = rt.block_on(Browser::start());
    rt.block_on(b.sign_in(&proxy.url(), &log.token()));
    let check = |name: &str, t: Option<Tamper>, step: usize, want: &str| {
        proxy.set(t);
        rt.block_on(
            b.client
                .goto(&format!("{}/ui/#/event/5?{name}", proxy.url())),
        )
        .unwrap();
        rt.block_on(b.client.refresh()).unwrap();
        let (done, steps) = rt.block_on(b.verification());
        if want.is_empty() {
            assert_eq!(done, "pass", "{name}: {steps:#?}");
            return;
        }
        assert_eq!(done, "fail", "{name}: {steps:#?}");
        assert_eq!(steps[step].0, "fail", "{name}: {steps:#?}");
        assert!(steps[step].1.contains(want), "{name}: {:?}", steps[step].1);
        for (r, text) in &steps[..step] {
            assert_eq!(r, "pass", "{name}: an earlier step failed: {text}");
        }
    };
    check("honest", None, 0, "");
    // An altered byte of the entry in its bundle: the leaf hash differs.
    check(
        "entry",
        Some(Box::new(|path, mut body| {
            if path.starts_with("/tile/entries/") {
                // Walk the length prefixes to entry 5 and alter a byte of
                // its event (a letter of a string value, so it stays JSON).
                let mut at = 0;
                for _ in 0..5 {
                    at += 2 + u16::from_be_bytes([body[at], body[at + 1]]) as usize;
                }
                let len = u16::from_be_bytes([body[at], body[at + 1]]) as usize;
                let entry = &mut body[at + 2..at + 2 + len];
                let k = entry.windows(3).position(|w| w == b"\"a5").unwrap() + 1;
                entry[k] = b'b';
            }
            body
        })),
        4,
        "recomputed",
    );
    // An altered inclusion proof.
    check(
        "proof",
        Some(Box::new(|path, body| {
            if path.starts_with("/v1/proof/inclusion") {
                let mut v: Value = serde_json::from_slice(&body).unwrap();
                v["proof"][0] = b64(&[7u8; 32]).into();
                return serde_json::to_vec(&v).unwrap();
            }
            body
        })),
        5,
        "does not lead to root",
    );
    // The checkpoint signed by another key (same name): the log signature fails.
    let other = vellum_spec::note::SignerKey::from_seed(
        "test.example/log",
        vellum_spec::note::ALG_ED25519,
        [9u8; 32],
    )
    .unwrap();
    check(
        "resigned",
        Some(Box::new(move |path, body| {
            if path == "/checkpoint" {
                let text = String::from_utf8(body).unwrap();
                let (head, _) = text.split_once("\n\n").unwrap();
                let note = format!("{head}\n");
                let line = other.sign(note.as_bytes()).to_line();
                return format!("{note}\n{line}").into_bytes();
            }
            body
        })),
        1,
        "no signature by test.example/log",
    );
    // The log's own signature line with one bit of the signature flipped.
    check(
        "forged",
        Some(Box::new(|path, body| {
            use base64::Engine;
            if path == "/checkpoint" {
                let text = String::from_utf8(body).unwrap();
                let out: Vec<String> = text
                    .split_inclusive('\n')
                    .map(|l| match l.strip_prefix("— test.example/log ") {
                        Some(sig) => {
                            let mut raw = base64::engine::general_purpose::STANDARD
                                .decode(sig.trim_end())
                                .unwrap();
                            let n = raw.len();
                            raw[n - 1] ^= 1;
                            format!(
                                "— test.example/log {}\n",
                                base64::engine::general_purpose::STANDARD.encode(raw)
                            )
                        }
                        None => l.to_string(),
                    })
                    .collect();
                return out.concat().into_bytes();
            }
            body
        })),
        1,
        "does not verify",
    );
    // The witness's cosignature stripped.
    check(
        "stripped",
        Some(Box::new(|path, body| {
            if path == "/checkpoint" {
                let text = String::from_utf8(body).unwrap();
                let kept: Vec<&str> = text
                    .split_inclusive('\n')
                    .filter(|l| !l.starts_with("— w1.example "))
                    .collect();
                return kept.concat().into_bytes();
            }
            body
        })),
        2,
        "no signature by w1.example",
    );
    // A server that swaps its key: the pinned key wins, loudly.
    check(
        "swapped",
        Some(Box::new(|path, body| {
            if path == "/" {
                let mut v: Value = serde_json::from_slice(&body).unwrap();
                v["log_key"] =
                    "test.example/log+00000000+AUzvE2ZtTAtMEhuT3yW+VBLbeFWxHeYjgg1LDT8m0k9u".into();
                return serde_json::to_vec(&v).unwrap();
            }
            body
        })),
        0,
        "but this browser pinned",
    );
    rt.block_on(b.close());
}

#[test]
fn the_pages_own_verification_code_passes_the_outside_vectors() {
    let log = Log::start(&[]);
    let rt = runtime();
    let b = rt.block_on(Browser::start());
    rt.block_on(b.client.goto(&format!("{}/ui/", log.url())))
        .unwrap();
    let read = |f: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../spec/vectors/{f}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap()
    };
    let (merkle, ct, notes): (Value, Value, Value) = (
        read("merkle-rfc6962-testtree.json"),
        read("ct-argon2020.json"),
        read("signed-note.json"),
    );
    let script = r#"
const [merkle, ct, notes, noble] = args;
const src = [...document.scripts].find(s => s.src.endsWith('/app.js')).src;
const V = await import(src.replace(/app\.js$/, 'verify.js'));
V.useNoble(noble);
const out = {engine: V.engine(), roots: 0, inclusion: 0, ct: false, notes: []};
const leaves = merkle.leaves_hex.map(V.fromHex);
for (let n = 0; n <= leaves.length; n++) {
  const r = V.hex(await V.rootOf(leaves.slice(0, n)));
  if (r !== merkle.roots_hex[n]) throw new Error(`root of ${n}: ${r}`);
  out.roots++;
}
for (const t of merkle.inclusion) {
  const proof = (t.proof || []).map(V.b64decode);
  const ok = await V.verifyInclusion(t.leafIdx, t.treeSize, V.b64decode(t.leafHash), proof, V.b64decode(t.root));
  if (!ok) throw new Error(`inclusion ${t.leafIdx}/${t.treeSize}`);
  // And one flipped bit fails.
  const bad = V.b64decode(t.root); bad[0] ^= 1;
  if (await V.verifyInclusion(t.leafIdx, t.treeSize, V.b64decode(t.leafHash), proof, bad)) throw new Error('accepted a wrong root');
  out.inclusion++;
}
out.ct = await V.verifyInclusion(ct.leaf_index, ct.tree_size, V.b64decode(ct.leaf_hash), ct.audit_path.map(V.b64decode), V.b64decode(ct.root));
for (const [name, vkey, note] of [
  ['peter', notes.peter.vkey, notes.text + '\n' + notes.peter.line],
  ['enoch', notes.enoch.vkey, notes.text + '\n' + notes.enoch.line],
  ['c2sp', notes.c2sp_example.vkey, notes.c2sp_example.note],
  ['arche log', notes.real_cosigned_checkpoint.log_vkey, notes.real_cosigned_checkpoint.note],
  ['remora witness', notes.real_cosigned_checkpoint.witness_vkey, notes.real_cosigned_checkpoint.note],
]) {
  const k = await V.parseVerifierKey(vkey);
  const n = V.parseNote(note);
  const r = await V.verifyNoteSignature(n, k);
  const altered = V.parseNote(note.replace(/^./, (c) => c === 'a' ? 'b' : 'a'));
  const r2 = await V.verifyNoteSignature(altered, k);
  out.notes.push([name, r.ok, r2.ok, r.time ? String(r.time) : null]);
}
out.badKeys = [];
for (const bad of notes.bad_vkeys) {
  try { await V.parseVerifierKey(bad); out.badKeys.push(bad); } catch (e) {}
}
return out;
"#;
    for noble in [false, true] {
        let v = rt.block_on(b.run(
            script,
            vec![merkle.clone(), ct.clone(), notes.clone(), noble.into()],
        ));
        assert!(v.get("error").is_none(), "noble {noble}: {}", v["error"]);
        if noble {
            assert!(
                v["engine"].as_str().unwrap().starts_with("@noble"),
                "{}",
                v["engine"]
            );
        } else {
            assert_eq!(v["engine"], "WebCrypto", "127.0.0.1 is a secure context");
        }
        assert_eq!(v["roots"], 9);
        assert_eq!(
            v["inclusion"].as_u64().unwrap() as usize,
            merkle["inclusion"].as_array().unwrap().len()
        );
        assert_eq!(v["ct"], true, "argon2020's 30-hash proof");
        for n in v["notes"].as_array().unwrap() {
            assert_eq!(n[1], true, "{n}: verifies");
            assert_eq!(n[2], false, "{n}: altered text fails");
        }
        assert!(
            v["notes"][4][3].is_string(),
            "the cosignature's timestamp is read"
        );
        assert_eq!(v["badKeys"], json!([]), "malformed keys are refused");
    }
    rt.block_on(b.close());
}

/// The page under a live stream of 2,000 events/s (not part of the suite:
/// `cargo test -p vellum-tests --test ui -- --ignored --nocapture`;
/// `VELLUM_UI_SOAK_SECS` sets the length, 600 by default). Prints the
/// page's JS heap and table size each minute.
#[test]
#[ignore = "a 10-minute measurement, run by hand"]
fn the_page_stays_flat_under_2000_events_per_second() {
    let secs: u64 = std::env::var("VELLUM_UI_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let log = Log::start(&[]);
    post(&log, &[event("warm-up", None)]);
    let rt = runtime();
    let b = rt.block_on(Browser::start());
    rt.block_on(b.sign_in(&log.url(), &log.token()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (url, token, s2) = (log.url(), log.token(), stop.clone());
    let appender = std::thread::spawn(move || {
        let http = reqwest::blocking::Client::new();
        let start = Instant::now();
        let mut sent = 0u64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            // 2,000 events/s as 20 batches of 100 per second.
            let due = (start.elapsed().as_secs_f64() * 20.0) as u64;
            if sent >= due {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let evs: Vec<Value> = (0..100)
                .map(|i| event(&format!("soak-{}", i % 50), None))
                .collect();
            let _ = http
                .post(format!("{url}/v1/events"))
                .bearer_auth(&token)
                .json(&evs)
                .send();
            sent += 1;
        }
        sent * 100
    });
    let sample = |b: &Browser| {
        rt.block_on(b.run(
            "return {heap: performance.memory ? performance.memory.usedJSHeapSize : null, rows: document.querySelectorAll('#events tbody tr').length, top: (document.querySelector('#events tbody tr td:nth-child(2)') || {}).innerText};",
            vec![],
        ))
    };
    let start = Instant::now();
    let mut heaps = Vec::new();
    for minute in 1..=secs.div_ceil(60) {
        let until = Duration::from_secs((minute * 60).min(secs));
        std::thread::sleep(until.saturating_sub(start.elapsed()));
        // Let the page collect what it dropped before measuring.
        let v = sample(&b);
        println!(
            "minute {minute}: JS heap {:.1} MiB, rows {}, newest index {}, log size {}",
            v["heap"].as_f64().unwrap_or(0.0) / 1048576.0,
            v["rows"],
            v["top"],
            log.tree_size()
        );
        assert!(v["rows"].as_u64().unwrap() <= 500, "the table is bounded");
        heaps.push(v["heap"].as_f64().unwrap_or(0.0));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = appender.join().unwrap();
    println!(
        "{sent} events appended in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    if heaps.len() >= 3 {
        let first = heaps[1];
        let last = *heaps.last().unwrap();
        assert!(last < first * 2.0 + 8.0 * 1048576.0, "heap grew: {heaps:?}");
    }
    rt.block_on(b.close());
}

#[test]
fn the_dashboard_is_served_with_a_strict_policy_and_versioned_assets() {
    let log = Log::start(&[]);
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(format!("{}/ui", log.url())).send().unwrap();
    assert_eq!(r.status(), 308);
    let r = http.get(format!("{}/ui/", log.url())).send().unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    let page = r.text().unwrap();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    let csp = h["content-security-policy"].to_str().unwrap();
    for d in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(d), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    // Every asset the page names is under one version, cached for a year,
    // with its exact type; another version is not served.
    let at = page.find("./v/").unwrap() + 4;
    let version = &page[at..at + 16];
    for (path, ctype) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("verify.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        (
            "vendor/noble-ed25519/index.js",
            "text/javascript; charset=utf-8",
        ),
    ] {
        let r = http
            .get(format!("{}/ui/v/{version}/{path}", log.url()))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], ctype, "{path}");
        assert_eq!(
            r.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{path}"
        );
        assert!(r.headers().contains_key("content-security-policy"));
    }
    let r = http
        .get(format!("{}/ui/v/0000000000000000/app.js", log.url()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .get(format!("{}/ui/v/{version}/../../v1/events", log.url()))
        .send()
        .unwrap();
    assert!(r.status() == 404 || r.status() == 400, "{}", r.status());
}
