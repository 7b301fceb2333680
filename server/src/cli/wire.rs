//! A lean HTTP/1.1 client for the load generators: one keep-alive
//! connection per client loop, each request written with one syscall from
//! a prepared head, each response read by its Content-Length.
//!
//! A general client (reqwest) spends more CPU per request than the log's
//! own handler does, and on a shared 2-core machine that CPU is taken from
//! the log being measured. This one does only what a gateway's client
//! must: write the request, parse the status line and headers (httparse,
//! hyper's parser), read the body, and keep the connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head read.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body read.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Longest wait for a whole response.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A response: status and body.
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// One client's keep-alive connection to a log.
pub struct Conn {
    addr: String,
    stream: Option<TcpStream>,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Conn {
    /// A client of the log at `url` (`http://host:port`); connects on first use.
    pub fn new(url: &str) -> Result<Conn, String> {
        let addr = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: the lean client speaks plain http:// only"))?
            .trim_end_matches('/')
            .to_string();
        if addr.contains('/') {
            return Err(format!("{url}: give the log's base URL, without a path"));
        }
        Ok(Conn {
            addr,
            stream: None,
            out: Vec::new(),
            buf: Vec::new(),
        })
    }

    /// POSTs the JSON `body` to `path` with a bearer `token`.
    pub async fn post(&mut self, path: &str, token: &str, body: &[u8]) -> Result<Response, String> {
        use std::io::Write;
        self.out.clear();
        let _ = write!(
            self.out,
            "POST {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        self.out.extend_from_slice(body);
        self.send().await
    }

    /// GETs `path` (with its query).
    pub async fn get(&mut self, path: &str) -> Result<Response, String> {
        use std::io::Write;
        self.out.clear();
        let _ = write!(
            self.out,
            "GET {path} HTTP/1.1\r\nhost: {}\r\n\r\n",
            self.addr
        );
        self.send().await
    }

    /// Sends the request in `out`. A request that finds a kept connection
    /// closed by the log is sent once more on a new one (appends carry
    /// event IDs, so a resend is deduplicated).
    async fn send(&mut self) -> Result<Response, String> {
        let reused = self.stream.is_some();
        let first = tokio::time::timeout(TIMEOUT, self.round_trip()).await;
        let res = match first {
            Ok(Err(Closed::Early)) if reused => {
                self.stream = None;
                tokio::time::timeout(TIMEOUT, self.round_trip()).await
            }
            other => other,
        };
        match res {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e.to_string())
            }
            Err(_) => {
                self.stream = None;
                Err("no response within 30 s".into())
            }
        }
    }

    async fn round_trip(&mut self) -> Result<Response, Closed> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| Closed::Failed(format!("connecting to {}: {e}", self.addr)))?;
            let _ = s.set_nodelay(true);
            self.stream = Some(s);
        }
        let Some(s) = self.stream.as_mut() else {
            return Err(Closed::Failed("no connection".into()));
        };
        if s.write_all(&self.out).await.is_err() {
            return Err(Closed::Early);
        }
        self.buf.clear();
        let (status, head_len, body_len, close) = loop {
            if self.buf.len() >= MAX_HEAD {
                return Err(Closed::Failed("response head over 64 KiB".into()));
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = s
                .read(&mut chunk)
                .await
                .map_err(|e| Closed::Failed(format!("reading the response: {e}")))?;
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    Closed::Early
                } else {
                    Closed::Failed("connection closed inside a response head".into())
                });
            }
            self.buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut r = httparse::Response::new(&mut headers);
            match r.parse(&self.buf) {
                Ok(httparse::Status::Partial) => continue,
                Ok(httparse::Status::Complete(n)) => {
                    let mut len = None;
                    let mut close = false;
                    for h in r.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            len = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse::<usize>().ok());
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            return Err(Closed::Failed(
                                "chunked responses are not read by the lean client".into(),
                            ));
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            close = h.value.eq_ignore_ascii_case(b"close");
                        }
                    }
                    let len = len
                        .ok_or_else(|| Closed::Failed("response without content-length".into()))?;
                    break (r.code.unwrap_or(0), n, len, close);
                }
                Err(e) => return Err(Closed::Failed(format!("bad response head: {e}"))),
            }
        };
        if body_len > MAX_BODY {
            return Err(Closed::Failed(format!("response body of {body_len} bytes")));
        }
        let mut body = self.buf.split_off(head_len);
        if body.len() > body_len {
            return Err(Closed::Failed("bytes after the response body".into()));
        }
        let have = body.len();
        body.resize(body_len, 0);
        s.read_exact(&mut body[have..])
            .await
            .map_err(|e| Closed::Failed(format!("reading the response body: {e}")))?;
        if close {
            self.stream = None;
        }
        Ok(Response { status, body })
    }
}

