//! One camera's upstream: an RTSP session (retina, RTP over the RTSP TCP connection, digest
//! authentication), its H.264 access units broadcast to the viewers, reopened with back-off
//! when it fails or stalls, and closed [`LINGER`] after the last viewer left.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use retina::client::{Credentials, PlayOptions, Session, SessionOptions, SetupOptions};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoFrame};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use url::Url;

use centinela_onvif::credentials::Login;
use centinela_telemetry::metrics;

use crate::Error;
use crate::hub::{Feed, FeedKey, Video};
use crate::limits::{
    ACCESS_UNIT_BYTES_MAX, BACKOFF_MAX, BACKOFF_MIN, CONNECT_TIMEOUT, LINGER, LINGER_CHECK,
    REASON_LEN_MAX, STALL_MAX,
};
use crate::wire::{Frame, Parameters, Status};

/// Where a camera streams and the account it takes.
pub(crate) struct Target {
    url: Url,
    credentials: Option<Credentials>,
}

impl Target {
    /// `uri` as ONVIF's `GetStreamUri` gave it. Credentials embedded in it (some cameras do
    /// that) are used when the node has no account for the camera, and never sent in the URL.
    pub(crate) fn new(uri: &str, login: Option<&Login>) -> Result<Self, Error> {
        let fail = |reason: &str| Error::Uri {
            uri: redact(uri),
            reason: reason.to_string(),
        };
        let mut url = Url::parse(uri).map_err(|e| fail(&e.to_string()))?;
        if url.scheme() != "rtsp" {
            return Err(fail("only rtsp:// streams are supported"));
        }
        if url.host().is_none() {
            return Err(fail("no host"));
        }
        let embedded = (!url.username().is_empty()).then(|| Credentials {
            username: percent_decode(url.username()),
            password: percent_decode(url.password().unwrap_or_default()),
        });
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let credentials = login
            .map(|l| Credentials {
                username: l.username.clone(),
                password: l.password.clone(),
            })
            .or(embedded);
        Ok(Self { url, credentials })
    }
}

/// How one session ended.
enum Ended {
    /// Nobody watched for [`LINGER`]: the feed is retired.
    Unwatched,
    /// It failed after playing (`true`) or before.
    Failed { status: Status, played: bool },
}

/// Runs `feed`'s upstream until nobody has watched it for [`LINGER`].
pub(crate) async fn run(video: Arc<Video>, key: FeedKey, feed: Arc<Feed>, target: Target) {
    let camera = key.0.clone();
    let mut linger = Linger::default();
    let mut backoff = BACKOFF_MIN;
    loop {
        match session(&video, &key, &feed, &target, &mut linger).await {
            Ended::Unwatched => {
                tracing::info!(%camera, "video: last viewer gone; stream closed");
                return;
            }
            Ended::Failed { status, played } => {
                if played {
                    backoff = BACKOFF_MIN;
                }
                tracing::info!(%camera, ?status, retry_in = ?backoff, "video: stream failed");
                let m = metrics::instruments();
                match status {
                    Status::Refused { .. } => m.video_refused.add(1, &[]),
                    _ => m.video_reconnects.add(1, &[]),
                }
                feed.status.send_replace(status);
            }
        }
        let retry_at = Instant::now() + backoff;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        while Instant::now() < retry_at {
            if linger.expired(&video, &key, &feed) {
                tracing::info!(%camera, "video: last viewer gone; retries stopped");
                return;
            }
            sleep_until(retry_at.min(Instant::now() + LINGER_CHECK)).await;
        }
    }
}

/// When the last viewer left, if nobody watches now.
#[derive(Default)]
struct Linger {
    unwatched_since: Option<Instant>,
}

