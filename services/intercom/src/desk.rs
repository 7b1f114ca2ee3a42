//! The operators' side of calls: the call desk. A call the gateway answered rings here; one
//! operator answers it from the console with a WebRTC offer and talks to the caller through a
//! bridge (str0m, sans-IO) that passes the call's G.711 between the button's RTP and the
//! browser untranscoded; that operator may hold it and hang up.
//!
//! ```text
//!  button ──RTP (PCMU/PCMA)──▶ media socket ─▶ Leg ─▶ bridge task (str0m Rtc, ICE-lite, DTLS-SRTP) ─▶ browser
//!  button ◀──RTP────────────── media socket ◀─ Leg ◀─ bridge task ◀──────────────────────────────── browser
//! ```
//!
//! The desk keeps no incident state of its own: what it changes (answered, held, resumed,
//! hung up by an operator) goes to the gateway as a [`Command`], and the gateway records it
//! through its [`Backend`](crate::Backend) and sends the BYE. Everyone watching the desk
//! ([`Desk::subscribe`]) sees each call's state and who took it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use centinela_core::ids::{ButtonId, IncidentId};
use str0m::change::SdpOffer;
use str0m::format::Codec as RtcCodec;
use str0m::media::{Frequency, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::limits;
use crate::recording::Recording;
use crate::sdp::Codec;

/// A call's state as the operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeskState {
    /// Up with the button, nobody has answered yet.
    Ringing,
    /// An operator answered: audio flows both ways.
    Talking,
    /// The operator put it on hold: no audio either way.
    Held,
    /// Over (the last notice of a call).
    Ended,
}

impl DeskState {
    /// The name on the console's wire.
    pub fn name(self) -> &'static str {
        match self {
            DeskState::Ringing => "ringing",
            DeskState::Talking => "talking",
            DeskState::Held => "held",
            DeskState::Ended => "ended",
        }
    }
}

/// A call on the desk, as every console sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskCall {
    pub call_id: String,
    pub incident: IncidentId,
    pub button: ButtonId,
    pub codec: Codec,
    pub state: DeskState,
    /// Who answered it.
    pub operator: Option<String>,
    /// Who ended it, as the audit trail tags actors (`button:B01`, `operator:ana`, `system`).
    pub ended_by: Option<String>,
    /// When it started ringing (wall clock, ms since the Unix epoch): a call nobody answers
    /// within the operators' target escalates in the console like an unacknowledged incident.
    pub ringing_since_ms: u64,
    /// RTP packets received from the button, and sent to it (the operator's voice).
    pub rtp_from_button: u64,
    pub rtp_to_button: u64,
}

/// Why the desk refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeskError {
    #[error("no call {0} on this node (it ended, or another node holds it)")]
    NoSuchCall(String),
    #[error("the call was taken by {0}")]
    Taken(String),
    #[error("the call has not been answered yet")]
    NotAnswered,
    #[error("the WebRTC offer is refused: {0}")]
    BadOffer(String),
    #[error("the bridge could not start: {0}")]
    Unavailable(String),
}

/// What the desk asks of the gateway (which holds the SIP side and the backend).
#[derive(Debug)]
pub(crate) enum Command {
    Answered {
        call_id: String,
        operator: String,
    },
    Held {
        call_id: String,
        operator: String,
        held: bool,
    },
    HangUp {
        call_id: String,
        operator: String,
    },
    /// The operator's browser leg is gone (page closed or crashed, network lost): sent by
    /// the bridge task `bridge` itself. The gateway asks [`Desk::leg_dropped`] whether that
    /// bridge is still the call's (a page reloaded and answered again has a newer one) and,
    /// if so, records the step: the call rings again.
    LegDropped {
        call_id: String,
        bridge: u64,
        reason: String,
    },
}

/// A call's media toward the button: the gateway's media socket, shared with the bridge.
pub(crate) struct Leg {
    pub(crate) socket: Arc<UdpSocket>,
    /// Where the button receives RTP (its SDP offer).
    pub(crate) remote: SocketAddr,
    pub(crate) codec: Codec,
    /// The bridge's inbox of the button's RTP packets, while an operator talks.
    pub(crate) to_browser: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    pub(crate) packets_in: AtomicU64,
    pub(crate) packets_out: AtomicU64,
    /// The call's recording, when the gateway records calls: both sides as relayed.
    pub(crate) recording: Option<Recording>,
}

