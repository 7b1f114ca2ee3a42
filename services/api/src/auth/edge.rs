//! The guard around every `centinela.v1` service, and the edge state its guards share.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::time::Instant;
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;
use tower::Service;

use centinela_core::ids::{NodeId, OperatorId};
use centinela_tls::names::Kind;
use centinela_tls::{CertificateDer, TlsInfo};
use tonic::transport::server::TcpConnectInfo;

use super::identity::{
    Caller, Device, OperatorIdentity, Refusal, no_credentials, officer_refused, rate_limited,
};
use super::rate::RateLimiter;
use super::security::{Digest32, Mode, Security, digest, same};
use crate::limits::{
    AUTHORIZATION_LEN_MAX, AUTHORIZATION_VALUES_MAX, GRPC_FRAME_PREFIX_BYTES,
    OPERATOR_CACHE_ENTRIES_MAX, OPERATOR_CACHE_TTL, OPERATOR_RATE, PEER_RATE, REQUEST_BODY_TIMEOUT,
    REQUEST_BYTES_MAX,
};

/// The runtime side of [`Security`]: shared by every guard of a node.
pub struct Edge {
    security: Security,
    limiter: Arc<RateLimiter>,
    /// Verified operator credentials by digest of the whole `authorization` value, with when
    /// they were verified ([`OPERATOR_CACHE_TTL`]).
    operators: Mutex<HashMap<Digest32, (OperatorIdentity, Instant)>>,
}

/// Which kind of service a guard protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Devices,
    Operator,
    Peer,
}

/// Operator methods the shared device token may call (the simulator's discovery, and the
/// load generator's baseline).
const INVENTORY_METHODS: &[&str] = &[
    "/centinela.v1.Operator/ListButtons",
    "/centinela.v1.Operator/ListCameras",
    "/centinela.v1.Operator/ListUnits",
    "/centinela.v1.Operator/Ping",
];

fn unauthenticated(reason: impl Into<String>) -> Status {
    Status::unauthenticated(reason.into())
}