impl Linger {
    /// True when nobody has watched for [`LINGER`] and the feed was retired.
    fn expired(&mut self, video: &Video, key: &FeedKey, feed: &Arc<Feed>) -> bool {
        if feed.status.receiver_count() > 0 {
            self.unwatched_since = None;
            return false;
        }
        let since = *self.unwatched_since.get_or_insert_with(Instant::now);
        since.elapsed() >= LINGER && video.retire_if_unwatched(key, feed)
    }
}

/// Opens one RTSP session and forwards its frames until it fails or nobody watches.
async fn session(
    video: &Video,
    key: &FeedKey,
    feed: &Arc<Feed>,
    target: &Target,
    linger: &mut Linger,
) -> Ended {
    let opened = tokio::select! {
        opened = timeout(CONNECT_TIMEOUT, open(target)) => opened,
        () = watch_linger(video, key, feed, linger) => return Ended::Unwatched,
    };
    let mut stream = match opened {
        Ok(Ok(stream)) => stream,
        Ok(Err(status)) => {
            return Ended::Failed {
                status,
                played: false,
            };
        }
        Err(_) => {
            return Ended::Failed {
                status: Status::Reconnecting {
                    reason: format!(
                        "the camera did not open the stream within {CONNECT_TIMEOUT:?}"
                    ),
                },
                played: false,
            };
        }
    };
    video.sessions_opened.fetch_add(1, Ordering::Relaxed);
    metrics::instruments().video_sessions.add(1, &[]);
    let mut parameters: Option<Arc<Parameters>> = None;
    let mut played = false;
    // Checked on every tick rather than with a timeout around `next()`: the tick's branch
    // would restart such a timeout every second, and a stall would never be noticed.
    let mut last_frame = Instant::now();
    let mut check = tokio::time::interval(LINGER_CHECK);
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            _ = check.tick() => {
                if linger.expired(video, key, feed) {
                    return Ended::Unwatched;
                }
                if last_frame.elapsed() >= STALL_MAX {
                    return Ended::Failed {
                        status: Status::Reconnecting {
                            reason: format!("no video from the camera for {STALL_MAX:?}"),
                        },
                        played,
                    };
                }
                continue;
            }
        };
        let frame = match item {
            Some(Ok(CodecItem::VideoFrame(frame))) => frame,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                return Ended::Failed {
                    status: failure(&e),
                    played,
                };
            }
            None => {
                return Ended::Failed {
                    status: Status::Reconnecting {
                        reason: "the camera ended the stream".into(),
                    },
                    played,
                };
            }
        };
        last_frame = Instant::now();
        if frame.has_new_parameters() || parameters.is_none() {
            match stream.streams()[frame.stream_id()].parameters() {
                Some(ParametersRef::Video(p)) => {
                    let (width, height) = p.pixel_dimensions();
                    parameters = Some(Arc::new(Parameters {
                        codec: p.rfc6381_codec().to_string(),
                        description: Bytes::copy_from_slice(p.extra_data()),
                        width,
                        height,
                    }));
                }
                // No SPS/PPS yet (some cameras send them in-band with the first key frame).
                _ => continue,
            }
        }
        let Some(parameters) = parameters.clone() else {
            continue;
        };
        if frame.data().len() > ACCESS_UNIT_BYTES_MAX {
            tracing::warn!(camera = %key.0, bytes = frame.data().len(), "video: access unit too large; dropped");
            continue;
        }
        if !played {
            played = true;
            feed.status.send_replace(Status::Playing);
        }
        // No viewer subscribed right now (lingering) is not an error.
        let _ = feed.frames.send(Arc::new(to_frame(frame, parameters)));
    }
}

/// Resolves once nobody has watched for [`LINGER`] and the feed was retired.
async fn watch_linger(video: &Video, key: &FeedKey, feed: &Arc<Feed>, linger: &mut Linger) {
    loop {
        if linger.expired(video, key, feed) {
            return;
        }
        sleep(LINGER_CHECK).await;
    }
}

