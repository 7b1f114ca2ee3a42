//! The SIP server: one UDP socket and one TCP listener on the same address, the table of
//! calls, and what each request does to it.
//!
//! ```text
//!  button ──INVITE──▶ parse ─▶ who (From user) ─▶ digest ─▶ SDP offer ─▶ bounds ─▶ 100 Trying
//!                                                                             │
//!            setup task (one per call, under a permit) ◀─────────────────────┘
//!              button known? ─▶ Backend::call_started (the press path: durable) ─▶ media socket
//!              ─▶ 180 Ringing ─▶ 200 OK + SDP answer (retransmitted over UDP until the ACK)
//!  button ──BYE──▶ 200 OK, Backend::call_ended          button ──CANCEL──▶ 200, 487 to the INVITE
//! ```
//!
//! Every answer is a SIP response on the transport the request came on; what cannot be
//! answered (not SIP, no dialog headers) is dropped and counted ([`Stats::dropped`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blake2::{Blake2b256, Digest as _};
use bytes::{Bytes, BytesMut};
use centinela_core::ids::{ButtonId, IncidentId};
use ezk_sip_types::Method;
use ezk_sip_types::header::typed::AuthResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::desk::{Command, Desk, Leg};
use crate::digest::{self, Ha1, Nonces, Verdict};
use crate::limits;
use crate::recording::{Recorded, Recording};
use crate::sdp::{self, Codec};
use crate::sip::{self, Echo, Request, Response};

/// What the gateway needs from the node: the press path and the incident's audit trail.
pub trait Backend: Send + Sync + 'static {
    /// Whether `button` exists (an INVITE from any other identity gets 404).
    fn button_known(&self, button: &ButtonId) -> impl Future<Output = Result<bool, String>> + Send;

    /// Opens or joins the button's incident through the press path (durable when this
    /// returns) and records the call's start in its audit trail.
    fn call_started(
        &self,
        button: &ButtonId,
        call: &CallInfo,
    ) -> impl Future<Output = Result<IncidentId, String>> + Send;

    /// Records an operator's step in the call (answered, held, resumed) in the incident's
    /// audit trail.
    fn call_step(
        &self,
        incident: &IncidentId,
        operator: &str,
        step: CallStep,
        detail: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Records a call's recording in the incident's audit trail (its file, SHA-256 and
    /// length, or why it is incomplete): only when the gateway records calls
    /// ([`Config::recordings`]), before the call's end.
    fn call_recorded(
        &self,
        incident: &IncidentId,
        call_id: &str,
        recorded: &Recorded,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Records the call's end in the incident's audit trail.
    fn call_ended(
        &self,
        incident: &IncidentId,
        button: &ButtonId,
        by: EndedBy,
        detail: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// A call as the backend is told of it.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub call_id: String,
    pub codec: Codec,
    /// Where the call's signalling came from.
    pub caller: SocketAddr,
    /// `UDP` or `TCP`.
    pub transport: &'static str,
}

/// An operator's step in a call, for the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStep {
    Answered,
    Held,
    Resumed,
    /// The operator's browser leg dropped (page closed or crashed, network lost): the call
    /// rings again (the detail says why).
    LegDropped,
}

/// Who ended a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndedBy {
    /// The button hung up (BYE) or gave up before the answer (CANCEL).
    Button,
    /// The operator who answered hung up in the console (the gateway sent the BYE).
    Operator(String),
    /// The gateway: no ACK, or shutting down.
    System,
}

/// Who may call with which password.
#[derive(Debug, Clone, Default)]
pub struct Passwords {
    /// `HA1` per button (the devices file's `sip_ha1`).
    per_button: HashMap<ButtonId, Ha1>,
    /// The shared device token, the password of every button without its own.
    shared: Option<String>,
    /// Buttons with no password at all may call unauthenticated (the demo and tests, like
    /// an open gRPC edge); otherwise they get 403.
    open: bool,
}

impl Passwords {
    /// Buttons without a password may call unauthenticated.
    pub fn open() -> Self {
        Self {
            open: true,
            ..Self::default()
        }
    }

    /// Every button needs a password.
    pub fn enforced() -> Self {
        Self::default()
    }

    pub fn with_button(mut self, button: ButtonId, ha1: Ha1) -> Self {
        self.per_button.insert(button, ha1);
        self
    }

    pub fn with_shared(mut self, password: &str) -> Self {
        self.shared = Some(password.to_string());
        self
    }

    fn for_button(&self, button: &ButtonId) -> Option<Ha1> {
        self.per_button.get(button).copied().or_else(|| {
            self.shared
                .as_deref()
                .map(|password| digest::ha1(button.as_str(), digest::REALM, password))
        })
    }
}

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP and TCP on this address (`--sip`).
    pub addr: SocketAddr,
    pub passwords: Passwords,
    /// [`limits::CALLS_MAX`] unless a test lowers it.
    pub calls_max: usize,
    /// [`limits::INVITES_IN_FLIGHT_MAX`] unless a test lowers it.
    pub invites_in_flight_max: usize,
    /// Where answered calls ring for the operators (the console holds the same desk).
    pub desk: Arc<Desk>,
    /// Where calls are recorded (`--record-calls`: the node's data directory's
    /// `recordings`); `None`, the default: no recording ([`crate::recording`]).
    pub recordings: Option<PathBuf>,
}

impl Config {
    pub fn new(addr: SocketAddr, passwords: Passwords) -> Self {
        Self {
            addr,
            passwords,
            calls_max: limits::CALLS_MAX,
            invites_in_flight_max: limits::INVITES_IN_FLIGHT_MAX,
            desk: Desk::new(),
            recordings: None,
        }
    }
}

