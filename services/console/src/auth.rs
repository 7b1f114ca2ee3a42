//! Signing in and staying signed in.
//!
//! A session is a cookie, `centinela_session=OPERATOR|EXPIRES_MS|MAC`, HttpOnly (page scripts
//! never see it) and `SameSite=Strict` (other sites cannot ride it), where MAC is a keyed
//! BLAKE2b over the operator and the expiry. Nothing is stored on the node, so a session
//! survives a node restart and is accepted by every node sharing `CENTINELA_CONSOLE_SECRET`;
//! each request re-reads the account, so removing an operator from the configuration ends
//! their sessions at the next restart. Signing out clears the cookie and revokes the session:
//! this node refuses it at once (a bounded set kept until the session's expiry,
//! [`REVOKED_SESSIONS_MAX`]), and the caller records it in the store, which every node looks
//! up at most every [`REVOCATION_RECHECK`] per session (`api::signed_session`).
//!
//! The cookie is `HttpOnly; Secure; SameSite=Strict`: browsers keep a `Secure` cookie over
//! plain HTTP only on loopback (`localhost`, `127.0.0.1`, `[::1]`), so the demo works, and
//! anything else needs TLS in front (docs/security.md).
//!
//! Password guesses are throttled per account and per source ([`crate::throttle`]), and an
//! unknown operator costs the same argon2id check as a known one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use blake2::Blake2bMac512;
use blake2::digest::{Digest, KeyInit, Mac};
use tokio::sync::Semaphore;

use centinela_api::auth::Refusal;

use crate::config::{Account, Config, Role};
use crate::limits;
use crate::limits::{
    LOGIN_CHECKS_MAX, LOGIN_FIELD_LEN_MAX, REVOCATION_CHECKS_MAX, REVOCATION_RECHECK,
    REVOKED_SESSIONS_MAX, SESSION_TTL,
};
use crate::throttle::Throttle;

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
    /// Too many failed sign-ins from this source (or on this account): retry later.
    #[error("too many failed sign-ins; retry in {} s", retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
}

/// A session's id: a digest of its cookie's MAC (what a sign-out records in the store; it
/// reveals nothing of the MAC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// Lowercase hex, as the store's key names it.
    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

/// Sign-in and session checks for one node's console.
pub struct Auth {
    config: Config,
    /// The MAC key of session cookies: derived from the configured secret, or random.
    key: [u8; 64],
    /// Bounds concurrent password checks ([`LOGIN_CHECKS_MAX`]).
    checks: Arc<Semaphore>,
    /// Failed sign-ins per account and per source.
    throttle: Throttle,
    /// Argon2 verifications run (known and unknown operators alike): a metric, and how tests
    /// show that an unknown name pays the same check as a known one.
    password_checks: Arc<AtomicU64>,
    /// Signed-out sessions with their expiry ([`REVOKED_SESSIONS_MAX`]).
    revoked: Mutex<HashMap<SessionId, u64>>,
    /// Sessions the store said were not signed out, and when it said so
    /// ([`REVOCATION_RECHECK`], [`REVOCATION_CHECKS_MAX`]).
    store_checked: Mutex<HashMap<SessionId, std::time::Instant>>,
    /// What an unknown operator's password is checked against.
    dummy: Arc<Dummy>,
}

/// A hash no password matches in practice, with the argon2 parameters of the configured
/// accounts (the first parseable one; else the defaults), so checking it costs what checking
/// a real account costs. Computed once, on the first unknown-operator sign-in.
struct Dummy {
    params: argon2::Params,
    hash: OnceLock<String>,
}

impl Dummy {
    fn for_accounts(config: &Config) -> Self {
        let params = config
            .accounts()
            .filter_map(|account| account.password_hash().map(str::to_string))
            .find_map(|hash| {
                PasswordHash::new(&hash)
                    .ok()
                    .and_then(|parsed| argon2::Params::try_from(&parsed).ok())
            })
            .unwrap_or_default();
        Self {
            params,
            hash: OnceLock::new(),
        }
    }

    fn hash(&self) -> &str {
        self.hash.get_or_init(|| {
            Argon2::new(
                argon2::Algorithm::Argon2id,
                argon2::Version::V0x13,
                self.params.clone(),
            )
            .hash_password(b"centinela-dummy-password")
            .map(|hash| hash.to_string())
            .unwrap_or_default()
        })
    }
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
            key,
            checks: Arc::new(Semaphore::new(LOGIN_CHECKS_MAX)),
            throttle: Throttle::default(),
            password_checks: Arc::new(AtomicU64::new(0)),
            revoked: Mutex::new(HashMap::new()),
            store_checked: Mutex::new(HashMap::new()),
            dummy: Arc::new(Dummy::for_accounts(&config)),
            config,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many argon2 password verifications this node has run.
    pub fn password_checks(&self) -> u64 {
        self.password_checks.load(Ordering::Relaxed)
    }