impl Leg {
    pub(crate) fn new(socket: Arc<UdpSocket>, remote: SocketAddr, codec: Codec) -> Self {
        Self {
            socket,
            remote,
            codec,
            to_browser: Mutex::new(None),
            packets_in: AtomicU64::new(0),
            packets_out: AtomicU64::new(0),
            recording: None,
        }
    }

    /// One RTP packet from the button: counted, and handed to the bridge if one runs (a
    /// full inbox drops it, like a lost datagram).
    pub(crate) fn relay_from_button(&self, packet: &[u8]) {
        self.packets_in.fetch_add(1, Ordering::Relaxed);
        if let (Some(recording), Some((_, payload))) = (&self.recording, rtp_payload(packet)) {
            recording.caller(payload);
        }
        if let Some(tx) = self.to_browser.lock().unwrap().as_ref() {
            let _ = tx.try_send(packet.to_vec());
        }
    }
}

enum Control {
    Hold(bool),
}

/// A running bridge; dropping it stops it.
struct Bridge {
    /// Which bridge of the desk this is (a leg-dropped notice names it).
    id: u64,
    control: mpsc::UnboundedSender<Control>,
    task: JoinHandle<()>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Entry {
    call: DeskCall,
    leg: Arc<Leg>,
    bridge: Option<Bridge>,
}

impl Entry {
    fn view(&self) -> DeskCall {
        let mut call = self.call.clone();
        call.rtp_from_button = self.leg.packets_in.load(Ordering::Relaxed);
        call.rtp_to_button = self.leg.packets_out.load(Ordering::Relaxed);
        call
    }
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let calls = self.calls.lock().unwrap().len();
        f.debug_struct("Desk").field("calls", &calls).finish()
    }
}

/// The calls of one node's gateway, as the console answers them.
pub struct Desk {
    calls: Mutex<HashMap<String, Entry>>,
    events: broadcast::Sender<DeskCall>,
    commands: OnceLock<mpsc::UnboundedSender<Command>>,
    /// The next bridge's [`Bridge::id`].
    next_bridge: AtomicU64,
}

impl Desk {
    pub fn new() -> Arc<Self> {
        let (events, _) = broadcast::channel(limits::DESK_EVENTS_BUFFER);
        Arc::new(Self {
            calls: Mutex::new(HashMap::new()),
            events,
            commands: OnceLock::new(),
            next_bridge: AtomicU64::new(1),
        })
    }

    /// The calls on the desk now.
    pub fn calls(&self) -> Vec<DeskCall> {
        let calls = self.calls.lock().unwrap();
        let mut views: Vec<DeskCall> = calls.values().map(Entry::view).collect();
        views.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        views
    }

    /// Every change from now on (a call ringing, taken, held, ended).
    pub fn subscribe(&self) -> broadcast::Receiver<DeskCall> {
        self.events.subscribe()
    }

    pub(crate) fn connect(&self, commands: mpsc::UnboundedSender<Command>) {
        let _ = self.commands.set(commands);
    }

    fn command(&self, command: Command) {
        if let Some(commands) = self.commands.get() {
            let _ = commands.send(command);
        }
    }

    fn notify(&self, call: DeskCall) {
        let _ = self.events.send(call);
    }

    /// The gateway answered the button: the call rings for the operators.
    pub(crate) fn ring(
        &self,
        call_id: &str,
        button: &ButtonId,
        incident: &IncidentId,
        leg: Arc<Leg>,
    ) {
        let call = DeskCall {
            call_id: call_id.to_string(),
            incident: incident.clone(),
            button: button.clone(),
            codec: leg.codec,
            state: DeskState::Ringing,
            operator: None,
            ended_by: None,
            ringing_since_ms: now_ms(),
            rtp_from_button: 0,
            rtp_to_button: 0,
        };
        let entry = Entry {
            call,
            leg,
            bridge: None,
        };
        let view = entry.view();
        self.calls
            .lock()
            .unwrap()
            .insert(call_id.to_string(), entry);
        self.notify(view);
    }

