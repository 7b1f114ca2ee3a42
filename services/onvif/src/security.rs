//! WS-Security UsernameToken with PasswordDigest (OASIS Web Services Security UsernameToken
//! Profile 1.0), the authentication every ONVIF camera takes: `Digest = base64(SHA-1(nonce ‖
//! created ‖ password))`, with a fresh random nonce and the creation time per request, so the
//! password never crosses the network.
//!
//! `created` is checked by the camera against its own clock, and field cameras' clocks drift:
//! the node reads the camera's time once (`GetSystemDateAndTime`, which needs no credentials)
//! and writes `created` in the camera's time ([`ClockOffset`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest as _, Sha1};

use centinela_core::time::Timestamp;

use crate::xml::{Element, escape};

/// The WS-Security namespaces and the PasswordDigest type the header names.
pub const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
pub const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
pub const PASSWORD_DIGEST: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
pub const BASE64_BINARY: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";

/// `xsd:dateTime` in UTC to the second (`2010-09-16T07:50:45Z`), as cameras expect.
pub fn xsd_date_time(at: Timestamp) -> String {
    let t = at.civil_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// The PasswordDigest of `password` for `nonce` and `created` (as sent, byte for byte).
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(nonce);
    sha.update(created.as_bytes());
    sha.update(password.as_bytes());
    BASE64.encode(sha.finalize())
}

/// One request's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsernameToken {
    pub username: String,
    pub digest: String,
    pub nonce: Vec<u8>,
    pub created: String,
}

impl UsernameToken {
    /// The token for a request made at `created` (in the camera's time) with a fresh `nonce`
    /// (16 random bytes from the caller: this crate draws no randomness).
    pub fn new(username: &str, password: &str, nonce: &[u8], created: Timestamp) -> Self {
        let created = xsd_date_time(created);
        Self {
            username: username.to_string(),
            digest: password_digest(nonce, &created, password),
            nonce: nonce.to_vec(),
            created,
        }
    }

    /// The `wsse:Security` SOAP header.
    pub fn header(&self) -> String {
        format!(
            concat!(
                r#"<wsse:Security s:mustUnderstand="1" xmlns:wsse="{wsse}" xmlns:wsu="{wsu}">"#,
                "<wsse:UsernameToken>",
                "<wsse:Username>{username}</wsse:Username>",
                r#"<wsse:Password Type="{digest_type}">{digest}</wsse:Password>"#,
                r#"<wsse:Nonce EncodingType="{encoding}">{nonce}</wsse:Nonce>"#,
                "<wsu:Created>{created}</wsu:Created>",
                "</wsse:UsernameToken>",
                "</wsse:Security>"
            ),
            wsse = WSSE_NS,
            wsu = WSU_NS,
            username = escape(&self.username),
            digest_type = PASSWORD_DIGEST,
            digest = self.digest,
            encoding = BASE64_BINARY,
            nonce = BASE64.encode(&self.nonce),
            created = self.created,
        )
    }

    /// The token in a request's envelope, if it carries one (the camera's side).
    pub fn from_envelope(envelope: &Element) -> Option<Self> {
        let token = envelope.find("Security")?.child("UsernameToken")?;
        Some(Self {
            username: token.text_at(&["Username"])?.to_string(),
            digest: token.text_at(&["Password"])?.to_string(),
            nonce: BASE64.decode(token.text_at(&["Nonce"])?).ok()?,
            created: token.text_at(&["Created"])?.to_string(),
        })
    }

    /// Whether the token proves `password` (the camera's side; freshness and replay are the
    /// camera's own policy).
    pub fn proves(&self, password: &str) -> bool {
        let expected = password_digest(&self.nonce, &self.created, password);
        // Equal without revealing where they differ.
        expected.len() == self.digest.len()
            && expected
                .bytes()
                .zip(self.digest.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// How far a camera's clock is from ours, in milliseconds (positive: the camera is ahead).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockOffset(pub i64);

impl ClockOffset {
    /// From the camera's time, read when ours was `ours`.
    pub fn between(camera: Timestamp, ours: Timestamp) -> Self {
        Self(camera.as_millis() as i64 - ours.as_millis() as i64)
    }

    /// Our `now` in the camera's time.
    pub fn camera_time(self, now: Timestamp) -> Timestamp {
        Timestamp::from_millis((now.as_millis() as i64).saturating_add(self.0).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    /// The ONVIF Application Programmer's Guide's example.
    #[test]
    fn the_digest_matches_the_onvif_guides_vector() {
        let nonce = BASE64.decode("LKqI6G/AikKCQrN0zqZFlg==").unwrap();
        assert_eq!(
            password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword"),
            "tuOSpGlFlIXsozq4HFNeeGeFLEI="
        );
    }

    #[test]
    fn a_token_round_trips_through_its_header_and_proves_only_its_password() {
        // 2010-09-16T07:50:45Z
        let created = Timestamp::from_millis(1_284_623_445_000);
        assert_eq!(xsd_date_time(created), "2010-09-16T07:50:45Z");
        let nonce = BASE64.decode("LKqI6G/AikKCQrN0zqZFlg==").unwrap();
        let token = UsernameToken::new("admin<&>", "userpassword", &nonce, created);
        assert_eq!(token.digest, "tuOSpGlFlIXsozq4HFNeeGeFLEI=");
        let envelope = format!(
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header>{}</s:Header><s:Body/></s:Envelope>"#,
            token.header()
        );
        let read = UsernameToken::from_envelope(&parse(&envelope).unwrap()).unwrap();
        assert_eq!(read, token);
        assert!(read.proves("userpassword"));
        assert!(!read.proves("userpassword2"));
        assert!(!read.proves(""));
    }

    #[test]
    fn the_clock_offset_moves_our_time_to_the_cameras() {
        let ours = Timestamp::from_millis(10_000);
        let offset = ClockOffset::between(Timestamp::from_millis(7_000), ours);
        assert_eq!(offset, ClockOffset(-3_000));
        assert_eq!(
            offset.camera_time(Timestamp::from_millis(20_000)),
            Timestamp::from_millis(17_000)
        );
        assert_eq!(
            ClockOffset(-50_000).camera_time(ours),
            Timestamp::from_millis(0)
        );
    }
}
