//! The leader's sender: delivers every hand-off's queued CAP messages to their agencies, and
//! queues the Updates (or the Cancel) that later changes of an incident call for.
//!
//! It runs on the leader only, in its own task: a slow or failing agency costs this task its
//! time, never the dispatcher's. Each pass reads every hand-off from the store and, per
//! hand-off:
//!
//! 1. if the incident changed what the last message reported (kind, priority, caller, closed),
//!    queues the next message (an Update; on closing, the final Update or a Cancel), durably,
//!    before anything is sent;
//! 2. POSTs the oldest undelivered message if its back-off has passed, with
//!    `Content-Type: application/xml`, `X-Centinela-Signature: sha256=<hex HMAC-SHA256 of the
//!    body>` and `Idempotency-Key: <identifier>:<msgType>:<seq>` — the same body, signature
//!    and key on every attempt, so an agency that received a message whose answer was lost
//!    recognises the retry;
//! 3. records the attempt on the hand-off and, for the first
//!    [`HANDOFF_ATTEMPTS_AUDITED_MAX`] failures and the success, in the incident's audit.
//!
//! Its writes carry the leader's fence when it has one: an ex-leader's sender cannot record
//! anything. Two senders overlapping for a moment (a leadership change mid-POST) can at worst
//! POST a message twice, with the same idempotency key.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use centinela_core::handoff::{CapMessage, Handoff};
use centinela_core::incident::Incident;
use centinela_core::limits::HANDOFF_ATTEMPTS_AUDITED_MAX;
use centinela_core::time::Timestamp;
use centinela_records::Records;
use centinela_store::Fence;

use crate::{Setup, cap, signature};

/// The header naming each message for deduplication.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// How the sender paces itself. [`Options::default`] is what a node runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Between passes over the hand-offs.
    pub poll: Duration,
    /// One POST, connection included, at most: an agency that takes longer is failing.
    pub timeout: Duration,
    /// The back-off after a first failure; doubles per failure up to `backoff_max`.
    pub backoff_first: Duration,
    pub backoff_max: Duration,
    /// Hand-offs delivered at once: one slow agency does not hold up the others.
    pub concurrency: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            backoff_first: Duration::from_secs(2),
            // An agency down for an hour is retried every minute: its queue drains within a
            // minute of it coming back.
            backoff_max: Duration::from_secs(60),
            concurrency: 8,
        }
    }
}

impl Options {
    /// The pause after the `failures`-th failure in a row (1-based).
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        self.backoff_first
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// Largest answer read from an agency: only its status matters, the body is for the log.
const ANSWER_BYTES_MAX: usize = 16 * 1024;

/// What one pass did (for tests and logs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub queued: usize,
    pub delivered: usize,
    pub failed: usize,
}

type Now = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The sender of one leadership term.
#[derive(Clone)]
pub struct Sender {
    records: Records,
    setup: Setup,
    options: Options,
    fence: Option<Fence>,
    now: Now,
    http: HttpClient<HttpConnector, Full<Bytes>>,
}

impl Sender {
    pub fn new(
        records: Records,
        setup: Setup,
        options: Options,
        fence: Option<Fence>,
        now: impl Fn() -> Timestamp + Send + Sync + 'static,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(options.timeout));
        connector.set_nodelay(true);
        let http = HttpClient::builder(TokioExecutor::new()).build(connector);
        Self {
            records,
            setup,
            options,
            fence,
            now: Arc::new(now),
            http,
        }
    }

