//! A connection that closes itself when its peer stalls: no byte read or
//! written for the idle timeout while the server waits to read, or a write
//! that makes no progress for the write timeout (a client that stopped
//! reading). Both end the connection with `TimedOut`, which releases its
//! descriptor, its buffers and whatever task was streaming to it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::serve::ConnStats;

/// An I/O object with idle and write-stall timeouts.
pub struct Guarded<T> {
    io: T,
    idle: Duration,
    write: Duration,
    /// Fires `idle` after the last progress in either direction.
    idle_timer: Pin<Box<Sleep>>,
    /// Armed while a write is pending; fires `write` after it stalled.
    write_timer: Option<Pin<Box<Sleep>>>,
    stats: Arc<ConnStats>,
}

impl<T> Guarded<T> {
    /// Wraps `io`.
    pub fn new(io: T, idle: Duration, write: Duration, stats: Arc<ConnStats>) -> Guarded<T> {
        Guarded {
            io,
            idle,
            write,
            idle_timer: Box::pin(tokio::time::sleep(idle)),
            write_timer: None,
            stats,
        }
    }

    fn progress(&mut self) {
        self.idle_timer.as_mut().reset(Instant::now() + self.idle);
    }

    fn timed_out(&self, what: &str) -> io::Error {
        self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(what, "closing a stalled connection");
        io::Error::new(io::ErrorKind::TimedOut, format!("{what} timeout"))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.progress();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if self.idle_timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(self.timed_out("idle")));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, data) {
            Poll::Ready(r) => {
                self.write_timer = None;
                if matches!(r, Ok(n) if n > 0) {
                    self.progress();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.stalled(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                self.write_timer = None;
                if matches!(r, Ok(n) if n > 0) {
                    self.progress();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.stalled(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(r) => {
                self.write_timer = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.stalled(cx).map(|r| r.map(|_| ())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_shutdown(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.stalled(cx).map(|r| r.map(|_| ())),
        }
    }
}

impl<T> Guarded<T> {
    /// A write is pending: arm (or poll) the write-stall timer.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let write = self.write;
        let timer = self
            .write_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(write)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(self.timed_out("write")));
        }
        Poll::Pending
    }
}
