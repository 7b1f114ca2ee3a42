//! `/public/buttons.geojson`: the public map's feed, served from a cache.
//!
//! Reading every button from the store per request made the feed a lever on the store: at
//! 10,000 buttons, 16 clients polling it took press latency from 3.4 to 156 ms. Now the body is
//! built from one store read and kept, with a strong `ETag` (a hash of the body):
//!
//! - the node's store watch ([`Feed`](centinela_api::Feed)) marks the cache stale when a button
//!   changes (or the feed lost events); a stale body is rebuilt on the next request, but at
//!   most once per [`PUBLIC_MAP_REBUILD_INTERVAL`], however many requests and changes come;
//! - the map follows the feed only while it is requested: after [`PUBLIC_MAP_FOLLOW_IDLE`]
//!   without a request it lets its subscription go (so a node nobody asks holds no store watch
//!   for it), and the next request subscribes again and rebuilds the body;
//! - concurrent requests for a stale body wait for one rebuild instead of each reading;
//! - `If-None-Match` with the current tag gets `304 Not Modified` and no body;
//! - `Cache-Control: public, max-age=`[`PUBLIC_MAP_MAX_AGE`]: browsers and any cache in front
//!   may reuse it that long, then revalidate with the tag.
//!
//! So the store sees at most one read of the buttons per interval from this endpoint, and none
//! while nothing changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use blake2::Blake2b512;
use blake2::digest::Digest;
use bytes::Bytes;
use tokio::sync::{Mutex, broadcast};
use tokio::time::Instant;

use centinela_api::Feed;
use centinela_api::feed::{FeedEvent, Subscription};
use centinela_core::button::Button;
use centinela_records::Records;

use crate::limits::{PUBLIC_MAP_FOLLOW_IDLE, PUBLIC_MAP_MAX_AGE, PUBLIC_MAP_REBUILD_INTERVAL};

/// One built body and what it was built from.
struct Built {
    /// The change count the body reflects (read before the store was).
    generation: u64,
    at: Instant,
    body: Bytes,
    etag: HeaderValue,
}

/// The cached feed; see the module docs.
pub struct PublicMap {
    records: Records,
    feed: Arc<Feed>,
    /// Button changes seen on the feed so far, plus one per (re)subscription (what happened
    /// while not subscribed is unknown).
    generation: Arc<AtomicU64>,
    /// Whether a follower holds a subscription, and when the map was last requested.
    follow: Arc<std::sync::Mutex<Follow>>,
    cache: Mutex<Option<Arc<Built>>>,
    /// Store reads made to build the body (for tests and docs).
    builds: AtomicU64,
}

struct Follow {
    following: bool,
    last_request: Instant,
}

impl PublicMap {
    /// A map over `records`, kept current by the node's `feed` while it is requested.
    pub fn new(records: Records, feed: Arc<Feed>) -> Arc<Self> {
        Arc::new(Self {
            records,
            feed,
            generation: Arc::new(AtomicU64::new(0)),
            follow: Arc::new(std::sync::Mutex::new(Follow {
                following: false,
                last_request: Instant::now(),
            })),
            cache: Mutex::new(None),
            builds: AtomicU64::new(0),
        })
    }

    /// Whether the map holds a feed subscription now.
    pub fn is_following(&self) -> bool {
        self.follow.lock().expect("follow lock poisoned").following
    }

    /// Notes a request; subscribes to the feed if no follower does. Called under the cache
    /// lock, so two requests never both subscribe.
    async fn ensure_following(&self) -> Result<(), centinela_records::Error> {
        {
            let mut follow = self.follow.lock().expect("follow lock poisoned");
            follow.last_request = Instant::now();
            // A follower that is still following sees this request's time before it decides
            // to stop (it decides under the same lock).
            if follow.following {
                return Ok(());
            }
        }
        let subscription = self.feed.subscribe().await?;
        // Changes made while nobody followed are unknown: the body is stale.
        self.generation.fetch_add(1, Ordering::AcqRel);
        {
            let mut follow = self.follow.lock().expect("follow lock poisoned");
            follow.following = true;
            follow.last_request = Instant::now();
        }
        tokio::spawn(follow_feed(
            subscription,
            self.generation.clone(),
            self.follow.clone(),
        ));
        Ok(())
    }

