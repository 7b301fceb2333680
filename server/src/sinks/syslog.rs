//! The syslog sink: RFC 5424 messages over UDP (RFC 5426), over TCP with
//! octet-counting framing (RFC 6587) or over TLS (RFC 5425, rustls).
//!
//! UDP cannot acknowledge: a message counts as delivered once sent, and a
//! receiver that is down loses what is sent meanwhile. TCP and TLS have no
//! application-level acknowledgement either, so a batch counts as safe at
//! the receiver only once the connection is seen to stand after it (a
//! later batch was written and the connection is not closed, or a quiet
//! half second passed with it open). Until then the batch is kept; if the
//! connection breaks, it is sent again on the new connection before
//! anything else. So a receiver that goes away loses nothing, at the cost
//! of at most one batch sent twice.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use super::config::{Destination, SinkSpec, TlsFiles, Transport};
use super::{Item, Outcome};
use vellum_spec::siem::syslog;

/// Longest wait to connect or to write a batch.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest UDP payload sent; longer messages are cut (RFC 5426 allows it).
const MAX_DATAGRAM: usize = 65_000;

enum Conn {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    fn fd(&self) -> i32 {
        match self {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Tls(s) => s.get_ref().0.as_raw_fd(),
        }
    }

    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => {
                s.write_all(b).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                s.write_all(b).await?;
                s.flush().await
            }
        }
    }

    /// True unless the peer has closed or reset the connection (a
    /// non-blocking peek at the socket: EOF or an error means it is gone).
    fn alive(&self) -> bool {
        let mut b = [0u8; 1];
        // SAFETY: recv into a 1-byte buffer we own, on a socket we own.
        let n = unsafe {
            libc::recv(
                self.fd(),
                b.as_mut_ptr() as *mut libc::c_void,
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n > 0 {
            return true;
        }
        if n == 0 {
            return false;
        }
        let e = std::io::Error::last_os_error();
        matches!(e.raw_os_error(), Some(libc::EAGAIN))
    }
}

/// A syslog receiver.
pub struct SyslogSink {
    transport: Transport,
    address: String,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    udp: Option<UdpSocket>,
    conn: Option<Conn>,
    /// Sent on the current connection, not yet seen to stand.
    unconfirmed: Vec<Item>,
    sent_at: Instant,
}

fn tls_config(
    t: &TlsFiles,
) -> Result<
    (
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    ),
    String,
> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&t.ca_file)
        .map_err(|e| format!("ca_file {}: {e}", t.ca_file.display()))?;
    for c in certs {
        let c = c.map_err(|e| format!("ca_file {}: {e}", t.ca_file.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("ca_file {}: {e}", t.ca_file.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    let cfg = match &t.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("client_cert {}: {e}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("client_cert {}: {e}", cert.display()))?;
            crate::secrets::check_mode(key);
            let k = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("client_key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, k)
                .map_err(|e| format!("client certificate: {e}"))?
        }
    };
    let name = ServerName::try_from(t.server_name.clone())
        .map_err(|e| format!("server_name {:?}: {e}", t.server_name))?;
    Ok((Arc::new(cfg), name))
}

impl SyslogSink {
    /// The sink of `spec` (a syslog destination).
    pub fn new(spec: &SinkSpec) -> Result<SyslogSink, String> {
        let Destination::Syslog {
            transport,
            address,
            tls,
            ..
        } = &spec.dest
        else {
            return Err("not a syslog sink".into());
        };
        let tls = match tls {
            Some(t) => Some(tls_config(t).map_err(|e| format!("sink {:?}: {e}", spec.name))?),
            None => None,
        };
        Ok(SyslogSink {
            transport: *transport,
            address: address.clone(),
            tls,
            udp: None,
            conn: None,
            unconfirmed: Vec::new(),
            sent_at: Instant::now(),
        })
    }

    async fn connect(&mut self) -> Result<(), String> {
        let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(&self.address))
            .await
            .map_err(|_| format!("connecting to {}: timed out", self.address))?
            .map_err(|e| format!("connecting to {}: {e}", self.address))?;
        let _ = tcp.set_nodelay(true);
        self.conn = Some(match &self.tls {
            None => Conn::Tcp(tcp),
            Some((cfg, name)) => {
                let c = tokio_rustls::TlsConnector::from(cfg.clone());
                let s = tokio::time::timeout(IO_TIMEOUT, c.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| format!("TLS handshake with {}: timed out", self.address))?
                    .map_err(|e| format!("TLS handshake with {}: {e}", self.address))?;
                Conn::Tls(Box::new(s))
            }
        });
        // Whatever was sent on the old connection without being confirmed
        // goes again, first.
        if !self.unconfirmed.is_empty() {
            let again: Vec<u8> = self
                .unconfirmed
                .iter()
                .flat_map(|it| syslog::frame(it.bytes()))
                .collect();
            self.write(&again).await?;
            tracing::info!(
                events = self.unconfirmed.len(),
                "syslog: resent the batch the broken connection may have lost"
            );
        }
        Ok(())
    }

    async fn write(&mut self, b: &[u8]) -> Result<(), String> {
        let Some(c) = self.conn.as_mut() else {
            return Err("not connected".into());
        };
        match tokio::time::timeout(IO_TIMEOUT, c.write_all(b)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.conn = None;
                Err(format!("writing to {}: {e}", self.address))
            }
            Err(_) => {
                self.conn = None;
                Err(format!("writing to {}: timed out", self.address))
            }
        }
    }

    /// Sends a batch.
    pub async fn deliver(&mut self, items: &[Item]) -> Outcome {
        if self.transport == Transport::Udp {
            return self.deliver_udp(items).await;
        }
        if self.conn.as_ref().is_some_and(|c| !c.alive()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            if let Err(e) = self.connect().await {
                self.conn = None;
                return Outcome::Retry(e, None);
            }
        }
        let body: Vec<u8> = items
            .iter()
            .flat_map(|it| syslog::frame(it.bytes()))
            .collect();
        if let Err(e) = self.write(&body).await {
            return Outcome::Retry(e, None);
        }
        // This write went out on a connection that still stands: what was
        // sent before it is confirmed.
        let alive = self.conn.as_ref().is_some_and(Conn::alive);
        if alive {
            self.unconfirmed.clear();
        }
        self.unconfirmed.extend(items.iter().cloned());
        self.sent_at = Instant::now();
        Outcome::Delivered
    }

    async fn deliver_udp(&mut self, items: &[Item]) -> Outcome {
        if self.udp.is_none() {
            let sock = match UdpSocket::bind("0.0.0.0:0").await {
                Ok(s) => s,
                Err(e) => return Outcome::Retry(format!("UDP socket: {e}"), None),
            };
            if let Err(e) = sock.connect(&self.address).await {
                return Outcome::Retry(format!("UDP {}: {e}", self.address), None);
            }
            self.udp = Some(sock);
        }
        let Some(sock) = &self.udp else {
            return Outcome::Retry("no UDP socket".into(), None);
        };
        for it in items {
            let b = it.bytes();
            let m = &b[..b.len().min(MAX_DATAGRAM)];
            if let Err(e) = sock.send(m).await {
                // An ICMP "port unreachable" from an earlier datagram, or no
                // route: retry the batch (UDP gives no other signal).
                return Outcome::Retry(format!("UDP send to {}: {e}", self.address), None);
            }
        }
        Outcome::Delivered
    }

    /// Confirms the outstanding batch once the connection has stood for a
    /// quiet moment; resends it if the connection is gone.
    pub async fn idle(&mut self) -> Result<(), String> {
        if self.unconfirmed.is_empty() {
            return Ok(());
        }
        match &self.conn {
            Some(c) if c.alive() => {
                if self.sent_at.elapsed() >= Duration::from_millis(500) {
                    self.unconfirmed.clear();
                }
                Ok(())
            }
            _ => {
                self.conn = None;
                self.connect().await.inspect_err(|_| self.conn = None)
            }
        }
    }

    /// Entries below this index are confirmed.
    pub fn confirmed(&self) -> u64 {
        self.unconfirmed
            .first()
            .map(|i| i.index)
            .unwrap_or(u64::MAX)
    }
}