/// Counters of what the gateway did (tests and logs read them).
#[derive(Debug, Default)]
pub struct Stats {
    /// Datagrams or frames that were not SIP requests we could answer.
    pub dropped: AtomicU64,
    /// 400s: requests that parse but are wrong.
    pub bad_requests: AtomicU64,
    /// 401s (challenges) and 403s (wrong or missing credentials).
    pub challenged: AtomicU64,
    pub forbidden: AtomicU64,
    /// 404s: no such button.
    pub unknown_button: AtomicU64,
    /// 503s and 486s: past a bound.
    pub refused_busy: AtomicU64,
    pub calls_started: AtomicU64,
    pub calls_ended: AtomicU64,
    /// Recordings that miss audio or could not be written (each also says so in the audit).
    pub recordings_incomplete: AtomicU64,
    /// Our BYEs re-sent over UDP (RFC 3261 Timer E), and those never answered by Timer F.
    pub bye_retransmissions: AtomicU64,
    pub byes_unanswered: AtomicU64,
    /// Final responses to our BYEs.
    pub byes_answered: AtomicU64,
}

impl Stats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One call, as a test or the console sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallView {
    pub call_id: String,
    pub button: ButtonId,
    pub incident: Option<IncidentId>,
    pub state: CallState,
    pub codec: Codec,
    /// RTP packets received from the button.
    pub rtp_packets_in: u64,
    /// RTP packets sent to the button (the operator's voice).
    pub rtp_packets_out: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// INVITE taken, incident being opened.
    Setup,
    /// Cancelled by the button while being set up.
    Cancelled,
    /// 200 OK sent, waiting for the ACK.
    Answered,
    /// ACK received: talking.
    Confirmed,
}

/// Where to write a response: the request's transport.
#[derive(Clone)]
enum Peer {
    Udp {
        socket: Arc<UdpSocket>,
        to: SocketAddr,
    },
    Tcp {
        tx: mpsc::Sender<Bytes>,
        from: SocketAddr,
    },
}

impl Peer {
    async fn send(&self, bytes: Bytes) {
        match self {
            Peer::Udp { socket, to } => {
                if let Err(e) = socket.send_to(&bytes, to).await {
                    tracing::debug!(%to, error = %e, "sip: send failed");
                }
            }
            // A full queue means a peer not reading: its responses are dropped, like lost
            // datagrams, rather than held.
            Peer::Tcp { tx, .. } => {
                let _ = tx.try_send(bytes);
            }
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Peer::Udp { to, .. } => *to,
            Peer::Tcp { from, .. } => *from,
        }
    }

    fn transport(&self) -> &'static str {
        match self {
            Peer::Udp { .. } => "UDP",
            Peer::Tcp { .. } => "TCP",
        }
    }
}

/// A call's media socket: RTP from the button is counted and, once an operator answers,
/// relayed to the console's WebRTC leg ([`Leg`]); dropped with the call.
struct Media {
    local: SocketAddr,
    leg: Arc<Leg>,
    task: JoinHandle<()>,
}

