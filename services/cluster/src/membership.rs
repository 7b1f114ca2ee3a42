//! Membership: who is in the cluster, from the store.
//!
//! Each node registers `/centinela/members/{node}` (its id, site and addresses, as JSON) under
//! its session lease; every node watches that prefix. A node that dies drops out one lease TTL
//! later; a node that stops gracefully revokes its lease and drops out at once.

use std::collections::BTreeMap;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::limits;
use centinela_store::{EventKind, LeaseId, Store};

/// Where member records live.
pub const MEMBERS_PREFIX: &str = "/centinela/members/";

/// One node, as the others see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    /// The municipal site (data centre) it runs in.
    pub site: String,
    /// Where other nodes and clients reach its gRPC services (`host:port`).
    pub grpc_addr: String,
    pub http_addr: String,
}

impl Member {
    pub fn key(&self) -> String {
        format!("{MEMBERS_PREFIX}{}", self.id)
    }
}

pub struct Membership {
    members: watch::Receiver<Vec<Member>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Membership {
    /// Registers `me` under every lease the session publishes, and follows the member set.
    pub fn start(store: Store, me: Member, lease: watch::Receiver<Option<LeaseId>>) -> Membership {
        let (tx, members) = watch::channel(Vec::new());
        let tasks = vec![
            tokio::spawn(register(store.clone(), me, lease)),
            tokio::spawn(follow(store, tx)),
        ];
        Membership { members, tasks }
    }

    /// The live members, sorted by id.
    pub fn members(&self) -> watch::Receiver<Vec<Member>> {
        self.members.clone()
    }
}

async fn register(store: Store, me: Member, mut lease: watch::Receiver<Option<LeaseId>>) {
    let value = serde_json::to_vec(&me).expect("a member always serializes");
    loop {
        let current = *lease.borrow_and_update();
        if let Some(lease_id) = current {
            loop {
                match store.put(&me.key(), value.clone(), Some(lease_id)).await {
                    Ok(_) => {
                        tracing::info!(node = %me.id, site = %me.site, %lease_id, "joined the cluster");
                        break;
                    }
                    Err(centinela_store::Error::LeaseNotFound) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "registering as a member failed; retrying");
                        tokio::time::sleep(limits::MEMBERSHIP_RETRY).await;
                    }
                }
            }
        }
        if lease.changed().await.is_err() {
            return;
        }
    }
}

async fn follow(store: Store, tx: watch::Sender<Vec<Member>>) {
    loop {
        if let Err(e) = follow_once(&store, &tx).await {
            tracing::debug!(error = %e, "member watch broke; re-reading the member set");
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(limits::MEMBERSHIP_RETRY).await;
    }
}

/// Reads the member set, then applies the watch until it breaks.
async fn follow_once(
    store: &Store,
    tx: &watch::Sender<Vec<Member>>,
) -> Result<(), centinela_store::Error> {
    let (kvs, revision) = store.get_prefix(MEMBERS_PREFIX).await?;
    let mut members: BTreeMap<String, Member> = BTreeMap::new();
    for kv in kvs {
        match serde_json::from_slice::<Member>(&kv.value) {
            Ok(member) => {
                members.insert(kv.key, member);
            }
            Err(e) => {
                tracing::warn!(key = %kv.key, error = %e, "ignoring a malformed member record")
            }
        }
    }
    publish(tx, &members);
    let mut watch = store
        .watch_prefix(MEMBERS_PREFIX, Some(revision + 1))
        .await?;
    while let Some(event) = watch.next().await {
        let event = event?;
        match event.kind {
            EventKind::Put => match serde_json::from_slice::<Member>(&event.kv.value) {
                Ok(member) => {
                    members.insert(event.kv.key, member);
                }
                Err(e) => tracing::warn!(error = %e, "ignoring a malformed member record"),
            },
            EventKind::Delete => {
                members.remove(&event.kv.key);
            }
        }
        publish(tx, &members);
    }
    Ok(())
}

fn publish(tx: &watch::Sender<Vec<Member>>, members: &BTreeMap<String, Member>) {
    let mut list: Vec<Member> = members.values().cloned().collect();
    list.sort_by(|a, b| a.id.cmp(&b.id));
    tx.send_if_modified(|current| {
        if *current == list {
            false
        } else {
            tracing::info!(members = ?list.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), "member set changed");
            centinela_telemetry::metrics::GAUGES
                .members
                .store(list.len() as i64, std::sync::atomic::Ordering::Relaxed);
            *current = list;
            true
        }
    });
}
