//! The node's side over HTTP: [`Client`] talks to one camera, finds its services and profile,
//! moves it, reads its status and fetches snapshots ([`Client::snapshot`]: the JPEG at the
//! camera's snapshot URI, behind HTTP Digest authentication), every exchange bounded by a
//! timeout so that a camera that stalls costs a bounded wait and an error naming it, never a
//! hung caller.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{Request as HttpRequest, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::Rng;

use centinela_core::time::Timestamp;

use crate::Error;
use crate::digest::{Challenge, Credentials};
use crate::ptz::Pose;
use crate::request::{Request, Service};
use crate::response::{self, Endpoints, PtzStatus};
use crate::security::{ClockOffset, UsernameToken};

/// One exchange with a camera at most: cameras answer SOAP in tens of milliseconds; one that
/// takes seconds is failing.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest answer read from a camera: its SOAP answers are a few kilobytes.
pub const ANSWER_BYTES_MAX: usize = 256 * 1024;
/// Largest snapshot read from a camera: a 1080p JPEG is a few hundred kilobytes, a 4K one
/// about a megabyte.
pub const SNAPSHOT_BYTES_MAX: usize = 4 * 1024 * 1024;

/// A camera's address and credentials.
#[derive(Clone, Debug)]
pub struct Target {
    /// The device service, as the scenario names it (`http://HOST:PORT/onvif/device_service`).
    pub device_url: String,
    pub username: String,
    pub password: String,
}

/// What a client learned about its camera on [`Client::connect`].
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub endpoints: Endpoints,
    /// The media profile with PTZ the client moves the camera through.
    pub profile: String,
    pub clock: ClockOffset,
}

/// A client of one camera.
pub struct Client {
    target: Target,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    session: Option<Session>,
    snapshots: Mutex<Snapshots>,
}

/// What snapshots remember between calls: the URI the camera named, and the last Digest
/// challenge with the requests made on its nonce, so that the next snapshot answers it
/// straight away (one round trip a frame, not two).
#[derive(Default)]
struct Snapshots {
    /// Set by [`Client::use_snapshot_uri`]: used whatever the camera names.
    pinned: Option<String>,
    uri: Option<String>,
    challenge: Option<(Challenge, u32, String)>,
}

/// One GET of the snapshot URI.
enum Fetched {
    Frame(Bytes),
    /// 401, with its `WWW-Authenticate` values.
    Challenged(Vec<String>),
}