/// How a round trip failed.
#[derive(Debug, thiserror::Error)]
enum Closed {
    /// The connection was gone before any response byte: safe to resend.
    #[error("the log closed the connection")]
    Early,
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    /// Reads one request (head and Content-Length body) from `r`; `None` at EOF.
    async fn request<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Option<(String, Vec<u8>)> {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0; len];
        r.read_exact(&mut body).await.ok()?;
        Some((head, body))
    }

    #[tokio::test]
    async fn keeps_the_connection_and_reads_responses_split_anywhere() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            let mut seen = Vec::new();
            while let Some((head, body)) = request(&mut r).await {
                seen.push((head, body.clone()));
                let resp = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                // The head and the body in pieces, as TCP may deliver them.
                for piece in [
                    &resp.as_bytes()[..7],
                    &resp.as_bytes()[7..],
                    &body[..1],
                    &body[1..],
                ] {
                    w.write_all(piece).await.unwrap();
                    w.flush().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            seen
        });
        let mut c = Conn::new(&url).unwrap();
        let a = c.post("/v1/events", "tok", b"{\"a\":1}").await.unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"{\"a\":1}"[..]));
        let b = c.post("/v1/events", "tok", b"[2,3]").await.unwrap();
        assert_eq!(b.body, b"[2,3]");
        drop(c);
        let seen = server.await.unwrap();
        assert_eq!(seen.len(), 2, "both requests on one connection");
        assert!(seen[0].0.starts_with("POST /v1/events HTTP/1.1\r\n"));
        assert!(seen[0].0.contains("authorization: Bearer tok\r\n"));
    }

    #[tokio::test]
    async fn resends_once_when_the_log_closed_a_kept_connection() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let mut accepted = 0;
            for _ in 0..2 {
                // Answer one request, then close without saying so.
                let (s, _) = l.accept().await.unwrap();
                accepted += 1;
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                request(&mut r).await.unwrap();
                w.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .unwrap();
            }
            accepted
        });
        let mut c = Conn::new(&url).unwrap();
        assert_eq!(c.get("/checkpoint").await.unwrap().status, 201);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = c.get("/checkpoint").await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"ok"[..]));
        assert_eq!(server.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn refuses_responses_it_cannot_bound() {
        for (resp, want) in [
            (&b"HTTP/1.1 200 OK\r\n\r\n"[..], "without content-length"),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                "chunked",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\n",
                "body of",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nxy",
                "after the response body",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab",
                "reading the response body",
            ),
            (b"NOT HTTP\r\n\r\n", "bad response head"),
        ] {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", l.local_addr().unwrap());
            tokio::spawn(async move {
                let (s, _) = l.accept().await.unwrap();
                let (r, mut w) = s.into_split();
                request(&mut BufReader::new(r)).await.unwrap();
                w.write_all(resp).await.unwrap();
            });
            let e = Conn::new(&url).unwrap().get("/").await.err().unwrap();
            assert!(e.contains(want), "{e:?} should name {want:?}");
        }
        assert!(Conn::new("https://log.example").is_err());
        assert!(Conn::new("http://log.example/v1").is_err());
    }
}
