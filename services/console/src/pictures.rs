//! The cameras' pictures for the console: the node fetches snapshots from each ONVIF camera
//! (its credentials stay on the server) and hands them to browsers as single stills or as an
//! MJPEG stream.
//!
//! One fetch loop per camera, shared by every viewer of that camera: fifteen operators watching
//! one incident cost the camera one request per frame, not fifteen. The loop runs while
//! someone watches and for [`PICTURE_LINGER`] after, then stops; the last frame is kept, so a
//! camera that went offline still shows its last picture and how old it is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::watch;

use centinela_core::camera::Camera;
use centinela_core::ids::CameraId;
use centinela_core::time::Timestamp;
use centinela_onvif::client::{Client, Target};
use centinela_onvif::credentials::Credentials;
use centinela_records::Records;

use crate::limits::{PICTURE_BACKOFF_MAX, PICTURE_INTERVAL, PICTURE_LINGER};

/// One JPEG from a camera and when it was taken (our wall clock, ms).
#[derive(Clone, Debug)]
pub struct Frame {
    pub jpeg: Bytes,
    pub at_ms: u64,
}

impl Frame {
    pub fn age(&self) -> Duration {
        Duration::from_millis(wall_ms().saturating_sub(self.at_ms))
    }
}

/// Why there is no picture.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    #[error("camera {0} not found")]
    NotFound(String),
    #[error("camera {0} is a native device: it sends no picture (pictures need ONVIF)")]
    Native(String),
    #[error("camera {camera} has sent no picture yet: {reason}")]
    Unavailable { camera: String, reason: String },
    #[error("store: {0}")]
    Store(String),
}

/// What a camera's feed shares with its viewers.
struct Feed {
    frames: watch::Sender<Option<Frame>>,
    /// The last failure, cleared by the next frame.
    failure: Mutex<Option<String>>,
    running: Mutex<bool>,
}

/// The node's picture feeds.
pub struct Pictures {
    records: Records,
    credentials: Credentials,
    feeds: Mutex<HashMap<CameraId, Arc<Feed>>>,
}

impl Pictures {
    pub fn new(records: Records, credentials: Credentials) -> Arc<Self> {
        Arc::new(Self {
            records,
            credentials,
            feeds: Mutex::new(HashMap::new()),
        })
    }

    /// Frames of `camera` as they come (the current one first, when there is one).
    pub async fn watch(
        self: &Arc<Self>,
        camera: &str,
    ) -> Result<watch::Receiver<Option<Frame>>, PictureError> {
        let record = self.camera(camera).await?;
        let feed = self.feed(&record.id);
        let receiver = feed.frames.subscribe();
        let start = {
            let mut running = feed.running.lock().expect("feed lock poisoned");
            !std::mem::replace(&mut *running, true)
        };
        if start {
            tokio::spawn(run(self.clone(), record, feed));
        }
        Ok(receiver)
    }

    /// A current still of `camera` (waiting up to `within` for a first frame), or its last
    /// one, however old, when it no longer answers.
    pub async fn still(
        self: &Arc<Self>,
        camera: &str,
        within: Duration,
    ) -> Result<Frame, PictureError> {
        let mut frames = self.watch(camera).await?;
        let fresh = |f: &Option<Frame>| f.as_ref().is_some_and(|f| f.age() < PICTURE_INTERVAL * 4);
        let waited = tokio::time::timeout(within, frames.wait_for(fresh))
            .await
            .ok()
            .and_then(|r| r.ok().map(|frame| frame.clone()));
        if let Some(Some(frame)) = waited {
            return Ok(frame);
        }
        if let Some(last) = frames.borrow().clone() {
            return Ok(last);
        }
        let feed =
            self.feed(&CameraId::new(camera).map_err(|_| PictureError::NotFound(camera.into()))?);
        let reason = feed
            .failure
            .lock()
            .expect("feed lock poisoned")
            .clone()
            .unwrap_or_else(|| format!("no answer within {within:?}"));
        Err(PictureError::Unavailable {
            camera: camera.into(),
            reason,
        })
    }

    async fn camera(&self, camera: &str) -> Result<Camera, PictureError> {
        let id = CameraId::new(camera).map_err(|_| PictureError::NotFound(camera.into()))?;
        let record = self
            .records
            .camera(&id)
            .await
            .map_err(|e| PictureError::Store(e.to_string()))?
            .ok_or_else(|| PictureError::NotFound(camera.into()))?;
        if record.onvif.is_none() {
            return Err(PictureError::Native(camera.into()));
        }
        Ok(record)
    }

    fn feed(&self, camera: &CameraId) -> Arc<Feed> {
        self.feeds
            .lock()
            .expect("feeds lock poisoned")
            .entry(camera.clone())
            .or_insert_with(|| {
                Arc::new(Feed {
                    frames: watch::channel(None).0,
                    failure: Mutex::new(None),
                    running: Mutex::new(false),
                })
            })
            .clone()
    }
}

/// The fetch loop of one camera: a frame every [`PICTURE_INTERVAL`] while anyone watches.
async fn run(pictures: Arc<Pictures>, camera: Camera, feed: Arc<Feed>) {
    let endpoint = camera.onvif.clone().expect("ONVIF cameras only");
    let login = pictures.credentials.login(&camera.id).cloned();
    let target = Target {
        device_url: endpoint.url,
        username: login
            .as_ref()
            .map(|l| l.username.clone())
            .unwrap_or_default(),
        password: login.map(|l| l.password).unwrap_or_default(),
    };
    let mut client: Option<Client> = None;
    let mut backoff = PICTURE_INTERVAL;
    let mut unwatched_since: Option<tokio::time::Instant> = None;
    let mut next = tokio::time::Instant::now();
    loop {
        // Only the sender is left once every viewer has gone: linger, then stop.
        if feed.frames.receiver_count() == 0 {
            let since = *unwatched_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() >= PICTURE_LINGER {
                let mut running = feed.running.lock().expect("feed lock poisoned");
                // A viewer may have subscribed meanwhile; it saw `running` and expects us.
                if feed.frames.receiver_count() == 0 {
                    *running = false;
                    return;
                }
            }
        } else {
            unwatched_since = None;
        }
        tokio::time::sleep_until(next).await;
        let result = match client.as_mut() {
            Some(client) => client.snapshot().await,
            None => {
                let mut fresh = Client::new(target.clone());
                match fresh.connect(Timestamp::from_millis(wall_ms())).await {
                    Ok(_) => {
                        let shot = fresh.snapshot().await;
                        client = Some(fresh);
                        shot
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(jpeg) => {
                *feed.failure.lock().expect("feed lock poisoned") = None;
                feed.frames.send_replace(Some(Frame {
                    jpeg,
                    at_ms: wall_ms(),
                }));
                backoff = PICTURE_INTERVAL;
                next += PICTURE_INTERVAL;
                // Behind (a slow camera): skip the missed ticks rather than burst.
                let now = tokio::time::Instant::now();
                if next < now {
                    next = now;
                }
            }
            Err(e) => {
                tracing::debug!(camera = %camera.id, error = %e, "picture not fetched");
                *feed.failure.lock().expect("feed lock poisoned") = Some(e.to_string());
                client = None;
                next = tokio::time::Instant::now() + backoff;
                backoff = (backoff * 2).min(PICTURE_BACKOFF_MAX);
            }
        }
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
