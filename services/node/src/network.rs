//! [`Network`]: how a node reaches the world when it is not plain TCP — the deterministic
//! simulation (`centinela-sim`, turmoil) hands a node its incoming gRPC connections, a store
//! client over the simulated network, a way to dial peers, and a clock on simulated time.
//! Production never builds one: [`Node::start_secured`](crate::Node::start_secured) binds TCP.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

use centinela_actors::Clock;
use centinela_api::peer::PeerDialer;
#[cfg(feature = "fault-injection")]
use centinela_records::PlantedBug;
use centinela_store::Store;

/// Any byte stream a node can serve gRPC on.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// One accepted connection of a [`Network`].
pub struct Connection(pub Box<dyn Io>);

impl Connected for Connection {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

/// Everything a node started with [`Node::start_with_network`](crate::Node::start_with_network)
/// uses instead of TCP, the system clock and `Options::store`. No HTTP console is served.
pub struct Network {
    /// The gRPC connections to serve.
    pub incoming: BoxStream<'static, io::Result<Connection>>,
    /// The store, reached however the caller likes (`Store::from_channel`).
    pub store: Store,
    /// Opens channels to peer nodes (their advertised `http://host:port`).
    pub dial: PeerDialer,
    /// Where timestamps come from (a fixed base on simulated time, for replayable runs).
    pub clock: Clock,
    /// A bug planted on purpose by the simulation's tests; `None` everywhere else.
    #[cfg(feature = "fault-injection")]
    pub planted_bug: Option<PlantedBug>,
}