/// DESCRIBE, SETUP of the first H.264 video stream (RTP interleaved on the TCP connection,
/// retina's default), PLAY.
async fn open(target: &Target) -> Result<retina::client::Demuxed, Status> {
    let options = SessionOptions::default()
        .creds(target.credentials.clone())
        .user_agent("centinela".to_string());
    let mut session = Session::describe(target.url.clone(), options)
        .await
        .map_err(|e| failure(&e))?;
    let h264 = session
        .streams()
        .iter()
        .position(|s| s.media() == "video" && s.encoding_name() == "h264");
    let Some(h264) = h264 else {
        let offered: Vec<String> = session
            .streams()
            .iter()
            .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
            .collect();
        return Err(Status::Reconnecting {
            reason: format!(
                "the camera offers no H.264 video (it offers {}); set its main stream to H.264",
                offered.join(", ")
            ),
        });
    };
    session
        .setup(h264, SetupOptions::default().frame_format(FrameFormat::MP4))
        .await
        .map_err(|e| failure(&e))?;
    session
        .play(PlayOptions::default())
        .await
        .map_err(|e| failure(&e))?
        .demuxed()
        .map_err(|e| failure(&e))
}

fn to_frame(frame: VideoFrame, parameters: Arc<Parameters>) -> Frame {
    let timestamp = frame.timestamp();
    let clock_rate = i64::from(timestamp.clock_rate().get());
    Frame {
        parameters,
        key: frame.is_random_access_point(),
        timestamp_us: timestamp.elapsed().saturating_mul(1_000_000) / clock_rate,
        received_ms: wall_ms(),
        data: Bytes::from(frame.into_data()),
    }
}

/// What viewers are told about a failure: a refused account apart from everything else.
fn failure(e: &retina::Error) -> Status {
    match e.status_code() {
        Some(code @ (401 | 403)) => Status::Refused {
            reason: format!(
                "the camera refused the node's account (RTSP {code}); check CENTINELA_ONVIF_USER/CENTINELA_ONVIF_PASSWORD or the camera's entry in CENTINELA_CAMERAS_FILE"
            ),
        },
        _ => Status::Reconnecting {
            reason: first_line(&e.to_string()),
        },
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    match line.char_indices().nth(REASON_LEN_MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

/// `uri` without a password, for messages.
fn redact(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("redacted"));
            url.to_string()
        }
        Ok(_) => uri.to_string(),
        Err(_) => "(unparsable)".to_string(),
    }
}

/// `%XX` escapes of a URL's user info, decoded (invalid escapes are kept as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodes_account_goes_in_the_session_not_the_url() {
        let login = Login {
            username: "centinela".into(),
            password: "clave".into(),
        };
        let target = Target::new("rtsp://10.0.0.7:554/main", Some(&login)).unwrap();
        assert_eq!(target.url.as_str(), "rtsp://10.0.0.7:554/main");
        assert_eq!(target.credentials.unwrap().password, "clave");
    }

    #[test]
    fn credentials_in_the_uri_are_taken_out_and_used_without_an_account() {
        let target = Target::new("rtsp://admin:p%40ss@10.0.0.7/main", None).unwrap();
        assert_eq!(target.url.as_str(), "rtsp://10.0.0.7/main");
        let credentials = target.credentials.unwrap();
        assert_eq!(credentials.username, "admin");
        assert_eq!(credentials.password, "p@ss");
    }

    #[test]
    fn unusable_uris_are_refused_without_echoing_the_password() {
        let e = Target::new("http://admin:secret@10.0.0.7/main", None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("only rtsp://"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        assert!(Target::new("not a url", None).is_err());
    }

    #[test]
    fn reasons_are_one_bounded_line() {
        assert_eq!(
            first_line("401 Unauthorized\n\nconn: ..."),
            "401 Unauthorized"
        );
        let long = "x".repeat(REASON_LEN_MAX * 2);
        assert_eq!(first_line(&long).chars().count(), REASON_LEN_MAX + 1);
    }
}
