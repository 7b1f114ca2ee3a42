//! A watch over a key or prefix: a stream of events, one per changed key, in revision order.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Kv, Revision, Store, header_revision};
use crate::Error;
use crate::pb::etcdserverpb::{
    WatchCancelRequest, WatchCreateRequest, WatchRequest, WatchResponse, watch_request,
};
use crate::pb::mvccpb::{Event, event::EventType};

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    /// After a put: the new key/value. After a delete: the key, with `mod_revision` the
    /// deletion's revision and every other field zero or empty.
    pub kv: Kv,
    /// The key before the change (`None` if it did not exist, or if history was compacted).
    pub prev_kv: Option<Kv>,
    /// The revision of the change (events of one transaction share it).
    pub revision: Revision,
}

/// The events of a watch, as a [`Stream`] of `Result<WatchEvent, Error>`.
///
/// Events come in revision order; the events of one revision (one transaction) come
/// consecutively. When the stream breaks (connection lost, watch canceled by the store because
/// it fell behind, start revision compacted) it yields **one error and then ends**; it does not
/// reconnect. To resume without a gap, open a new watch from [`WatchStream::last_revision`]` + 1`
/// (or, after [`Error::Compacted`], re-read the state and watch from that read's revision + 1).
///
/// Dropping the stream ends the watch on the server.
pub struct WatchStream {
    /// The store and the member the stream is on: a broken stream moves the store's later
    /// calls to another member.
    store: Store,
    member: usize,
    responses: tonic::Streaming<WatchResponse>,
    /// Keeps the request side open (etcd ends a watch stream whose client stops sending) and
    /// carries the cancel request.
    requests: mpsc::Sender<WatchRequest>,
    watch_id: i64,
    buffered: VecDeque<WatchEvent>,
    last_revision: Revision,
    cancel_requested: bool,
    ended: bool,
    /// The error that ended the stream, yielded after the buffered events.
    pending_error: Option<Error>,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("watch_id", &self.watch_id)
            .field("last_revision", &self.last_revision)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl WatchStream {
    /// Opens the stream and waits (under the request deadline) until the store confirms the
    /// watch: every change after this returns is seen.
    pub(crate) async fn open(
        store: &Store,
        key: Vec<u8>,
        range_end: Vec<u8>,
        from_revision: Option<Revision>,
    ) -> Result<Self, Error> {
        // etcd reads a start revision <= 0 as "now".
        let from_revision = from_revision.filter(|revision| *revision > 0);
        let mut attempts = store.member_count();
        loop {
            let (member, _) = store.member();
            match Self::open_on(store, &key, &range_end, from_revision).await {
                Ok(stream) => return Ok(stream),
                Err(error) => {
                    store.member_failed(member, &error);
                    attempts -= 1;
                    if attempts == 0 || !super::refused_before_sending(&error) {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// Opens the watch on the current member.
    async fn open_on(
        store: &Store,
        key: &[u8],
        range_end: &[u8],
        from_revision: Option<Revision>,
    ) -> Result<Self, Error> {
        let (requests, outgoing) = mpsc::channel(4);
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: key.to_vec(),
                    range_end: range_end.to_vec(),
                    start_revision: from_revision.unwrap_or(0),
                    progress_notify: true,
                    prev_kv: true,
                    ..WatchCreateRequest::default()
                },
            )),
        };
        // Queued before the call: etcd sends response headers only with its first message.
        requests
            .send(create)
            .await
            .map_err(|_| Error::Unavailable("watch request channel closed".to_owned()))?;
        let (member, clients) = store.member();
        let mut client = clients.watch_client();
        let timeout = store.request_timeout();
        let open = async {
            let mut responses = client
                .watch(ReceiverStream::new(outgoing))
                .await?
                .into_inner();
            let created = responses
                .message()
                .await?
                .ok_or_else(|| Error::Unavailable("watch stream ended at creation".to_owned()))?;
            Ok::<_, Error>((responses, created))
        };
        let (responses, created) = tokio::time::timeout(timeout, open)
            .await
            .map_err(|_| Error::Timeout)??;
        if !created.created {
            return Err(Error::InvalidData(
                "first watch response is not a creation".to_owned(),
            ));
        }
        if created.canceled {
            return Err(Error::WatchCanceled {
                reason: created.cancel_reason,
            });
        }
        let created_at = header_revision(created.header.as_ref())?;
        Ok(WatchStream {
            store: store.clone(),
            member,
            responses,
            requests,
            watch_id: created.watch_id,
            buffered: VecDeque::new(),
            // Resuming from here + 1 misses nothing: from `r` we have seen nothing before `r`;
            // from now, the watch covers everything after the creation's revision.
            last_revision: from_revision.map_or(created_at, |from| from - 1),
            cancel_requested: false,
            ended: false,
            pending_error: None,
        })
    }

    /// The highest revision whose events this stream has fully delivered (or, for an idle
    /// watch, the revision the store reported progress up to). Resume from it + 1.
    pub fn last_revision(&self) -> Revision {
        self.last_revision
    }

    /// The watch ID the store assigned.
    pub fn watch_id(&self) -> i64 {
        self.watch_id
    }

    /// Asks the store to cancel the watch. Events already on their way are still yielded; then
    /// the stream ends (`None`).
    pub async fn cancel(&mut self) -> Result<(), Error> {
        self.cancel_requested = true;
        let cancel = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CancelRequest(
                WatchCancelRequest {
                    watch_id: self.watch_id,
                },
            )),
        };
        self.requests
            .send(cancel)
            .await
            .map_err(|_| Error::Unavailable("watch request channel closed".to_owned()))
    }

