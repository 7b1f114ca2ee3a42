//! PEM files: certificate chains, private keys, CA bundles.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;
use crate::limits::PEM_BYTES_MAX;

/// A file's bytes, bounded, with an error naming the file and what it was for.
pub(crate) fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Missing {
            what,
            path: path.to_path_buf(),
        },
        _ => Error::Read {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    let mut bytes = Vec::new();
    file.take(PEM_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Read {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if bytes.len() as u64 > PEM_BYTES_MAX {
        return Err(Error::Read {
            what,
            path: path.to_path_buf(),
            reason: format!("larger than {PEM_BYTES_MAX} bytes: not a PEM file we use"),
        });
    }
    Ok(bytes)
}

/// Every certificate of a PEM file (a leaf and its chain, or a CA bundle); at least one.
pub fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = read(what, path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Read {
            what,
            path: path.to_path_buf(),
            reason: format!("not PEM: {e}"),
        })?;
    if certificates.is_empty() {
        return Err(Error::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certificates)
}

/// The private key of a PEM file.
pub fn private_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let bytes = read(what, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => Error::NoKey {
            what,
            path: path.to_path_buf(),
        },
        other => Error::Read {
            what,
            path: path.to_path_buf(),
            reason: format!("not a PEM private key: {other}"),
        },
    })
}

/// The CAs of a PEM bundle, as trust anchors.
pub fn roots(what: &'static str, path: &Path) -> Result<Arc<RootCertStore>, Error> {
    let mut store = RootCertStore::empty();
    for certificate in certificates(what, path)? {
        store.add(certificate).map_err(|e| Error::Read {
            what,
            path: path.to_path_buf(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(Arc::new(store))
}
