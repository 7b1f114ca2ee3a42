//! `/public/buttons.geojson`: the public map's feed, served from a cache.
//!
//! Reading every button from the store per request made the feed a lever on the store: at
//! 10,000 buttons, 16 clients polling it took press latency from 3.4 to 156 ms. Now the body is
//! built from one store read and kept, with a strong `ETag` (a hash of the body):
//!
//! - the node's store watch ([`Feed`](centinela_api::Feed)) marks the cache stale when a button
//!   changes (or the feed lost events); a stale body is rebuilt on the next request, but at
//!   most once per [`PUBLIC_MAP_REBUILD_INTERVAL`], however many requests and changes come;
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

use centinela_api::feed::FeedEvent;
use centinela_core::button::Button;
use centinela_records::Records;

use crate::limits::{PUBLIC_MAP_MAX_AGE, PUBLIC_MAP_REBUILD_INTERVAL};

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
    /// Button changes seen on the feed so far.
    generation: Arc<AtomicU64>,
    cache: Mutex<Option<Arc<Built>>>,
    /// Store reads made to build the body (for tests and docs).
    builds: AtomicU64,
}

impl PublicMap {
    /// A map over `records`, kept current by `changes` (the node's feed). Spawns the task that
    /// follows the feed; it ends with the feed.
    pub fn new(records: Records, mut changes: broadcast::Receiver<FeedEvent>) -> Arc<Self> {
        let generation = Arc::new(AtomicU64::new(0));
        let follower = generation.clone();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(FeedEvent::Button(..) | FeedEvent::Resync)
                    | Err(broadcast::error::RecvError::Lagged(_)) => {
                        follower.fetch_add(1, Ordering::AcqRel);
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Arc::new(Self {
            records,
            generation,
            cache: Mutex::new(None),
            builds: AtomicU64::new(0),
        })
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
