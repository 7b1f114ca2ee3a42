//! Signing in and staying signed in.
//!
//! A session is a cookie, `centinela_session=OPERATOR|EXPIRES_MS|MAC`, HttpOnly (page scripts
//! never see it) and `SameSite=Strict` (other sites cannot ride it), where MAC is a keyed
//! BLAKE2b over the operator and the expiry. Nothing is stored on the node, so a session
//! survives a node restart and is accepted by every node sharing `CENTINELA_CONSOLE_SECRET`;
//! each request re-reads the account, so removing an operator from the configuration ends
//! their sessions at the next restart. Signing out clears the cookie.

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use blake2::Blake2bMac512;
use blake2::digest::{Digest, KeyInit, Mac};
use tokio::sync::Semaphore;

use crate::config::{Account, Config, Role};
use crate::limits;
use crate::limits::{LOGIN_CHECKS_MAX, LOGIN_FIELD_LEN_MAX, SESSION_TTL};

/// The session cookie's name.
pub const COOKIE: &str = "centinela_session";

/// A signed-in operator, as every console request sees them.
#[derive(Clone, Debug)]
pub struct Session {
    pub account: Account,
    pub expires_ms: u64,
}

impl Session {
    pub fn operator(&self) -> &str {
        self.account.id.as_str()
    }

