//! The client side: what the CLI, the simulated devices and a node dialing its peers use.

use std::io;
use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::reload::{Files, Pair};
use crate::{Error, pem, provider};

/// A client's TLS: the CA it trusts and, optionally, the certificate it presents (re-read
/// when its files change).
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the CAs of `ca`; presents the pair of `identity` when given.
    pub fn from_files(ca: &Path, identity: Option<Files>) -> Result<Self, Error> {
        let pair = identity
            .map(|files| Pair::load(files, provider()))
            .transpose()?;
        Self::new(ca, pair)
    }

    pub fn new(ca: &Path, identity: Option<Arc<Pair>>) -> Result<Self, Error> {
        let roots = pem::roots("CA", ca)?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match identity {
            Some(pair) => builder.with_client_cert_resolver(pair),
            None => builder.with_no_client_auth(),
        };
        // gRPC is HTTP/2; a server that also speaks HTTP/1 must not pick it.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The same TLS offering HTTP/1.1 instead of HTTP/2 (ALPN): a client of the console.
    pub fn for_http1(&self) -> Self {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            config: Arc::new(config),
        }
    }

    /// A tonic connector that dials the URI's host and port over TCP and speaks TLS on it,
    /// verifying that the server's certificate names `server_name` (the URL's host for a
    /// client; the member's node name for a node dialing a peer). Pair it with an `http://`
    /// endpoint URI ([`plain_uri`]): the TLS is done here, not by tonic.
    pub fn connector(
        &self,
        server_name: ServerName<'static>,
    ) -> impl tower::Service<
        http::Uri,
        Response = TokioIo<TlsStream<TcpStream>>,
        Error = io::Error,
        Future = BoxFuture<'static, io::Result<TokioIo<TlsStream<TcpStream>>>>,
    > + Clone
    + Send
    + 'static {
        let connector = TlsConnector::from(self.config.clone());
        tower::service_fn(move |uri: http::Uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            let dial: BoxFuture<'static, io::Result<TokioIo<TlsStream<TcpStream>>>> =
                Box::pin(async move {
                    let host = uri
                        .host()
                        .ok_or_else(|| {
                            io::Error::new(io::ErrorKind::InvalidInput, "address without a host")
                        })?
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string();
                    let port = uri.port_u16().unwrap_or(443);
                    let tcp = TcpStream::connect((host.as_str(), port)).await?;
                    let _ = tcp.set_nodelay(true);
                    let tls = connector.connect(server_name, tcp).await?;
                    Ok(TokioIo::new(tls))
                });
            dial
        })
    }
}

/// The TLS server name of an `https://HOST:PORT` URL: its host (an IP address or a DNS name).
pub fn server_name_of(url: &str) -> Result<ServerName<'static>, Error> {
    let uri: http::Uri = url.parse().map_err(|e| Error::Invalid {
        what: format!("address {url}"),
        reason: format!("{e}"),
    })?;
    let host = uri
        .host()
        .ok_or_else(|| Error::Invalid {
            what: format!("address {url}"),
            reason: "no host".into(),
        })?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    ServerName::try_from(host).map_err(|e| Error::Invalid {
        what: format!("address {url}"),
        reason: format!("not a host name a certificate can name: {e}"),
    })
}

/// `https://…` as `http://…`: the URI tonic is given when [`ClientTls::connector`] does the
/// TLS (tonic built with its own TLS refuses an https URI it does not secure itself).
pub fn plain_uri(url: &str) -> String {
    match url.strip_prefix("https://") {
        Some(rest) => format!("http://{rest}"),
        None => url.to_string(),
    }
}
