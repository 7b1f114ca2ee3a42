//! A certificate and key that follow their files: [`Pair`] is what a server presents and
//! what a client presents, re-read when either file changes (what cert-manager does to a
//! mounted Secret). New handshakes use the new pair; open connections keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::time::Instant;

use crate::Error;
use crate::limits::RELOAD_CHECK_INTERVAL;
use crate::pem;

/// Where a certificate chain and its private key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// When each file was last modified, and its length: a rewrite changes one of them.
type Stamp = Option<(SystemTime, u64, SystemTime, u64)>;

fn stamp(files: &Files) -> Stamp {
    let of = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    };
    let (certificate_modified, certificate_len) = of(&files.certificate)?;
    let (key_modified, key_len) = of(&files.key)?;
    Some((certificate_modified, certificate_len, key_modified, key_len))
}

struct Current {
    key: Arc<CertifiedKey>,
    stamp: Stamp,
    checked: Instant,
}

/// A certificate and key, re-read when their files change; see the module docs.
pub struct Pair {
    files: Files,
    provider: Arc<CryptoProvider>,
    current: Mutex<Current>,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair").field("files", &self.files).finish()
    }
}

fn load(files: &Files, provider: &CryptoProvider) -> Result<CertifiedKey, Error> {
    let chain = pem::certificates("certificate", &files.certificate)?;
    let key = pem::private_key("key", &files.key)?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| Error::BadPair {
        path: files.key.clone(),
        reason: format!(
            "this key does not go with the certificate {}: {e}",
            files.certificate.display()
        ),
    })?;
    Ok(certified)
}

impl Pair {
    /// Reads both files now: a missing or bad file is an error at start-up, not at the first
    /// handshake.
    pub fn load(files: Files, provider: Arc<CryptoProvider>) -> Result<Arc<Self>, Error> {
        let stamp = stamp(&files);
        let key = Arc::new(load(&files, &provider)?);
        Ok(Arc::new(Self {
            files,
            provider,
            current: Mutex::new(Current {
                key,
                stamp,
                checked: Instant::now(),
            }),
        }))
    }

    pub fn files(&self) -> &Files {
        &self.files
    }

    /// The pair to present now: re-read first if the files changed since the last look
    /// (looked at no more than once per [`RELOAD_CHECK_INTERVAL`]). A rewrite caught half
    /// way (a certificate that does not match the key yet) keeps the old pair and is tried
    /// again at the next look.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut current = self.current.lock().expect("certificate pair poisoned");
        let now = Instant::now();
        if now.saturating_duration_since(current.checked) < RELOAD_CHECK_INTERVAL {
            return current.key.clone();
        }
        current.checked = now;
        let stamp = stamp(&self.files);
        if stamp.is_none() || stamp == current.stamp {
            return current.key.clone();
        }
        match load(&self.files, &self.provider) {
            Ok(key) => {
                tracing::info!(
                    certificate = %self.files.certificate.display(),
                    "certificate files changed: new connections use the new pair"
                );
                current.key = Arc::new(key);
                current.stamp = stamp;
            }
            Err(e) => {
                tracing::warn!(error = %e, "certificate files changed but cannot be used yet; keeping the previous pair");
            }
        }
        current.key.clone()
    }

    /// Forgets when the files were last looked at, so the next handshake looks (tests, and a
    /// rotation signalled from outside).
    pub fn check_now(&self) {
        let mut current = self.current.lock().expect("certificate pair poisoned");
        current.checked = Instant::now()
            .checked_sub(RELOAD_CHECK_INTERVAL)
            .unwrap_or(current.checked);
    }
}

impl ResolvesServerCert for Pair {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for Pair {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