/// Password guesses from this source (or on this account) are throttled: no password was
/// checked. The wait is in the message and in `retry-after` (seconds, as HTTP's header).
fn throttled(retry_after: Duration) -> Status {
    let seconds = retry_after.as_secs().max(1);
    let mut status = Status::resource_exhausted(format!(
        "too many failed sign-ins from this address or on this account; retry in {seconds} s"
    ));
    if let Ok(value) = seconds.to_string().parse() {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

impl Edge {
    pub fn new(security: Security) -> Arc<Self> {
        Arc::new(Self {
            security,
            limiter: Arc::new(RateLimiter::default()),
            operators: Mutex::new(HashMap::new()),
        })
    }

    pub fn security(&self) -> &Security {
        &self.security
    }

    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    /// The caller an officer signed in to the brigade app acts as: its unit, as if it had
    /// presented the unit's own token (same checks, same per-device rate limits).
    pub fn unit_caller(&self, unit: centinela_core::ids::BrigadeId) -> Caller {
        Caller {
            device: Some(Device::Unit(unit)),
            limiter: Some(self.limiter.clone()),
            ..Caller::default()
        }
    }

    /// Wraps a service in this edge's guard.
    pub fn guard<S>(self: &Arc<Self>, class: Class, inner: S) -> Guard<S> {
        Guard {
            inner,
            edge: self.clone(),
            class,
        }
    }

    /// Every `authorization` value of a call from an unknown source, checked.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Caller, Status> {
        self.authenticate_from(headers, None).await
    }

    /// Every `authorization` value of a call from `source` (the peer's address, for
    /// throttling password guesses per source), checked.
    pub async fn authenticate_from(
        &self,
        headers: &http::HeaderMap,
        source: Option<IpAddr>,
    ) -> Result<Caller, Status> {
        let mut caller = Caller {
            open: self.security.mode == Mode::Open,
            limiter: Some(self.limiter.clone()),
            ..Caller::default()
        };
        let values: Vec<&http::HeaderValue> = headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .collect();
        if values.len() > AUTHORIZATION_VALUES_MAX {
            return Err(unauthenticated(format!(
                "{} authorization values, at most {AUTHORIZATION_VALUES_MAX}",
                values.len()
            )));
        }
        for value in values {
            if value.len() > AUTHORIZATION_LEN_MAX {
                return Err(unauthenticated(format!(
                    "an authorization value of {} bytes, at most {AUTHORIZATION_LEN_MAX}",
                    value.len()
                )));
            }
            let text = value
                .to_str()
                .map_err(|_| unauthenticated("authorization is not printable ascii"))?;
            let (scheme, credential) = text
                .split_once(' ')
                .ok_or_else(|| unauthenticated("authorization must be `SCHEME CREDENTIAL`"))?;
            let credential = credential.trim();
            let twice = |scheme: &str| unauthenticated(format!("two {scheme} credentials"));
            match scheme.to_ascii_lowercase().as_str() {
                "bearer" => {
                    if caller.device.is_some() {
                        return Err(twice("bearer"));
                    }
                    caller.device = Some(self.device(credential)?);
                }
                "basic" => {
                    if caller.operator.is_some() {
                        return Err(twice("basic"));
                    }
                    caller.operator =
                        Some(self.operator(value.as_bytes(), credential, source).await?);
                }
                "node" => {
                    if caller.peer.is_some() {
                        return Err(twice("node"));
                    }
                    caller.peer = Some(self.peer(credential)?);
                }
                other => {
                    return Err(unauthenticated(format!(
                        "unsupported authorization scheme {:?} (Bearer, Basic or Node)",
                        other.chars().take(16).collect::<String>()
                    )));
                }
            }
        }
        Ok(caller)
    }

    fn device(&self, token: &str) -> Result<Device, Status> {
        let presented = digest(token.as_bytes());
        if let Some(device) = self.security.devices.get(&presented) {
            return Ok(device.clone());
        }
        match &self.security.fleet {
            Some(fleet) if same(fleet, &presented) => Ok(Device::Fleet),
            _ => Err(unauthenticated(
                "unknown device token (is CENTINELA_DEVICE_TOKEN the one the node was started with?)",
            )),
        }
    }

    async fn operator(
        &self,
        value: &[u8],
        credential: &str,
        source: Option<IpAddr>,
    ) -> Result<OperatorIdentity, Status> {
        let refused = || unauthenticated("unknown operator or wrong password");
        let key = digest(value);
        let now = Instant::now();
        if let Some((identity, at)) = self
            .operators
            .lock()
            .expect("operator cache poisoned")
            .get(&key)
            && now.saturating_duration_since(*at) < OPERATOR_CACHE_TTL
        {
            return Ok(identity.clone());
        }
        let Some(directory) = &self.security.operators else {
            return Err(unauthenticated("this node has no operator accounts"));
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credential)
            .map_err(|_| unauthenticated("basic credentials are not base64"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| unauthenticated("basic credentials are not utf-8"))?;
        // Operator ids may contain ':' (RFC 7617 user ids may not): split where a configured
        // account ends, else at the first ':'.
        let splits: Vec<usize> = decoded.match_indices(':').map(|(i, _)| i).collect();
        let split = splits
            .iter()
            .copied()
            .find(|&i| directory.knows(&decoded[..i]))
            .or_else(|| splits.first().copied())
            .ok_or_else(|| unauthenticated("basic credentials must be ID:PASSWORD"))?;
        let (operator, password) = (&decoded[..split], &decoded[split + 1..]);
        let role = match directory.verify(operator, password, source).await {
            Ok(role) => role,
            Err(Refusal::Wrong) => return Err(refused()),
            Err(Refusal::Throttled { retry_after }) => return Err(throttled(retry_after)),
        };
        let id = OperatorId::new(operator).map_err(|_| refused())?;
        let identity = OperatorIdentity { id, role };
        let mut cache = self.operators.lock().expect("operator cache poisoned");
        if cache.len() >= OPERATOR_CACHE_ENTRIES_MAX {
            cache.retain(|_, (_, at)| now.saturating_duration_since(*at) < OPERATOR_CACHE_TTL);
            if cache.len() >= OPERATOR_CACHE_ENTRIES_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (identity.clone(), now));
        Ok(identity)
    }

    fn peer(&self, credential: &str) -> Result<NodeId, Status> {
        let (node, secret) = credential
            .split_once(' ')
            .ok_or_else(|| unauthenticated("node credentials must be `NODE_ID SECRET`"))?;
        let node = NodeId::new(node).map_err(|e| unauthenticated(e.to_string()))?;
        match &self.security.cluster {
            Some((_, expected)) if same(expected, &digest(secret.trim().as_bytes())) => Ok(node),
            _ => Err(unauthenticated("wrong cluster secret")),
        }
    }

    /// Everything the guard checks before the service sees the call; see the module docs.
    pub async fn admit(
        &self,
        class: Class,
        request: http::Request<Body>,
    ) -> Result<http::Request<Body>, Status> {
        // The peer's address, when the call came over TCP (not in the simulation), with or
        // without TLS; and the client's certificate, when it presented one over TLS.
        let extensions = request.extensions();
        let tls = extensions.get::<TlsInfo<TcpConnectInfo>>();
        let source = tls
            .map(|info| info.inner.remote_addr())
            .or_else(|| {
                extensions
                    .get::<TcpConnectInfo>()
                    .map(|info| info.remote_addr())
            })
            .flatten()
            .map(|addr| addr.ip());
        let certificate = tls.and_then(|info| info.client_certificate()).cloned();
        let mut caller = self.authenticate_from(request.headers(), source).await?;
        if class == Class::Devices {
            // A device may prove itself by its certificate instead of a token; which device
            // it names is checked by the handler (`Caller::act_as_button`, ...).
            caller.certificate = certificate.clone();
        }
        if class == Class::Peer && self.security.node_certificates {
            // Before anything else of a peer call: the certificate must name the node the
            // call says it comes from. A secret alone (stolen, or sent to an impostor by an
            // older node) no longer makes a peer.
            let node = certified_node(
                request.headers(),
                caller.peer.as_ref(),
                certificate.as_ref(),
            )?;
            caller.peer = Some(node);
        }
        let path = request.uri().path();
        // An officer's account acts only in the brigade app, for its unit: never through the
        // operator API, open node or not (docs/security.md, "Officer accounts").
        if class == Class::Operator
            && let Some(me) = &caller.operator
            && !me.role.is_console()
        {
            return Err(officer_refused(&me.id));
        }
        if self.security.mode == Mode::Enforced {
            if caller.is_anonymous() {
                return Err(no_credentials());
            }
            let allowed = match class {
                Class::Devices => caller.device.is_some() || caller.certificate.is_some(),
                Class::Operator => {
                    caller.operator.is_some()
                        || (caller.device == Some(Device::Fleet)
                            && INVENTORY_METHODS.contains(&path))
                }
                Class::Peer => caller.peer.is_some(),
            };
            if !allowed {
                return Err(Status::permission_denied(match class {
                    Class::Devices => "device calls take a device token or a device certificate",
                    Class::Operator => {
                        "operator calls take an operator's credentials (CENTINELA_OPERATOR, CENTINELA_PASSWORD)"
                    }
                    Class::Peer => "the peer service is for the cluster's nodes only",
                }));
            }
        }
        // Devices are limited per device in the handlers (the device is named in the body).
        let limit = match (class, &caller.operator, &caller.peer) {
            (Class::Peer, _, Some(node)) => Some((format!("peer:{node}"), PEER_RATE)),
            (Class::Peer, _, None) => Some(("peer".to_string(), PEER_RATE)),
            (Class::Operator, Some(me), _) => Some((format!("operator:{}", me.id), OPERATOR_RATE)),
            (Class::Operator, None, _) => Some(("operator".to_string(), OPERATOR_RATE)),
            (Class::Devices, _, _) => None,
        };
        if let Some((key, rate)) = limit
            && !self.limiter.admit(&key, rate)
        {
            return Err(rate_limited(&key, rate));
        }
        let (mut parts, body) = request.into_parts();
        let body = read_limited(body).await?;
        parts.extensions.insert(caller);
        Ok(http::Request::from_parts(parts, body))
    }
}

/// The header in which a node names itself on every peer call (besides its `Node ID SECRET`
/// credential, which an open node does not send): the name its certificate must carry.
pub const NODE_HEADER: &str = "centinela-node";

/// The node a peer call comes from, proven by its client certificate: the node it names
/// (its `Node` credential, or the [`NODE_HEADER`]) must be the one the certificate names.
fn certified_node(
    headers: &http::HeaderMap,
    credential: Option<&NodeId>,
    certificate: Option<&CertificateDer<'static>>,
) -> Result<NodeId, Status> {
    let refused = |reason: String| Status::permission_denied(reason);
    let Some(certificate) = certificate else {
        return Err(refused(
            "the peer service takes a node certificate (TLS client certificate signed by the cluster CA)"
                .into(),
        ));
    };
    let named = headers
        .get(NODE_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(|value| NodeId::new(value.trim()).map_err(|e| refused(e.to_string())))
        .transpose()?;
    let node = match (credential.cloned(), named) {
        (Some(credential), Some(named)) if credential != named => {
            return Err(refused(format!(
                "the call names node {named} but its credential is node {credential}"
            )));
        }
        (Some(node), _) | (None, Some(node)) => node,
        (None, None) => {
            return Err(refused(format!(
                "a peer call must name its node ({NODE_HEADER} or a Node credential)"
            )));
        }
    };
    if !centinela_tls::names::names(certificate, Kind::Node, node.as_str()) {
        return Err(refused(format!(
            "the client certificate does not name node {node} ({})",
            centinela_tls::names::name(Kind::Node, node.as_str())
                .map(|name| name.to_str().into_owned())
                .unwrap_or_else(|| "an id no certificate can name".into())
        )));
    }
    Ok(node)
}

/// Reads a (unary) request body, refusing it as soon as it is known to exceed
/// [`REQUEST_BYTES_MAX`]: from the length prefix of its gRPC frame, or from the bytes sent.
async fn read_limited(mut body: Body) -> Result<Body, Status> {
    let too_large = |len: usize| {
        Status::resource_exhausted(format!(
            "request of {len} bytes, at most {REQUEST_BYTES_MAX}"
        ))
    };
    let limit = REQUEST_BYTES_MAX + GRPC_FRAME_PREFIX_BYTES;
    let read = async {
        let mut buffer = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers: none expected from a client
            };
            buffer.extend_from_slice(&data);
            if buffer.len() >= GRPC_FRAME_PREFIX_BYTES {
                let declared =
                    u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
                if declared > REQUEST_BYTES_MAX {
                    return Err(too_large(declared));
                }
            }
            if buffer.len() > limit {
                return Err(too_large(buffer.len() - GRPC_FRAME_PREFIX_BYTES));
            }
        }
        Ok(buffer.freeze())
    };
    let bytes: Bytes = tokio::time::timeout(REQUEST_BODY_TIMEOUT, read)
        .await
        .map_err(|_| {
            Status::deadline_exceeded(format!(
                "the request body took more than {} s to arrive",
                REQUEST_BODY_TIMEOUT.as_secs()
            ))
        })??;
    Ok(Body::new(http_body_util::Full::new(bytes)))
}

/// A `centinela.v1` service behind the edge: see the module docs.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    edge: Arc<Edge>,
    class: Class,
}

