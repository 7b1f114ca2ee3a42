//! The node's live streams: one [`Upstream`](crate::upstream) per camera, started by its first
//! viewer, and the [`Viewer`]s that share it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use centinela_core::ids::CameraId;
use centinela_onvif::credentials::Credentials;
use centinela_telemetry::metrics::{self, GAUGES};
use opentelemetry::KeyValue;

use crate::limits::{BROADCAST_FRAMES_MAX, UPSTREAMS_MAX};
use crate::wire::{Frame, Parameters, Status};
use crate::{Error, upstream};

/// A camera's stream as its viewers share it.
pub(crate) struct Feed {
    pub(crate) frames: broadcast::Sender<Arc<Frame>>,
    /// Every viewer holds a receiver: `receiver_count` is the number of viewers.
    pub(crate) status: watch::Sender<Status>,
}

/// Which stream a feed pulls: the same camera under a new URI is a new feed.
pub(crate) type FeedKey = (CameraId, String);

/// The node's live streams.
pub struct Video {
    credentials: Credentials,
    feeds: Mutex<HashMap<FeedKey, Arc<Feed>>>,
    /// RTSP sessions opened since the node started (tests and metrics).
    pub(crate) sessions_opened: AtomicU64,
}

impl Video {
    /// Streams signed in with `credentials` (the cameras' ONVIF accounts).
    pub fn new(credentials: Credentials) -> Arc<Self> {
        Arc::new(Self {
            credentials,
            feeds: Mutex::new(HashMap::new()),
            sessions_opened: AtomicU64::new(0),
        })
    }

    /// Starts watching `camera`'s stream at `uri`, opening its upstream if nobody watches it.
    pub fn watch(self: &Arc<Self>, camera: &CameraId, uri: &str) -> Result<Viewer, Error> {
        let key = (camera.clone(), uri.to_string());
        let mut feeds = self.feeds.lock().expect("feeds lock poisoned");
        let feed = match feeds.get(&key) {
            Some(feed) => feed.clone(),
            None => {
                if feeds.len() >= UPSTREAMS_MAX {
                    return Err(Error::Busy(feeds.len()));
                }
                let target = upstream::Target::new(uri, self.credentials.login(camera))?;
                let feed = Arc::new(Feed {
                    frames: broadcast::channel(BROADCAST_FRAMES_MAX).0,
                    status: watch::channel(Status::Connecting).0,
                });
                feeds.insert(key.clone(), feed.clone());
                GAUGES.video_upstreams.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(upstream::run(self.clone(), key, feed.clone(), target));
                feed
            }
        };
        // Subscribed under the lock: an upstream retiring checks its viewers under it too.
        let mut status = feed.status.subscribe();
        status.mark_changed();
        GAUGES.video_viewers.fetch_add(1, Ordering::Relaxed);
        Ok(Viewer {
            frames: feed.frames.subscribe(),
            status,
            need_key_frame: true,
            parameters: None,
            pending: None,
            skipped: 0,
        })
    }

    /// Cameras whose upstream is open (or retrying) right now.
    pub fn upstreams(&self) -> usize {
        self.feeds.lock().expect("feeds lock poisoned").len()
    }

    /// RTSP sessions this node has opened since it started.
    pub fn sessions_opened(&self) -> u64 {
        self.sessions_opened.load(Ordering::Relaxed)
    }

    /// Removes `feed` if nobody watches it; true when removed (its upstream then ends).
    pub(crate) fn retire_if_unwatched(&self, key: &FeedKey, feed: &Arc<Feed>) -> bool {
        let mut feeds = self.feeds.lock().expect("feeds lock poisoned");
        if feed.status.receiver_count() > 0 {
            return false;
        }
        if feeds.get(key).is_some_and(|f| Arc::ptr_eq(f, feed)) {
            feeds.remove(key);
            GAUGES.video_upstreams.fetch_sub(1, Ordering::Relaxed);
        }
        true
    }
}

/// What a viewer receives, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// The stream's state changed (the first event is always the current state).
    Status(Status),
    /// Configure the decoder: before the first frame, and whenever the camera changes its
    /// parameters (resolution, profile).
    Config(Arc<Parameters>),
    /// An access unit. The first after a `Config` or a skip is a key frame.
    Frame(Arc<Frame>),
}

/// One browser's view of a camera: frames from the shared broadcast, status changes, and
/// skipping to the next key frame when it falls behind.
pub struct Viewer {
    frames: broadcast::Receiver<Arc<Frame>>,
    status: watch::Receiver<Status>,
    need_key_frame: bool,
    parameters: Option<Arc<Parameters>>,
    /// A frame whose `Config` was just returned.
    pending: Option<Arc<Frame>>,
    skipped: u64,
}

impl Viewer {
    /// The next event; `None` when the upstream is gone for good.
    pub async fn next(&mut self) -> Option<Event> {
        if let Some(frame) = self.pending.take() {
            relayed(&frame);
            return Some(Event::Frame(frame));
        }
        loop {
            tokio::select! {
                biased;
                changed = self.status.changed() => {
                    changed.ok()?;
                    let status = self.status.borrow_and_update().clone();
                    if status != Status::Playing {
                        // A new session starts with new timestamps: start again at a key frame.
                        self.need_key_frame = true;
                        self.parameters = None;
                    }
                    return Some(Event::Status(status));
                }
                frame = self.frames.recv() => match frame {
                    Ok(frame) => {
                        if self.need_key_frame && !frame.key {
                            self.skipped += 1;
                            metrics::instruments()
                                .video_frames_skipped
                                .add(1, &[KeyValue::new("reason", "key_frame")]);
                            continue;
                        }
                        self.need_key_frame = false;
                        let same = self
                            .parameters
                            .as_ref()
                            .is_some_and(|p| Arc::ptr_eq(p, &frame.parameters));
                        if !same {
                            let parameters = frame.parameters.clone();
                            self.parameters = Some(parameters.clone());
                            // The frame follows its configuration, on the next call.
                            self.pending = Some(frame);
                            return Some(Event::Config(parameters));
                        }
                        relayed(&frame);
                        return Some(Event::Frame(frame));
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "video viewer fell behind; skipping to the next key frame");
                        self.skipped += missed;
                        self.need_key_frame = true;
                        metrics::instruments()
                            .video_frames_skipped
                            .add(missed, &[KeyValue::new("reason", "behind")]);
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    }

    /// Frames this viewer skipped (fell behind, or waited for a key frame).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        GAUGES.video_viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts `frame` as relayed to one viewer.
fn relayed(frame: &Frame) {
    let m = metrics::instruments();
    m.video_frames.add(1, &[]);
    m.video_bytes.add(frame.data.len() as u64, &[]);
}