impl Drop for Media {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Call {
    button: ButtonId,
    state: CallState,
    codec: Codec,
    to_tag: String,
    invite: Echo,
    incident: Option<IncidentId>,
    /// The last response to the INVITE, re-sent when the INVITE is retransmitted.
    last_response: Option<Bytes>,
    /// Our SDP answer (re-sent to a re-INVITE).
    answer: Option<String>,
    acked: Arc<Notify>,
    media: Option<Media>,
    /// Where the button's signalling came from (the BYE of an operator's hang-up goes there).
    peer: Peer,
    /// The request-URI of that BYE: the INVITE's `Contact`.
    contact: Option<String>,
}

struct Inner<B> {
    backend: B,
    passwords: Passwords,
    nonces: Nonces,
    tag_key: [u8; 32],
    /// The SIP socket's own IP, unless it listens on a wildcard.
    bound_ip: Option<IpAddr>,
    calls: Mutex<HashMap<String, Call>>,
    calls_max: usize,
    desk: Arc<Desk>,
    in_flight: Arc<Semaphore>,
    tcp_connections: AtomicUsize,
    stats: Stats,
    recordings: Option<PathBuf>,
    /// Our BYEs over UDP still waiting for a final response, by Call-ID (each is
    /// retransmitted until then, or Timer F: [`retransmit_bye`]). At most one per call.
    byes: Mutex<HashMap<String, Arc<Notify>>>,
}

/// A running gateway; its tasks stop when it is dropped.
pub struct Gateway<B: Backend> {
    inner: Arc<Inner<B>>,
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl<B: Backend> Drop for Gateway<B> {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl<B: Backend> Gateway<B> {
    /// Listens on `config.addr` (UDP and TCP, the same port; with port 0, a free one).
    pub async fn start(config: Config, backend: B) -> std::io::Result<Self> {
        let (udp, tcp) = bind_both(config.addr).await?;
        let addr = udp.local_addr()?;
        let key: [u8; 32] = rand::random();
        let tag_key: [u8; 32] = rand::random();
        let inner = Arc::new(Inner {
            backend,
            passwords: config.passwords,
            nonces: Nonces::new(key),
            tag_key,
            bound_ip: (!addr.ip().is_unspecified()).then_some(addr.ip()),
            calls: Mutex::new(HashMap::new()),
            calls_max: config.calls_max,
            desk: config.desk.clone(),
            in_flight: Arc::new(Semaphore::new(config.invites_in_flight_max)),
            tcp_connections: AtomicUsize::new(0),
            stats: Stats::default(),
            recordings: config.recordings,
            byes: Mutex::new(HashMap::new()),
        });
        let udp = Arc::new(udp);
        let (commands, desk_commands) = mpsc::unbounded_channel();
        config.desk.connect(commands);
        let tasks = vec![
            tokio::spawn(serve_udp(inner.clone(), udp.clone())),
            tokio::spawn(serve_tcp(inner.clone(), tcp)),
            tokio::spawn(serve_desk(inner.clone(), desk_commands, udp)),
        ];
        tracing::info!(%addr, "sip: intercom gateway listening (UDP and TCP)");
        Ok(Self { inner, addr, tasks })
    }

    /// The address both transports listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Where the gateway's calls ring for the operators.
    pub fn desk(&self) -> &Arc<Desk> {
        &self.inner.desk
    }

    /// The calls held now.
    pub fn calls(&self) -> Vec<CallView> {
        let calls = self.inner.calls.lock().unwrap();
        calls
            .iter()
            .map(|(call_id, call)| CallView {
                call_id: call_id.clone(),
                button: call.button.clone(),
                incident: call.incident.clone(),
                state: call.state,
                codec: call.codec,
                rtp_packets_in: call
                    .media
                    .as_ref()
                    .map_or(0, |m| m.leg.packets_in.load(Ordering::Relaxed)),
                rtp_packets_out: call
                    .media
                    .as_ref()
                    .map_or(0, |m| m.leg.packets_out.load(Ordering::Relaxed)),
            })
            .collect()
    }
}

/// UDP and TCP on one port: with port 0, the TCP port must be the one the OS gave UDP,
/// which another process may hold; a few tries find a free pair.
async fn bind_both(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    const ATTEMPTS: usize = 16;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let udp = UdpSocket::bind(addr).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free UDP and TCP port pair")))
}

async fn serve_udp<B: Backend>(inner: Arc<Inner<B>>, socket: Arc<UdpSocket>) {
    let mut buffer = vec![0u8; limits::MESSAGE_LEN_MAX + 1];
    loop {
        let (len, from) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(e) => {
                // ICMP port unreachable from an earlier send shows up here on some systems.
                tracing::debug!(error = %e, "sip: udp receive");
                continue;
            }
        };
        let datagram = &buffer[..len];
        // Keep-alive CRLFs (RFC 5626) need no answer.
        if datagram.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        if len > limits::MESSAGE_LEN_MAX {
            Stats::bump(&inner.stats.dropped);
            continue;
        }
        let peer = Peer::Udp {
            socket: socket.clone(),
            to: from,
        };
        handle(&inner, Bytes::copy_from_slice(datagram), peer).await;
    }
}

async fn serve_tcp<B: Backend>(inner: Arc<Inner<B>>, listener: TcpListener) {
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            continue;
        };
        let open = inner.tcp_connections.fetch_add(1, Ordering::SeqCst);
        if open >= limits::TCP_CONNECTIONS_MAX {
            inner.tcp_connections.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(%from, "sip: tcp connection refused, at the cap");
            drop(stream);
            continue;
        }
        let inner = inner.clone();
        tokio::spawn(async move {
            serve_connection(&inner, stream, from).await;
            inner.tcp_connections.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn serve_connection<B: Backend>(inner: &Arc<Inner<B>>, stream: TcpStream, from: SocketAddr) {
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(32);
    let writing = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let peer = Peer::Tcp { tx, from };
    let mut buffer = BytesMut::with_capacity(4096);
    'connection: loop {
        // Every whole message in the buffer first.
        loop {
            while buffer.first().is_some_and(|b| b.is_ascii_whitespace()) {
                let _ = buffer.split_to(1);
            }
            match sip::frame_len(&buffer) {
                Ok(Some(len)) => {
                    let message = buffer.split_to(len).freeze();
                    handle(inner, message, peer.clone()).await;
                }
                Ok(None) => break,
                Err(e) => {
                    Stats::bump(&inner.stats.dropped);
                    tracing::debug!(%from, error = %e, "sip: tcp stream closed, unframeable");
                    break 'connection;
                }
            }
        }
        let read = tokio::time::timeout(limits::TCP_IDLE, reader.read_buf(&mut buffer)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(_)) => {}
        }
    }
    drop(peer);
    let _ = writing.await;
}

/// What a request does.
async fn handle<B: Backend>(inner: &Arc<Inner<B>>, message: Bytes, peer: Peer) {
    let (request, problem) = match sip::parse(message.clone()) {
        Ok(parsed) => parsed,
        Err(sip::Error::Response) => {
            bye_answered(inner, &message);
            return;
        }
        Err(sip::Error::Unparseable(reason)) => {
            Stats::bump(&inner.stats.dropped);
            tracing::debug!(from = %peer.addr(), %reason, "sip: dropped");
            return;
        }
    };
    if let Some(problem) = problem {
        Stats::bump(&inner.stats.bad_requests);
        if request.method != Method::ACK {
            let reason = format!("Bad Request ({problem})");
            reply(&peer, &request, Response::new(400, reason)).await;
        }
        return;
    }
    let method = request.method.clone();
    if method == Method::INVITE {
        invite(inner, request, peer).await;
    } else if method == Method::ACK {
        ack(inner, &request);
    } else if method == Method::BYE {
        bye(inner, request, peer).await;
    } else if method == Method::CANCEL {
        cancel(inner, request, peer).await;
    } else if method == Method::OPTIONS {
        let response = Response::new(200, "OK")
            .header("Allow", sip::ALLOW)
            .header("Accept", "application/sdp");
        reply(&peer, &request, response).await;
    } else if method == Method::REGISTER {
        register(inner, request, peer).await;
    } else {
        let response = Response::new(405, "Method Not Allowed").header("Allow", sip::ALLOW);
        reply(&peer, &request, response).await;
    }
}

async fn reply(peer: &Peer, request: &Request, response: Response) {
    peer.send(response.render(&request.echo)).await;
}

/// What checking a request's credentials concluded.
enum Auth {
    /// Proven (or no password and an open gateway).
    Passed,
    /// No password for this button: whether it may call depends on it existing and the
    /// gateway being open, decided once the button is looked up.
    NoPassword,
    /// Answered already (401 or 403).
    Answered,
}

async fn authenticate<B: Backend>(
    inner: &Arc<Inner<B>>,
    request: &Request,
    button: &ButtonId,
    peer: &Peer,
) -> Auth {
    let Some(ha1) = inner.passwords.for_button(button) else {
        return Auth::NoPassword;
    };
    let challenge = |stale: bool| {
        Response::new(401, "Unauthorized").header("WWW-Authenticate", inner.nonces.challenge(stale))
    };
    let answer = match request.authorization() {
        None => {
            Stats::bump(&inner.stats.challenged);
            reply(peer, request, challenge(false)).await;
            return Auth::Answered;
        }
        Some(AuthResponse::Digest(answer)) => answer,
        Some(AuthResponse::Other(_)) => {
            Stats::bump(&inner.stats.forbidden);
            let response = Response::new(403, "Forbidden (only Digest authentication)");
            reply(peer, request, response).await;
            return Auth::Answered;
        }
    };
    let method = request.method.to_string();
    match inner.nonces.verify(&answer, button.as_str(), &method, &ha1) {
        Verdict::Valid => Auth::Passed,
        Verdict::Stale => {
            Stats::bump(&inner.stats.challenged);
            reply(peer, request, challenge(true)).await;
            Auth::Answered
        }
        Verdict::Invalid => {
            Stats::bump(&inner.stats.forbidden);
            tracing::warn!(%button, from = %peer.addr(), "sip: wrong credentials");
            let response = Response::new(403, "Forbidden (wrong credentials)");
            reply(peer, request, response).await;
            Auth::Answered
        }
    }
}

/// The button a request comes from: its From user. `None` when answered already (404).
async fn caller<B: Backend>(
    inner: &Arc<Inner<B>>,
    request: &Request,
    peer: &Peer,
) -> Option<ButtonId> {
    let user = request.from_user().unwrap_or_default();
    match ButtonId::new(user.clone()) {
        Ok(button) => Some(button),
        Err(_) => {
            Stats::bump(&inner.stats.unknown_button);
            let reason = format!("Not Found (no button {:?})", truncate(&user, 64));
            reply(peer, request, Response::new(404, reason)).await;
            None
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

impl<B> Inner<B> {
    fn to_tag(&self, call_id: &str) -> String {
        let mut hasher = Blake2b256::new();
        hasher.update(self.tag_key);
        hasher.update(call_id.as_bytes());
        digest::hex(&hasher.finalize()[..8])
    }
}

async fn invite<B: Backend>(inner: &Arc<Inner<B>>, request: Request, peer: Peer) {
    let call_id = request.call_id().to_string();
    // A retransmission re-sends what was last answered; a re-INVITE in the dialog (a
    // session refresh, a hold) gets our same answer.
    let resend = {
        let calls = inner.calls.lock().unwrap();
        calls.get(&call_id).map(|call| {
            if request.to_has_tag() {
                call.answer.clone().map(|sdp| {
                    Response::new(200, "OK")
                        .tag(&call.to_tag)
                        .sdp(sdp)
                        .render(&request.echo)
                })
            } else {
                call.last_response.clone()
            }
        })
    };
    if let Some(resend) = resend {
        if let Some(bytes) = resend {
            peer.send(bytes).await;
        }
        return;
    }
    if request.to_has_tag() {
        let response = Response::new(481, "Call/Transaction Does Not Exist");
        reply(&peer, &request, response).await;
        return;
    }
    let Some(button) = caller(inner, &request, &peer).await else {
        return;
    };
    let auth = match authenticate(inner, &request, &button, &peer).await {
        Auth::Answered => return,
        other => other,
    };
    let is_sdp = request.content_type().as_deref() == Some("application/sdp");
    let offer = match is_sdp.then(|| sdp::parse_offer(&request.body)) {
        Some(Ok(offer)) => offer,
        Some(Err(e)) => {
            let reason = format!("Not Acceptable Here ({e})");
            reply(&peer, &request, Response::new(488, reason)).await;
            return;
        }
        None => {
            let reason = "Not Acceptable Here (an INVITE must carry an SDP offer of G.711)";
            reply(&peer, &request, Response::new(488, reason)).await;
            return;
        }
    };
    let busy = |reason: &str| {
        Response::new(503, format!("Service Unavailable ({reason})"))
            .header("Retry-After", limits::RETRY_AFTER_SECS.to_string())
    };
    let Ok(permit) = inner.in_flight.clone().try_acquire_owned() else {
        Stats::bump(&inner.stats.refused_busy);
        reply(&peer, &request, busy("too many calls being set up")).await;
        return;
    };
    let to_tag = inner.to_tag(&call_id);
    let refusal = {
        let mut calls = inner.calls.lock().unwrap();
        if calls.len() >= inner.calls_max {
            Some(busy("too many calls"))
        } else if calls.values().any(|call| call.button == button) {
            Some(Response::new(
                486,
                "Busy Here (this button is already in a call)",
            ))
        } else {
            calls.insert(
                call_id.clone(),
                Call {
                    button: button.clone(),
                    state: CallState::Setup,
                    codec: offer.codec,
                    to_tag: to_tag.clone(),
                    invite: request.echo.clone(),
                    incident: None,
                    last_response: Some(Response::new(100, "Trying").render(&request.echo)),
                    answer: None,
                    acked: Arc::new(Notify::new()),
                    media: None,
                    peer: peer.clone(),
                    contact: request
                        .headers
                        .get_raw(&ezk_sip_types::Name::CONTACT)
                        .next()
                        .and_then(|c| contact_uri(c)),
                },
            );
            None
        }
    };
    if let Some(refusal) = refusal {
        Stats::bump(&inner.stats.refused_busy);
        reply(&peer, &request, refusal).await;
        return;
    }
    reply(&peer, &request, Response::new(100, "Trying")).await;
    let inner = inner.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let info = CallInfo {
            call_id: call_id.clone(),
            codec: offer.codec,
            caller: peer.addr(),
            transport: peer.transport(),
        };
        set_up(
            &inner, &request, &button, auth, offer.rtp, info, &to_tag, peer,
        )
        .await;
    });
}

/// The rest of an INVITE, under its permit: the button looked up, the incident opened or
/// joined (durable), the media socket bound, and the answer.
#[allow(clippy::too_many_arguments)]
async fn set_up<B: Backend>(
    inner: &Arc<Inner<B>>,
    request: &Request,
    button: &ButtonId,
    auth: Auth,
    remote_rtp: SocketAddr,
    info: CallInfo,
    to_tag: &str,
    peer: Peer,
) {
    let call_id = info.call_id.clone();
    let forget = |inner: &Arc<Inner<B>>| {
        inner.calls.lock().unwrap().remove(&call_id);
    };
    let final_response = |response: Response| response.tag(to_tag).render(&request.echo);
    let known =
        tokio::time::timeout(limits::SETUP_TIMEOUT, inner.backend.button_known(button)).await;
    let refusal = match known {
        Ok(Ok(true)) => match auth {
            Auth::NoPassword if !inner.passwords.open => {
                Stats::bump(&inner.stats.forbidden);
                Some(Response::new(
                    403,
                    "Forbidden (no SIP password for this button)",
                ))
            }
            _ => None,
        },
        Ok(Ok(false)) => {
            Stats::bump(&inner.stats.unknown_button);
            Some(Response::new(
                404,
                format!("Not Found (no button {button})"),
            ))
        }
        Ok(Err(e)) => {
            tracing::warn!(%button, error = %e, "sip: button lookup failed");
            Some(
                Response::new(503, "Service Unavailable (the store did not answer)")
                    .header("Retry-After", limits::RETRY_AFTER_SECS.to_string()),
            )
        }
        Err(_) => Some(
            Response::new(
                503,
                "Service Unavailable (the store did not answer in time)",
            )
            .header("Retry-After", limits::RETRY_AFTER_SECS.to_string()),
        ),
    };
    if let Some(refusal) = refusal {
        forget(inner);
        peer.send(final_response(refusal)).await;
        return;
    }
    let started = tokio::time::timeout(
        limits::SETUP_TIMEOUT,
        inner.backend.call_started(button, &info),
    )
    .await;
    let incident = match started {
        Ok(Ok(incident)) => incident,
        outcome => {
            let error = match outcome {
                Ok(Err(e)) => e,
                _ => "timed out".into(),
            };
            tracing::warn!(%button, call = %call_id, %error, "sip: the call's incident could not be opened");
            forget(inner);
            let refusal = Response::new(
                503,
                "Service Unavailable (the incident could not be opened)",
            )
            .header("Retry-After", limits::RETRY_AFTER_SECS.to_string());
            peer.send(final_response(refusal)).await;
            return;
        }
    };
    Stats::bump(&inner.stats.calls_started);
    tracing::info!(%button, %incident, call = %call_id, codec = info.codec.name(), "sip: call started");
    let recording = inner
        .recordings
        .as_deref()
        .map(|dir| Recording::start(dir, &incident, &call_id, info.codec));
    let media = bind_media(
        inner.bound_ip,
        peer.addr(),
        remote_rtp,
        info.codec,
        recording,
    );
    let media = match media.await {
        Ok(media) => media,
        Err(e) => {
            tracing::warn!(error = %e, "sip: no media socket");
            forget(inner);
            let refusal = Response::new(500, "Server Internal Error (no media socket)");
            peer.send(final_response(refusal)).await;
            let detail = format!("call {call_id}: no media socket");
            let _ = inner
                .backend
                .call_ended(&incident, button, EndedBy::System, &detail)
                .await;
            return;
        }
    };
    let session = u64::from_str_radix(&to_tag[..8], 16).unwrap_or_default();
    let answer = sdp::answer(media.local, info.codec, session);
    let ok = final_response(
        Response::new(200, "OK")
            .header("Contact", contact(&peer, media.local))
            .sdp(answer.clone()),
    );
    let ringing = final_response(Response::new(180, "Ringing"));
    // The button may have cancelled while the incident was being opened.
    let (cancelled, acked) = {
        let mut calls = inner.calls.lock().unwrap();
        match calls.get_mut(&call_id) {
            Some(call) if call.state == CallState::Setup => {
                call.state = CallState::Answered;
                call.incident = Some(incident.clone());
                call.last_response = Some(ok.clone());
                call.answer = Some(answer);
                inner
                    .desk
                    .ring(&call_id, button, &incident, media.leg.clone());
                call.media = Some(media);
                (None, call.acked.clone())
            }
            _ => {
                calls.remove(&call_id);
                (Some(media), Arc::new(Notify::new()))
            }
        }
    };
    if let Some(media) = cancelled {
        finish_recording(inner, &call_id, &incident, Some(&media)).await;
        let detail = format!("call {call_id}: cancelled by the caller before the answer");
        end(inner, &incident, button, EndedBy::Button, &detail).await;
        return;
    }
    peer.send(ringing).await;
    peer.send(ok.clone()).await;
    if matches!(peer, Peer::Udp { .. }) {
        retransmit_until_ack(inner, &call_id, &peer, ok, acked, &incident, button).await;
    }
}

/// The `Contact` of our 2xx: where in-dialog requests go (the media IP, the SIP port is
/// the one the request reached).
fn contact(peer: &Peer, media: SocketAddr) -> String {
    let transport = match peer {
        Peer::Udp { socket, .. } => socket.local_addr().map(|a| a.port()).ok(),
        Peer::Tcp { .. } => None,
    };
    match transport {
        Some(port) => format!("<sip:centinela@{}>", SocketAddr::new(media.ip(), port)),
        None => format!("<sip:centinela@{};transport=tcp>", media.ip()),
    }
}

/// RFC 3261 §13.3.1.4: the 2xx is re-sent at T1, doubling to T2, until the ACK or
/// [`limits::ACK_WAIT`]; without an ACK the call ends.
async fn retransmit_until_ack<B: Backend>(
    inner: &Arc<Inner<B>>,
    call_id: &str,
    peer: &Peer,
    ok: Bytes,
    acked: Arc<Notify>,
    incident: &IncidentId,
    button: &ButtonId,
) {
    let deadline = tokio::time::Instant::now() + limits::ACK_WAIT;
    let mut interval = limits::T1;
    loop {
        tokio::select! {
            () = acked.notified() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let removed = {
                let mut calls = inner.calls.lock().unwrap();
                match calls.get(call_id) {
                    Some(call) if call.state == CallState::Answered => calls.remove(call_id),
                    _ => None,
                }
            };
            if let Some(removed) = removed {
                inner.desk.ended(call_id, "system");
                finish_recording(inner, call_id, incident, removed.media.as_ref()).await;
                let detail = format!("call {call_id}: no ACK to the answer");
                end(inner, incident, button, EndedBy::System, &detail).await;
            }
            return;
        }
        let still_waiting = inner
            .calls
            .lock()
            .unwrap()
            .get(call_id)
            .is_some_and(|call| call.state == CallState::Answered);
        if !still_waiting {
            return;
        }
        peer.send(ok.clone()).await;
        interval = (interval * 2).min(limits::T2);
    }
}

/// Ends the call's recording, when it has one, and puts its hash (or why it is
/// incomplete) in the incident's audit trail: before the call's end, so the trail reads
/// `call_recorded` then `call_ended`.
async fn finish_recording<B: Backend>(
    inner: &Arc<Inner<B>>,
    call_id: &str,
    incident: &IncidentId,
    media: Option<&Media>,
) {
    let Some(recording) = media.and_then(|media| media.leg.recording.as_ref()) else {
        return;
    };
    let Some(recorded) = recording.finish().await else {
        return;
    };
    if !recorded.complete() {
        Stats::bump(&inner.stats.recordings_incomplete);
    }
    tracing::info!(%incident, call = %call_id, sha256 = %recorded.sha256, bytes = recorded.bytes, complete = recorded.complete(), "sip: call recorded");
    if let Err(e) = inner
        .backend
        .call_recorded(incident, call_id, &recorded)
        .await
    {
        tracing::warn!(%incident, error = %e, "sip: the call's recording could not be put in the audit trail");
    }
}

async fn end<B: Backend>(
    inner: &Arc<Inner<B>>,
    incident: &IncidentId,
    button: &ButtonId,
    by: EndedBy,
    detail: &str,
) {
    Stats::bump(&inner.stats.calls_ended);
    tracing::info!(%button, %incident, ?by, %detail, "sip: call ended");
    if let Err(e) = inner.backend.call_ended(incident, button, by, detail).await {
        tracing::warn!(%incident, error = %e, "sip: the call's end could not be recorded");
    }
}

fn ack<B: Backend>(inner: &Arc<Inner<B>>, request: &Request) {
    let mut calls = inner.calls.lock().unwrap();
    if let Some(call) = calls.get_mut(request.call_id())
        && call.state == CallState::Answered
    {
        call.state = CallState::Confirmed;
        call.last_response = None;
        call.acked.notify_one();
    }
}

async fn bye<B: Backend>(inner: &Arc<Inner<B>>, request: Request, peer: Peer) {
    let call = inner.calls.lock().unwrap().remove(request.call_id());
    let Some(call) = call else {
        let response = Response::new(481, "Call/Transaction Does Not Exist");
        reply(&peer, &request, response).await;
        return;
    };
    if call.button.as_str() != request.from_user().unwrap_or_default() {
        // Only the caller's side of the dialog hangs up; put it back.
        let response = Response::new(403, "Forbidden (not this call's caller)");
        inner
            .calls
            .lock()
            .unwrap()
            .insert(request.call_id().to_string(), call);
        reply(&peer, &request, response).await;
        return;
    }
    call.acked.notify_one();
    reply(&peer, &request, Response::new(200, "OK")).await;
    inner
        .desk
        .ended(request.call_id(), &format!("button:{}", call.button));
    if let Some(incident) = &call.incident {
        finish_recording(inner, request.call_id(), incident, call.media.as_ref()).await;
        let detail = format!("call {}: the caller hung up", request.call_id());
        end(inner, incident, &call.button, EndedBy::Button, &detail).await;
    }
}

async fn cancel<B: Backend>(inner: &Arc<Inner<B>>, request: Request, peer: Peer) {
    let invite_to_end = {
        let mut calls = inner.calls.lock().unwrap();
        match calls.get_mut(request.call_id()) {
            None => None,
            Some(call) if call.state == CallState::Setup => {
                call.state = CallState::Cancelled;
                Some(Some((call.invite.clone(), call.to_tag.clone())))
            }
            Some(_) => Some(None),
        }
    };
    match invite_to_end {
        None => {
            let response = Response::new(481, "Call/Transaction Does Not Exist");
            reply(&peer, &request, response).await;
        }
        Some(invite) => {
            reply(&peer, &request, Response::new(200, "OK")).await;
            if let Some((echo, tag)) = invite {
                let terminated = Response::new(487, "Request Terminated").tag(&tag);
                peer.send(terminated.render(&echo)).await;
            }
        }
    }
}

async fn register<B: Backend>(inner: &Arc<Inner<B>>, request: Request, peer: Peer) {
    let Some(button) = caller(inner, &request, &peer).await else {
        return;
    };
    match authenticate(inner, &request, &button, &peer).await {
        Auth::Answered => return,
        Auth::NoPassword if !inner.passwords.open => {
            Stats::bump(&inner.stats.forbidden);
            let response = Response::new(403, "Forbidden (no SIP password for this button)");
            reply(&peer, &request, response).await;
            return;
        }
        _ => {}
    }
    // Calls only come from buttons, so a registration binds nothing: it is acknowledged
    // for intercoms that will not place calls unregistered.
    let mut response =
        Response::new(200, "OK").header("Expires", limits::REGISTER_EXPIRES_SECS.to_string());
    if let Some(contact) = request
        .headers
        .get_raw(&ezk_sip_types::Name::CONTACT)
        .next()
    {
        let contact = contact.split(";expires=").next().unwrap_or_default();
        response = response.header(
            "Contact",
            format!("{contact};expires={}", limits::REGISTER_EXPIRES_SECS),
        );
    }
    reply(
        &peer,
        &request,
        response.tag(&inner.to_tag(request.call_id())),
    )
    .await;
}

/// Binds the call's media socket on the IP the button reaches us at, and counts what
/// arrives from the button.
async fn bind_media(
    bound_ip: Option<IpAddr>,
    signalling_peer: SocketAddr,
    remote_rtp: SocketAddr,
    codec: Codec,
    recording: Option<Recording>,
) -> std::io::Result<Media> {
    let ip = match bound_ip {
        Some(ip) => ip,
        // Listening on a wildcard: the address the OS routes toward the button from.
        None => {
            let probe =
                UdpSocket::bind(SocketAddr::new(unspecified(signalling_peer.ip()), 0)).await?;
            probe.connect(signalling_peer).await?;
            probe.local_addr()?.ip()
        }
    };
    let socket = Arc::new(UdpSocket::bind(SocketAddr::new(ip, 0)).await?);
    let local = socket.local_addr()?;
    let mut leg = Leg::new(socket.clone(), remote_rtp, codec);
    leg.recording = recording;
    let leg = Arc::new(leg);
    let relay = leg.clone();
    let task = tokio::spawn(async move {
        let mut buffer = vec![0u8; limits::RTP_PACKET_LEN_MAX];
        loop {
            let Ok((len, _from)) = socket.recv_from(&mut buffer).await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            // RTP version 2, and at least the fixed header.
            if len >= 12 && buffer[0] >> 6 == 2 {
                relay.relay_from_button(&buffer[..len]);
            }
        }
    });
    Ok(Media { local, leg, task })
}

fn unspecified(like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::from([0u8, 0, 0, 0]),
        IpAddr::V6(_) => IpAddr::from([0u16; 8]),
    }
}

/// The URI inside a `Contact` value (`<sip:B01@10.0.0.9:5060;transport=udp>;expires=60`).
fn contact_uri(contact: &str) -> Option<String> {
    let contact = contact.trim();
    let uri = match contact.find('<') {
        Some(start) => {
            let rest = &contact[start + 1..];
            &rest[..rest.find('>')?]
        }
        None => contact.split(';').next()?,
    };
    let uri = uri.trim();
    (uri.starts_with("sip:") && !uri.contains(['\r', '\n', ' '])).then(|| uri.to_string())
}

/// What the operators do through the desk: recorded through the backend; an operator's
/// hang-up also ends the SIP dialog (BYE to the button).
async fn serve_desk<B: Backend>(
    inner: Arc<Inner<B>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    udp: Arc<UdpSocket>,
) {
    while let Some(command) = commands.recv().await {
        match command {
            Command::Answered { call_id, operator } => {
                step(&inner, &call_id, &operator, CallStep::Answered).await;
            }
            Command::Held {
                call_id,
                operator,
                held,
            } => {
                let what = if held {
                    CallStep::Held
                } else {
                    CallStep::Resumed
                };
                step(&inner, &call_id, &operator, what).await;
            }
            Command::HangUp { call_id, operator } => {
                let call = inner.calls.lock().unwrap().remove(&call_id);
                let Some(call) = call else { continue };
                call.acked.notify_one();
                let sip_port = udp.local_addr().map(|a| a.port()).unwrap_or_default();
                let bye = bye_request(&call_id, &call, sip_port, &inner.tag_key);
                send_bye(&inner, &call_id, &call.peer, bye).await;
                if let Some(incident) = &call.incident {
                    finish_recording(&inner, &call_id, incident, call.media.as_ref()).await;
                    let detail = format!("call {call_id}: the operator hung up");
                    end(
                        &inner,
                        incident,
                        &call.button,
                        EndedBy::Operator(operator),
                        &detail,
                    )
                    .await;
                }
            }
            Command::LegDropped {
                call_id,
                bridge,
                reason,
            } => leg_dropped(&inner, &call_id, bridge, &reason).await,
        }
    }
}

/// A bridge's browser leg dropped: if the desk still had the call on that bridge, the call
/// rings again, and the trail records whose leg dropped and why.
async fn leg_dropped<B: Backend>(inner: &Arc<Inner<B>>, call_id: &str, bridge: u64, reason: &str) {
    let Some(operator) = inner.desk.leg_dropped(call_id, bridge) else {
        return;
    };
    let detail = format!("call {call_id}: {reason}; it rings again");
    record_step(inner, call_id, &operator, CallStep::LegDropped, &detail).await;
}

async fn step<B: Backend>(inner: &Arc<Inner<B>>, call_id: &str, operator: &str, step: CallStep) {
    record_step(inner, call_id, operator, step, &format!("call {call_id}")).await;
}

/// Writes a step of an operator's call to its incident's trail (nothing when the call has
/// no incident); a failure is logged, never raised: the call goes on.
async fn record_step<B: Backend>(
    inner: &Arc<Inner<B>>,
    call_id: &str,
    operator: &str,
    step: CallStep,
    detail: &str,
) {
    let incident = inner
        .calls
        .lock()
        .unwrap()
        .get(call_id)
        .and_then(|call| call.incident.clone());
    let Some(incident) = incident else { return };
    if let Err(e) = inner
        .backend
        .call_step(&incident, operator, step, detail)
        .await
    {
        tracing::warn!(%incident, error = %e, ?step, "sip: the call's step could not be recorded");
    }
}

/// Sends the BYE of an operator's hang-up. Over TCP once (the transport is reliable);
/// over UDP it is a non-INVITE client transaction (RFC 3261 §17.1.2): re-sent by
/// [`retransmit_bye`] in the background until a final response comes.
async fn send_bye<B: Backend>(inner: &Arc<Inner<B>>, call_id: &str, peer: &Peer, bye: Bytes) {
    match peer {
        Peer::Tcp { .. } => peer.send(bye).await,
        Peer::Udp { .. } => {
            let answered = Arc::new(Notify::new());
            inner
                .byes
                .lock()
                .unwrap()
                .insert(call_id.to_string(), answered.clone());
            tokio::spawn(retransmit_bye(
                inner.clone(),
                call_id.to_string(),
                peer.clone(),
                bye,
                answered,
            ));
        }
    }
}

/// RFC 3261 §17.1.2.2: the BYE is sent, then re-sent at Timer E (T1, doubling to T2)
/// until a final response ([`bye_answered`]) or Timer F ([`limits::BYE_WAIT`], 64·T1);
/// then it is given up, logged and counted. The call has ended on our side already (its
/// end is in the audit trail once); this only makes sure the button hears of it.
async fn retransmit_bye<B: Backend>(
    inner: Arc<Inner<B>>,
    call_id: String,
    peer: Peer,
    bye: Bytes,
    answered: Arc<Notify>,
) {
    let deadline = tokio::time::Instant::now() + limits::BYE_WAIT;
    let mut interval = limits::T1;
    peer.send(bye.clone()).await;
    loop {
        let wait = interval.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        tokio::select! {
            () = answered.notified() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let pending = inner.byes.lock().unwrap().remove(&call_id);
            if pending.is_some() {
                Stats::bump(&inner.stats.byes_unanswered);
                tracing::warn!(call = %call_id, to = %peer.addr(), "sip: no final response to our BYE by Timer F; given up (the button may still think the call is up)");
            }
            return;
        }
        Stats::bump(&inner.stats.bye_retransmissions);
        peer.send(bye.clone()).await;
        interval = (interval * 2).min(limits::T2);
    }
}

/// A response arrived: if it is the final response to one of our pending BYEs, that BYE's
/// retransmissions stop. Any other response is ignored (we send no other request).
fn bye_answered<B: Backend>(inner: &Arc<Inner<B>>, message: &Bytes) {
    let Some(answer) = sip::parse_response(message) else {
        return;
    };
    if answer.method != Method::BYE || answer.code < 200 {
        return;
    }
    let pending = inner.byes.lock().unwrap().remove(&answer.call_id);
    if let Some(answered) = pending {
        Stats::bump(&inner.stats.byes_answered);
        tracing::debug!(call = %answer.call_id, code = answer.code, "sip: our BYE answered");
        answered.notify_one();
    }
}

/// The BYE that ends a dialog from our side (RFC 3261 §15.1.1): our tag in `From`, the
/// caller's in `To`, to the caller's `Contact`.
fn bye_request(call_id: &str, call: &Call, sip_port: u16, key: &[u8; 32]) -> Bytes {
    use std::fmt::Write as _;
    let local = match call.media.as_ref() {
        Some(media) => media.local.ip(),
        None => IpAddr::from([127, 0, 0, 1]),
    };
    let (transport, via_host) = match &call.peer {
        Peer::Udp { .. } => ("UDP", SocketAddr::new(local, sip_port).to_string()),
        Peer::Tcp { .. } => ("TCP", local.to_string()),
    };
    let target = call
        .contact
        .clone()
        .unwrap_or_else(|| format!("sip:{}@{}", call.button, call.peer.addr()));
    let mut hasher = Blake2b256::new();
    hasher.update(key);
    hasher.update(b"bye");
    hasher.update(call_id.as_bytes());
    let branch = digest::hex(&hasher.finalize()[..8]);
    let to = call.invite.to.to_string();
    let from = if to.contains(";tag=") {
        to
    } else {
        format!("{to};tag={}", call.to_tag)
    };
    let mut out = String::with_capacity(512);
    let _ = write!(out, "BYE {target} SIP/2.0\r\n");
    let _ = write!(
        out,
        "Via: SIP/2.0/{transport} {via_host};branch=z9hG4bK{branch};rport\r\n"
    );
    let _ = write!(out, "Max-Forwards: 70\r\n");
    let _ = write!(out, "From: {from}\r\n");
    let _ = write!(out, "To: {}\r\n", call.invite.from);
    let _ = write!(out, "Call-ID: {call_id}\r\n");
    let _ = write!(out, "CSeq: 1 BYE\r\n");
    let _ = write!(out, "User-Agent: centinela\r\n");
    let _ = write!(out, "Content-Length: 0\r\n\r\n");
    Bytes::from(out)
}