    /// Button changes the feed has reported so far.
    pub fn changes(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Store reads made for the feed so far.
    pub fn builds(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }

    /// The current body, rebuilt if stale and the last build is old enough.
    async fn current(&self) -> Result<Arc<Built>, centinela_records::Error> {
        let mut cache = self.cache.lock().await;
        self.ensure_following().await?;
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(built) = cache.as_ref()
            && (built.generation == generation || built.at.elapsed() < PUBLIC_MAP_REBUILD_INTERVAL)
        {
            return Ok(built.clone());
        }
        self.builds.fetch_add(1, Ordering::Relaxed);
        let (buttons, _) = self.records.snapshot::<Button>().await?;
        let body = Bytes::from(crate::buttons_geojson(&buttons).to_string());
        let digest = Blake2b512::digest(&body);
        let tag: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let etag = HeaderValue::from_str(&format!("\"{tag}\"")).expect("hex is a valid header");
        let built = Arc::new(Built {
            generation,
            at: Instant::now(),
            body,
            etag,
        });
        *cache = Some(built.clone());
        Ok(built)
    }

    /// The reply to a `GET` with `headers`: the feed, or 304 when the client holds it.
    pub async fn reply(&self, headers: &HeaderMap) -> Response {
        let built = match self.current().await {
            Ok(built) => built,
            Err(e) => {
                tracing::warn!(error = %e, "public map: store unavailable");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store unavailable; retry\n",
                )
                    .into_response();
            }
        };
        let cache_control = format!("public, max-age={}", PUBLIC_MAP_MAX_AGE.as_secs());
        let common = [
            (header::ETAG, built.etag.clone()),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_str(&cache_control).expect("a valid header"),
            ),
            // Public data: any site may show it (the point of publishing it).
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
        ];
        if holds(headers, &built.etag) {
            return (StatusCode::NOT_MODIFIED, common).into_response();
        }
        (
            common,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/geo+json"),
            )],
            built.body.clone(),
        )
            .into_response()
    }
}

/// Counts button changes on `subscription` until the map goes unrequested for
/// [`PUBLIC_MAP_FOLLOW_IDLE`] (or the feed ends), then lets the subscription go.
async fn follow_feed(
    mut subscription: Subscription,
    generation: Arc<AtomicU64>,
    follow: Arc<std::sync::Mutex<Follow>>,
) {
    loop {
        let idle_at =
            follow.lock().expect("follow lock poisoned").last_request + PUBLIC_MAP_FOLLOW_IDLE;
        tokio::select! {
            event = subscription.recv() => match event {
                Ok(FeedEvent::Button(..) | FeedEvent::Resync)
                | Err(broadcast::error::RecvError::Lagged(_)) => {
                    generation.fetch_add(1, Ordering::AcqRel);
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    follow.lock().expect("follow lock poisoned").following = false;
                    return;
                }
            },
            () = tokio::time::sleep_until(idle_at) => {
                let mut follow = follow.lock().expect("follow lock poisoned");
                if follow.last_request + PUBLIC_MAP_FOLLOW_IDLE <= Instant::now() {
                    follow.following = false;
                    return;
                }
            }
        }
    }
}

/// Whether `If-None-Match` names `etag` (or `*`), by the weak comparison RFC 9110 asks for.
fn holds(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(current) = etag.to_str() else {
        return false;
    };
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists() {
        let etag = HeaderValue::from_static("\"abc\"");
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, value.parse().unwrap());
            headers
        };
        assert!(holds(&with("\"abc\""), &etag));
        assert!(holds(&with("W/\"abc\""), &etag));
        assert!(holds(&with("\"x\", \"abc\""), &etag));
        assert!(holds(&with("*"), &etag));
        assert!(!holds(&with("\"abd\""), &etag));
        assert!(!holds(&HeaderMap::new(), &etag));
    }
}