impl Client {
    pub fn new(target: Target) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(EXCHANGE_TIMEOUT));
        connector.set_nodelay(true);
        let http = HttpClient::builder(TokioExecutor::new()).build(connector);
        Self {
            target,
            http,
            session: None,
            snapshots: Mutex::default(),
        }
    }

    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Reads the camera's clock (no credentials needed), finds its media and PTZ services
    /// (`GetCapabilities`, or `GetServices` from cameras that only answer ONVIF 2) and the
    /// first media profile with PTZ. `now` is our clock.
    pub async fn connect(&mut self, now: Timestamp) -> Result<&Session, Error> {
        let device = self.target.device_url.clone();
        let time = self
            .exchange(&device, &Request::GetSystemDateAndTime, None)
            .await?;
        let clock = ClockOffset::between(response::system_date_and_time(&time)?, now);
        let mut endpoints = match self
            .exchange(&device, &Request::GetCapabilities, Some(clock))
            .await
            .and_then(|caps| response::capabilities(&caps))
        {
            Ok(endpoints) if endpoints.media.is_some() => endpoints,
            // Out of reach, or refusing us: asking again another way changes nothing.
            Err(e @ (Error::Transport(_) | Error::Timeout { .. })) => return Err(e),
            Err(Error::Fault { code, reason }) if code.ends_with("NotAuthorized") => {
                return Err(Error::Fault { code, reason });
            }
            _ => {
                let services = self
                    .exchange(&device, &Request::GetServices, Some(clock))
                    .await?;
                response::services(&services)?
            }
        };
        // Cameras that serve every service at the device URL may not say so.
        endpoints.media.get_or_insert_with(|| device.clone());
        endpoints.ptz.get_or_insert_with(|| device.clone());
        let media = endpoints.media.clone().unwrap_or_default();
        let profiles = self
            .exchange(&media, &Request::GetProfiles, Some(clock))
            .await?;
        let profiles = response::profiles(&profiles)?;
        let profile = profiles
            .iter()
            .find(|p| p.ptz)
            .or_else(|| profiles.first())
            .map(|p| p.token.clone())
            .ok_or_else(|| Error::Unexpected("no media profile".into()))?;
        self.session = Some(Session {
            endpoints,
            profile,
            clock,
        });
        {
            let mut snapshots = self.snapshot_state();
            snapshots.uri = None;
            snapshots.challenge = None;
        }
        Ok(self.session.as_ref().expect("just set"))
    }

    fn connected(&self) -> Result<&Session, Error> {
        self.session
            .as_ref()
            .ok_or_else(|| Error::Unexpected("not connected".into()))
    }

    fn address(&self, service: Service) -> Result<String, Error> {
        let session = self.connected()?;
        Ok(match service {
            Service::Device => self.target.device_url.clone(),
            Service::Media => session.endpoints.media.clone().unwrap_or_default(),
            Service::Ptz => session.endpoints.ptz.clone().unwrap_or_default(),
        })
    }

    /// Sends `request` to the service it belongs to, signed.
    async fn call(&self, request: Request) -> Result<crate::xml::Element, Error> {
        let session = self.connected()?;
        let address = self.address(request.service())?;
        self.exchange(&address, &request, Some(session.clock)).await
    }

    /// Turns the camera to `preset` (a preset token saved on the camera) or to `pose`.
    pub async fn goto(&self, preset: Option<&str>, pose: Pose) -> Result<(), Error> {
        let profile = self.connected()?.profile.clone();
        let request = match preset {
            Some(preset) => Request::GotoPreset {
                profile,
                preset: preset.to_string(),
            },
            None => Request::AbsoluteMove { profile, pose },
        };
        self.call(request).await.map(|_| ())
    }

    pub async fn status(&self) -> Result<PtzStatus, Error> {
        let profile = self.connected()?.profile.clone();
        response::ptz_status(&self.call(Request::GetStatus { profile }).await?)
    }

    pub async fn snapshot_uri(&self) -> Result<String, Error> {
        let profile = self.connected()?.profile.clone();
        let answer = self.call(Request::GetSnapshotUri { profile }).await?;
        response::media_uri(&answer, "GetSnapshotUri")
    }

    pub async fn stream_uri(&self) -> Result<String, Error> {
        let profile = self.connected()?.profile.clone();
        let answer = self.call(Request::GetStreamUri { profile }).await?;
        response::media_uri(&answer, "GetStreamUri")
    }

    /// The camera's current picture: a JPEG, fetched from the snapshot URI (asked once with
    /// `GetSnapshotUri`, then remembered) behind HTTP Digest authentication (RFC 7616,
    /// SHA-256 when offered, else MD5). The first call is challenged and answers; later calls
    /// answer the same challenge again with the next nonce count and pay one round trip,
    /// until the camera says the nonce is stale. Each GET is bounded by [`EXCHANGE_TIMEOUT`]
    /// and [`SNAPSHOT_BYTES_MAX`]; anything but an `image/jpeg` body starting with the JPEG
    /// start-of-image marker is [`Error::Unexpected`], refused credentials
    /// [`Error::Unauthorized`].
    pub async fn snapshot(&self) -> Result<Bytes, Error> {
        let known = {
            let state = self.snapshot_state();
            state.pinned.clone().or_else(|| state.uri.clone())
        };
        let url = match known {
            Some(url) => url,
            None => {
                let url = self.snapshot_uri().await?;
                self.snapshot_state().uri = Some(url.clone());
                url
            }
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e| Error::Unexpected(format!("snapshot URI {url:?}: {e}")))?;
        let target = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        // The last challenge answered again, if there is one.
        let again = {
            let mut state = self.snapshot_state();
            state.challenge.as_mut().map(|(challenge, nc, cnonce)| {
                *nc += 1;
                self.authorization(challenge, &target, *nc, cnonce)
            })
        };
        let result = self.fetch_snapshot(&url, &uri, again.as_deref()).await;
        let challenges = match result {
            Ok(Fetched::Frame(jpeg)) => return Ok(jpeg),
            Ok(Fetched::Challenged(challenges)) => challenges,
            Err(e) => {
                if !matches!(e, Error::Timeout { .. }) {
                    // Asked again next time: the camera may name another URI after a reboot.
                    self.snapshot_state().uri = None;
                }
                return Err(e);
            }
        };
        let challenge =
            Challenge::pick(challenges.iter().map(String::as_str)).ok_or_else(|| {
                Error::Unauthorized(format!(
                    "{url}: no Digest challenge this client can answer in {challenges:?}"
                ))
            })?;
        let cnonce = hex_nonce();
        let answer = self.authorization(&challenge, &target, 1, &cnonce);
        self.snapshot_state().challenge = Some((challenge, 1, cnonce));
        match self.fetch_snapshot(&url, &uri, Some(&answer)).await? {
            Fetched::Frame(jpeg) => Ok(jpeg),
            Fetched::Challenged(_) => {
                self.snapshot_state().challenge = None;
                Err(Error::Unauthorized(format!(
                    "{url} refused user {:?}: wrong user name or password",
                    self.target.username
                )))
            }
        }
    }

    /// Fetches snapshots from `url` instead of the URI the camera names: for cameras that
    /// name an address the node cannot reach (their private one, behind NAT), and for a
    /// snapshot without [`Client::connect`].
    pub fn use_snapshot_uri(&self, url: &str) {
        let mut state = self.snapshot_state();
        state.pinned = Some(url.to_string());
        state.challenge = None;
    }

    fn snapshot_state(&self) -> std::sync::MutexGuard<'_, Snapshots> {
        self.snapshots.lock().expect("snapshot state poisoned")
    }

    fn authorization(&self, challenge: &Challenge, target: &str, nc: u32, cnonce: &str) -> String {
        Credentials::answer(
            challenge,
            &self.target.username,
            &self.target.password,
            "GET",
            target,
            nc,
            cnonce,
        )
        .header()
    }

    /// One GET of the snapshot URI, within [`EXCHANGE_TIMEOUT`].
    async fn fetch_snapshot(
        &self,
        url: &str,
        uri: &http::Uri,
        authorization: Option<&str>,
    ) -> Result<Fetched, Error> {
        let mut request = HttpRequest::get(uri.clone()).header(header::ACCEPT, "image/jpeg");
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| Error::Transport(format!("{url}: {e}")))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| Error::Transport(format!("{url}: {e}")))?;
            let status = response.status();
            if status == http::StatusCode::UNAUTHORIZED {
                let challenges = response
                    .headers()
                    .get_all(header::WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .map(str::to_string)
                    .collect();
                // Read the (short) page so that the connection is kept for the answer.
                let _ = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
                    .collect()
                    .await;
                return Ok(Fetched::Challenged(challenges));
            }
            if !status.is_success() {
                return Err(Error::Transport(format!("{url}: HTTP {status}")));
            }
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let media_type = content_type.split(';').next().unwrap_or_default().trim();
            if !media_type.eq_ignore_ascii_case("image/jpeg") {
                return Err(Error::Unexpected(format!(
                    "{url}: a snapshot of type {content_type:?}, not image/jpeg"
                )));
            }
            let body = Limited::new(response.into_body(), SNAPSHOT_BYTES_MAX)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        Error::Unexpected(format!(
                            "{url}: a snapshot larger than {SNAPSHOT_BYTES_MAX} bytes"
                        ))
                    } else {
                        Error::Transport(format!("{url}: reading the snapshot: {e}"))
                    }
                })?
                .to_bytes();
            if !body.starts_with(&[0xFF, 0xD8]) {
                return Err(Error::Unexpected(format!(
                    "{url}: the snapshot is not a JPEG (no start-of-image marker)"
                )));
            }
            Ok(Fetched::Frame(body))
        };
        match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                what: "GET snapshot",
                after: EXCHANGE_TIMEOUT,
            }),
        }
    }

    /// One request and its answer's body element, within [`EXCHANGE_TIMEOUT`]. With `clock`,
    /// signed with a fresh UsernameToken written in the camera's time.
    async fn exchange(
        &self,
        url: &str,
        request: &Request,
        clock: Option<ClockOffset>,
    ) -> Result<crate::xml::Element, Error> {
        let token = clock.map(|clock| {
            let nonce: [u8; 16] = rand::rng().random();
            let created = clock.camera_time(wall_clock());
            UsernameToken::new(
                &self.target.username,
                &self.target.password,
                &nonce,
                created,
            )
        });
        let envelope = request.envelope(token.as_ref());
        let http_request = HttpRequest::post(url)
            .header(header::CONTENT_TYPE, request.content_type())
            .body(Full::new(Bytes::from(envelope)))
            .map_err(|e| Error::Transport(format!("{url}: {e}")))?;
        let exchange = async {
            let response = self
                .http
                .request(http_request)
                .await
                .map_err(|e| Error::Transport(format!("{url}: {e}")))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
                .collect()
                .await
                .map_err(|e| Error::Transport(format!("{url}: reading the answer: {e}")))?
                .to_bytes();
            let text = String::from_utf8_lossy(&body);
            // A fault comes with an HTTP error status; anything else must parse as an answer.
            match response::body(&text) {
                Ok(answer) if status.is_success() => Ok(answer),
                Ok(_) => Err(Error::Transport(format!("{url}: HTTP {status}"))),
                Err(e) => Err(e),
            }
        };
        match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                what: request.operation(),
                after: EXCHANGE_TIMEOUT,
            }),
        }
    }
}

/// A client nonce: 16 random bytes in hex.
fn hex_nonce() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Our wall clock now (`created` is compared with the camera's wall clock, never a simulated
/// one).
fn wall_clock() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    Timestamp::from_millis(millis)
}
