//! Typed changes from the store's watches.

use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use centinela_core::brigade::Brigade;
use centinela_core::button::Button;
use centinela_core::camera::Camera;
use centinela_core::incident::Incident;
use centinela_store::keys::prefix_end;
use centinela_store::{EventKind, Revision, WatchEvent};

use crate::Records;
use crate::error::Result;
use crate::record::{Record, decode};

/// A change seen by a watch.
#[derive(Debug, Clone)]
pub enum Change<T> {
    Put { value: T, revision: Revision },
    Deleted { id: String, revision: Revision },
}

impl<T> Change<T> {
    /// The store revision of the change.
    pub fn revision(&self) -> Revision {
        match self {
            Change::Put { revision, .. } | Change::Deleted { revision, .. } => *revision,
        }
    }
}

/// A change seen by [`Records::watch_incidents_and_brigades`].
#[derive(Debug, Clone)]
pub enum DispatchChange {
    /// Boxed: an incident, with its audit trail, is several times a brigade's size.
    Incident(Box<Change<Incident>>),
    Brigade(Change<Brigade>),
}

impl DispatchChange {
    /// The store revision of the change.
    pub fn revision(&self) -> Revision {
        match self {
            DispatchChange::Incident(change) => change.revision(),
            DispatchChange::Brigade(change) => change.revision(),
        }
    }
}

/// A change seen by [`Records::watch_feed`]: a record the operators' feed shows.
#[derive(Debug, Clone)]
pub enum FeedChange {
    /// Boxed, as in [`DispatchChange`].
    Incident(Box<Change<Incident>>),
    Brigade(Change<Brigade>),
    Button(Change<Button>),
    Camera(Change<Camera>),
}

/// The one key span that holds every kind the dispatcher and the feed follow:
/// `[brigades/, end of incidents/)`. It also holds `buttons/`, `cameras/`, `election/` and
/// `handoffs/` (the keys sort between them), which the dispatcher skips; it does not hold
/// `presses/`, `open/`, `members/`, `stills/` or `revoked-sessions/`, so a press's pointer
/// keys and the members' heartbeats are never sent to these watches.
///
/// One store watch of it serves both ([`Records`]'s shared watch): on the leader's node with
/// an operator subscribed, the store sends each change once, not once per consumer.
pub(crate) fn followed_span() -> (String, Vec<u8>) {
    let start = Brigade::prefix();
    let incidents = Incident::prefix();
    debug_assert!(start < incidents);
    debug_assert!(Button::prefix() > start && Button::prefix() < incidents);
    debug_assert!(Camera::prefix() > start && Camera::prefix() < incidents);
    (start, prefix_end(incidents.as_bytes()))
}

/// A watch event on a key under `prefix` as a typed change.
fn change_of<T: DeserializeOwned>(event: WatchEvent, prefix: &str) -> Result<Change<T>> {
    match event.kind {
        EventKind::Put => Ok(Change::Put {
            value: decode(&event.kv)?,
            revision: event.revision,
        }),
        EventKind::Delete => Ok(Change::Deleted {
            id: event
                .kv
                .key
                .strip_prefix(prefix)
                .unwrap_or(&event.kv.key)
                .to_string(),
            revision: event.revision,
        }),
    }
}

impl Records {
    /// Changes to records of kind `T` from `from_revision` on. The stream ends after its first
    /// error; resume from the last revision seen + 1.
    pub async fn watch<T: Record>(
        &self,
        from_revision: Revision,
    ) -> Result<impl Stream<Item = Result<Change<T>>> + Send + Unpin + 'static> {
        let prefix = T::prefix();
        let stream = self
            .store
            .watch_prefix(&prefix, Some(from_revision))
            .await?;
        Ok(stream.map(move |event| change_of(event?, &prefix)))
    }

    /// Changes to incidents and brigades from `from_revision` on, on **one** watch: unlike two
    /// [`Records::watch`]es, which each keep their own order but not one against the other,
    /// this yields every change in store revision order across both kinds, with the changes of
    /// one revision (one transaction) consecutive. The dispatcher relies on it: a brigade freed
    /// at revision 12 must not be handed out before the classification written at revision 11
    /// is seen. The watch covers only the span from `brigades/` to `incidents/` (not the whole
    /// root: no press or open-pointer keys reach it); the other records in that span are
    /// skipped. It is the shared store watch [`Records::watch_feed`] uses too (see
    /// [`centinela_store::SharedWatch`]: one per [`Records`] and its clones). Ends after its
    /// first error, as [`Records::watch`], also when this consumer falls too far behind the
    /// shared watch.
    pub async fn watch_incidents_and_brigades(
        &self,
        from_revision: Revision,
    ) -> Result<impl Stream<Item = Result<DispatchChange>> + Send + Unpin + 'static> {
        let incidents = Incident::prefix();
        let brigades = Brigade::prefix();
        let stream = self.follow.follow(from_revision).await?;
        Ok(stream.filter_map(move |event| {
            let change = match event {
                Err(e) => Some(Err(e.into())),
                Ok(event) if event.kv.key.starts_with(&incidents) => Some(
                    change_of(event, &incidents).map(|c| DispatchChange::Incident(Box::new(c))),
                ),
                Ok(event) if event.kv.key.starts_with(&brigades) => {
                    Some(change_of(event, &brigades).map(DispatchChange::Brigade))
                }
                Ok(_) => None,
            };
            futures::future::ready(change)
        }))
    }

    /// Changes to every record the operators' feed shows (incidents, brigades, buttons,
    /// cameras) from `from_revision` on, through the **same** shared store watch as
    /// [`Records::watch_incidents_and_brigades`], in revision order. Ends after its first
    /// error, as [`Records::watch`].
    pub async fn watch_feed(
        &self,
        from_revision: Revision,
    ) -> Result<impl Stream<Item = Result<FeedChange>> + Send + Unpin + 'static> {
        let incidents = Incident::prefix();
        let brigades = Brigade::prefix();
        let buttons = Button::prefix();
        let cameras = Camera::prefix();
        let stream = self.follow.follow(from_revision).await?;
        Ok(stream.filter_map(move |event| {
            let change = match event {
                Err(e) => Some(Err(e.into())),
                Ok(event) => {
                    let key = &event.kv.key;
                    if key.starts_with(&incidents) {
                        Some(
                            change_of(event, &incidents).map(|c| FeedChange::Incident(Box::new(c))),
                        )
                    } else if key.starts_with(&brigades) {
                        Some(change_of(event, &brigades).map(FeedChange::Brigade))
                    } else if key.starts_with(&buttons) {
                        Some(change_of(event, &buttons).map(FeedChange::Button))
                    } else if key.starts_with(&cameras) {
                        Some(change_of(event, &cameras).map(FeedChange::Camera))
                    } else {
                        None
                    }
                }
            };
            futures::future::ready(change)
        }))
    }
}