    /// [`Auth::login_from`] an unknown source (throttled per account only).
    pub async fn login(&self, operator: &str, password: &str) -> Result<Session, LoginError> {
        self.login_from(operator, password, None).await
    }

    /// Checks an operator's password (off the async threads, at most [`LOGIN_CHECKS_MAX`] at
    /// once, unless `source` or the account is throttled) and opens a session.
    pub async fn login_from(
        &self,
        operator: &str,
        password: &str,
        source: Option<IpAddr>,
    ) -> Result<Session, LoginError> {
        let field_ok = |s: &str| !s.is_empty() && s.len() <= LOGIN_FIELD_LEN_MAX;
        if !field_ok(operator) || !field_ok(password) {
            return Err(LoginError::Malformed);
        }
        let attempt = self
            .throttle
            .begin(operator, source)
            .map_err(|retry_after| LoginError::Throttled { retry_after })?;
        let account = self.config.account(operator);
        // An unknown operator is checked against a dummy hash with the accounts' parameters,
        // so the answer costs as much as for a known one and does not reveal who exists.
        let hash = account
            .as_ref()
            .and_then(|a| a.password_hash().map(str::to_string));
        let password = password.to_string();
        let checks = self.password_checks.clone();
        let dummy = self.dummy.clone();
        let _permit = self
            .checks
            .acquire()
            .await
            .map_err(|e| LoginError::Internal(e.to_string()))?;
        let matches = tokio::task::spawn_blocking(move || {
            checks.fetch_add(1, Ordering::Relaxed);
            match hash {
                Some(hash) => verify_password(&password, &hash),
                None => {
                    let _ = verify_password(&password, dummy.hash());
                    false
                }
            }
        })
        .await
        .map_err(|e| LoginError::Internal(e.to_string()))?;
        match account {
            Some(account) if matches => {
                attempt.succeeded();
                Ok(self.session_for(account))
            }
            _ => {
                attempt.failed();
                Err(LoginError::Refused)
            }
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
            "{COOKIE}={value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
            SESSION_TTL.as_secs()
        )
    }

