//! The store contract (`tests/contract`) against etcd as production runs it: TLS only, client
//! certificates required (`--client-cert-auth`), RBAC on, and the client a user whose role may
//! read and write under its prefix and nothing else (`centinela_testkit::etcd`,
//! [`EtcdCluster::start_tls`]). Then what that setup refuses: a client that does not trust
//! etcd's CA, a certificate from another CA, a user outside its prefix, `https://` without TLS.

#[macro_use]
mod contract;

use std::time::Duration;

use centinela_store::{ConnectOptions, Error, Store};
use centinela_testkit::etcd::EtcdCluster;
use centinela_testkit::pki::Pki;

/// A fresh single-member TLS etcd with RBAC on, and a client of it that is user `contract`,
/// allowed under `/contract` only (a case writes `/contractother` to check that a prefix
/// watch leaves it out).
async fn start_etcd() -> (EtcdCluster, Store) {
    let (etcd, identity) = tokio::task::spawn_blocking(|| {
        let etcd = EtcdCluster::start_tls(1);
        let identity = etcd.user("contract", "/contract");
        (etcd, identity)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let options = ConnectOptions {
        request_timeout: Duration::from_secs(1),
        ..etcd.client_options(Some(identity))
    };
    let store = Store::connect(&etcd.endpoints(), options)
        .await
        .unwrap_or_else(|e| panic!("connect to the etcd that answered: {e}"))
        .with_request_timeout(Duration::from_secs(5));
    (etcd, store)
}

macro_rules! etcd_tls_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                // Declared first, dropped last: etcd outlives the case's tasks.
                let (_etcd, store) = start_etcd().await;
                contract::$case(store, "/contract/".to_owned()).await;
            }
        )*
    };
}

for_each_case!(etcd_tls_cases);

/// A user's role covers its prefix only: another user's keys, and keys of no one, are refused
/// with etcd's "permission denied", while its own prefix works.
#[tokio::test]
async fn a_user_is_refused_outside_its_prefix() {
    let (etcd, nodes) = start_etcd().await;
    let other = etcd.user("other-city", "/other-city/");
    let other = Store::connect(&etcd.endpoints(), etcd.client_options(Some(other)))
        .await
        .expect("the other user connects");

    other
        .put("/other-city/a", "1", None)
        .await
        .expect("its own prefix");
    for result in [
        other.put("/contract/a", "1", None).await.map(|_| ()),
        other.get("/contract/a").await.map(|_| ()),
        other
            .put("/centinela/members/n9", "x", None)
            .await
            .map(|_| ()),
    ] {
        let error = result.expect_err("refused outside its prefix");
        assert!(error.to_string().contains("permission denied"), "{error}");
    }
    // And the other way round.
    let error = nodes
        .get("/other-city/a")
        .await
        .expect_err("refused outside its prefix");
    assert!(error.to_string().contains("permission denied"), "{error}");
    nodes
        .put("/contract/a", "1", None)
        .await
        .expect("its own prefix");
}

/// A client that trusts another CA does not talk to etcd: a TLS error that says so.
#[tokio::test]
async fn a_client_trusting_another_ca_gets_a_clear_error() {
    let (etcd, _) = start_etcd().await;
    let elsewhere = Pki::new("another-ca");
    let identity = etcd.user("n", "/n/");
    let options = ConnectOptions {
        tls: Some(
            centinela_store::ClientTls::from_files(&elsewhere.ca(), Some(identity))
                .expect("client TLS"),
        ),
        ..etcd.client_options(None)
    };
    match Store::connect(&etcd.endpoints(), options).await {
        Err(Error::Tls(text)) => assert!(text.contains("unknown CA"), "{text}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

/// A certificate etcd's CA did not sign, or none at all, is refused before any call.
#[tokio::test]
async fn etcd_refuses_a_certificate_it_did_not_sign() {
    let (etcd, _) = start_etcd().await;
    let elsewhere = Pki::new("another-ca");
    for identity in [Some(elsewhere.leaf(&["contract".to_string()])), None] {
        let with = identity.is_some();
        match Store::connect(&etcd.endpoints(), etcd.client_options(identity)).await {
            Err(Error::Tls(text)) => assert!(
                text.contains("refused our client certificate") || text.contains("refused the TLS"),
                "{text}"
            ),
            other => panic!("expected a TLS error (certificate: {with}), got {other:?}"),
        }
    }
}

/// `https://` without a CA is refused, never spoken in clear; `http://` with TLS likewise.
#[tokio::test]
async fn https_without_tls_is_refused() {
    let endpoint = "https://127.0.0.1:1".to_string();
    match Store::connect(std::slice::from_ref(&endpoint), ConnectOptions::default()).await {
        Err(Error::InvalidRequest(text)) => assert!(text.contains("CENTINELA_ETCD_CA"), "{text}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let pki = Pki::new("ca");
    let options = ConnectOptions {
        tls: Some(centinela_store::ClientTls::from_files(&pki.ca(), None).expect("client TLS")),
        ..ConnectOptions::default()
    };
    match Store::connect(&["http://127.0.0.1:1".to_string()], options).await {
        Err(Error::InvalidRequest(text)) => assert!(text.contains("https://"), "{text}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
