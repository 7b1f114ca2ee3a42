//! A simulated button's SIP call (RFC 3261 over UDP): what a field intercom does when it is
//! pressed, so the demo's operator can answer and hear a caller.
//!
//! The button sends an INVITE to `sip:centinela@GATEWAY` (design: its id as the `From`
//! user) offering G.711 µ-law and A-law, retransmitted per Timer A until a response; answers
//! a 401/407 digest challenge with its password (kbalt/ezk's client authenticator); ACKs;
//! sends 20 ms RTP packets of a [`Voice`] encoded with the negotiated law; counts the RTP
//! the operator sends back; answers a BYE from the node; and hangs up itself (BYE,
//! retransmitted per Timer E) after its talk time or when told to stop. Messages are built
//! and parsed with `ezk-sip-types` and `ezk-sdp-types`, the crates the node's gateway parses
//! with: no SIP grammar of ours.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use bytesstr::BytesStr;
use ezk_sdp_types::{MediaType, SessionDescription, TaggedAddress, TransportProtocol};
use ezk_sip_auth::{
    ClientAuthenticator as _, DigestAuthenticator, DigestCredentials, DigestUser, RequestParts,
    ResponseParts,
};
use ezk_sip_types::header::typed::{CSeq, CallID, Contact, ContentLength, FromTo, Via};
use ezk_sip_types::host::HostPort;
use ezk_sip_types::msg::{Line, MessageLine, PullParser, RequestLine, StatusLine};
use ezk_sip_types::parse::Parse as _;
use ezk_sip_types::print::{AppendCtx as _, PrintCtx, UriContext};
use ezk_sip_types::uri::{NameAddr, SipUri};
use ezk_sip_types::{Headers, Method, Name, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::g711::Law;
use crate::limits::{
    AUTH_ROUNDS_MAX, FINAL_RESPONSE_WAIT, PTIME, RTP_PACKET_LEN_MAX, SIP_MESSAGE_LEN_MAX, T1, T2,
    TRANSACTION_TIMEOUT,
};
use crate::voice::{SAMPLE_RATE_HZ, Voice};

/// Samples per RTP packet.
const FRAME_SAMPLES: usize = (SAMPLE_RATE_HZ as usize * PTIME.as_millis() as usize) / 1000;

/// Whom to call, as whom, for how long.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// The node's gateway (`--sip`): the call goes to `sip:centinela@GATEWAY`.
    pub gateway: SocketAddr,
    /// The button's id: the `From` user and the digest user name.
    pub button: String,
    /// The button's SIP password (the devices file's, or the shared device token). `None`
    /// calls without credentials, which an open gateway (the demo without a token) accepts.
    pub password: Option<String>,
    /// Hang up after this long talking ([`crate::limits::TALK_TIME`] in the simulator).
    pub talk: Duration,
    /// Seed of the voice.
    pub seed: u64,
}

/// What a call has done so far, readable while it runs.
#[derive(Debug, Default)]
pub struct CallStats {
    answered: AtomicBool,
    rtp_sent: AtomicU64,
    rtp_received: AtomicU64,
    /// The loudest decoded sample of the operator's audio.
    received_peak: AtomicU32,
}

impl CallStats {
    /// The gateway answered (200 OK) and the call is talking.
    pub fn answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    /// RTP packets of the button's voice sent.
    pub fn rtp_sent(&self) -> u64 {
        self.rtp_sent.load(Ordering::Relaxed)
    }

    /// RTP packets received from the node (the operator's voice).
    pub fn rtp_received(&self) -> u64 {
        self.rtp_received.load(Ordering::Relaxed)
    }

    /// The loudest sample heard from the operator (0: silence or nothing).
    pub fn received_peak(&self) -> u32 {
        self.received_peak.load(Ordering::Relaxed)
    }
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The button talked its time and hung up.
    TalkTime,
    /// The node (the operator) hung up: a BYE came.
    NodeHungUp,
    /// The button was told to stop (its incident closed, the simulator stopped) and hung up.
    Stopped,
}

