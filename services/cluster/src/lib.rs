//! The cluster: who is in it, who owns which entity, and who leads.
//!
//! # Layout
//! - [`session`]: the node's lease, renewed for the node's life (on a real etcd from a thread
//!   and connection of its own); membership and candidacy hang off it, so a dead node leaves
//!   the cluster one TTL later.
//! - [`membership`]: each node's record under its lease; every node follows the member set.
//! - [`placement`]: rendezvous hashing of entity keys over the live members.
//! - [`limits`]: the retry pauses, with their reasons.
//! - [`Topology`]: the current view (members, leader) the router consults on every message.

pub mod limits;
pub mod membership;
pub mod placement;
pub mod session;

use tokio::sync::watch;

use centinela_store::LeaderInfo;

pub use membership::{Member, Membership};
pub use session::{KeepAlive, Session};

/// Where an entity's actor runs, as this node sees it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    Local,
    Remote(Member),
    /// No live member (this node has lost its own membership, say).
    Nobody,
}

/// This node's current view of the cluster: cheap to clone, always current.
#[derive(Clone)]
pub struct Topology {
    me: Member,
    members: watch::Receiver<Vec<Member>>,
    leader: watch::Receiver<Option<LeaderInfo>>,
}

impl Topology {
    pub fn new(
        me: Member,
        members: watch::Receiver<Vec<Member>>,
        leader: watch::Receiver<Option<LeaderInfo>>,
    ) -> Self {
        Self {
            me,
            members,
            leader,
        }
    }

    /// A fixed one-member view with no leader: tests of a single node's actors.
    pub fn single(me: Member) -> Self {
        let (_, members) = watch::channel(vec![me.clone()]);
        let (_, leader) = watch::channel(None);
        Self::new(me, members, leader)
    }

    pub fn me(&self) -> &Member {
        &self.me
    }

    /// The live members, sorted by id.
    pub fn members(&self) -> Vec<Member> {
        self.members.borrow().clone()
    }

    pub fn members_watch(&self) -> watch::Receiver<Vec<Member>> {
        self.members.clone()
    }

    /// Whether this node is in the member set it sees.
    pub fn is_member(&self) -> bool {
        self.members.borrow().iter().any(|m| m.id == self.me.id)
    }

    /// The owner of the entity `kind/id`.
    pub fn owner(&self, kind: &str, id: &str) -> Owner {
        let key = entity_key(kind, id);
        let members = self.members.borrow();
        match placement::owner(&key, members.iter().map(|m| m.id.as_str())) {
            None => Owner::Nobody,
            Some(owner) if owner == self.me.id => Owner::Local,
            Some(owner) => members
                .iter()
                .find(|m| m.id == owner)
                .cloned()
                .map_or(Owner::Nobody, Owner::Remote),
        }
    }

    /// Who leads the dispatcher election, with its term.
    pub fn leader(&self) -> Option<LeaderInfo> {
        self.leader.borrow().clone()
    }

    /// The leader's member record, when it is a live member.
    pub fn leader_member(&self) -> Option<Member> {
        let leader = self.leader()?;
        self.members
            .borrow()
            .iter()
            .find(|m| m.id == leader.node_id)
            .cloned()
    }
}

/// The placement key of an entity: its kind and id.
pub fn entity_key(kind: &str, id: &str) -> String {
    format!("{kind}/{id}")
}
