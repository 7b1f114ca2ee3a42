//! tonic over turmoil's simulated TCP: a server's incoming connections and a client's
//! lazily connecting channel (stack-notes.md, "turmoil 0.7 with tonic 0.14").

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use centinela_api::peer::PeerDialer;
use centinela_node::Connection;

/// The port every node serves gRPC on (hosts have their own addresses, so one port serves all).
pub const GRPC_PORT: u16 = 7400;
/// The port the store host serves etcd's API on.
pub const STORE_PORT: u16 = 2379;
/// The store host's name.
pub const STORE_HOST: &str = "store";

/// HTTP/2 PINGs on every simulated connection: a partition drops segments for good, and an
/// HTTP/2 connection that lost some stays wedged until a PING goes unanswered.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_millis(500);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_millis(1000);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The connections accepted on `port` of the current host, for `serve_with_incoming`.
pub async fn incoming(port: u16) -> io::Result<BoxStream<'static, io::Result<Connection>>> {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
    Ok(futures::stream::unfold(listener, |listener| async move {
        loop {
            // An accept error is about one connection; keep serving the others.
            if let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                return Some((Ok(Connection(Box::new(stream))), listener));
            }
        }
    })
    .boxed())
}

/// A lazily connecting channel to `url` (`http://host:port`) over the simulated network.
pub fn channel(url: &str) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("bad address {url}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(|uri: Uri| async move {
            let host = uri.host().unwrap_or_default().to_string();
            let port = uri.port_u16().unwrap_or(80);
            let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok::<_, io::Error>(TokioIo::new(stream))
        })),
    )
}

/// A channel to node `host`'s gRPC port.
pub fn node_channel(host: &str) -> Channel {
    channel(&format!("http://{host}:{GRPC_PORT}")).expect("simulated node addresses are valid")
}

/// How nodes dial each other in the simulation.
pub fn peer_dialer() -> PeerDialer {
    Arc::new(channel)
}