/// A call that was answered, once it is over.
#[derive(Debug, Clone)]
pub struct Report {
    pub call_id: String,
    pub law: Law,
    pub rtp_sent: u64,
    pub rtp_received: u64,
    pub ended: Ended,
    /// Our BYE got its 200 (true when the node hung up: there was no BYE of ours).
    pub bye_answered: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sip call: socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("sip call: no response from the gateway at {0} (is the node running with --sip?)")]
    NoResponse(SocketAddr),
    #[error("sip call: the gateway did not answer the INVITE within {0:?} of ringing")]
    NoFinalResponse(Duration),
    #[error(
        "sip call: the gateway refused button {button}'s credentials ({code} {reason}): is its password the devices file's, or the shared device token?"
    )]
    WrongCredentials {
        button: String,
        code: u16,
        reason: String,
    },
    #[error("sip call: the gateway refused the call: {code} {reason}")]
    Refused { code: u16, reason: String },
    #[error("sip call: the gateway's answer is unusable: {0}")]
    BadAnswer(String),
    #[error("sip call: stopped before the call was answered")]
    Stopped,
}

impl Error {
    /// The SIP status of a refusal, if the gateway refused.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::WrongCredentials { code, .. } | Error::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A parsed SIP message.
struct Message {
    first: MessageLine,
    headers: Headers,
    body: Bytes,
}

impl Message {
    fn parse(bytes: Bytes) -> Option<Message> {
        if bytes.len() > SIP_MESSAGE_LEN_MAX {
            return None;
        }
        let mut parser = PullParser::new(bytes.as_ref(), 0);
        let first = std::str::from_utf8(parser.next()?.ok()?).ok()?;
        let (_, first) = MessageLine::parse(&bytes)(first).ok()?;
        let mut headers = Headers::new();
        for raw in parser.by_ref() {
            let raw = std::str::from_utf8(raw.ok()?).ok()?;
            let (_, line) = Line::parse(&bytes, raw).ok()?;
            headers.insert(line.name, line.value);
        }
        let head_end = parser.head_end().min(bytes.len());
        let mut body = bytes.slice(head_end..);
        if let Some(Ok(ContentLength(len))) = headers.try_get_named::<ContentLength>() {
            body = body.slice(..len.min(body.len()));
        }
        Some(Message {
            first,
            headers,
            body,
        })
    }

    fn call_id(&self) -> Option<String> {
        self.headers
            .get_named::<CallID>()
            .ok()
            .map(|id| id.0.to_string())
    }

    fn cseq(&self) -> Option<CSeq> {
        self.headers.get_named::<CSeq>().ok()
    }
}

/// The button's side of the dialog.
struct Dialog {
    socket: UdpSocket,
    gateway: SocketAddr,
    local: SocketAddr,
    button: String,
    call_id: String,
    from_tag: String,
    /// The gateway's tag, once a response carried one.
    to_tag: Option<BytesStr>,
    /// Where in-dialog requests go (the 2xx's Contact).
    target: SipUri,
    cseq: u32,
    rng: StdRng,
}

impl Dialog {
    fn branch(&mut self) -> String {
        format!("z9hG4bK{:016x}", self.rng.random::<u64>())
    }

    /// A request's line and headers (Via, Max-Forwards, From, To, Call-ID, CSeq).
    fn request(
        &self,
        method: Method,
        uri: SipUri,
        cseq: u32,
        branch: &str,
    ) -> (RequestLine, Headers) {
        let mut headers = Headers::new();
        headers.insert_named(&Via::new("UDP", HostPort::from(self.local), branch));
        headers.insert(Name::MAX_FORWARDS, "70");
        let mut from_uri = SipUri::new(HostPort::from(self.local));
        from_uri.set_user(self.button.as_str().into());
        headers.insert_type(
            Name::FROM,
            &FromTo::new(NameAddr::uri(from_uri), Some(self.from_tag.as_str().into())),
        );
        headers.insert_type(
            Name::TO,
            &FromTo::new(self.to_address(), self.to_tag.clone()),
        );
        headers.insert_named(&CallID::new(self.call_id.as_str()));
        headers.insert_named(&CSeq::new(cseq, method.clone()));
        headers.insert(Name::USER_AGENT, "centinela-simulated-button");
        (RequestLine { method, uri }, headers)
    }

