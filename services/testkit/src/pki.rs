//! Certificates made by the test: a CA and the certificates of nodes, devices and clients,
//! written as PEM files in a temporary directory (feature `pki`).
//!
//! Every leaf names `127.0.0.1` and `localhost` besides its identity (tests dial loopback),
//! and serves as both a TLS server and a TLS client (no extended key usage: nodes are both).

use std::path::{Path, PathBuf};

use centinela_tls::Files;
use centinela_tls::names::Kind;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};

/// A CA in a temporary directory, and the certificates it signs there.
pub struct Pki {
    dir: tempfile::TempDir,
    name: String,
    issuer: Issuer<'static, KeyPair>,
    /// Leaves made so far: each gets its own file names.
    made: std::sync::atomic::AtomicUsize,
}

/// The identity name of `id` of `kind`, as [`centinela_tls::names`] spells it.
pub fn identity(kind: Kind, id: &str) -> String {
    centinela_tls::names::name(kind, id)
        .map(|name| name.to_str().into_owned())
        .expect("an id a certificate can name")
}

impl Pki {
    /// A new CA called `name` (two CAs of one test differ by name and key).
    pub fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("centinela-pki-")
            .tempdir()
            .expect("temp dir");
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let certificate = params.self_signed(&key).expect("CA certificate");
        std::fs::write(dir.path().join("ca.pem"), certificate.pem()).expect("write CA");
        Self {
            dir,
            name: name.to_string(),
            issuer: Issuer::new(params, key),
            made: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The CA's certificate (PEM): what clients trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A leaf naming `names` (and loopback), valid now.
    pub fn leaf(&self, names: &[String]) -> Files {
        self.leaf_with(names, false)
    }

    /// A leaf naming `names` (and loopback) that expired in 2001.
    pub fn expired(&self, names: &[String]) -> Files {
        self.leaf_with(names, true)
    }

    /// A leaf naming `names` and nothing else (no loopback address).
    pub fn leaf_exactly(&self, names: &[String]) -> Files {
        self.make(names.to_vec(), names, false)
    }

    fn leaf_with(&self, names: &[String], expired: bool) -> Files {
        let mut all: Vec<String> = names.to_vec();
        all.extend(["127.0.0.1".to_string(), "localhost".to_string()]);
        self.make(all, names, expired)
    }

    fn make(&self, all: Vec<String>, names: &[String], expired: bool) -> Files {
        let n = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut params = CertificateParams::new(all).expect("leaf params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| "client".into()),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, self.name.clone());
        if expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let files = Files {
            certificate: self.dir.path().join(format!("leaf-{n}.pem")),
            key: self.dir.path().join(format!("leaf-{n}.key")),
        };
        std::fs::write(&files.certificate, certificate.pem()).expect("write certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }

    /// A node's certificate: it names `n1.node.centinela` (and loopback).
    pub fn node(&self, id: &str) -> Files {
        self.leaf(&[identity(Kind::Node, id)])
    }

    /// A device's certificate, e.g. `B01.button.centinela`.
    pub fn device(&self, kind: Kind, id: &str) -> Files {
        self.leaf(&[identity(kind, id)])
    }

    /// A client's certificate that names no node and no device.
    pub fn client(&self, name: &str) -> Files {
        self.leaf(&[format!("{name}.client.centinela")])
    }
}

/// Replaces the files of `into` with those of `from`, each by a rename (atomic, as a
/// mounted Secret's update is): the certificate first, then the key. Tests of rotation.
pub fn replace(from: &Files, into: &Files) {
    for (source, target) in [
        (&from.certificate, &into.certificate),
        (&from.key, &into.key),
    ] {
        let staged = target.with_extension("staged");
        std::fs::copy(source, &staged).expect("stage");
        std::fs::rename(&staged, target).expect("rename");
    }
}
