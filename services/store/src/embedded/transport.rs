//! Serving an [`EmbeddedStore`]: on a TCP listener, on any stream of connections (turmoil's
//! simulated TCP, say), or in-process through a tonic [`Channel`] whose connector makes a
//! `tokio::io::duplex` pipe instead of a socket. The service code never knows which.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, Router};
use tonic::transport::{Channel, Endpoint, Server, Uri};
use tower::layer::util::{Identity, Stack};

use super::EmbeddedStore;
use crate::Error;
use crate::http_date::DateLayer;
use crate::limits;
use crate::pb::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};

/// Bytes buffered in each direction of an in-process connection.
pub(crate) const IN_PROCESS_PIPE_BYTES: usize = 256 * 1024;

/// In-process connections waiting for the server to accept them.
const IN_PROCESS_ACCEPT_QUEUE: usize = 16;

/// The authority in-process channels claim; never resolved.
const IN_PROCESS_URI: &str = "http://embedded.centinela.invalid";

impl EmbeddedStore {
    /// A tonic router with the KV, Watch, Lease, Maintenance and Cluster services.
    fn router(&self) -> Router<Stack<DateLayer, Identity>> {
        Server::builder()
            .layer(DateLayer::new(self.core.wall_clock.clone()))
            // Drop connections whose peer vanished (a partition leaves them wedged otherwise),
            // which also ends their watch streams.
            .http2_keepalive_interval(Some(limits::KEEP_ALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(limits::KEEP_ALIVE_TIMEOUT))
            .add_service(KvServer::new(self.clone()))
            .add_service(WatchServer::new(self.clone()))
            .add_service(LeaseServer::new(self.clone()))
            .add_service(MaintenanceServer::new(self.clone()))
            .add_service(ClusterServer::new(self.clone()))
    }

    /// Serves etcd's API on `listener` until `shutdown` resolves (then waits at most
    /// [`limits::SHUTDOWN_GRACE`] for open streams).
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        // Nagle off: see centinela-node (small gRPC frames stall on delayed ACKs otherwise).
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        self.serve_incoming(incoming, shutdown).await
    }

    /// Serves etcd's API on every connection `incoming` yields until `shutdown` resolves. Any
    /// byte stream works: tokio TCP, turmoil's simulated TCP (wrap its stream in a newtype that
    /// implements tokio's `AsyncRead`/`AsyncWrite` and tonic's [`Connected`]), a pipe.
    pub async fn serve_incoming<I, IO, IE>(
        &self,
        incoming: I,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error>
    where
        I: Stream<Item = Result<IO, IE>>,
        IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // tonic's graceful shutdown waits for every stream to finish, and watch and keep-alive
        // streams never do: once `shutdown` fires, connections get a grace period to drain and
        // then we return regardless (the process or simulated host is going away).
        let fired = Notify::new();
        let signal = async {
            shutdown.await;
            fired.notify_one();
        };
        let serving = self.router().serve_with_incoming_shutdown(incoming, signal);
        tokio::select! {
            result = serving => result?,
            () = async {
                fired.notified().await;
                tokio::time::sleep(limits::SHUTDOWN_GRACE).await;
            } => tracing::debug!("store server stopped with streams still open"),
        }
        Ok(())
    }

    /// A channel to this store that needs no socket: each connection the channel opens is a
    /// `tokio::io::duplex` pipe whose other end is served by a server task that lives as long as
    /// the channel (and its clones). Must be called inside a tokio runtime.
    pub fn channel(&self) -> Channel {
        let (connections, accepted) =
            mpsc::channel::<io::Result<InProcessConnection>>(IN_PROCESS_ACCEPT_QUEUE);
        let store = self.clone();
        tokio::spawn(async move {
            let incoming = ReceiverStream::new(accepted);
            if let Err(error) = store.serve_incoming(incoming, std::future::pending()).await {
                tracing::warn!(%error, "in-process store server failed");
            }
        });
        let connector = tower::service_fn(move |_: Uri| {
            let connections = connections.clone();
            async move {
                let (client, server) = tokio::io::duplex(IN_PROCESS_PIPE_BYTES);
                connections
                    .send(Ok(InProcessConnection(server)))
                    .await
                    .map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::ConnectionRefused,
                            "in-process store server is gone",
                        )
                    })?;
                Ok::<_, io::Error>(TokioIo::new(client))
            }
        });
        Endpoint::from_static(IN_PROCESS_URI).connect_with_connector_lazy(connector)
    }
}

/// The server's end of an in-process connection.
pub(crate) struct InProcessConnection(pub(crate) DuplexStream);

impl Connected for InProcessConnection {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for InProcessConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for InProcessConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
