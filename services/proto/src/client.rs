//! Client side of the API: channels to one of several nodes, with failover.
//!
//! Every client (the CLI, the device simulator, the load generator) is given a list of node
//! addresses. [`Failover`] keeps a channel to one of them and, when a call fails in a way that
//! says "this node is gone" (connection refused, reset, `UNAVAILABLE`, a timeout), moves to the
//! next address and retries, up to one full turn of the list. Retrying is safe because every
//! mutating call is idempotent on the server (a press carries its `press_id`; operator actions
//! are idempotent state transitions).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

pub use centinela_tls::ClientTls;

/// How long to wait for a TCP + HTTP/2 connection to a node before trying the next one.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default deadline of one unary call; long enough for a store write during an etcd election.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 pings on idle connections, so a dead node is noticed in about a second even when
/// the connection is only used by a server stream (a camera's command channel, say).
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_millis(500);
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Parses `URL[,URL...]` into endpoints, refusing anything that is not an http(s) URL.
pub fn parse_addrs(list: &str) -> Result<Vec<String>, String> {
    let addrs: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(normalize_addr)
        .collect::<Result<_, _>>()?;
    if addrs.is_empty() {
        return Err("no address given (expected URL[,URL...], e.g. http://127.0.0.1:7400)".into());
    }
    Ok(addrs)
}

fn normalize_addr(raw: &str) -> Result<String, String> {
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    if !(with_scheme.starts_with("http://") || with_scheme.starts_with("https://")) {
        return Err(format!("'{raw}' is not an http:// or https:// address"));
    }
    Endpoint::from_shared(with_scheme.clone())
        .map_err(|e| format!("'{raw}' is not a valid address: {e}"))?;
    Ok(with_scheme)
}

/// Builds the endpoint every client uses for one node address.
pub fn endpoint(addr: &str) -> Result<Endpoint, Status> {
    Endpoint::from_shared(addr.to_string())
        .map(|e| {
            e.connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
                .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
                .keep_alive_while_idle(true)
        })
        .map_err(|e| Status::invalid_argument(format!("bad address {addr}: {e}")))
}

/// The credentials a client presents on every call, each as one `authorization` value:
/// `Bearer TOKEN` for a device (the shared device token, `CENTINELA_DEVICE_TOKEN`, or a
/// device's own), `Basic` for an operator (`CENTINELA_OPERATOR` and `CENTINELA_PASSWORD`, a
/// console account), `Node ID SECRET` for a node calling another. A node serves each call
/// with the credential that fits it (docs/security.md).
#[derive(Clone, Default)]
pub struct Credentials {
    bearer: Option<MetadataValue<Ascii>>,
    basic: Option<MetadataValue<Ascii>>,
    node: Option<MetadataValue<Ascii>>,
}