    /// The `Set-Cookie` value that signs out.
    pub fn clear_cookie() -> String {
        format!("{COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
    }

    /// The session a request's `Cookie` header carries, if it is genuine, unexpired, its
    /// operator still configured, and not known to this node as signed out.
    pub fn session(&self, cookie_header: &str) -> Option<Session> {
        self.session_with_id(cookie_header)
            .map(|(session, _)| session)
    }

    /// [`Auth::session`], with the session's id (to check it against the cluster's
    /// revocations, [`Auth::store_check_due`]).
    pub fn session_with_id(&self, cookie_header: &str) -> Option<(Session, SessionId)> {
        let (session, id) = self.genuine(cookie_header)?;
        if self
            .revoked
            .lock()
            .expect("revocations poisoned")
            .contains_key(&id)
        {
            return None;
        }
        Some((session, id))
    }

    /// Revokes the session `cookie_header` carries (if genuine) on this node until it
    /// expires, and returns it: the caller records it in the store for the other nodes.
    pub fn revoke(&self, cookie_header: &str) -> Option<(Session, SessionId)> {
        let (session, id) = self.genuine(cookie_header)?;
        self.remember_revoked(id, session.expires_ms);
        Some((session, id))
    }

    /// Refuses session `id` on this node until `expires_ms` (signed out here, or found
    /// signed out in the store). Bounded by [`REVOKED_SESSIONS_MAX`]: past it, expired entries
    /// go, then the one expiring soonest (the store still holds it for the next check).
    pub fn remember_revoked(&self, id: SessionId, expires_ms: u64) {
        let now = now_ms();
        let mut revoked = self.revoked.lock().expect("revocations poisoned");
        if revoked.len() >= REVOKED_SESSIONS_MAX {
            revoked.retain(|_, expires_ms| *expires_ms > now);
        }
        while revoked.len() >= REVOKED_SESSIONS_MAX {
            let Some(soonest) = revoked
                .iter()
                .min_by_key(|(_, expires_ms)| **expires_ms)
                .map(|(id, _)| *id)
            else {
                break;
            };
            tracing::warn!(
                "session revocations full ({REVOKED_SESSIONS_MAX}): forgetting the one expiring soonest"
            );
            revoked.remove(&soonest);
        }
        revoked.insert(id, expires_ms);
        self.store_checked
            .lock()
            .expect("revocation checks poisoned")
            .remove(&id);
    }

    /// Whether session `id` is due a look in the store for a sign-out on another node: not
    /// found there within [`REVOCATION_RECHECK`].
    pub fn store_check_due(&self, id: SessionId) -> bool {
        self.store_checked
            .lock()
            .expect("revocation checks poisoned")
            .get(&id)
            .is_none_or(|at| at.elapsed() >= REVOCATION_RECHECK)
    }

    /// Session `id` was not signed out as of now, per the store.
    pub fn store_checked(&self, id: SessionId) {
        let mut checked = self
            .store_checked
            .lock()
            .expect("revocation checks poisoned");
        if checked.len() >= REVOCATION_CHECKS_MAX {
            // Only costs re-checks: nothing here lets a session in that the store refuses.
            checked.clear();
        }
        checked.insert(id, std::time::Instant::now());
    }

    /// The session of a genuine, unexpired cookie, with its id.
    fn genuine(&self, cookie_header: &str) -> Option<(Session, SessionId)> {
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
        // A digest of the MAC, not the MAC: the id is written to the store.
        let mut id = [0u8; 16];
        id.copy_from_slice(&blake2::Blake2b512::digest(&mac)[..16]);
        let id = SessionId(id);
        Some((
            Session {
                account,
                expires_ms,
            },
            id,
        ))
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

    async fn verify(
        &self,
        operator: &str,
        password: &str,
        source: Option<std::net::IpAddr>,
    ) -> Result<Role, Refusal> {
        match self.login_from(operator, password, source).await {
            Ok(session) => Ok(session.role()),
            Err(LoginError::Throttled { retry_after }) => Err(Refusal::Throttled { retry_after }),
            Err(_) => Err(Refusal::Wrong),
        }
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

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[tokio::test]
    async fn an_unknown_name_costs_the_same_argon2_check_as_a_known_one() {
        let auth = auth();
        assert!(auth.login("ana", "wrong").await.is_err());
        assert_eq!(auth.password_checks(), 1);
        assert!(auth.login("nadie", "wrong").await.is_err());
        assert_eq!(auth.password_checks(), 2);
        // With the same argon2 parameters as the configured account (here the weak test ones,
        // in production the recommended ones): the same work, not just the same count.
        let account = auth.config.account("ana").unwrap();
        let known = PasswordHash::new(account.password_hash().unwrap()).unwrap();
        let dummy = PasswordHash::new(auth.dummy.hash()).unwrap();
        assert_eq!(
            argon2::Params::try_from(&known).unwrap(),
            argon2::Params::try_from(&dummy).unwrap()
        );
        assert_eq!(known.algorithm, dummy.algorithm);
    }

    #[tokio::test]
    async fn a_guesser_is_locked_out_without_a_check_while_the_operator_signs_in_elsewhere() {
        let auth = auth();
        let (guesser, position) = (ip("192.0.2.66"), ip("192.0.2.7"));
        for _ in 0..limits::LOGIN_PAIR_FAILURES_MAX {
            assert!(matches!(
                auth.login_from("ana", "guess", guesser).await,
                Err(LoginError::Refused)
            ));
        }
        let checks = auth.password_checks();
        // The next guess, even the right password, is refused and checks nothing.
        let refused = auth.login_from("ana", "secreto", guesser).await;
        let Err(LoginError::Throttled { retry_after }) = refused else {
            panic!("not throttled: {refused:?}");
        };
        assert!(retry_after > limits::LOGIN_PENDING_RETRY && retry_after <= limits::LOGIN_LOCKOUT);
        assert_eq!(auth.password_checks(), checks);
        // Ana at her own position signs in.
        let session = auth.login_from("ana", "secreto", position).await.unwrap();
        assert_eq!(session.operator(), "ana");
    }

    #[tokio::test]
    async fn a_spray_over_many_names_from_one_source_is_stopped() {
        let auth = auth();
        let sprayer = ip("192.0.2.66");
        for i in 0..limits::LOGIN_SOURCE_FAILURES_MAX {
            let name = format!("op{i}");
            assert!(matches!(
                auth.login_from(&name, "Password1", sprayer).await,
                Err(LoginError::Refused)
            ));
        }
        let checks = auth.password_checks();
        assert!(matches!(
            auth.login_from("ana", "secreto", sprayer).await,
            Err(LoginError::Throttled { .. })
        ));
        assert_eq!(auth.password_checks(), checks);
        assert!(
            auth.login_from("ana", "secreto", ip("192.0.2.7"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_signed_out_cookie_is_refused_afterwards() {
        let auth = auth();
        let session = auth.login("ana", "secreto").await.unwrap();
        let captured = auth.set_cookie(&session);
        let captured = captured.split(';').next().unwrap();
        assert!(auth.session(captured).is_some());
        assert!(auth.revoke(captured).is_some());
        assert!(auth.session(captured).is_none());
        // A new sign-in is a new session.
        let again = auth.login("ana", "secreto").await.unwrap();
        if again.expires_ms != session.expires_ms {
            let fresh = auth.set_cookie(&again);
            assert!(auth.session(fresh.split(';').next().unwrap()).is_some());
        }
        assert!(auth.revoke("centinela_session=garbage").is_none());
    }

    #[tokio::test]
    async fn cookies_round_trip_and_refuse_tampering() {
        let auth = auth();
        let session = auth.login("ana", "secreto").await.unwrap();
        let set = auth.set_cookie(&session);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(set.contains("; Secure;") && Auth::clear_cookie().contains("; Secure;"));
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