    fn to_address(&self) -> NameAddr {
        let mut uri = SipUri::new(HostPort::from(self.gateway));
        uri.set_user("centinela".into());
        NameAddr::uri(uri)
    }

    fn contact(&self) -> Contact {
        let mut uri = SipUri::new(HostPort::from(self.local));
        uri.set_user(self.button.as_str().into());
        Contact::new(NameAddr::uri(uri))
    }

    async fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.socket.send_to(bytes, self.gateway).await.map(|_| ())
    }

    /// The next SIP message from the gateway within `wait` (`None` on timeout); anything
    /// that does not parse is skipped.
    async fn receive(&self, wait: Duration) -> std::io::Result<Option<Message>> {
        let deadline = Instant::now() + wait;
        let mut buffer = vec![0u8; SIP_MESSAGE_LEN_MAX];
        loop {
            let received = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buffer));
            let Ok(received) = received.await else {
                return Ok(None);
            };
            let (len, _) = received?;
            if let Some(message) = Message::parse(Bytes::copy_from_slice(&buffer[..len])) {
                return Ok(Some(message));
            }
        }
    }

    /// An ACK: to a non-2xx final response (same branch, RFC 3261 §17.1.1.3), or to a 2xx
    /// (a new transaction to the remote target, §13.2.2.4).
    fn ack(&mut self, cseq: u32, branch: Option<&str>) -> Bytes {
        let branch = branch.map(str::to_string).unwrap_or_else(|| self.branch());
        // Before a 2xx the target is still the INVITE's request-URI; after it, the Contact.
        let (line, mut headers) = self.request(Method::ACK, self.target.clone(), cseq, &branch);
        headers.insert_named(&ContentLength(0));
        render(&line, &headers, &[])
    }
}

/// Request line, headers and body as bytes.
fn render(line: &RequestLine, headers: &Headers, body: &[u8]) -> Bytes {
    let ctx = PrintCtx {
        method: Some(&line.method),
        uri: Some(UriContext::ReqUri),
    };
    let mut out = format!("{}\r\n{headers}\r\n", line.print_ctx(ctx)).into_bytes();
    out.extend_from_slice(body);
    Bytes::from(out)
}

