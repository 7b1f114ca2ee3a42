//! The server side: a listener's TLS, and the stream of handshaken connections a server
//! takes instead of plain ones.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::limits::{HANDSHAKE_TIMEOUT, HANDSHAKEN_QUEUE};
use crate::reload::{Files, Pair};
use crate::{Error, describe, pem, provider};

/// Which application protocol a listener speaks (TLS ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC: HTTP/2 only.
    Grpc,
    /// The console: HTTP/1.1 (it serves HTTP/1 only).
    Http1,
}

/// A listener's TLS: the node's certificate (re-read when its files change) and, when a CA
/// is given, the client certificates it accepts. Client certificates are asked for but not
/// required: operators, the CLI and devices with tokens have none; a certificate that *is*
/// presented must chain to the CA, or the handshake fails.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    pair: Arc<Pair>,
    verifies_clients: bool,
}

impl ServerTls {
    pub fn new(
        pair: Arc<Pair>,
        client_ca: Option<&std::path::Path>,
        protocol: Protocol,
    ) -> Result<Self, Error> {
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(e.to_string()))?;
        let builder = match client_ca {
            Some(path) => {
                let roots = pem::roots("CA", path)?;
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| Error::Invalid {
                        what: format!("CA {}", path.display()),
                        reason: e.to_string(),
                    })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(pair.clone());
        config.alpn_protocols = match protocol {
            Protocol::Grpc => vec![b"h2".to_vec()],
            Protocol::Http1 => vec![b"http/1.1".to_vec()],
        };
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            pair,
            verifies_clients: client_ca.is_some(),
        })
    }

    /// Loads `files` and builds a listener's TLS in one step.
    pub fn from_files(
        files: Files,
        client_ca: Option<&std::path::Path>,
        protocol: Protocol,
    ) -> Result<Self, Error> {
        let pair = Pair::load(files, provider())?;
        Self::new(pair, client_ca, protocol)
    }

    pub fn pair(&self) -> &Arc<Pair> {
        &self.pair
    }

    /// Whether client certificates are verified (a CA was given).
    pub fn verifies_clients(&self) -> bool {
        self.verifies_clients
    }

    /// The connections of `incoming` once their handshake succeeded. Each handshake runs in
    /// its own task (a slow client never holds up the others) and is given
    /// [`HANDSHAKE_TIMEOUT`]; a failed one is closed and logged at debug level (a plaintext
    /// client, a wrong CA: the client is told by its own TLS error). The stream ends when
    /// `incoming` does; dropping it stops accepting.
    pub fn incoming<S, IO>(
        &self,
        incoming: S,
    ) -> impl Stream<Item = io::Result<TlsConnection<IO>>> + Send + 'static
    where
        S: Stream<Item = io::Result<IO>> + Send + 'static,
        IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    {
        let (sender, receiver) = mpsc::channel(HANDSHAKEN_QUEUE);
        let acceptor = self.acceptor.clone();
        tokio::spawn(async move {
            let mut incoming = std::pin::pin!(incoming);
            loop {
                let next = tokio::select! {
                    () = sender.closed() => break,
                    next = incoming.next() => next,
                };
                let io = match next {
                    Some(Ok(io)) => io,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "accept failed");
                        continue;
                    }
                    None => break,
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    let info = io.connect_info();
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                        Ok(Ok(stream)) => {
                            let peer_certificates =
                                stream.get_ref().1.peer_certificates().map(|chain| {
                                    Arc::new(chain.iter().map(|c| c.clone().into_owned()).collect())
                                });
                            let connection = TlsConnection {
                                stream,
                                info: Box::new(TlsInfo {
                                    inner: info,
                                    peer_certificates,
                                }),
                            };
                            let _ = sender.send(Ok(connection)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %describe(&e), "TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::debug!(
                                timeout_s = HANDSHAKE_TIMEOUT.as_secs(),
                                "TLS handshake timed out"
                            );
                        }
                    }
                });
            }
        });
        futures::stream::unfold(receiver, |mut receiver| async move {
            let next = receiver.recv().await?;
            Some((next, receiver))
        })
    }
}

/// What a server knows of a TLS connection: the transport's own information and the
/// client's certificate chain (leaf first), verified against the CA, if it presented one.
#[derive(Debug, Clone)]
pub struct TlsInfo<T> {
    pub inner: T,
    pub peer_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl<T> TlsInfo<T> {
    /// The client's leaf certificate, if it presented one.
    pub fn client_certificate(&self) -> Option<&CertificateDer<'static>> {
        self.peer_certificates
            .as_ref()
            .and_then(|chain| chain.first())
    }
}

/// Where a connection comes from, whether or not it is TLS.
pub trait RemoteAddr {
    fn remote_addr(&self) -> Option<SocketAddr>;
}

impl RemoteAddr for TcpConnectInfo {
    fn remote_addr(&self) -> Option<SocketAddr> {
        TcpConnectInfo::remote_addr(self)
    }
}

impl<T: RemoteAddr> RemoteAddr for TlsInfo<T> {
    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }
}

/// A server-side TLS connection over `IO` (a bounded TCP connection, say).
pub struct TlsConnection<IO: Connected> {
    stream: tokio_rustls::server::TlsStream<IO>,
    /// Boxed: a connection must be `Unpin`, whatever its transport's information is.
    info: Box<TlsInfo<<IO as Connected>::ConnectInfo>>,
}

impl<IO> Connected for TlsConnection<IO>
where
    IO: Connected,
{
    type ConnectInfo = TlsInfo<IO::ConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        (*self.info).clone()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Connected> AsyncRead for TlsConnection<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Connected> AsyncWrite for TlsConnection<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