    /// The SIP side ended the call (`by`: the actor's tag): its bridge stops.
    pub(crate) fn ended(&self, call_id: &str, by: &str) {
        let entry = self.calls.lock().unwrap().remove(call_id);
        if let Some(entry) = entry {
            let mut view = entry.view();
            view.state = DeskState::Ended;
            view.ended_by = Some(by.to_string());
            drop(entry);
            self.notify(view);
        }
    }

    /// `operator` answers `call_id` with the browser's SDP offer (ICE gathering complete:
    /// no trickle); the SDP answer for the browser. One operator per call: another's answer
    /// gets [`DeskError::Taken`]. The same operator answering again (a reloaded page)
    /// replaces the bridge. `ip` is the node's address as the browser reaches it: the
    /// bridge's one host candidate.
    pub async fn answer(
        &self,
        call_id: &str,
        operator: &str,
        offer: &str,
        ip: IpAddr,
    ) -> Result<String, DeskError> {
        if offer.len() > limits::WEBRTC_OFFER_LEN_MAX {
            return Err(DeskError::BadOffer(format!(
                "{} bytes, at most {}",
                offer.len(),
                limits::WEBRTC_OFFER_LEN_MAX
            )));
        }
        let (codec, leg) = self.check_answerable(call_id, operator)?;
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| DeskError::BadOffer(e.to_string()))?;
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .map_err(|e| DeskError::Unavailable(format!("no UDP socket on {ip}: {e}")))?;
        let local = socket
            .local_addr()
            .map_err(|e| DeskError::Unavailable(e.to_string()))?;
        let config = RtcConfig::new().set_ice_lite(true).clear_codecs();
        let config = match codec {
            Codec::Pcmu => config.enable_pcmu(true, false),
            Codec::Pcma => config.enable_pcma(true, false),
        };
        let mut rtc = config.build(std::time::Instant::now());
        let candidate =
            Candidate::host(local, "udp").map_err(|e| DeskError::Unavailable(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| DeskError::BadOffer(e.to_string()))?;
        let answer = answer.to_sdp_string();
        if !answer.contains(&format!(" {}/8000", codec.name())) {
            return Err(DeskError::BadOffer(format!(
                "the browser offered no {} audio",
                codec.name()
            )));
        }
        let (to_browser, from_button) = mpsc::channel(limits::BRIDGE_INBOX);
        let (control, controls) = mpsc::unbounded_channel();
        let bridge = self.next_bridge.fetch_add(1, Ordering::Relaxed);
        let notice = LegNotice {
            call_id: call_id.to_string(),
            bridge,
            commands: self.commands.get().cloned(),
        };
        let task = tokio::spawn(report_dropped_leg(
            run(rtc, socket, leg.clone(), from_button, controls),
            notice,
        ));
        let view = {
            let mut calls = self.calls.lock().unwrap();
            // The call may have ended, or been taken, while the bridge was prepared.
            let Some(entry) = calls.get_mut(call_id) else {
                task.abort();
                return Err(DeskError::NoSuchCall(call_id.to_string()));
            };
            if let Some(other) = entry.call.operator.as_ref().filter(|o| *o != operator) {
                task.abort();
                return Err(DeskError::Taken(other.clone()));
            }
            entry.call.operator = Some(operator.to_string());
            entry.call.state = DeskState::Talking;
            entry.bridge = Some(Bridge {
                id: bridge,
                control,
                task,
            });
            *leg.to_browser.lock().unwrap() = Some(to_browser);
            entry.view()
        };
        tracing::info!(call = %call_id, %operator, bridge = %local, "sip: call answered in the console");
        self.command(Command::Answered {
            call_id: call_id.to_string(),
            operator: operator.to_string(),
        });
        self.notify(view);
        Ok(answer)
    }

    fn check_answerable(
        &self,
        call_id: &str,
        operator: &str,
    ) -> Result<(Codec, Arc<Leg>), DeskError> {
        let calls = self.calls.lock().unwrap();
        let entry = calls
            .get(call_id)
            .ok_or_else(|| DeskError::NoSuchCall(call_id.to_string()))?;
        match &entry.call.operator {
            Some(other) if other != operator => Err(DeskError::Taken(other.clone())),
            _ => Ok((entry.call.codec, entry.leg.clone())),
        }
    }