/// Our SDP offer: one audio stream at `rtp`, µ-law first, then A-law.
fn offer(rtp: SocketAddr, session: u64) -> String {
    let family = if rtp.is_ipv4() { "IP4" } else { "IP6" };
    let ip = rtp.ip();
    let port = rtp.port();
    format!(
        "v=0\r\no=button {session} {session} IN {family} {ip}\r\ns=centinela button\r\n\
c=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// The gateway's answer: where to send RTP, with which law.
fn parse_answer(body: &[u8]) -> Result<(SocketAddr, Law), Error> {
    let text = std::str::from_utf8(body).map_err(|_| Error::BadAnswer("SDP not UTF-8".into()))?;
    let sdp = SessionDescription::parse(&BytesStr::from(text))
        .map_err(|e| Error::BadAnswer(format!("SDP: {e}")))?;
    let audio = sdp
        .media_descriptions
        .iter()
        .find(|m| {
            m.media.media_type == MediaType::Audio
                && matches!(m.media.proto, TransportProtocol::RtpAvp)
                && m.media.port != 0
        })
        .ok_or_else(|| Error::BadAnswer("no audio stream".into()))?;
    let law = audio
        .media
        .fmts
        .iter()
        .find_map(|payload| Law::from_payload_type(*payload))
        .ok_or_else(|| Error::BadAnswer("neither PCMU nor PCMA".into()))?;
    let connection = audio
        .connection
        .as_ref()
        .or(sdp.connection.as_ref())
        .ok_or_else(|| Error::BadAnswer("no connection address".into()))?;
    let ip: IpAddr = match &connection.address {
        TaggedAddress::IP4(ip) => (*ip).into(),
        TaggedAddress::IP6(ip) => (*ip).into(),
        _ => {
            return Err(Error::BadAnswer(
                "the connection address is not an IP".into(),
            ));
        }
    };
    Ok((SocketAddr::new(ip, audio.media.port), law))
}

/// The local IP the OS routes toward `gateway` from.
async fn local_ip(gateway: SocketAddr) -> std::io::Result<IpAddr> {
    let any: IpAddr = if gateway.is_ipv4() {
        [0u8, 0, 0, 0].into()
    } else {
        [0u16; 8].into()
    };
    let probe = UdpSocket::bind(SocketAddr::new(any, 0)).await?;
    probe.connect(gateway).await?;
    Ok(probe.local_addr()?.ip())
}

/// Places the call and talks until it ends (see the module's doc). `stop` turning true
/// hangs up (or gives up, before the answer).
pub async fn call(
    options: &CallOptions,
    stats: &CallStats,
    mut stop: watch::Receiver<bool>,
) -> Result<Report, Error> {
    let ip = local_ip(options.gateway).await?;
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    let local = socket.local_addr()?;
    let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    let rtp_local = rtp.local_addr()?;
    // Identifiers unique per call even with the demo's fixed seed; the voice is the seed's.
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mut rng = StdRng::seed_from_u64(options.seed ^ clock);
    let call_id = format!("{:016x}@{}", rng.random::<u64>(), ip);
    let from_tag = format!("{:08x}", rng.random::<u32>());
    let mut uri = SipUri::new(HostPort::from(options.gateway));
    uri.set_user("centinela".into());
    let mut dialog = Dialog {
        socket,
        gateway: options.gateway,
        local,
        button: options.button.clone(),
        call_id,
        from_tag,
        to_tag: None,
        target: uri.clone(),
        cseq: 0,
        rng,
    };
    let sdp = offer(rtp_local, clock / 1_000_000);
    let mut credentials = DigestCredentials::new();
    if let Some(password) = &options.password {
        credentials.set_default(DigestUser::new(options.button.as_str(), password.as_str()));
    }
    let mut authenticator = DigestAuthenticator::new(credentials);
    let mut challenged = 0;
    let answer = loop {
        dialog.cseq += 1;
        let branch = dialog.branch();
        let (line, mut headers) = dialog.request(Method::INVITE, uri.clone(), dialog.cseq, &branch);
        authenticator.authorize_request(&mut headers);
        headers.insert_named(&dialog.contact());
        headers.insert(Name::CONTENT_TYPE, "application/sdp");
        headers.insert_named(&ContentLength(sdp.len()));
        let invite = render(&line, &headers, sdp.as_bytes());
        let response = invite_transaction(&dialog, &invite, &mut stop).await?;
        let MessageLine::Response(status) = &response.first else {
            unreachable!("invite_transaction returns responses")
        };
        let code = status.code.into_u16();
        let reason = status
            .reason
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default();
        if (200..300).contains(&code) {
            break response;
        }
        // Every final non-2xx is acknowledged in its own transaction (§17.1.1.3).
        dialog.to_tag = response
            .headers
            .get::<FromTo>(Name::TO)
            .ok()
            .and_then(|to| to.tag);
        let ack = dialog.ack(dialog.cseq, Some(&branch));
        dialog.send(&ack).await?;
        dialog.to_tag = None;
        let wrong_credentials = || Error::WrongCredentials {
            button: options.button.clone(),
            code,
            reason: reason.clone(),
        };
        match code {
            401 | 407 => {
                challenged += 1;
                if options.password.is_none() || challenged > AUTH_ROUNDS_MAX {
                    return Err(wrong_credentials());
                }
                let request = RequestParts {
                    line: &line,
                    headers: &headers,
                    body: sdp.as_bytes(),
                };
                let rejection = ResponseParts {
                    line: status,
                    headers: &response.headers,
                    body: &response.body,
                };
                if let Err(e) = authenticator.handle_rejection(request, rejection) {
                    tracing::debug!(button = %options.button, error = %e, "sip call: challenge not answered");
                    return Err(wrong_credentials());
                }
            }
            403 if challenged > 0 => return Err(wrong_credentials()),
            _ => return Err(Error::Refused { code, reason }),
        }
    };
    // The dialog: the gateway's tag, its Contact as the target of our in-dialog requests.
    dialog.to_tag = answer
        .headers
        .get::<FromTo>(Name::TO)
        .ok()
        .and_then(|to| to.tag);
    if let Some(Ok(contact)) = answer.headers.try_get_named::<Contact>() {
        dialog.target = contact.uri.uri;
    }
    let invite_cseq = dialog.cseq;
    let ack = dialog.ack(invite_cseq, None);
    dialog.send(&ack).await?;
    let (remote_rtp, law) = match parse_answer(&answer.body) {
        Ok(answer) => answer,
        Err(e) => {
            hang_up(&mut dialog).await;
            return Err(e);
        }
    };
    stats.answered.store(true, Ordering::Relaxed);
    tracing::info!(button = %options.button, call = %dialog.call_id, codec = law.name(), "sip call: answered, talking");
    let ended = talk(
        &dialog,
        &ack,
        invite_cseq,
        &rtp,
        remote_rtp,
        law,
        options,
        stats,
        &mut stop,
    )
    .await?;
    let bye_answered = match ended {
        Ended::NodeHungUp => true,
        Ended::TalkTime | Ended::Stopped => hang_up(&mut dialog).await,
    };
    tracing::info!(
        button = %options.button,
        call = %dialog.call_id,
        ?ended,
        rtp_sent = stats.rtp_sent(),
        rtp_received = stats.rtp_received(),
        "sip call: ended"
    );
    Ok(Report {
        call_id: dialog.call_id.clone(),
        law,
        rtp_sent: stats.rtp_sent(),
        rtp_received: stats.rtp_received(),
        ended,
        bye_answered,
    })
}

/// Sends the INVITE, retransmitting per Timer A until a response, and returns its final
/// response.
async fn invite_transaction(
    dialog: &Dialog,
    invite: &[u8],
    stop: &mut watch::Receiver<bool>,
) -> Result<Message, Error> {
    dialog.send(invite).await?;
    let started = Instant::now();
    let mut interval = T1;
    let mut next_retransmit = started + interval;
    let mut provisional_at: Option<Instant> = None;
    loop {
        let deadline = match provisional_at {
            Some(at) => at + FINAL_RESPONSE_WAIT,
            None => started + TRANSACTION_TIMEOUT,
        };
        let wake = match provisional_at {
            Some(_) => deadline,
            None => next_retransmit.min(deadline),
        };
        let received = tokio::select! {
            received = dialog.receive(wake.saturating_duration_since(Instant::now())) => received?,
            () = stop_requested(stop) => return Err(Error::Stopped),
        };
        match received {
            Some(message) => {
                let ours = message.call_id().as_deref() == Some(dialog.call_id.as_str())
                    && message
                        .cseq()
                        .is_some_and(|c| c.cseq == dialog.cseq && c.method == Method::INVITE);
                let MessageLine::Response(status) = &message.first else {
                    continue;
                };
                if !ours {
                    continue;
                }
                if status.code.into_u16() < 200 {
                    provisional_at.get_or_insert_with(Instant::now);
                    continue;
                }
                return Ok(message);
            }
            None if Instant::now() >= deadline => {
                return Err(match provisional_at {
                    Some(_) => Error::NoFinalResponse(FINAL_RESPONSE_WAIT),
                    None => Error::NoResponse(dialog.gateway),
                });
            }
            None => {
                if provisional_at.is_none() && Instant::now() >= next_retransmit {
                    dialog.send(invite).await?;
                    // Timer A doubles without a cap (§17.1.1.2), until Timer B.
                    interval *= 2;
                    next_retransmit = Instant::now() + interval;
                }
            }
        }
    }
}

/// The answered call: the voice out, the operator's RTP counted, until the talk time, a
/// stop, or the node's BYE.
#[allow(clippy::too_many_arguments)]
async fn talk(
    dialog: &Dialog,
    ack: &[u8],
    invite_cseq: u32,
    rtp: &UdpSocket,
    remote_rtp: SocketAddr,
    law: Law,
    options: &CallOptions,
    stats: &CallStats,
    stop: &mut watch::Receiver<bool>,
) -> Result<Ended, Error> {
    let mut voice = Voice::new(options.seed);
    let mut rng = StdRng::seed_from_u64(options.seed.rotate_left(17));
    let ssrc: u32 = rng.random();
    let mut sequence: u16 = rng.random();
    let mut timestamp: u32 = rng.random();
    let mut samples = [0i16; FRAME_SAMPLES];
    let mut packet = vec![0u8; 12 + FRAME_SAMPLES];
    let mut ticks = tokio::time::interval(PTIME);
    let talk_over = tokio::time::sleep(options.talk);
    tokio::pin!(talk_over);
    let mut rtp_buffer = vec![0u8; RTP_PACKET_LEN_MAX];
    let mut sip_buffer = vec![0u8; SIP_MESSAGE_LEN_MAX];
    let mut first = true;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                voice.fill(&mut samples);
                packet[0] = 0x80;
                // The marker bit opens the talk spurt (RFC 3551 §4.1).
                packet[1] = law.payload_type() | if first { 0x80 } else { 0 };
                packet[2..4].copy_from_slice(&sequence.to_be_bytes());
                packet[4..8].copy_from_slice(&timestamp.to_be_bytes());
                packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
                for (out, sample) in packet[12..].iter_mut().zip(samples) {
                    *out = law.encode(sample);
                }
                rtp.send_to(&packet, remote_rtp).await?;
                stats.rtp_sent.fetch_add(1, Ordering::Relaxed);
                first = false;
                sequence = sequence.wrapping_add(1);
                timestamp = timestamp.wrapping_add(FRAME_SAMPLES as u32);
            }
            received = rtp.recv_from(&mut rtp_buffer) => {
                let (len, _) = received?;
                let packet = &rtp_buffer[..len];
                // RTP version 2, at least the fixed header, one of the G.711 payloads.
                if len >= 12 && packet[0] >> 6 == 2 {
                    stats.rtp_received.fetch_add(1, Ordering::Relaxed);
                    if let Some(law) = Law::from_payload_type(packet[1] & 0x7F) {
                        let peak = packet[12..]
                            .iter()
                            .map(|code| u32::from(law.decode(*code).unsigned_abs()))
                            .max()
                            .unwrap_or_default();
                        stats.received_peak.fetch_max(peak, Ordering::Relaxed);
                    }
                }
            }
            received = dialog.socket.recv_from(&mut sip_buffer) => {
                let (len, _) = received?;
                let Some(message) = Message::parse(Bytes::copy_from_slice(&sip_buffer[..len])) else {
                    continue;
                };
                if message.call_id().as_deref() != Some(dialog.call_id.as_str()) {
                    continue;
                }
                match &message.first {
                    // A retransmitted 2xx: our ACK was lost.
                    MessageLine::Response(status)
                        if status.code.into_u16() / 100 == 2
                            && message.cseq().is_some_and(|c| c.cseq == invite_cseq && c.method == Method::INVITE) =>
                    {
                        dialog.send(ack).await?;
                    }
                    MessageLine::Request(line) if line.method == Method::BYE => {
                        dialog.send(&respond(&message, StatusCode::OK, "OK", &[])).await?;
                        return Ok(Ended::NodeHungUp);
                    }
                    MessageLine::Request(line) if line.method != Method::ACK => {
                        let refusal = respond(
                            &message,
                            StatusCode::METHOD_NOT_ALLOWED,
                            "Method Not Allowed",
                            &[(Name::ALLOW, "ACK, BYE")],
                        );
                        dialog.send(&refusal).await?;
                    }
                    _ => {}
                }
            }
            () = &mut talk_over => return Ok(Ended::TalkTime),
            () = stop_requested(stop) => return Ok(Ended::Stopped),
        }
    }
}

