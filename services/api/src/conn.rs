//! Bounded listeners: every socket a node accepts, on its gRPC and on its HTTP port, goes
//! through [`Gate::incoming`], a counted accept loop.
//!
//! - **A cap per listener.** A connection takes a slot for as long as it is open; past the
//!   cap, a new connection is closed at once (the client sees the connection reset or closed
//!   before any byte), counted ([`Gate::refused`] and the `centinela.connections.refused`
//!   metric) and logged at most once per [`REFUSED_LOG_INTERVAL`](crate::limits::REFUSED_LOG_INTERVAL)
//!   with the number refused since. One listener's flood never takes the other's slots: 1,100
//!   idle sockets on the HTTP port no longer starve presses on the gRPC port.
//! - **An idle timeout.** A connection on which no byte moved in either direction for
//!   [`Bounds::idle`] is closed. Live connections are never idle: gRPC's HTTP/2 keep-alive
//!   pings every second and the console's event streams tick every few seconds, so this only
//!   closes sockets that connected and then said nothing (or stopped answering).
//! - **No error ends the loop.** Running out of file descriptors (`EMFILE`) pauses accepting
//!   for [`ACCEPT_ERROR_PAUSE`](crate::limits::ACCEPT_ERROR_PAUSE) instead of spinning or
//!   stopping the server.
//!
//! How the caps relate to the process's file limit is [`Bounds::fit`]'s job (docs/security.md,
//! "Connections and streams").

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

use centinela_telemetry::metrics;
use opentelemetry::KeyValue;

use crate::limits::{ACCEPT_ERROR_PAUSE, REFUSED_LOG_INTERVAL};

/// The bounds of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Connections open at once; past it new ones are closed at once.
    pub connections_max: usize,
    /// A connection with no byte read or written for this long is closed.
    pub idle: Duration,
}

/// One listener's gate: its slots and what it refused.
pub struct Gate {
    /// `grpc` or `http`, in logs and metrics.
    name: &'static str,
    bounds: Bounds,
    slots: Arc<Semaphore>,
    refused: AtomicU64,
    /// When a refusal was last logged, and the refusals not logged since.
    log: Mutex<(Option<Instant>, u64)>,
}

impl Gate {
    pub fn new(name: &'static str, bounds: Bounds) -> Arc<Self> {
        debug_assert!(bounds.connections_max > 0);
        Arc::new(Self {
            name,
            bounds,
            slots: Arc::new(Semaphore::new(bounds.connections_max)),
            refused: AtomicU64::new(0),
            log: Mutex::new((None, 0)),
        })
    }

    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// Connections refused since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.bounds.connections_max - self.slots.available_permits()
    }

    /// The accepted connections of `listener`, each holding a slot, with Nagle off (a gRPC
    /// reply's headers, data and trailers are separate small writes: with Nagle each call can
    /// stall 40 ms on the client's delayed ACK). The stream never yields an error and ends
    /// only when dropped.
    pub fn incoming(
        self: &Arc<Self>,
        listener: TcpListener,
    ) -> impl Stream<Item = io::Result<Bounded>> + Send + 'static {
        let gate = self.clone();
        futures::stream::unfold((gate, listener), |(gate, listener)| async move {
            let accepted = gate.accept(&listener).await;
            Some((Ok(accepted), (gate, listener)))
        })
    }

    /// The next connection under the cap.
    async fn accept(&self, listener: &TcpListener) -> Bounded {
        loop {
            let (socket, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // A connection reset before it was accepted is the client's business;
                    // anything else (EMFILE, ENFILE, ENOBUFS) persists for a moment.
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) {
                        tracing::warn!(listener = self.name, error = %e, "accept failed; pausing");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                    continue;
                }
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                self.note_refused(peer);
                drop(socket);
                continue;
            };
            let _ = socket.set_nodelay(true);
            return Bounded::new(socket, slot, self.bounds.idle);
        }
    }

    fn note_refused(&self, peer: std::net::SocketAddr) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        metrics::instruments()
            .connections_refused
            .add(1, &[KeyValue::new("listener", self.name)]);
        let now = Instant::now();
        let mut log = self.log.lock().expect("gate log poisoned");
        log.1 += 1;
        if log
            .0
            .is_none_or(|at| now.saturating_duration_since(at) >= REFUSED_LOG_INTERVAL)
        {
            tracing::warn!(
                listener = self.name,
                refused = log.1,
                last_peer = %peer,
                connections_max = self.bounds.connections_max,
                "connections refused: the listener is at its cap"
            );
            *log = (Some(now), 0);
        }
    }
}