    /// The answering operator puts the call on hold (`held`) or takes it off.
    pub fn hold(&self, call_id: &str, operator: &str, held: bool) -> Result<DeskCall, DeskError> {
        let view = {
            let mut calls = self.calls.lock().unwrap();
            let entry = calls
                .get_mut(call_id)
                .ok_or_else(|| DeskError::NoSuchCall(call_id.to_string()))?;
            match &entry.call.operator {
                None => return Err(DeskError::NotAnswered),
                Some(other) if other != operator => return Err(DeskError::Taken(other.clone())),
                Some(_) => {}
            }
            let state = if held {
                DeskState::Held
            } else {
                DeskState::Talking
            };
            if entry.call.state == state {
                return Ok(entry.view());
            }
            entry.call.state = state;
            if let Some(bridge) = &entry.bridge {
                let _ = bridge.control.send(Control::Hold(held));
            }
            entry.view()
        };
        self.command(Command::Held {
            call_id: call_id.to_string(),
            operator: operator.to_string(),
            held,
        });
        self.notify(view.clone());
        Ok(view)
    }

    /// `operator` hangs up: the bridge stops, the gateway sends the button a BYE and records
    /// who ended it. Only the answering operator may hang up an answered call; any operator
    /// may end one still ringing.
    pub fn hang_up(&self, call_id: &str, operator: &str) -> Result<DeskCall, DeskError> {
        let entry = {
            let mut calls = self.calls.lock().unwrap();
            let entry = calls
                .get(call_id)
                .ok_or_else(|| DeskError::NoSuchCall(call_id.to_string()))?;
            if let Some(other) = entry.call.operator.as_ref().filter(|o| *o != operator) {
                return Err(DeskError::Taken(other.clone()));
            }
            calls.remove(call_id).expect("checked above")
        };
        let mut view = entry.view();
        drop(entry);
        view.state = DeskState::Ended;
        view.ended_by = Some(format!("operator:{operator}"));
        self.command(Command::HangUp {
            call_id: call_id.to_string(),
            operator: operator.to_string(),
        });
        self.notify(view.clone());
        Ok(view)
    }

    /// The browser leg of bridge `bridge` dropped: if it is still `call_id`'s bridge, the
    /// call goes back to ringing for every operator (the caller stays on the line, hearing
    /// silence, as before the first answer), its ringing clock starts again (the console's
    /// escalation counts from now), and the operator who had it is returned for the audit
    /// trail. `None` when the call ended or another bridge has it since (a page reloaded
    /// and answered again must not be reset by its old bridge's late notice).
    pub(crate) fn leg_dropped(&self, call_id: &str, bridge: u64) -> Option<String> {
        let (operator, old, view) = {
            let mut calls = self.calls.lock().unwrap();
            let entry = calls.get_mut(call_id)?;
            if entry.bridge.as_ref().map(|b| b.id) != Some(bridge) {
                return None;
            }
            let old = entry.bridge.take();
            *entry.leg.to_browser.lock().unwrap() = None;
            let operator = entry.call.operator.take()?;
            entry.call.state = DeskState::Ringing;
            entry.call.ringing_since_ms = now_ms();
            (operator, old, entry.view())
        };
        drop(old);
        tracing::warn!(call = %call_id, %operator, "sip: the operator's browser leg dropped; the call rings again");
        self.notify(view);
        Some(operator)
    }
}

/// Wall clock, ms since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where a bridge tells that its browser leg dropped.
struct LegNotice {
    call_id: String,
    bridge: u64,
    commands: Option<mpsc::UnboundedSender<Command>>,
}

/// Runs a bridge; if it ends by itself (the browser's leg dropped, not a hang-up or a new
/// answer, which abort it or close its control), sends [`Command::LegDropped`] naming it.
async fn report_dropped_leg(bridge: impl Future<Output = Option<String>>, notice: LegNotice) {
    let Some(reason) = bridge.await else { return };
    tracing::info!(call = %notice.call_id, bridge = notice.bridge, %reason, "sip: the console's WebRTC leg dropped");
    if let Some(commands) = notice.commands {
        let _ = commands.send(Command::LegDropped {
            call_id: notice.call_id,
            bridge: notice.bridge,
            reason,
        });
    }
}

