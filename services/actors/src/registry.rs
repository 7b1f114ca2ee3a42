//! The node-local map from entity id to the running actor that owns it.
//!
//! Supervisors insert a child when it starts and remove it when it stops; a restarted child
//! replaces its predecessor. Removal names the actor being removed, so a late "stopped" from an
//! old incarnation cannot unregister the new one.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

use ractor::{ActorId, ActorRef, Message};

pub struct Registry<K, M: Message> {
    actors: RwLock<HashMap<K, ActorRef<M>>>,
}

impl<K: Eq + Hash + Clone, M: Message> Default for Registry<K, M> {
    fn default() -> Self {
        Self {
            actors: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, M: Message> Registry<K, M> {
    pub fn insert(&self, key: K, actor: ActorRef<M>) {
        self.actors
            .write()
            .expect("registry lock poisoned")
            .insert(key, actor);
    }

    /// Removes `key` only while it still maps to `actor`.
    pub fn remove_if(&self, key: &K, actor: ActorId) {
        let mut actors = self.actors.write().expect("registry lock poisoned");
        if actors.get(key).is_some_and(|a| a.get_id() == actor) {
            actors.remove(key);
        }
    }

    pub fn get(&self, key: &K) -> Option<ActorRef<M>> {
        self.actors
            .read()
            .expect("registry lock poisoned")
            .get(key)
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.actors.read().expect("registry lock poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