/// An accepted connection: the socket, its slot (freed when the connection is dropped) and
/// its idle deadline.
pub struct Bounded {
    socket: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Bounded {
    fn new(socket: TcpStream, slot: OwnedSemaphorePermit, idle: Duration) -> Self {
        Self {
            socket,
            _slot: slot,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// Bytes moved: the connection is alive.
    fn touch(&mut self) {
        let next = Instant::now() + self.idle;
        // Resetting the timer on every read would cost a timer-wheel update per segment;
        // moving it only when it is more than a tenth of the timeout stale is as good.
        if next.saturating_duration_since(self.deadline.deadline()) > self.idle / 10 {
            self.deadline.as_mut().reset(next);
        }
    }

    /// Called when the socket has nothing to do: the connection is closed once idle too long.
    fn poll_idle<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connection idle for {} s", self.idle.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Bounded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.socket).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => this.poll_idle(cx),
            ready => ready,
        }
    }
}

impl AsyncWrite for Bounded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.socket).poll_write(cx, buf) {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    this.touch();
                }
                Poll::Ready(Ok(written))
            }
            // A peer that stops reading is as idle as one that stops writing.
            Poll::Pending => this.poll_idle(cx),
            ready => ready,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.socket).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    this.touch();
                }
                Poll::Ready(Ok(written))
            }
            Poll::Pending => this.poll_idle(cx),
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_shutdown(cx)
    }
}

impl Connected for Bounded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.socket.connect_info()
    }
}

/// The process's open-file limit (`RLIMIT_NOFILE`), raised from its soft value to its hard
/// one when it can be (an unprivileged process may). `None` where it cannot be read.
pub fn raise_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current?;
    match limit.maximum {
        Some(hard) if hard > soft => {
            let raised = rustix::process::Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => {
                    tracing::info!(from = soft, to = hard, "raised the open-file limit");
                    Some(hard)
                }
                Err(e) => {
                    tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit");
                    Some(soft)
                }
            }
        }
        // No hard limit (RLIM_INFINITY): keep the soft one, which is what we get.
        _ => Some(soft),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn bounds(connections_max: usize, idle: Duration) -> Bounds {
        Bounds {
            connections_max,
            idle,
        }
    }

    #[tokio::test]
    async fn past_the_cap_connections_are_closed_at_once_and_slots_come_back() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = Gate::new("test", bounds(2, Duration::from_secs(600)));
        let mut incoming = Box::pin(gate.incoming(listener));
        use futures::StreamExt;

        let _a = TcpStream::connect(addr).await.unwrap();
        let first = incoming.next().await.unwrap().unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let _second = incoming.next().await.unwrap().unwrap();
        assert_eq!(gate.open(), 2);

        // The third is accepted by the kernel, then closed by the gate: its read ends.
        let mut third = TcpStream::connect(addr).await.unwrap();
        let accept = tokio::spawn(async move {
            let next = incoming.next().await;
            (incoming, next)
        });
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(60), third.read(&mut byte))
            .await
            .expect("the refused connection is closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert_eq!(gate.refused(), 1);

        // A slot freed: the next connection is served.
        drop(first);
        let mut fourth = TcpStream::connect(addr).await.unwrap();
        let (_incoming, next) = tokio::time::timeout(Duration::from_secs(60), accept)
            .await
            .unwrap()
            .unwrap();
        let mut served = next.unwrap().unwrap();
        fourth.write_all(b"x").await.unwrap();
        let mut got = [0u8; 1];
        served.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"x");
        assert_eq!(gate.open(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_after_the_idle_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = Gate::new("test", bounds(4, Duration::from_secs(30)));
        let mut incoming = Box::pin(gate.incoming(listener));
        use futures::StreamExt;
        let _client = TcpStream::connect(addr).await.unwrap();
        let mut served = incoming.next().await.unwrap().unwrap();
        let mut buf = [0u8; 8];
        let error = served.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
