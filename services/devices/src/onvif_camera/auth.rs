//! The simulated camera's HTTP Digest authentication (RFC 7616) of its snapshot URI, as
//! current camera firmware does it: a `401` offers a SHA-256 challenge first and an MD5 one
//! second (for old clients), both on one fresh nonce; an answer must use `qop=auth`, this
//! camera's realm and opaque, the request's own target, a nonce the camera issued (remembered
//! for [`NONCE_LIFETIME`], the last [`NONCES_MAX`] only) and a nonce count above the last one
//! seen on it. A right password on a forgotten or replayed nonce gets a fresh challenge with
//! `stale=true`, so that the client answers again instead of giving up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use centinela_onvif::digest::{Algorithm, Challenge, Credentials};
use rand::Rng;

/// Nonces remembered at once; the oldest is forgotten first.
pub const NONCES_MAX: usize = 256;
/// How long a nonce is honoured after it is issued.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// The realm the camera names.
pub const REALM: &str = "Centinela simulated camera";

/// Whether a request may have the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Answer 401 with a fresh challenge; `stale` when only the nonce was wrong.
    Challenge {
        stale: bool,
    },
}

struct Issued {
    nonce: String,
    at: Instant,
    /// The highest nonce count used with it.
    nc: u32,
}

/// The camera's side of Digest authentication.
pub struct Guard {
    username: String,
    password: String,
    opaque: String,
    issued: VecDeque<Issued>,
}

impl Guard {
    pub fn new(username: &str, password: &str) -> Self {
        Self {
            username: username.to_string(),
            password: password.to_string(),
            opaque: random_hex(),
            issued: VecDeque::new(),
        }
    }

    /// Checks a request for `target` (its path and query) made with `method`, carrying
    /// these `Authorization` header values.
    pub fn check<'a>(
        &mut self,
        method: &str,
        target: &str,
        authorizations: impl IntoIterator<Item = &'a str>,
        now: Instant,
    ) -> Verdict {
        let refused = Verdict::Challenge { stale: false };
        let Some(credentials) = authorizations.into_iter().find_map(Credentials::parse) else {
            return refused;
        };
        let Some((nc, _)) = credentials.auth else {
            return refused; // qop=auth is required: RFC 2069's answer allows replays
        };
        if credentials.username != self.username
            || credentials.realm != REALM
            || credentials.uri != target
            || credentials.opaque.as_deref() != Some(self.opaque.as_str())
            || !credentials.proves(&self.password, method)
        {
            return refused;
        }
        // The password is right: what is left to check is the nonce.
        self.issued
            .retain(|issued| now.saturating_duration_since(issued.at) < NONCE_LIFETIME);
        match self
            .issued
            .iter_mut()
            .find(|issued| issued.nonce == credentials.nonce)
        {
            Some(issued) if nc > issued.nc => {
                issued.nc = nc;
                Verdict::Allowed
            }
            _ => Verdict::Challenge { stale: true },
        }
    }

    /// A fresh nonce's `WWW-Authenticate` values: SHA-256 first, MD5 second.
    pub fn challenge(&mut self, stale: bool, now: Instant) -> [String; 2] {
        let nonce = random_hex();
        if self.issued.len() >= NONCES_MAX {
            self.issued.pop_front();
        }
        self.issued.push_back(Issued {
            nonce: nonce.clone(),
            at: now,
            nc: 0,
        });
        [Algorithm::Sha256, Algorithm::Md5].map(|algorithm| {
            Challenge {
                realm: REALM.to_string(),
                nonce: nonce.clone(),
                opaque: Some(self.opaque.clone()),
                algorithm,
                qop_auth: true,
                stale,
            }
            .header()
        })
    }

    /// Nonces remembered now.
    pub fn nonces(&self) -> usize {
        self.issued.len()
    }
}

fn random_hex() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(header: &str, password: &str, target: &str, nc: u32) -> String {
        let challenge = Challenge::pick([header]).unwrap();
        Credentials::answer(&challenge, "admin", password, "GET", target, nc, "c0ffee").header()
    }

    #[test]
    fn only_the_right_answer_to_a_live_nonce_gets_in() {
        let t0 = Instant::now();
        let mut guard = Guard::new("admin", "s3cret");
        assert_eq!(
            guard.check("GET", "/snapshot.jpg", [], t0),
            Verdict::Challenge { stale: false }
        );
        let [sha, md5] = guard.challenge(false, t0);
        assert!(
            sha.contains("algorithm=SHA-256") && sha.contains("qop=\"auth\""),
            "{sha}"
        );
        assert!(md5.contains("algorithm=MD5"), "{md5}");
        for (header, nc) in [(&sha, 1), (&md5, 2)] {
            let ok = answer(header, "s3cret", "/snapshot.jpg", nc);
            assert_eq!(
                guard.check("GET", "/snapshot.jpg", [ok.as_str()], t0),
                Verdict::Allowed
            );
        }
        let refused = Verdict::Challenge { stale: false };
        let wrong = answer(&sha, "guess", "/snapshot.jpg", 3);
        assert_eq!(
            guard.check("GET", "/snapshot.jpg", [wrong.as_str()], t0),
            refused
        );
        let elsewhere = answer(&sha, "s3cret", "/other.jpg", 3);
        assert_eq!(
            guard.check("GET", "/snapshot.jpg", [elsewhere.as_str()], t0),
            refused
        );
        // Replayed (nonce count not increasing): the password was right, so stale.
        let replay = answer(&sha, "s3cret", "/snapshot.jpg", 2);
        assert_eq!(
            guard.check("GET", "/snapshot.jpg", [replay.as_str()], t0),
            Verdict::Challenge { stale: true }
        );
        // Expired.
        let late = answer(&sha, "s3cret", "/snapshot.jpg", 9);
        let later = t0 + NONCE_LIFETIME;
        assert_eq!(
            guard.check("GET", "/snapshot.jpg", [late.as_str()], later),
            Verdict::Challenge { stale: true }
        );
    }

    #[test]
    fn nonces_are_bounded_and_the_oldest_forgotten() {
        let t0 = Instant::now();
        let mut guard = Guard::new("admin", "s3cret");
        let [first, _] = guard.challenge(false, t0);
        for _ in 0..NONCES_MAX * 2 {
            guard.challenge(false, t0);
        }
        assert_eq!(guard.nonces(), NONCES_MAX);
        let forgotten = answer(&first, "s3cret", "/snapshot.jpg", 1);
        assert_eq!(
            guard.check("GET", "/snapshot.jpg", [forgotten.as_str()], t0),
            Verdict::Challenge { stale: true }
        );
        let [stale, _] = guard.challenge(true, t0);
        assert!(stale.contains("stale=true"));
    }
}
