//! Receivers for the sink tests: a real rsyslog (the Debian package) with
//! a configuration of its own, a test CA made with the openssl command,
//! and a small HTTP/1.1 receiver whose answers a test scripts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::free_port;

/// Runs a command that must succeed (the tools are installed by
/// `scripts/test`; a missing one fails the test, never skips it).
pub fn must(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/test installs what the tests need)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client
/// certificate, all made with the openssl command (P-256 keys).
pub struct TestCa {
    /// The directory holding the files.
    pub dir: PathBuf,
}

impl TestCa {
    /// Makes the CA and both certificates in `dir`.
    pub fn make(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).unwrap();
        let ossl = |args: &[&str]| {
            must(Command::new("openssl").args(args).current_dir(dir));
        };
        ossl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ]);
        ossl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-days",
            "2",
            "-subj",
            "/CN=Vellum test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "ca.pem",
        ]);
        for (name, ext) in [
            (
                "server",
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            ),
            (
                "client",
                "subjectAltName=DNS:vellum-client\nextendedKeyUsage=clientAuth\n",
            ),
        ] {
            std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
            ossl(&[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &format!("{name}.key.sec1"),
            ]);
            // PKCS#8, the form every TLS stack reads.
            ossl(&[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                &format!("{name}.key.sec1"),
                "-out",
                &format!("{name}.key"),
            ]);
            ossl(&[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-subj",
                &format!("/CN={name}"),
                "-out",
                &format!("{name}.csr"),
            ]);
            ossl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ]);
            std::fs::set_permissions(
                dir.join(format!("{name}.key")),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .unwrap();
        }
        TestCa {
            dir: dir.to_path_buf(),
        }
    }

    /// Path of one of the files (`ca.pem`, `server.pem`, `client.key`...).
    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// The syslog fields rsyslog parsed from a message, as its template wrote
/// them (tab-separated).
pub const RSYSLOG_FIELDS: &str = "%pri%\\t%timereported:::date-rfc3339%\\t%hostname%\\t%app-name%\\t%procid%\\t%msgid%\\t%structured-data%\\t%msg%\\n";

/// A running rsyslogd with a UDP input, a plain TCP input (imptcp, octet
/// counting) and a TLS input (imtcp with the OpenSSL driver, client
/// certificates required), each written to `<name>.raw` (the message as
/// received) and `<name>.fields` (what rsyslog parsed).
pub struct Rsyslog {
    child: Option<Child>,
    /// Its directory (configuration, state, output).
    pub dir: PathBuf,
    /// UDP port.
    pub udp: u16,
    /// TCP port.
    pub tcp: u16,
    /// TLS port.
    pub tls: u16,
}

impl Rsyslog {
    /// Starts rsyslogd in `dir`, trusting `ca` for TLS.
    pub fn start(dir: &Path, ca: &TestCa) -> Rsyslog {
        std::fs::create_dir_all(dir).unwrap();
        let mut r = Rsyslog {
            child: None,
            dir: dir.to_path_buf(),
            udp: free_port(),
            tcp: free_port(),
            tls: free_port(),
        };
        let d = dir.display();
        let mut conf = format!(
            "global(workDirectory=\"{d}\" maxMessageSize=\"256k\" DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\")\n\
             module(load=\"imudp\")\nmodule(load=\"imptcp\")\n\
             module(load=\"imtcp\" StreamDriver.Name=\"ossl\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"x509/certvalid\")\n\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             template(name=\"fields\" type=\"string\" string=\"{RSYSLOG_FIELDS}\")\n",
            ca.file("ca.pem"),
            ca.file("server.pem"),
            ca.file("server.key"),
        );
        for name in ["udp", "tcp", "tls"] {
            conf.push_str(&format!(
                "ruleset(name=\"{name}\") {{ action(type=\"omfile\" file=\"{d}/{name}.raw\" template=\"raw\") action(type=\"omfile\" file=\"{d}/{name}.fields\" template=\"fields\") }}\n"
            ));
        }
        conf.push_str(&format!(
            "input(type=\"imudp\" port=\"{}\" address=\"127.0.0.1\" ruleset=\"udp\")\n\
             input(type=\"imptcp\" port=\"{}\" address=\"127.0.0.1\" ruleset=\"tcp\" SupportOctetCountedFraming=\"on\")\n\
             input(type=\"imtcp\" port=\"{}\" address=\"127.0.0.1\" ruleset=\"tls\")\n",
            r.udp, r.tcp, r.tls
        ));
        std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        r.spawn();
        r
    }

