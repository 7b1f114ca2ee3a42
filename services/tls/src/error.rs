//! What can go wrong, said so that an operator knows which file or which certificate to fix.

use std::error::Error as StdError;
use std::path::PathBuf;

use rustls::{CertificateError, Error as TlsError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {path}: file missing")]
    Missing { what: &'static str, path: PathBuf },
    #[error("{what} {path}: {reason}")]
    Read {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{what} {path}: no PEM certificate in it")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("{what} {path}: no PEM private key in it (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { what: &'static str, path: PathBuf },
    #[error("{path}: {reason}")]
    BadPair { path: PathBuf, reason: String },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{0}")]
    Config(String),
}

/// A certificate problem in an operator's words.
pub fn certificate_problem(error: &CertificateError) -> String {
    match error {
        CertificateError::UnknownIssuer => {
            "certificate signed by an unknown CA (is the right CA given: --ca, CENTINELA_TLS_CA?)"
                .into()
        }
        CertificateError::Expired => "certificate expired".into(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "certificate expired ({} s ago)",
            time.as_secs().saturating_sub(not_after.as_secs())
        ),
        CertificateError::NotValidYet => "certificate not valid yet (clock skew?)".into(),
        CertificateError::NotValidYetContext { .. } => {
            "certificate not valid yet (clock skew?)".into()
        }
        CertificateError::NotValidForName => {
            "certificate not valid for this name (wrong name: it names another host or node)".into()
        }
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "certificate not valid for {expected:?} (wrong name; it names {})",
            if presented.is_empty() {
                "nothing".to_string()
            } else {
                presented.join(", ")
            }
        ),
        CertificateError::Revoked => "certificate revoked".into(),
        CertificateError::BadSignature => "certificate has a bad signature".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "certificate not made for this use (extended key usage)".into()
        }
        other => format!("bad certificate: {other:?}"),
    }
}

/// A rustls error in an operator's words.
pub fn tls_problem(error: &TlsError) -> String {
    match error {
        TlsError::InvalidCertificate(certificate) => certificate_problem(certificate),
        TlsError::AlertReceived(alert) => format!(
            "the other end refused the TLS handshake ({alert:?}: it did not accept our certificate, or wanted one)"
        ),
        TlsError::InvalidMessage(_) | TlsError::InappropriateMessage { .. } => {
            "not TLS on the other end (a plaintext port? use http://, or give the node a certificate)"
                .into()
        }
        TlsError::NoCertificatesPresented => "no client certificate presented".into(),
        other => format!("TLS: {other}"),
    }
}

/// The TLS problem buried in `error`'s sources, in an operator's words; `None` when the
/// failure was not TLS (refused connection, timeout, an error from the server).
pub fn tls_cause(error: &(dyn StdError + 'static)) -> Option<String> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(current) = next {
        if let Some(tls) = current.downcast_ref::<TlsError>() {
            return Some(tls_problem(tls));
        }
        if let Some(tls) = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<TlsError>())
        {
            return Some(tls_problem(tls));
        }
        next = current.source();
    }
    None
}

/// Everything an error says, its sources included, with TLS problems explained: tonic's
/// `transport error` alone names nothing.
pub fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(current) = next {
        if let Some(tls) = current.downcast_ref::<TlsError>() {
            parts.push(tls_problem(tls));
            break;
        }
        // An `io::Error` wrapping another error reports that error's source as its own,
        // skipping the wrapped error itself: look inside.
        if let Some(wrapped) = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<TlsError>())
        {
            parts.push(tls_problem(wrapped));
            break;
        }
        let text = current.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_cause_finds_a_tls_error_and_only_one() {
        let inner = TlsError::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        let cause = tls_cause(&io).expect("a TLS cause");
        assert!(cause.contains("unknown CA"), "{cause}");
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(tls_cause(&refused), None);
    }

    #[test]
    fn a_wrapped_tls_error_is_explained() {
        let inner = TlsError::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        let text = describe(&io);
        assert!(text.contains("unknown CA"), "{text}");
    }
}