impl<S: NamedService> NamedService for Guard<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Guard<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call; a fresh clone waits for the next.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let edge = self.edge.clone();
        let class = self.class;
        Box::pin(async move {
            match edge.admit(class, request).await {
                Ok(request) => inner.call(request).await,
                Err(status) => {
                    tracing::debug!(class = ?class, code = ?status.code(), message = status.message(), "call refused at the edge");
                    Ok(status.into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{OperatorDirectory, Role};
    use centinela_core::ids::{BrigadeId, ButtonId};

    struct Accounts;

    #[tonic::async_trait]
    impl OperatorDirectory for Accounts {
        fn knows(&self, operator: &str) -> bool {
            matches!(operator, "ana" | "sala:2:luis" | "rosa")
        }
        async fn verify(
            &self,
            operator: &str,
            password: &str,
            _source: Option<IpAddr>,
        ) -> Result<Role, Refusal> {
            match (operator, password) {
                ("ana", "clave:con:dos") => Ok(Role::Supervisor),
                ("sala:2:luis", "x") => Ok(Role::Operator),
                ("rosa", "y") => Ok(Role::Officer),
                _ => Err(Refusal::Wrong),
            }
        }
    }

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for value in values {
            map.append(http::header::AUTHORIZATION, value.parse().unwrap());
        }
        map
    }

    fn basic(id: &str, password: &str) -> String {
        let raw = format!("{id}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    fn edge(mode: Mode) -> Arc<Edge> {
        let security = Security::with_mode(mode)
            .with_shared_device_token("fleet-token-0123456789")
            .unwrap()
            .with_device_token(
                Device::Button(ButtonId::new("B01").unwrap()),
                "button-b01-token-0123",
            )
            .unwrap()
            .with_cluster_secret(&"s".repeat(32))
            .unwrap()
            .with_operators(Arc::new(Accounts));
        Edge::new(security)
    }

    /// An officer's account is refused by the operator service in either mode, and by every
    /// operator check a handler makes, with a reason naming the brigade app.
    #[tokio::test]
    async fn an_officer_never_reaches_the_operator_api() {
        for mode in [Mode::Enforced, Mode::Open] {
            let edge = edge(mode);
            let request = || {
                let mut request = http::Request::new(Body::default());
                *request.uri_mut() = "/centinela.v1.Operator/ListIncidents".parse().unwrap();
                request.headers_mut().insert(
                    http::header::AUTHORIZATION,
                    basic("rosa", "y").parse().unwrap(),
                );
                request
            };
            let refused = edge.admit(Class::Operator, request()).await.unwrap_err();
            assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{mode:?}");
            assert!(
                refused.message().contains("/brigada/"),
                "{}",
                refused.message()
            );
            let rosa = edge
                .authenticate(&headers(&[&basic("rosa", "y")]))
                .await
                .unwrap();
            assert_eq!(
                rosa.read_operations().unwrap_err().code(),
                tonic::Code::PermissionDenied
            );
            assert_eq!(
                rosa.read_inventory().unwrap_err().code(),
                tonic::Code::PermissionDenied
            );
            assert_eq!(
                rosa.operator("", Role::Operator).unwrap_err().code(),
                tonic::Code::PermissionDenied
            );
            // Over gRPC, an officer's password is no unit's credential either.
            assert!(
                rosa.act_as_unit(&BrigadeId::new("U01").unwrap()).is_err() || mode == Mode::Open
            );
        }
        // In the brigade app, the officer acts as its unit: that unit only.
        let unit = edge(Mode::Enforced).unit_caller(BrigadeId::new("U01").unwrap());
        assert!(unit.act_as_unit(&BrigadeId::new("U01").unwrap()).is_ok());
        assert_eq!(
            unit.act_as_unit(&BrigadeId::new("U02").unwrap())
                .unwrap_err()
                .code(),
            tonic::Code::PermissionDenied
        );
        assert!(unit.read_operations().is_err());
    }

    #[tokio::test]
    async fn credentials_name_their_holder() {
        let edge = edge(Mode::Enforced);
        let caller = edge
            .authenticate(&headers(&["Bearer button-b01-token-0123"]))
            .await
            .unwrap();
        assert_eq!(
            caller.device,
            Some(Device::Button(ButtonId::new("B01").unwrap()))
        );
        assert!(caller.act_as_button(&ButtonId::new("B01").unwrap()).is_ok());
        let other = caller
            .act_as_button(&ButtonId::new("B02").unwrap())
            .unwrap_err();
        assert_eq!(other.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            caller.operator("", Role::Operator).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );

        let fleet = edge
            .authenticate(&headers(&["bearer fleet-token-0123456789"]))
            .await
            .unwrap();
        assert!(fleet.act_as_unit(&BrigadeId::new("U9").unwrap()).is_ok());
        assert!(fleet.read_inventory().is_ok());
        assert!(fleet.read_operations().is_err());

        let ana = edge
            .authenticate(&headers(&[&basic("ana", "clave:con:dos")]))
            .await
            .unwrap();
        assert_eq!(ana.operator("", Role::Supervisor).unwrap().as_str(), "ana");
        assert_eq!(
            ana.operator("bob", Role::Operator).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            ana.operator("ana", Role::Admin).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        let luis = edge
            .authenticate(&headers(&[&basic("sala:2:luis", "x")]))
            .await
            .unwrap();
        assert_eq!(
            luis.operator("", Role::Operator).unwrap().as_str(),
            "sala:2:luis"
        );

        let peer = edge
            .authenticate(&headers(&[&format!("Node n2 {}", "s".repeat(32))]))
            .await
            .unwrap();
        assert_eq!(peer.peer.as_ref().unwrap().as_str(), "n2");
        assert!(peer.peer().is_ok());
    }

    #[tokio::test]
    async fn bad_credentials_are_unauthenticated_in_every_mode() {
        for mode in [Mode::Enforced, Mode::Open] {
            let edge = edge(mode);
            for bad in [
                "Bearer nope".to_string(),
                basic("ana", "wrong"),
                basic("nobody", "x"),
                "Basic !!!".to_string(),
                format!("Node n2 {}", "t".repeat(32)),
                "Digest x".to_string(),
                "Bearer".to_string(),
            ] {
                let status = edge.authenticate(&headers(&[&bad])).await.unwrap_err();
                assert_eq!(status.code(), tonic::Code::Unauthenticated, "{bad}");
            }
            let twice = edge
                .authenticate(&headers(&[
                    "Bearer fleet-token-0123456789",
                    "Bearer button-b01-token-0123",
                ]))
                .await
                .unwrap_err();
            assert_eq!(twice.code(), tonic::Code::Unauthenticated);
        }
    }

    #[tokio::test]
    async fn open_mode_lets_the_anonymous_through_but_binds_presented_credentials() {
        let edge = edge(Mode::Open);
        let anonymous = edge.authenticate(&headers(&[])).await.unwrap();
        assert!(
            anonymous
                .act_as_button(&ButtonId::new("B07").unwrap())
                .is_ok()
        );
        assert_eq!(
            anonymous.operator("cli", Role::Admin).unwrap().as_str(),
            "cli"
        );
        assert_eq!(
            anonymous.operator("", Role::Operator).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let button = edge
            .authenticate(&headers(&["Bearer button-b01-token-0123"]))
            .await
            .unwrap();
        assert_eq!(
            button
                .act_as_button(&ButtonId::new("B02").unwrap())
                .unwrap_err()
                .code(),
            tonic::Code::PermissionDenied
        );

        let closed = self::edge(Mode::Enforced);
        let nobody = closed.authenticate(&headers(&[])).await.unwrap();
        for status in [
            nobody
                .act_as_button(&ButtonId::new("B01").unwrap())
                .unwrap_err(),
            nobody.operator("cli", Role::Operator).unwrap_err(),
            nobody.read_operations().unwrap_err(),
            nobody.peer().unwrap_err(),
        ] {
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
        }
    }
}