impl Credentials {
    /// `token` is the device token (`CENTINELA_DEVICE_TOKEN`); `None` or empty sends nothing.
    pub fn new(token: Option<&str>) -> Result<Self, String> {
        let bearer = match token.filter(|t| !t.is_empty()) {
            None => None,
            Some(token) if !token.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err("the device token must be printable ASCII, without spaces".into());
            }
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| "the device token must be printable ASCII".to_string())?,
            ),
        };
        Ok(Self {
            bearer,
            ..Self::default()
        })
    }

    /// Adds an operator's console account; without a password (an open demo node needs
    /// none) nothing is added.
    pub fn with_operator(mut self, operator: &str, password: Option<&str>) -> Result<Self, String> {
        let Some(password) = password.filter(|p| !p.is_empty()) else {
            return Ok(self);
        };
        if operator.is_empty() {
            return Err("an operator password needs an operator id (--operator)".into());
        }
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{operator}:{password}"));
        self.basic = Some(
            format!("Basic {encoded}")
                .parse()
                .map_err(|_| "the operator credentials do not fit in metadata".to_string())?,
        );
        Ok(self)
    }

    /// A node's credentials for calling other nodes: the whole `authorization` value.
    pub fn node(authorization: &str) -> Result<Self, String> {
        Ok(Self {
            node: Some(
                authorization
                    .parse()
                    .map_err(|_| "the cluster secret must be printable ASCII".to_string())?,
            ),
            ..Self::default()
        })
    }

    /// Whether an operator's account is presented.
    pub fn has_operator(&self) -> bool {
        self.basic.is_some()
    }

    /// The same credentials without the operator's account: what a device call presents (a
    /// node checks every credential a call carries, and a press needs no password).
    pub fn device_only(&self) -> Self {
        Self {
            basic: None,
            ..self.clone()
        }
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        for value in [&self.bearer, &self.basic, &self.node]
            .into_iter()
            .flatten()
        {
            request
                .metadata_mut()
                .append("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel that presents the configured credentials on every call.
pub type AuthChannel = InterceptedService<Channel, Credentials>;

/// Whether a failed call says the node (not the request) is the problem, so another node may
/// answer it.
pub fn is_node_failure(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => true,
        // Transport errors surface as Unknown with a source error from hyper.
        Code::Unknown => {
            let msg = status.message().to_ascii_lowercase();
            msg.contains("transport") || msg.contains("connection") || msg.contains("broken pipe")
        }
        _ => false,
    }
}

/// A set of node addresses, one of which is in use; see the module docs.
#[derive(Clone)]
pub struct Failover {
    addrs: Arc<Vec<String>>,
    current: Arc<AtomicUsize>,
    credentials: Credentials,
    call_timeout: Duration,
    /// How `https://` addresses are spoken (`--ca`, `--cert`, `--key`); without it an
    /// `https://` address is an error, never plaintext.
    tls: Option<ClientTls>,
    /// The channel to the address in use, kept across calls (shared by clones): one HTTP/2
    /// connection carries them all, so a call costs no TCP connect and, over TLS, no
    /// handshake (docs/benchmarks.md, "TLS against plaintext"). Dropped when the address is
    /// left or a call through it fails as a node failure.
    open: Arc<Mutex<Option<(usize, Channel)>>>,
    /// Held while a connection is being opened, so that the callers who find none open (a
    /// simulator's thousands of devices starting at once) wait for one connection instead of
    /// each opening its own: every extra connection costs the node its HTTP/2 buffers and a
    /// task, and a device stream is meant to share one.
    connecting: Arc<tokio::sync::Mutex<()>>,
}

impl Failover {
    pub fn new(addrs: Vec<String>, credentials: Credentials) -> Self {
        assert!(!addrs.is_empty(), "Failover needs at least one address");
        Self {
            addrs: Arc::new(addrs),
            current: Arc::new(AtomicUsize::new(0)),
            credentials,
            call_timeout: CALL_TIMEOUT,
            tls: None,
            open: Arc::default(),
            connecting: Arc::default(),
        }
    }

    /// Speaks TLS to the `https://` addresses.
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// The same addresses, credentials and settings, with a connection of its own (not shared
    /// with `self` or its clones), starting at address `start` (modulo their number). For a
    /// client that carries more long-lived streams than one HTTP/2 connection may (a node
    /// caps concurrent streams per connection): the simulator of a whole district's cameras.
    pub fn separate(&self, start: usize) -> Self {
        Self {
            addrs: self.addrs.clone(),
            current: Arc::new(AtomicUsize::new(start % self.addrs.len())),
            credentials: self.credentials.clone(),
            call_timeout: self.call_timeout,
            tls: self.tls.clone(),
            open: Arc::default(),
            connecting: Arc::default(),
        }
    }

    /// The same credentials and settings for the one address `addr` (a URL with the scheme of
    /// this one's addresses), with a connection of its own: where a device goes when a node
    /// names its owner (`crate::redirect`).
    pub fn to(&self, addr: &str) -> Self {
        Self {
            addrs: Arc::new(vec![addr.to_string()]),
            current: Arc::new(AtomicUsize::new(0)),
            credentials: self.credentials.clone(),
            call_timeout: self.call_timeout,
            tls: self.tls.clone(),
            open: Arc::default(),
            connecting: Arc::default(),
        }
    }

    pub fn credentials(&self) -> Credentials {
        self.credentials.clone()
    }

    /// The address currently in use.
    pub fn current_addr(&self) -> &str {
        &self.addrs[self.current.load(Ordering::Relaxed) % self.addrs.len()]
    }

    /// Connects to the current address, moving along the list until one accepts.
    pub async fn connect(&self) -> Result<(Channel, String), Status> {
        if let Some(kept) = self.kept() {
            return Ok(kept);
        }
        // One caller opens; the others find its channel when they get the lock.
        let _connecting = self.connecting.lock().await;
        let mut last = None;
        for _ in 0..self.addrs.len() {
            let index = self.current.load(Ordering::Relaxed) % self.addrs.len();
            let addr = &self.addrs[index];
            if let Some((open, channel)) = self.open.lock().expect("not poisoned").as_ref()
                && *open == index
            {
                return Ok((channel.clone(), addr.clone()));
            }
            match self.open(addr).await {
                Ok(channel) => {
                    *self.open.lock().expect("not poisoned") = Some((index, channel.clone()));
                    return Ok((channel, addr.clone()));
                }
                Err(e) => {
                    last = Some(format!("{addr}: {e}"));
                    self.advance(index);
                }
            }
        }
        Err(Status::unavailable(format!(
            "no node reachable (tried {}); last error: {}",
            self.addrs.join(", "),
            last.unwrap_or_default()
        )))
    }

    /// The kept channel, when it is to the address in use.
    fn kept(&self) -> Option<(Channel, String)> {
        let index = self.current.load(Ordering::Relaxed) % self.addrs.len();
        let open = self.open.lock().expect("not poisoned");
        match open.as_ref() {
            Some((kept, channel)) if *kept == index => {
                Some((channel.clone(), self.addrs[index].clone()))
            }
            _ => None,
        }
    }

    /// A channel to `addr`: TLS for `https://` (verifying that the node's certificate names
    /// the address's host), plaintext for `http://`.
    async fn open(&self, addr: &str) -> Result<Channel, Status> {
        if !addr.starts_with("https://") {
            return endpoint(addr)?
                .timeout(self.call_timeout)
                .connect()
                .await
                .map_err(|e| Status::unavailable(centinela_tls::describe(&e)));
        }
        let Some(tls) = &self.tls else {
            return Err(Status::failed_precondition(format!(
                "{addr} is an https:// address but no CA is given to check the node's certificate: pass --ca (or CENTINELA_TLS_CA), or use http:// for a plaintext node"
            )));
        };
        let name = centinela_tls::server_name_of(addr)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        endpoint(&centinela_tls::plain_uri(addr))?
            .timeout(self.call_timeout)
            .connect_with_connector(tls.connector(name))
            .await
            .map_err(|e| Status::unavailable(centinela_tls::describe(&e)))
    }

    /// Moves past `failed_index`, unless another caller already moved; its kept channel is
    /// dropped either way (the next call to it connects afresh).
    pub fn advance(&self, failed_index: usize) {
        self.forget(failed_index);
        let _ = self.current.compare_exchange(
            failed_index,
            (failed_index + 1) % self.addrs.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Drops the kept channel when it is to `index`.
    fn forget(&self, index: usize) {
        let mut open = self.open.lock().expect("not poisoned");
        if open.as_ref().is_some_and(|(kept, _)| *kept == index) {
            *open = None;
        }
    }

    /// Moves past `addr` when it is the one in use (a long-lived stream to it broke).
    pub fn advance_from(&self, addr: &str) {
        if let Some(index) = self.addrs.iter().position(|a| a == addr) {
            self.advance(index);
        }
    }

    /// Runs `call` against the current node; on a node failure moves to the next address and
    /// retries, up to one turn of the list. `call` must be idempotent.
    pub async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let mut last = None;
        for _ in 0..self.addrs.len() {
            let (channel, addr) = match self.connect().await {
                Ok(c) => c,
                Err(status) => return Err(last.unwrap_or(status)),
            };
            // The address connected to (connecting may have moved past others).
            let index = self
                .addrs
                .iter()
                .position(|a| *a == addr)
                .unwrap_or_default();
            match call(channel).await {
                Ok(value) => return Ok(value),
                Err(status) if is_node_failure(&status) && self.addrs.len() > 1 => {
                    self.advance(index);
                    last = Some(status);
                }
                Err(status) => {
                    if is_node_failure(&status) {
                        self.forget(index);
                    }
                    return Err(status);
                }
            }
        }
        Err(last.unwrap_or_else(|| Status::unavailable("no node answered")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_adds_a_scheme() {
        assert_eq!(
            parse_addrs("http://a:1, b:2").unwrap(),
            vec!["http://a:1".to_string(), "http://b:2".to_string()]
        );
        assert!(parse_addrs(" , ").is_err());
        assert!(parse_addrs("ftp://x:1").is_err());
    }

    #[test]
    fn a_separate_failover_starts_where_asked_and_moves_alone() {
        let addrs = parse_addrs("a:1,b:2,c:3").unwrap();
        let shared = Failover::new(addrs, Credentials::new(None).unwrap());
        let separate = shared.separate(4);
        assert_eq!(separate.current_addr(), "http://b:2");
        separate.advance(1);
        assert_eq!(separate.current_addr(), "http://c:3");
        assert_eq!(shared.current_addr(), "http://a:1");
        assert!(!Arc::ptr_eq(&shared.open, &separate.open));
        let owner = shared.to("http://z:9");
        assert_eq!(owner.addrs(), ["http://z:9".to_string()]);
        assert_eq!(owner.current_addr(), "http://z:9");
        assert!(!Arc::ptr_eq(&shared.open, &owner.open));
    }

    #[test]
    fn credentials_refuse_non_ascii_tokens() {
        assert!(Credentials::new(Some("ñandú")).is_err());
        assert!(Credentials::new(Some("abc")).is_ok());
        assert!(Credentials::new(None).unwrap().bearer.is_none());
    }

    #[test]
    fn every_credential_is_one_authorization_value() {
        let mut credentials = Credentials::new(Some("device-token"))
            .unwrap()
            .with_operator("ana", Some("clave:secreta"))
            .unwrap();
        assert!(credentials.has_operator());
        let request = credentials.call(Request::new(())).unwrap();
        let values: Vec<&str> = request
            .metadata()
            .get_all("authorization")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            values,
            vec!["Bearer device-token", "Basic YW5hOmNsYXZlOnNlY3JldGE="]
        );
        let none = Credentials::default().with_operator("cli", None).unwrap();
        assert!(!none.has_operator());
        assert!(Credentials::default().with_operator("", Some("x")).is_err());
    }
}