    /// (Re)starts the daemon and waits for its TCP ports.
    pub fn spawn(&mut self) {
        let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("rsyslogd is not installed: run scripts/test, which installs the rsyslog and rsyslog-openssl packages");
        let _ = std::fs::remove_file(self.dir.join("rsyslog.pid"));
        let log = std::fs::File::create(self.dir.join("rsyslogd.log")).unwrap();
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting rsyslogd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in [self.tcp, self.tls] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                    panic!("rsyslogd exited with {st}: {}", self.log());
                }
                assert!(
                    Instant::now() < deadline,
                    "rsyslogd did not listen: {}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Stops the daemon (SIGTERM: it writes what it has, then exits).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    /// rsyslogd's own messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.log")).unwrap_or_default()
    }

    /// Lines of an output file (`tcp.raw`, `udp.fields`...).
    pub fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until `file` has at least `n` lines; returns them.
    pub fn wait_lines(&self, file: &str, n: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let l = self.lines(file);
            if l.len() >= n || Instant::now() > deadline {
                return l;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A request the HTTP receiver got.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the receiver does with a request.
pub enum Reply {
    /// Answer with status, extra headers and body.
    Answer(u16, Vec<(String, String)>, Vec<u8>),
    /// Read the request, then close the connection without answering.
    Hang,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply::Answer(
            status,
            vec![("content-type".into(), "application/json".into())],
            body.to_string().into_bytes(),
        )
    }
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// A small HTTP/1.1 receiver (keep-alive, Content-Length bodies) that
/// records every request and answers as its handler says.
pub struct HttpReceiver {
    /// Its port (kept across stop and start).
    pub port: u16,
    /// Every request received, in order.
    pub requests: Arc<Mutex<Vec<Request>>>,
    handler: Arc<Mutex<Handler>>,
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpReceiver {
    /// Starts a receiver on a free port.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> HttpReceiver {
        let mut r = HttpReceiver {
            port: free_port(),
            requests: Arc::new(Mutex::new(Vec::new())),
            handler: Arc::new(Mutex::new(Arc::new(handler))),
            running: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        r.resume();
        r
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces the handler.
    pub fn set(&self, handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) {
        *self.handler.lock().unwrap() = Arc::new(handler);
    }

    /// Stops listening and drops every connection.
    pub fn stop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Listens again on the same port.
    pub fn resume(&mut self) {
        let listener = {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match TcpListener::bind(("127.0.0.1", self.port)) {
                    Ok(l) => break l,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => panic!("binding port {}: {e}", self.port),
                }
            }
        };
        listener.set_nonblocking(true).unwrap();
        self.running.store(true, Ordering::SeqCst);
        let running = self.running.clone();
        let requests = self.requests.clone();
        let handler = self.handler.clone();
        self.thread = Some(std::thread::spawn(move || {
            let mut conns = Vec::new();
            while running.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (running, requests, handler) =
                            (running.clone(), requests.clone(), handler.clone());
                        conns.push(std::thread::spawn(move || {
                            serve_conn(s, running, requests, handler)
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            drop(listener);
            for c in conns {
                let _ = c.join();
            }
        }));
    }

    /// The requests so far.
    pub fn got(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the requests so far.
    pub fn wait(&self, within: Duration, pred: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        let deadline = Instant::now() + within;
        loop {
            let g = self.got();
            if pred(&g) || Instant::now() > deadline {
                return g;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_conn(
    s: TcpStream,
    running: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<Request>>>,
    handler: Arc<Mutex<Handler>>,
) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    'conn: while running.load(Ordering::SeqCst) {
        // Request line (waiting, while running, for the next request).
        let mut line = String::new();
        loop {
            match r.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if !running.load(Ordering::SeqCst) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            match r.read_line(&mut h) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => return,
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match r.read(&mut body[got..]) {
                Ok(0) => return,
                Ok(n) => got += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => return,
            }
        }
        let req = Request {
            method,
            path,
            headers,
            body,
        };
        let h = handler.lock().unwrap().clone();
        let reply = h(&req);
        requests.lock().unwrap().push(req);
        match reply {
            Reply::Hang => break 'conn,
            Reply::Answer(status, hs, body) => {
                let mut out = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                for (k, v) in hs {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                let mut b = out.into_bytes();
                b.extend_from_slice(&body);
                if w.write_all(&b).is_err() {
                    return;
                }
            }
        }
    }
}