    /// Takes one response in; `Err` ends the stream with that error, `Ok(false)` ends it
    /// cleanly (our cancel was confirmed).
    fn absorb(&mut self, response: WatchResponse) -> Result<bool, Error> {
        if response.watch_id != self.watch_id && response.watch_id != -1 {
            return Ok(true);
        }
        if response.canceled {
            if response.compact_revision > 0 {
                return Err(Error::Compacted {
                    compact_revision: response.compact_revision,
                });
            }
            if self.cancel_requested {
                return Ok(false);
            }
            return Err(Error::WatchCanceled {
                reason: response.cancel_reason,
            });
        }
        if response.events.is_empty() {
            // Progress: every later event has a higher revision than the header's.
            if let Some(header) = response.header
                && self.buffered.is_empty()
                && !response.created
            {
                self.last_revision = self.last_revision.max(header.revision);
            }
            return Ok(true);
        }
        for event in response.events {
            self.buffered.push_back(convert_event(event)?);
        }
        Ok(true)
    }
}

fn convert_event(event: Event) -> Result<WatchEvent, Error> {
    let kind = match EventType::try_from(event.r#type) {
        Ok(EventType::Put) => EventKind::Put,
        Ok(EventType::Delete) => EventKind::Delete,
        Err(_) => return Err(Error::InvalidData("unknown watch event type".to_owned())),
    };
    let kv = Kv::try_from(
        event
            .kv
            .ok_or_else(|| Error::InvalidData("watch event without kv".to_owned()))?,
    )?;
    let prev_kv = event.prev_kv.map(Kv::try_from).transpose()?;
    Ok(WatchEvent {
        kind,
        revision: kv.mod_revision,
        kv,
        prev_kv,
    })
}

impl Stream for WatchStream {
    type Item = Result<WatchEvent, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(event) = this.buffered.pop_front() {
                // A revision is fully delivered once its last event is out.
                if this
                    .buffered
                    .front()
                    .is_none_or(|next| next.revision != event.revision)
                {
                    this.last_revision = this.last_revision.max(event.revision);
                }
                return Poll::Ready(Some(Ok(event)));
            }
            if this.ended {
                return Poll::Ready(this.pending_error.take().map(Err));
            }
            let response = match Pin::new(&mut this.responses).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(response) => response,
            };
            let outcome = match response {
                Some(Ok(response)) => this.absorb(response),
                Some(Err(status)) => Err(status.into()),
                None if this.cancel_requested => Ok(false),
                None => Err(Error::Unavailable(
                    "watch stream closed by the store".to_owned(),
                )),
            };
            match outcome {
                Ok(true) => {}
                Ok(false) => this.ended = true,
                Err(error) => {
                    this.store.member_failed(this.member, &error);
                    // Delivered after what is buffered, then the stream ends.
                    this.ended = true;
                    this.pending_error = Some(error);
                }
            }
        }
    }
}