/// Resolves once `stop` is true (at once if it already is); never if its sender is gone
/// without saying so.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A response to `request`, echoing its Via, From, To, Call-ID and CSeq (§8.2.6).
fn respond(
    request: &Message,
    code: StatusCode,
    reason: &str,
    extra: &[(Name, &'static str)],
) -> Bytes {
    let mut headers = Headers::new();
    for name in [Name::VIA, Name::FROM, Name::TO, Name::CALL_ID, Name::CSEQ] {
        let _ = request.headers.clone_into(&mut headers, name);
    }
    for (name, value) in extra {
        headers.insert(name.clone(), *value);
    }
    headers.insert_named(&ContentLength(0));
    let line = StatusLine {
        code,
        reason: Some(reason.into()),
    };
    Bytes::from(format!("{line}\r\n{headers}\r\n"))
}

/// Sends our BYE and waits for its final response, retransmitting per Timer E; whether it
/// came.
async fn hang_up(dialog: &mut Dialog) -> bool {
    dialog.cseq += 1;
    let branch = dialog.branch();
    let (line, mut headers) =
        dialog.request(Method::BYE, dialog.target.clone(), dialog.cseq, &branch);
    headers.insert_named(&ContentLength(0));
    let bye = render(&line, &headers, &[]);
    let deadline = Instant::now() + TRANSACTION_TIMEOUT;
    let mut interval = T1;
    while Instant::now() < deadline {
        if dialog.send(&bye).await.is_err() {
            return false;
        }
        let wait_until = (Instant::now() + interval).min(deadline);
        loop {
            let left = wait_until.saturating_duration_since(Instant::now());
            match dialog.receive(left).await {
                Ok(Some(message)) => {
                    let ours = message.call_id().as_deref() == Some(dialog.call_id.as_str())
                        && message
                            .cseq()
                            .is_some_and(|c| c.cseq == dialog.cseq && c.method == Method::BYE);
                    if let MessageLine::Response(status) = &message.first
                        && ours
                        && status.code.into_u16() >= 200
                    {
                        return true;
                    }
                }
                Ok(None) => break,
                Err(_) => return false,
            }
        }
        interval = (interval * 2).min(T2);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_offer_lists_both_laws_and_an_answer_picks_one() {
        let offer = offer("127.0.0.1:7000".parse().unwrap(), 1);
        assert!(offer.contains("m=audio 7000 RTP/AVP 0 8\r\n"), "{offer}");
        // Parsed back as an answer (the gateway answers in the same shape, one format).
        assert_eq!(
            parse_answer(offer.as_bytes()).unwrap(),
            ("127.0.0.1:7000".parse().unwrap(), Law::Mu)
        );
        let pcma = offer.replace("RTP/AVP 0 8", "RTP/AVP 8");
        assert_eq!(parse_answer(pcma.as_bytes()).unwrap().1, Law::A);
        let opus = offer.replace("RTP/AVP 0 8", "RTP/AVP 111");
        assert!(matches!(
            parse_answer(opus.as_bytes()),
            Err(Error::BadAnswer(_))
        ));
    }

    #[tokio::test]
    async fn a_request_we_build_parses_back_with_its_dialog_headers() {
        let dialog = Dialog {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            gateway: "127.0.0.1:5060".parse().unwrap(),
            local: "127.0.0.1:5070".parse().unwrap(),
            button: "B01".into(),
            call_id: "abc@127.0.0.1".into(),
            from_tag: "f1".into(),
            to_tag: None,
            target: "sip:centinela@127.0.0.1:5060".parse().unwrap(),
            cseq: 1,
            rng: StdRng::seed_from_u64(1),
        };
        let (line, mut headers) =
            dialog.request(Method::INVITE, dialog.target.clone(), 1, "z9hG4bK-1");
        headers.insert_named(&dialog.contact());
        headers.insert_named(&ContentLength(3));
        let bytes = render(&line, &headers, b"v=0");
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            text.starts_with("INVITE sip:centinela@127.0.0.1:5060 SIP/2.0\r\n"),
            "{text}"
        );
        let message = Message::parse(bytes.clone()).unwrap();
        assert_eq!(message.call_id().as_deref(), Some("abc@127.0.0.1"));
        assert_eq!(message.cseq().unwrap().method, Method::INVITE);
        let from: FromTo = message.headers.get(Name::FROM).unwrap();
        assert_eq!(from.tag.as_deref(), Some("f1"));
        assert_eq!(&message.body[..], b"v=0");
        // A response to it echoes the dialog headers.
        let response = respond(&message, StatusCode::OK, "OK", &[]);
        let response = Message::parse(response).unwrap();
        assert!(matches!(response.first, MessageLine::Response(_)));
        assert_eq!(response.call_id().as_deref(), Some("abc@127.0.0.1"));
        assert_eq!(response.cseq().unwrap().cseq, 1);
    }
}