/// The bridge: str0m's sans-IO loop driven by the WebRTC socket, the button's packets and
/// the clock; the browser's audio goes to the button as RTP, the button's to the browser.
/// Ends with `None` when the desk closes its control (hang-up), or with why the browser's
/// leg dropped: the peer connection closed or failed, or ICE stayed disconnected for
/// [`limits::BROWSER_LEG_GRACE`].
async fn run(
    mut rtc: Rtc,
    socket: UdpSocket,
    leg: Arc<Leg>,
    mut from_button: mpsc::Receiver<Vec<u8>>,
    mut control: mpsc::UnboundedReceiver<Control>,
) -> Option<String> {
    let Ok(local) = socket.local_addr() else {
        return Some("the bridge's socket has no address".into());
    };
    // Since when ICE is disconnected (no consent check from the browser): past the grace
    // the leg is dropped; a check that comes back first reconnects it.
    let mut disconnected_since: Option<tokio::time::Instant> = None;
    let wanted = match leg.codec {
        Codec::Pcmu => RtcCodec::PCMU,
        Codec::Pcma => RtcCodec::PCMA,
    };
    let mut mid: Option<Mid> = None;
    let mut held = false;
    let mut out = RtpOut::new(leg.codec.payload_type());
    let mut buffer = vec![0u8; limits::RTP_PACKET_LEN_MAX.max(2048)];
    loop {
        // Drain what str0m has to say, up to its next deadline.
        let deadline = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(at)) => break at,
                Ok(Output::Transmit(transmit)) => {
                    let _ = socket
                        .send_to(&transmit.contents, transmit.destination)
                        .await;
                }
                Ok(Output::Event(event)) => match event {
                    Event::MediaAdded(added) => mid = Some(added.mid),
                    Event::MediaData(data) if !held => {
                        let packet = out.packet(data.time.numer() as u32, &data.data);
                        if leg.socket.send_to(&packet, leg.remote).await.is_ok() {
                            leg.packets_out.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(recording) = &leg.recording {
                            recording.operator(&data.data);
                        }
                    }
                    Event::IceConnectionStateChange(state) => {
                        tracing::debug!(?state, "sip: console leg ICE");
                        if state == IceConnectionState::Disconnected {
                            tracing::info!("sip: the console's WebRTC leg disconnected");
                            disconnected_since.get_or_insert_with(tokio::time::Instant::now);
                        } else {
                            disconnected_since = None;
                        }
                    }
                    Event::Closed => {
                        return Some("the console closed its WebRTC connection".into());
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::warn!(error = %e, "sip: the console's WebRTC leg failed");
                    return Some(format!("the console's WebRTC connection failed: {e}"));
                }
            }
        };
        let mut deadline = tokio::time::Instant::from_std(deadline);
        if let Some(since) = disconnected_since {
            let dropped_at = since + limits::BROWSER_LEG_GRACE;
            if tokio::time::Instant::now() >= dropped_at {
                return Some(format!(
                    "the console's WebRTC connection stayed disconnected for {} s",
                    limits::BROWSER_LEG_GRACE.as_secs()
                ));
            }
            deadline = deadline.min(dropped_at);
        }
        let sleep = tokio::time::sleep_until(deadline);
        tokio::select! {
            received = socket.recv_from(&mut buffer) => {
                let Ok((len, source)) = received else { continue };
                let Ok(contents) = buffer[..len].try_into() else { continue };
                let input = Input::Receive(
                    std::time::Instant::now(),
                    Receive { proto: Protocol::Udp, source, destination: local, contents },
                );
                if let Err(e) = rtc.handle_input(input) {
                    tracing::debug!(error = %e, "sip: console leg input");
                }
            }
            Some(packet) = from_button.recv() => {
                if held {
                    continue;
                }
                let (Some(mid), Some((timestamp, payload))) = (mid, rtp_payload(&packet)) else {
                    continue;
                };
                let Some(mut writer) = rtc.writer(mid) else { continue };
                let pt = writer.payload_params().find(|p| p.spec().codec == wanted).map(|p| p.pt());
                if let Some(pt) = pt {
                    writer = writer.start_of_talkspurt(false);
                    let time = MediaTime::new(timestamp as u64, Frequency::EIGHT_KHZ);
                    if let Err(e) = writer.write(pt, std::time::Instant::now(), time, payload.to_vec()) {
                        tracing::debug!(error = %e, "sip: console leg write");
                    }
                }
            }
            command = control.recv() => match command {
                Some(Control::Hold(on)) => held = on,
                None => {
                    rtc.disconnect();
                    return None;
                }
            },
            () = sleep => {
                if let Err(e) = rtc.handle_input(Input::Timeout(std::time::Instant::now())) {
                    tracing::debug!(error = %e, "sip: console leg timeout");
                }
            }
        }
    }
}

