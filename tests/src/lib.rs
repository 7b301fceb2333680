//! Harness for integration tests: starts the real binaries (the ones
//! `cargo test --workspace` builds, once, for the binary crates' own CLI
//! tests) on free loopback ports in temporary directories, with each
//! child's stderr captured to a file that is printed only if the test
//! fails; and offers a small blocking client and an independent
//! tile-based tree checker.

pub mod objectstore;
pub mod receivers;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;
use vellum_spec::hash::{leaf_hash, Hash};
use vellum_spec::merkle::{NodeId, NodeReader, ProofError};
use vellum_spec::note::{Note, VerifierKey};
use vellum_spec::tile::{self, TileId};
use vellum_spec::Checkpoint;

/// Path of a workspace binary, as `cargo test --workspace` built it (next
/// to the test executable's `deps/` directory). The binary crates have
/// integration tests of their own, which is what makes Cargo build their
/// binaries in the same run: nothing is built twice, or behind Cargo's back.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run the whole suite (`scripts/test`, or `cargo test --workspace`), which builds it",
        p.display()
    );
    p
}

/// A child's stderr, captured to a file; printed when a test fails.
pub struct Captured {
    path: PathBuf,
    what: String,
}

impl Captured {
    /// A capture file for `what` (e.g. "vellum serve") in `dir`.
    pub fn new(dir: &Path, what: &str) -> (Captured, Stdio) {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("stderr-{}-{n}.log", std::process::id()));
        let f = std::fs::File::create(&path).expect("creating a capture file");
        (
            Captured {
                path,
                what: what.to_string(),
            },
            Stdio::from(f),
        )
    }

    /// What was captured so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let t = self.text();
            let tail: Vec<&str> = t.lines().rev().take(200).collect();
            eprintln!(
                "----- stderr of {} (last {} lines) -----",
                self.what,
                tail.len()
            );
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
            eprintln!("----- end of {} -----", self.what);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where capture files go: a directory kept for the test process.
pub fn capture_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("capture directory"))
        .path()
}

/// Resident memory of process `pid` in KiB (VmRSS), if it runs.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Open descriptors of process `pid`.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Runs `cmd` to completion and returns (exit code, stdout, stderr, peak
/// resident memory in KiB), the peak from the kernel's accounting of that
/// child alone (wait4).
pub fn run_measured(mut cmd: Command) -> (i32, String, String, u64) {
    let dir = capture_dir();
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (out_p, err_p) = (
        dir.join(format!("run-{n}.out")),
        dir.join(format!("run-{n}.err")),
    );
    cmd.stdout(std::fs::File::create(&out_p).unwrap())
        .stderr(std::fs::File::create(&err_p).unwrap());
    let child = cmd.spawn().expect("spawning");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    std::mem::forget(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (code, read(&out_p), read(&err_p), usage.ru_maxrss as u64)
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `vellum serve` in its own data directory.
pub struct Log {
    /// The child process.
    pub child: Option<Child>,
    /// Data directory (deleted with the Log).
    pub dir: tempfile::TempDir,
    /// Port it listens on.
    pub port: u16,
    /// Extra flags given to `serve`.
    pub args: Vec<String>,
    /// HTTP client.
    pub http: reqwest::blocking::Client,
    /// The running process's stderr.
    pub stderr: Option<Captured>,
    /// A command the log is started through (`prefix... vellum serve ...`),
    /// e.g. to give it a file system of its own.
    pub prefix: Vec<String>,
    /// A descriptor limit (soft and hard) the log is started with.
    pub nofile: Option<u64>,
    /// Environment variables the log is started with.
    pub env: Vec<(String, String)>,
    /// The object store the log runs on, in the `*_s3` suites.
    pub seaweed: Option<objectstore::Seaweed>,
}

/// True in the test binaries named `*_s3`: the same tests (the `[[test]]`
/// targets of that name reuse another target's file), run against the S3
/// backend on a SeaweedFS of each log's own.
pub fn s3_suite() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .and_then(|n| {
            n.rsplit_once('-')
                .map(|(name, _hash)| name.ends_with("_s3"))
        })
        .unwrap_or(false)
}

/// Credentials for the tests' SeaweedFS, as `vellum` reads them.
pub fn s3_env() -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), objectstore::ACCESS_KEY.into()),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            objectstore::SECRET_KEY.into(),
        ),
    ]
}