    /// Passes until `stop` turns true (or its sender is dropped), or the fence is lost.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            match self.pass().await {
                Ok(pass) if pass != Pass::default() => {
                    tracing::debug!(?pass, "hand-off pass");
                }
                Ok(_) => {}
                Err(centinela_records::Error::Fenced) => {
                    tracing::warn!("hand-off sender: leadership lost, stopping");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "hand-off pass failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.options.poll) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// One pass over every hand-off.
    pub async fn pass(&self) -> Result<Pass, centinela_records::Error> {
        let handoffs = self.records.handoffs().await?;
        let outcomes: Vec<Result<Pass, centinela_records::Error>> =
            futures::stream::iter(handoffs.into_iter().map(|h| self.serve(h)))
                .buffer_unordered(self.options.concurrency.max(1))
                .collect()
                .await;
        let mut total = Pass::default();
        for outcome in outcomes {
            let pass = outcome?;
            total.queued += pass.queued;
            total.delivered += pass.delivered;
            total.failed += pass.failed;
        }
        Ok(total)
    }

    async fn area_of(&self, incident: &Incident) -> String {
        match self.records.button(&incident.button).await {
            Ok(Some(button)) => button.name,
            _ => format!("button {}", incident.button),
        }
    }

    /// Queues what the incident's changes call for, then delivers the oldest message due.
    async fn serve(&self, mut handoff: Handoff) -> Result<Pass, centinela_records::Error> {
        let mut pass = Pass::default();
        if !handoff.is_final()
            && let Some(incident) = self.records.incident(&handoff.incident).await?
            && centinela_core::handoff::Reported::of(&incident) != handoff.reported
        {
            let area = self.area_of(&incident).await;
            let sender = &self.setup.sender;
            let now = (self.now)();
            let before = handoff.messages.len();
            handoff = self
                .records
                .update_handoff_fenced(
                    &handoff.incident.clone(),
                    &handoff.agency.clone(),
                    self.fence.as_ref(),
                    |h, i| {
                        let next = cap::follow_up(h, i, &area, sender, now)
                            .map_err(|e| centinela_records::Error::Invalid(e.to_string()))?;
                        Ok(match next {
                            Some((message, reported)) => {
                                h.queue(message, reported);
                                true
                            }
                            None => false,
                        })
                    },
                )
                .await?;
            pass.queued += handoff.messages.len().saturating_sub(before);
        }
        let now = (self.now)();
        let Some(message) = handoff.pending().cloned() else {
            return Ok(pass);
        };
        if message.next_attempt_at > now {
            return Ok(pass);
        }
        let Some(agency) = self.setup.agencies.get(&handoff.agency) else {
            // Removed from the configuration: kept queued until it returns.
            return Ok(pass);
        };
        let outcome = self
            .post(&agency.url, agency.hmac_key.as_bytes(), &message)
            .await;
        let after = (self.now)();
        let next = after.saturating_add(self.options.backoff(message.attempts + 1));
        let delivered = outcome.is_ok();
        // The reason may quote the agency's answer: escaped before it is logged or audited.
        let audit_text = match &outcome {
            Ok(status) => format!("delivered ({status})"),
            Err((_, reason)) => format!("failed: {}", centinela_core::text::printable(reason)),
        };
        let agency_id = handoff.agency.clone();
        self.records
            .update_handoff_fenced(
                &handoff.incident.clone(),
                &agency_id,
                self.fence.as_ref(),
                |h, i| {
                    if !h.record_attempt(message.seq, outcome.clone(), after, next) {
                        return Ok(false);
                    }
                    let attempts = h
                        .messages
                        .iter()
                        .find(|m| m.seq == message.seq)
                        .map_or(0, |m| m.attempts);
                    if delivered || attempts <= HANDOFF_ATTEMPTS_AUDITED_MAX {
                        i.handoff_attempt(&agency_id, &message.identifier, &audit_text, after);
                    }
                    Ok(true)
                },
            )
            .await?;
        if delivered {
            tracing::info!(incident = %handoff.incident, agency = %agency_id, cap = %message.identifier, "hand-off delivered");
            pass.delivered += 1;
        } else {
            tracing::warn!(incident = %handoff.incident, agency = %agency_id, cap = %message.identifier, outcome = %audit_text, "hand-off attempt failed");
            pass.failed += 1;
        }
        Ok(pass)
    }

    /// One POST of `message`: `Ok(status)` on 2xx, else the status (if any) and why.
    async fn post(
        &self,
        url: &str,
        key: &[u8],
        message: &CapMessage,
    ) -> Result<u16, (Option<u16>, String)> {
        let body = Bytes::from(message.body.clone());
        let request = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(header::CONTENT_TYPE, "application/xml")
            .header(signature::HEADER, signature::sign(key, &body))
            .header(IDEMPOTENCY_HEADER, message.idempotency_key())
            .header(header::USER_AGENT, "centinela-handoff/1")
            .body(Full::new(body))
            .map_err(|e| (None, format!("bad request: {e}")))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| (None, format!("{e}")))?;
            let status = response.status();
            let answer = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if status.is_success() {
                Ok(status.as_u16())
            } else {
                let text = String::from_utf8_lossy(&answer);
                let text: String = text.trim().chars().take(120).collect();
                Err((
                    Some(status.as_u16()),
                    format!("HTTP {status} {text}").trim().to_string(),
                ))
            }
        };
        match tokio::time::timeout(self.options.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err((
                None,
                format!("no answer within {} ms", self.options.timeout.as_millis()),
            )),
        }
    }
}
