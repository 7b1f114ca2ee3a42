//! The node's side over HTTP: [`Client`] talks to one camera, finds its services and profile,
//! moves it and reads its status, every exchange bounded by a timeout so that a camera that
//! stalls costs a bounded wait and an error naming it, never a hung caller.

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
use crate::ptz::Pose;
use crate::request::{Request, Service};
use crate::response::{self, Endpoints, PtzStatus};
use crate::security::{ClockOffset, UsernameToken};

/// One exchange with a camera at most: cameras answer SOAP in tens of milliseconds; one that
/// takes seconds is failing.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest answer read from a camera: its SOAP answers are a few kilobytes.
pub const ANSWER_BYTES_MAX: usize = 256 * 1024;

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

/// Our wall clock now (`created` is compared with the camera's wall clock, never a simulated
/// one).
fn wall_clock() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    Timestamp::from_millis(millis)
}
