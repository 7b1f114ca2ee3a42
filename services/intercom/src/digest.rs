//! SIP digest authentication (RFC 3261 §22.4, RFC 2617 with MD5, the scheme field intercoms
//! speak): the challenge, and the check of a caller's answer against the button's `HA1`
//! (MD5 of `user:realm:password`, what the devices file stores instead of the password).
//!
//! Nonces are stateless: the issue time and a keyed BLAKE2b MAC of it, so a challenge costs
//! no memory and a flood of unauthenticated INVITEs stores nothing. A nonce is accepted for
//! [`NONCE_LIFETIME`]; within it an answer may be replayed (no `nc` tracking): the call it
//! replays is the same button's, into the same incident.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blake2::{Blake2b256, Digest as _};
use ezk_sip_types::header::typed::{Algorithm, AlgorithmValue, DigestResponse, QopOption};
use md5::Md5;

use crate::limits::NONCE_LIFETIME;

/// The realm buttons authenticate in (their `HA1` is computed with it).
pub const REALM: &str = "centinela";

/// A button's `HA1`: MD5(`button:realm:password`).
pub type Ha1 = [u8; 16];

/// MD5 of `user:realm:password`: what a devices file's `sip_ha1` holds (hex).
pub fn ha1(user: &str, realm: &str, password: &str) -> Ha1 {
    Md5::digest(format!("{user}:{realm}:{password}")).into()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `HA1` from 32 hex digits.
pub fn parse_ha1(text: &str) -> Option<Ha1> {
    if text.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What an answer to a challenge proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    /// Right credentials on an expired nonce: challenge again with `stale=true`.
    Stale,
    /// Wrong user, realm, algorithm or response, or a nonce we never issued.
    Invalid,
}

/// Issues and checks nonces with a key of its own.
#[derive(Clone)]
pub struct Nonces {
    key: [u8; 32],
}

impl Nonces {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, issued_ms: u64) -> String {
        let mut hasher = Blake2b256::new();
        hasher.update(self.key);
        hasher.update(issued_ms.to_le_bytes());
        hex(&hasher.finalize()[..16])
    }

    /// A fresh nonce: `<issued ms, hex>.<mac>`.
    pub fn issue(&self) -> String {
        let issued_ms = now_ms();
        format!("{issued_ms:x}.{}", self.mac(issued_ms))
    }

    /// `Some(true)` for one of ours still fresh, `Some(false)` for one of ours expired,
    /// `None` for anything else.
    fn check(&self, nonce: &str) -> Option<bool> {
        let (issued, mac) = nonce.split_once('.')?;
        let issued_ms = u64::from_str_radix(issued, 16).ok()?;
        let expected = self.mac(issued_ms);
        let same = expected.len() == mac.len()
            && expected
                .bytes()
                .zip(mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return None;
        }
        let age = Duration::from_millis(now_ms().saturating_sub(issued_ms));
        Some(age <= NONCE_LIFETIME)
    }

    /// The `WWW-Authenticate` value of a challenge.
    pub fn challenge(&self, stale: bool) -> String {
        let stale = if stale { ", stale=true" } else { "" };
        format!(
            "Digest realm=\"{REALM}\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"{stale}",
            self.issue()
        )
    }

    /// Checks `answer` to a `method` request from `user` against `ha1`.
    pub fn verify(&self, answer: &DigestResponse, user: &str, method: &str, ha1: &Ha1) -> Verdict {
        let username = match &answer.username {
            ezk_sip_types::header::typed::Username::Username(name) => name.to_string(),
            ezk_sip_types::header::typed::Username::UsernameNonASCII(_) => {
                return Verdict::Invalid;
            }
        };
        let md5 = matches!(
            answer.algorithm,
            Algorithm::AlgorithmValue(AlgorithmValue::MD5)
        );
        if username != user || answer.realm.as_ref() as &str != REALM || !md5 {
            return Verdict::Invalid;
        }
        let fresh = match self.check(&answer.nonce) {
            None => return Verdict::Invalid,
            Some(fresh) => fresh,
        };
        let ha1 = hex(ha1);
        let ha2 = hex(&Md5::digest(format!("{method}:{}", answer.uri)));
        let expected = match &answer.qop_response {
            None => hex(&Md5::digest(format!("{ha1}:{}:{ha2}", answer.nonce))),
            Some(qop) if qop.qop == QopOption::Auth => hex(&Md5::digest(format!(
                "{ha1}:{}:{:08x}:{}:auth:{ha2}",
                answer.nonce, qop.nc, qop.cnonce
            ))),
            Some(_) => return Verdict::Invalid,
        };
        let given = answer.response.to_ascii_lowercase();
        let same = expected.len() == given.len()
            && expected
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        match (same, fresh) {
            (false, _) => Verdict::Invalid,
            (true, true) => Verdict::Valid,
            (true, false) => Verdict::Stale,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ezk_sip_types::header::HeaderParse as _;
    use ezk_sip_types::header::typed::AuthResponse;

    fn answer(text: &str) -> DigestResponse {
        let src = Bytes::copy_from_slice(text.as_bytes());
        let s = std::str::from_utf8(&src).unwrap();
        match AuthResponse::parse(&src, s).unwrap().1 {
            AuthResponse::Digest(d) => d,
            AuthResponse::Other(_) => panic!("not digest"),
        }
    }

    /// The answer computed as RFC 2617 §3.2.2.1 says (qop=auth), independently of `verify`.
    #[test]
    fn an_answer_with_the_right_password_is_valid_and_a_wrong_one_is_not() {
        let nonces = Nonces::new([7; 32]);
        let nonce = nonces.issue();
        let key = ha1("B01", REALM, "secret-password");
        let ha2 = hex(&Md5::digest("INVITE:sip:centinela@127.0.0.1"));
        let good = hex(&Md5::digest(format!(
            "{}:{nonce}:00000001:c0ffee:auth:{ha2}",
            hex(&key)
        )));
        let header = |user: &str, response: &str| {
            format!(
                "Digest username=\"{user}\", realm=\"centinela\", nonce=\"{nonce}\", uri=\"sip:centinela@127.0.0.1\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\""
            )
        };
        let verdict = |text: &str| nonces.verify(&answer(text), "B01", "INVITE", &key);
        assert_eq!(verdict(&header("B01", &good)), Verdict::Valid);
        assert_eq!(verdict(&header("B02", &good)), Verdict::Invalid);
        assert_eq!(verdict(&header("B01", &"0".repeat(32))), Verdict::Invalid);
        // A nonce from another key (another node, or forged) is never ours.
        let other = Nonces::new([8; 32]).issue();
        assert_eq!(
            verdict(&header("B01", &good).replace(&nonce, &other)),
            Verdict::Invalid
        );
    }

    #[test]
    fn ha1_parses_back_from_hex() {
        let key = ha1("B01", REALM, "pw");
        assert_eq!(parse_ha1(&hex(&key)), Some(key));
        assert_eq!(parse_ha1("xyz"), None);
    }
}