/// The RTP timestamp and payload of a packet from the button (RFC 3550 §5.1: the fixed
/// header, CSRCs, an extension); `None` for anything that is not RTP version 2.
fn rtp_payload(packet: &[u8]) -> Option<(u32, &[u8])> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    let csrcs = (packet[0] & 0x0F) as usize;
    let mut start = 12 + 4 * csrcs;
    if packet[0] & 0x10 != 0 {
        let words = packet.get(start + 2..start + 4)?;
        start += 4 + 4 * u16::from_be_bytes([words[0], words[1]]) as usize;
    }
    let mut end = packet.len();
    if packet[0] & 0x20 != 0 {
        end = end.checked_sub(*packet.last()? as usize)?;
    }
    let timestamp = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    Some((timestamp, packet.get(start..end)?))
}

/// The RTP stream toward the button: our SSRC, our sequence, the browser's timestamps.
struct RtpOut {
    payload_type: u8,
    ssrc: u32,
    seq: u16,
}

impl RtpOut {
    fn new(payload_type: u8) -> Self {
        Self {
            payload_type,
            ssrc: rand::random(),
            seq: rand::random(),
        }
    }

    fn packet(&mut self, timestamp: u32, payload: &[u8]) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = Vec::with_capacity(12 + payload.len());
        packet.push(0x80);
        packet.push(self.payload_type & 0x7F);
        packet.extend_from_slice(&self.seq.to_be_bytes());
        packet.extend_from_slice(&timestamp.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        packet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_payloads_skip_csrcs_extensions_and_padding() {
        let mut out = RtpOut::new(0);
        let packet = out.packet(1234, &[1, 2, 3]);
        assert_eq!(rtp_payload(&packet), Some((1234, &[1u8, 2, 3][..])));
        // One CSRC, a one-word extension, two bytes of padding.
        let mut packet = vec![0xB1, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1];
        packet.extend_from_slice(&[0, 0, 0, 2]); // CSRC
        packet.extend_from_slice(&[0xBE, 0xDE, 0, 1, 7, 7, 7, 7]); // extension
        packet.extend_from_slice(&[5, 6, 0, 2]); // payload, padding
        assert_eq!(rtp_payload(&packet), Some((9, &[5u8, 6][..])));
        assert_eq!(rtp_payload(&[0x40; 20]), None, "not version 2");
        assert_eq!(rtp_payload(&[0x80; 5]), None, "short");
        let mut liar = vec![
            0x90, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1, 0xBE, 0xDE, 0xFF, 0xFF,
        ];
        liar.push(0);
        assert_eq!(rtp_payload(&liar), None, "an extension past the end");
    }

    fn ring(desk: &Desk, call_id: &str) {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let socket = Arc::new(UdpSocket::from_std(socket).unwrap());
        let leg = Arc::new(Leg::new(
            socket,
            "127.0.0.1:9".parse().unwrap(),
            Codec::Pcmu,
        ));
        desk.ring(
            call_id,
            &ButtonId::new("B01").unwrap(),
            &IncidentId::new("I1").unwrap(),
            leg,
        );
    }

    #[tokio::test]
    async fn one_operator_per_call_and_only_they_hold_or_hang_up() {
        let desk = Desk::new();
        let (tx, mut commands) = mpsc::unbounded_channel();
        desk.connect(tx);
        let mut events = desk.subscribe();
        ring(&desk, "c1");
        assert_eq!(events.recv().await.unwrap().state, DeskState::Ringing);
        assert_eq!(desk.hold("c1", "ana", true), Err(DeskError::NotAnswered));
        let bad = desk.answer("c1", "ana", "not sdp", "127.0.0.1".parse().unwrap());
        assert!(matches!(bad.await, Err(DeskError::BadOffer(_))));
        // Taken by luis (as answer() marks it once the bridge is up).
        desk.calls
            .lock()
            .unwrap()
            .get_mut("c1")
            .unwrap()
            .call
            .operator = Some("luis".into());
        let second = desk.answer("c1", "ana", "v=0", "127.0.0.1".parse().unwrap());
        assert_eq!(second.await, Err(DeskError::Taken("luis".into())));
        assert_eq!(
            desk.hold("c1", "ana", true),
            Err(DeskError::Taken("luis".into()))
        );
        assert_eq!(
            desk.hang_up("c1", "ana"),
            Err(DeskError::Taken("luis".into()))
        );
        assert_eq!(
            desk.hold("c1", "luis", true).unwrap().state,
            DeskState::Held
        );
        let ended = desk.hang_up("c1", "luis").unwrap();
        assert_eq!(ended.ended_by.as_deref(), Some("operator:luis"));
        assert!(matches!(
            commands.recv().await,
            Some(Command::Held { held: true, .. })
        ));
        assert!(matches!(
            commands.recv().await,
            Some(Command::HangUp { .. })
        ));
        assert_eq!(
            desk.hang_up("c1", "luis"),
            Err(DeskError::NoSuchCall("c1".into()))
        );
        assert!(desk.calls().is_empty());
    }

    /// Marks `call_id` answered by `operator` on a bridge numbered `id` (a task that does
    /// nothing stands for str0m's loop).
    fn answered_on(desk: &Desk, call_id: &str, operator: &str, id: u64) {
        let (control, _) = mpsc::unbounded_channel();
        let mut calls = desk.calls.lock().unwrap();
        let entry = calls.get_mut(call_id).unwrap();
        entry.call.operator = Some(operator.into());
        entry.call.state = DeskState::Talking;
        entry.call.ringing_since_ms = 0;
        entry.bridge = Some(Bridge {
            id,
            control,
            task: tokio::spawn(std::future::pending()),
        });
    }

    #[tokio::test]
    async fn a_dropped_leg_rings_again_unless_a_newer_bridge_has_the_call() {
        let desk = Desk::new();
        let mut events = desk.subscribe();
        ring(&desk, "c1");
        assert_eq!(events.recv().await.unwrap().state, DeskState::Ringing);
        // Ana's page reloaded and answered again: bridge 2 replaced bridge 1, whose late
        // notice changes nothing.
        answered_on(&desk, "c1", "ana", 2);
        assert_eq!(desk.leg_dropped("c1", 1), None);
        assert_eq!(desk.calls()[0].state, DeskState::Talking);
        assert_eq!(desk.calls()[0].operator.as_deref(), Some("ana"));
        // Bridge 2's leg drops: ringing again for anyone, its ringing clock restarted.
        assert_eq!(desk.leg_dropped("c1", 2).as_deref(), Some("ana"));
        let again = events.recv().await.unwrap();
        assert_eq!(again.state, DeskState::Ringing);
        assert_eq!(again.operator, None);
        assert!(again.ringing_since_ms > 0);
        assert_eq!(desk.calls(), [again]);
        assert_eq!(desk.leg_dropped("c1", 2), None, "once");
        assert_eq!(desk.leg_dropped("gone", 2), None);
        // Luis may take it now (as answer() would once his bridge is up).
        assert!(desk.check_answerable("c1", "luis").is_ok());
        assert!(desk.calls.lock().unwrap()["c1"].bridge.is_none());
    }

    #[tokio::test]
    async fn a_bridge_that_ends_by_itself_says_so_and_a_hung_up_one_does_not() {
        let (tx, mut commands) = mpsc::unbounded_channel();
        let notice = |bridge| LegNotice {
            call_id: "c1".into(),
            bridge,
            commands: Some(tx.clone()),
        };
        report_dropped_leg(async { None }, notice(1)).await;
        report_dropped_leg(async { Some("gone".to_string()) }, notice(2)).await;
        drop(tx);
        match commands.recv().await {
            Some(Command::LegDropped {
                call_id,
                bridge,
                reason,
            }) => assert_eq!(
                (call_id.as_str(), bridge, reason.as_str()),
                ("c1", 2, "gone")
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            commands.recv().await.is_none(),
            "nothing for the hung-up bridge"
        );
    }
}