impl Log {
    /// Creates a log's data directory and keys (`vellum init`) without
    /// starting it; set `args` and call [`Log::spawn`].
    pub fn init() -> Log {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(bin("vellum"))
            .args(["init", "--origin", "test.example/log", "--data"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "vellum init: {out:?}");
        Log {
            child: None,
            dir,
            port: free_port(),
            args: vec![],
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            stderr: None,
            prefix: vec![],
            nofile: None,
            env: vec![],
            seaweed: None,
        }
        .on_suite_storage()
    }

    /// Starts a new log with a 100 ms checkpoint interval plus `args`.
    pub fn start(args: &[&str]) -> Log {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log {
            child: None,
            dir,
            port: free_port(),
            args: args.iter().map(|s| s.to_string()).collect(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            stderr: None,
            prefix: vec![],
            nofile: None,
            env: vec![],
            seaweed: None,
        }
        .on_suite_storage();
        log.spawn();
        log
    }

    /// In a `*_s3` suite, puts the log on a SeaweedFS of its own.
    fn on_suite_storage(mut self) -> Log {
        if s3_suite() {
            let sw = objectstore::Seaweed::start();
            self.args.extend(sw.serve_args("log"));
            self.env.extend(s3_env());
            self.seaweed = Some(sw);
        }
        self
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The data directory.
    pub fn data(&self) -> &Path {
        self.dir.path()
    }

    /// (Re)starts the process and waits until it answers.
    pub fn spawn(&mut self) {
        let mut cmd = match self.prefix.split_first() {
            Some((p, rest)) => {
                let mut c = Command::new(p);
                c.args(rest).arg(bin("vellum"));
                c
            }
            None => Command::new(bin("vellum")),
        };
        if let Some(n) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec here.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd.args(["serve", "--data"])
            .arg(self.dir.path())
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args([
                "--checkpoint-interval",
                "100ms",
                "--origin",
                "test.example/log",
            ])
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null());
        let (cap, err) = Captured::new(capture_dir(), "vellum serve");
        cmd.stderr(err);
        self.stderr = Some(cap);
        self.child = Some(cmd.spawn().expect("starting vellum"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.url())).send() {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("vellum exited with {st} before becoming healthy");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("vellum did not become healthy within 30 s");
    }

    /// Runs `vellum <args> --data <this log's directory>` and returns its output.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin("vellum"))
            .args(args)
            .arg("--data")
            .arg(self.dir.path())
            .output()
            .expect("running vellum")
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The default token created on first start.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The log's verifier key.
    pub fn vkey(&self) -> VerifierKey {
        VerifierKey::parse(
            std::fs::read_to_string(self.dir.path().join("log.vkey"))
                .unwrap()
                .trim(),
        )
        .unwrap()
    }

    /// POSTs a raw body to /v1/events; returns (status, body).
    pub fn post_events(
        &self,
        token: Option<&str>,
        body: impl Into<reqwest::blocking::Body>,
    ) -> (u16, String) {
        let mut r = self
            .http
            .post(format!("{}/v1/events", self.url()))
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    }

    /// POSTs one event as JSON to `/v1/events<query>`; returns (status, body).
    pub fn post_events_query(&self, token: &str, query: &str, ev: &Value) -> (u16, String) {
        let resp = self
            .http
            .post(format!("{}/v1/events{query}", self.url()))
            .bearer_auth(token)
            .body(serde_json::to_vec(ev).unwrap())
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    }

    /// Appends one event asking for a receipt; returns (status, body).
    pub fn http_post_receipt(&self, token: &str, ev: &Value) -> (u16, String) {
        self.post_events_query(token, "?receipt=true", ev)
    }

    /// GET returning (status, body bytes).
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
        let mut r = self.http.get(format!("{}{path}", self.url()));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().unwrap();
        (resp.status().as_u16(), resp.bytes().unwrap().to_vec())
    }

    /// GET a JSON document, asserting 200.
    pub fn get_json(&self, path: &str, token: Option<&str>) -> Value {
        let (s, b) = self.get(path, token);
        assert_eq!(s, 200, "GET {path}: {}", String::from_utf8_lossy(&b));
        serde_json::from_slice(&b).unwrap()
    }

    /// Fetches and verifies the checkpoint with the log key.
    pub fn checkpoint(&self) -> (Checkpoint, Vec<u8>) {
        let (s, b) = self.get("/checkpoint", None);
        assert_eq!(s, 200);
        let note = Note::parse(&b).unwrap();
        note.verify(&[self.vkey()]).expect("checkpoint signature");
        (Checkpoint::parse(&note.text).unwrap(), b)
    }

    /// Waits until the published checkpoint covers at least `size` entries.
    pub fn wait_checkpoint(&self, size: u64) -> Checkpoint {
        self.wait_note(size).0
    }

    /// Like [`Log::wait_checkpoint`], also returning the signed note.
    pub fn wait_note(&self, size: u64) -> (Checkpoint, Vec<u8>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (cp, note) = self.checkpoint();
            if cp.size >= size {
                return (cp, note);
            }
            assert!(Instant::now() < deadline, "checkpoint stuck at {}", cp.size);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Durable tree size from /healthz.
    pub fn tree_size(&self) -> u64 {
        self.get_json("/healthz", None)["tree_size"]
            .as_u64()
            .unwrap()
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A schema-valid event with a given agent and optional event_id.
pub fn event(agent: &str, id: Option<&str>) -> Value {
    let mut v = serde_json::json!({
        "ts": "2026-06-20T14:07:31.120Z", "agent": agent, "principal": "svc@corp.example",
        "owner": "team-a", "tool": "db.query", "verdict": "allow", "session": "s1",
        "args_hash": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "risk": 5, "result": {"status": 200}
    });
    if let Some(id) = id {
        v["event_id"] = Value::String(id.into());
    }
    v
}

/// Decodes a base64 hash field.
pub fn hash_field(v: &Value) -> Hash {
    Hash::from_base64(v.as_str().expect("hash string")).unwrap()
}

/// Decodes a proof array.
pub fn proof_field(v: &Value) -> Vec<Hash> {
    v.as_array().unwrap().iter().map(hash_field).collect()
}

/// Reads nodes from tiles served over HTTP, computing interior nodes from
/// tile hashes: an independent check of what the log serves.
pub struct HttpTiles<'a> {
    /// The log.
    pub log: &'a Log,
    /// Tree size whose tiles to read.
    pub size: u64,
}

impl NodeReader for HttpTiles<'_> {
    fn read_nodes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, ProofError> {
        nodes
            .iter()
            .map(|n| {
                let (t, off, count) = TileId::for_node(*n, self.size)
                    .ok_or_else(|| ProofError::Read(format!("node {n:?} beyond size")))?;
                let (s, b) = self.log.get(&format!("/tile/{}", t.path(false)), None);
                if s != 200 {
                    return Err(ProofError::Read(format!(
                        "tile {}: HTTP {s}",
                        t.path(false)
                    )));
                }
                let row =
                    tile::tile_hashes(&b).ok_or_else(|| ProofError::Read("bad tile".into()))?;
                if row.len() != t.width as usize {
                    return Err(ProofError::Read("tile width".into()));
                }
                Ok(tile::node_in_tile(&row, off, count))
            })
            .collect()
    }
}

/// Downloads every tile and entry bundle of `size` entries, checks each
/// entry hashes into its level-0 tile, recomputes every level and checks
/// every served tile against it; returns the root and the leaves.
pub fn recompute_from_tiles(log: &Log, size: u64, token: &str) -> (Hash, Vec<Vec<u8>>) {
    let mut leaves = Vec::new();
    let mut level_hashes: Vec<Hash> = Vec::new();
    for t in tile::tiles_for_size(size)
        .into_iter()
        .filter(|t| t.level == 0)
    {
        let (s, b) = log.get(&format!("/tile/entries/{}", t.path(true)), Some(token));
        assert_eq!(s, 200, "bundle {}", t.path(true));
        let entries = tile::parse_bundle(&b).unwrap();
        assert_eq!(entries.len(), t.width as usize);
        let (s, h) = log.get(&format!("/tile/{}", t.path(false)), None);
        assert_eq!(s, 200);
        let row = tile::tile_hashes(&h).unwrap();
        for (e, th) in entries.iter().zip(&row) {
            assert_eq!(leaf_hash(e), *th, "entry hash vs level-0 tile");
            leaves.push(e.to_vec());
        }
        level_hashes.extend(row);
    }
    assert_eq!(level_hashes.len() as u64, size);
    // Recompute every higher tile level and compare with what is served.
    let mut row = level_hashes.clone();
    let mut level = 1u8;
    while row.len() >= 256 {
        let next: Vec<Hash> = row
            .chunks_exact(256)
            .map(vellum_spec::merkle::perfect_root)
            .collect();
        for (i, chunk) in next.chunks(256).enumerate() {
            let id = TileId {
                level,
                index: i as u64,
                width: chunk.len() as u16,
            };
            let (s, h) = log.get(&format!("/tile/{}", id.path(false)), None);
            assert_eq!(s, 200, "tile {}", id.path(false));
            assert_eq!(
                tile::tile_hashes(&h).unwrap(),
                chunk,
                "tile {}",
                id.path(false)
            );
        }
        row = next;
        level += 1;
    }
    (vellum_spec::merkle::reference_root(&level_hashes), leaves)
}

/// Base64 helper for tests.
pub fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

/// A running `vellum-witness serve` in its own data directory.
pub struct Witness {
    /// The child process.
    pub child: Option<Child>,
    /// Data directory (deleted with the Witness).
    pub dir: tempfile::TempDir,
    /// Port it listens on.
    pub port: u16,
    /// Flags given to `serve` after the data and listen flags.
    pub args: Vec<String>,
    /// HTTP client.
    pub http: reqwest::blocking::Client,
    /// The running process's stderr.
    pub stderr: Option<Captured>,
}

impl Witness {
    /// Starts a witness named `name` with `args` (e.g. `--log VKEY`).
    pub fn start(name: &str, args: &[&str]) -> Witness {
        let mut w = Witness {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            args: ["--name", name]
                .iter()
                .chain(args)
                .map(|s| s.to_string())
                .collect(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            stderr: None,
        };
        w.spawn();
        w
    }

    /// Base URL (the submission prefix).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the process and waits until it answers.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(bin("vellum-witness"));
        cmd.args(["serve", "--data"])
            .arg(self.dir.path())
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null());
        let (cap, err) = Captured::new(capture_dir(), "vellum-witness serve");
        cmd.stderr(err);
        self.stderr = Some(cap);
        self.child = Some(cmd.spawn().expect("starting vellum-witness"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.url())).send() {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("vellum-witness exited with {st} before becoming healthy");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("vellum-witness did not become healthy within 30 s");
    }

    /// Kills the process with SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The witness's verifier key.
    pub fn vkey(&self) -> VerifierKey {
        VerifierKey::parse(
            std::fs::read_to_string(self.dir.path().join("witness.vkey"))
                .unwrap()
                .trim(),
        )
        .unwrap()
    }

    /// `--witness` argument for a log: `VKEY@URL`.
    pub fn log_arg(&self) -> String {
        format!("{}@{}", self.vkey().to_vkey(), self.url())
    }

    /// POSTs an add-checkpoint body; returns (status, content type, body).
    pub fn add_checkpoint(&self, body: Vec<u8>) -> (u16, String, String) {
        let r = self
            .http
            .post(format!("{}/add-checkpoint", self.url()))
            .body(body)
            .send()
            .unwrap();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (r.status().as_u16(), ct, r.text().unwrap())
    }

    /// The status document (`GET /`).
    pub fn status(&self) -> Value {
        self.http
            .get(format!("{}/", self.url()))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An in-memory tree of `n` distinct leaves derived from `seed`, for tests
/// that play a log.
pub fn mem_tree(seed: &str, n: u64) -> vellum_spec::merkle::MemoryTree {
    vellum_spec::merkle::MemoryTree::new(
        (0..n)
            .map(|i| leaf_hash(format!("{seed}-{i}").as_bytes()))
            .collect(),
    )
}

/// Rewrites a response body: `(path with query, body) -> body`.
pub type Tamper = Box<dyn Fn(&str, Vec<u8>) -> Vec<u8> + Send + Sync>;

/// An HTTP proxy in front of a log that can rewrite what it serves: the
/// attacker between a verifier and the log (or a dishonest log).
pub struct TamperProxy {
    /// Port it listens on.
    pub port: u16,
    tamper: std::sync::Arc<std::sync::RwLock<Option<Tamper>>>,
}

impl TamperProxy {
    /// Starts a proxy for GET requests to `upstream`.
    pub fn start(upstream: &str) -> TamperProxy {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tamper: std::sync::Arc<std::sync::RwLock<Option<Tamper>>> = Default::default();
        let (t, upstream) = (tamper.clone(), upstream.to_string());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (t, upstream, http) = (t.clone(), upstream.clone(), http.clone());
                std::thread::spawn(move || {
                    let mut rd = BufReader::new(conn.try_clone().unwrap());
                    let mut first = String::new();
                    if rd.read_line(&mut first).is_err() {
                        return;
                    }
                    let mut auth = None;
                    loop {
                        let mut h = String::new();
                        if rd.read_line(&mut h).is_err() || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.eq_ignore_ascii_case("authorization") {
                                auth = Some(v.trim().to_string());
                            }
                        }
                    }
                    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let mut req = http.get(format!("{upstream}{path}"));
                    if let Some(a) = auth {
                        req = req.header("authorization", a);
                    }
                    let (status, ctype, body) = match req.send() {
                        Ok(r) => {
                            let ctype = r
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("application/octet-stream")
                                .to_string();
                            (
                                r.status().as_u16(),
                                ctype,
                                r.bytes().unwrap_or_default().to_vec(),
                            )
                        }
                        Err(_) => (502, "text/plain".into(), b"upstream failed".to_vec()),
                    };
                    let body = match (&*t.read().unwrap(), status) {
                        (Some(f), 200) => f(&path, body),
                        _ => body,
                    };
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes());
                    let _ = conn.write_all(&body);
                });
            }
        });
        TamperProxy { port, tamper }
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets (or clears) the rewrite.
    pub fn set(&self, f: Option<Tamper>) {
        *self.tamper.write().unwrap() = f;
    }
}

/// Runs `vellum-verify` with `args`; returns (exit code, stdout, stderr).
pub fn verify(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("vellum-verify"))
        .args(args)
        .env_remove("VELLUM_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