    pub fn role(&self) -> Role {
        self.account.role
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown operator or wrong password: deliberately the same answer for both.
    #[error("unknown operator or wrong password")]
    Refused,
    #[error("operator id and password must be 1 to {LOGIN_FIELD_LEN_MAX} bytes")]
    Malformed,
    #[error("password checking failed: {0}")]
    Internal(String),
}

/// Sign-in and session checks for one node's console.
pub struct Auth {
    config: Config,
    /// The MAC key of session cookies: derived from the configured secret, or random.
    key: [u8; 64],
    /// Bounds concurrent password checks ([`LOGIN_CHECKS_MAX`]).
    checks: Arc<Semaphore>,
}

impl Auth {
    pub fn new(config: Config) -> Result<Self, String> {
        let key = match config.session_secret() {
            Some(secret) => {
                let digest = blake2::Blake2b512::digest(secret);
                let mut key = [0u8; 64];
                key.copy_from_slice(&digest);
                key
            }
            None => {
                let mut key = [0u8; 64];
                getrandom::fill(&mut key)
                    .map_err(|e| format!("no randomness for the session key: {e}"))?;
                key
            }
        };
        Ok(Self {
            config,
            key,
            checks: Arc::new(Semaphore::new(LOGIN_CHECKS_MAX)),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Checks an operator's password (off the async threads, at most [`LOGIN_CHECKS_MAX`] at
    /// once) and opens a session.
    pub async fn login(&self, operator: &str, password: &str) -> Result<Session, LoginError> {
        let field_ok = |s: &str| !s.is_empty() && s.len() <= LOGIN_FIELD_LEN_MAX;
        if !field_ok(operator) || !field_ok(password) {
            return Err(LoginError::Malformed);
        }
        let account = self.config.account(operator);
        // An unknown operator is checked against a dummy hash, so the answer takes as long
        // as for a known one and does not reveal who exists.
        let hash = account
            .as_ref()
            .and_then(|a| a.password_hash().map(str::to_string));
        let password = password.to_string();
        let _permit = self
            .checks
            .acquire()
            .await
            .map_err(|e| LoginError::Internal(e.to_string()))?;
        let matches = tokio::task::spawn_blocking(move || match hash {
            Some(hash) => verify_password(&password, &hash),
            None => {
                let _ = verify_password(&password, dummy_hash());
                false
            }
        })
        .await
        .map_err(|e| LoginError::Internal(e.to_string()))?;
        match account {
            Some(account) if matches => Ok(self.session_for(account)),
            _ => Err(LoginError::Refused),
        }
    }

    /// The demo operator's session, in demo mode only.
    pub fn demo_session(&self) -> Option<Session> {
        if !self.config.demo {
            return None;
        }
        self.config
            .account(crate::config::DEMO_OPERATOR)
            .map(|account| self.session_for(account))
    }

    fn session_for(&self, account: Account) -> Session {
        Session {
            account,
            expires_ms: now_ms().saturating_add(SESSION_TTL.as_millis() as u64),
        }
    }

    /// The `Set-Cookie` value that carries `session`.
    pub fn set_cookie(&self, session: &Session) -> String {
        let value = format!(
            "{}|{}|{}",
            session.operator(),
            session.expires_ms,
            hex(&self.mac(session.operator(), session.expires_ms))
        );
        format!(
            "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            SESSION_TTL.as_secs()
        )
    }

    /// The `Set-Cookie` value that signs out.
    pub fn clear_cookie() -> String {
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
    }

    /// The session a request's `Cookie` header carries, if it is genuine, unexpired, and its
    /// operator still configured.
    pub fn session(&self, cookie_header: &str) -> Option<Session> {
        let value = cookie_header
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value)?;
        let mut parts = value.split('|');
        let (operator, expires, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let expires_ms: u64 = expires.parse().ok()?;
        let mac = unhex(mac)?;
        let mut check = self.keyed();
        check.update(&mac_input(operator, expires_ms));
        check.verify_slice(&mac).ok()?;
        if expires_ms <= now_ms() {
            return None;
        }
        let account = self.config.account(operator)?;
        Some(Session {
            account,
            expires_ms,
        })
    }

    fn keyed(&self) -> Blake2bMac512 {
        <Blake2bMac512 as KeyInit>::new_from_slice(&self.key)
            .expect("a 64-byte key is valid for BLAKE2b")
    }

    fn mac(&self, operator: &str, expires_ms: u64) -> Vec<u8> {
        let mut mac = self.keyed();
        mac.update(&mac_input(operator, expires_ms));
        mac.finalize().into_bytes().to_vec()
    }
}

/// The gRPC `Operator` API checks operators' `Basic` credentials against the same accounts
/// (and under the same bound on concurrent password checks) as the console's sign-in.
#[tonic::async_trait]
impl centinela_api::auth::OperatorDirectory for Auth {
    fn knows(&self, operator: &str) -> bool {
        self.config
            .account(operator)
            .is_some_and(|account| account.password_hash().is_some())
    }

    async fn verify(&self, operator: &str, password: &str) -> Option<Role> {
        self.login(operator, password)
            .await
            .ok()
            .map(|session| session.role())
    }
}

fn mac_input(operator: &str, expires_ms: u64) -> Vec<u8> {
    // Length-prefixed, so no two (operator, expiry) pairs share an input.
    let mut input = Vec::with_capacity(operator.len() + 16);
    input.extend_from_slice(&(operator.len() as u64).to_le_bytes());
    input.extend_from_slice(operator.as_bytes());
    input.extend_from_slice(&expires_ms.to_le_bytes());
    input
}

/// Wall-clock milliseconds since the epoch: sessions expire in real time.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash no password matches in practice, computed once, on the first unknown-operator login.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("centinela-dummy-password").unwrap_or_default())
}

/// An argon2id PHC string for `password` with the recommended parameters and a random salt:
/// what goes into the operators configuration.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > limits::HEX_LEN_MAX {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Account;

    fn weak_hash(password: &str) -> String {
        let params = argon2::Params::new(1024, 1, 1, None).unwrap();
        Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(password.as_bytes())
            .unwrap()
            .to_string()
    }

    fn auth() -> Auth {
        let account =
            Account::new("ana", Some("Ana"), Role::Operator, &weak_hash("secreto")).unwrap();
        Auth::new(Config::default().with_operators(vec![account]).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn login_checks_the_password() {
        let auth = auth();
        let session = auth.login("ana", "secreto").await.unwrap();
        assert_eq!(session.operator(), "ana");
        assert!(matches!(
            auth.login("ana", "wrong").await,
            Err(LoginError::Refused)
        ));
        assert!(matches!(
            auth.login("nobody", "secreto").await,
            Err(LoginError::Refused)
        ));
        assert!(matches!(
            auth.login("", "x").await,
            Err(LoginError::Malformed)
        ));
        assert!(auth.demo_session().is_none());
    }

    #[tokio::test]
    async fn cookies_round_trip_and_refuse_tampering() {
        let auth = auth();
        let session = auth.login("ana", "secreto").await.unwrap();
        let set = auth.set_cookie(&session);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        let value = set.split(';').next().unwrap();
        let header = format!("theme=dark; {value}");
        assert_eq!(auth.session(&header).unwrap().operator(), "ana");

        // Another operator, a later expiry, a flipped MAC bit: all refused.
        let forged = value.replacen("ana|", "bob|", 1);
        assert!(auth.session(&forged).is_none());
        let later = value.replace(
            &session.expires_ms.to_string(),
            &(session.expires_ms + 1).to_string(),
        );
        assert!(auth.session(&later).is_none());
        let mut flipped = value.to_string();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert!(auth.session(&flipped).is_none());
        assert!(auth.session("centinela_session=garbage").is_none());
        // Another process's key does not accept it either.
        assert!(self::auth().session(value).is_none());
    }

    #[test]
    fn a_shared_secret_makes_sessions_portable() {
        let secret = "s".repeat(40);
        let config = Config::demo().with_session_secret(&secret).unwrap();
        let one = Auth::new(config.clone()).unwrap();
        let two = Auth::new(config).unwrap();
        let session = one.demo_session().unwrap();
        let cookie = one.set_cookie(&session);
        let value = cookie.split(';').next().unwrap();
        assert_eq!(two.session(value).unwrap().operator(), "demo");
    }

    #[test]
    fn hashes_verify() {
        let hash = weak_hash("clave");
        assert!(verify_password("clave", &hash));
        assert!(!verify_password("Clave", &hash));
        assert!(!verify_password("clave", "not a hash"));
        assert_eq!(
            unhex(&hex(&[0, 1, 254, 255])).unwrap(),
            vec![0, 1, 254, 255]
        );
        assert!(unhex("abc").is_none() && unhex("zz").is_none());
    }
}
