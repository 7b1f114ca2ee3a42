//! Console sessions signed out anywhere in the cluster: `{ROOT}revoked-sessions/{id}`, an
//! empty value under an etcd lease that ends when the session would have expired, so the keys
//! clean themselves up and their number is bounded by the sessions signed out within one
//! session lifetime. Sessions are stateless MACs any node sharing the console secret accepts;
//! this key is how a sign-out on one node reaches the others (docs/security.md).

use std::time::Duration;

use crate::Records;
use crate::error::{Error, Result};
use crate::limits::{REVOCATION_LEASE_MIN, SESSION_ID_LEN_MAX};
use crate::record::ROOT;

fn revoked_key(session_id: &str) -> String {
    format!("{ROOT}revoked-sessions/{session_id}")
}

fn check(session_id: &str) -> Result<()> {
    let ok = !session_id.is_empty()
        && session_id.len() <= SESSION_ID_LEN_MAX
        && session_id.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "a session id is 1 to {SESSION_ID_LEN_MAX} hex digits"
        )))
    }
}

impl Records {
    /// Records that the session `session_id` (hex) was signed out; the record lasts `ttl` (the
    /// session's remaining life, at least [`REVOCATION_LEASE_MIN`]).
    pub async fn revoke_session(&self, session_id: &str, ttl: Duration) -> Result<()> {
        check(session_id)?;
        let lease = self
            .store()
            .grant_lease(ttl.max(REVOCATION_LEASE_MIN))
            .await?;
        self.store()
            .put(&revoked_key(session_id), Vec::new(), Some(lease))
            .await?;
        Ok(())
    }

    /// Whether the session `session_id` (hex) was signed out on some node.
    pub async fn session_revoked(&self, session_id: &str) -> Result<bool> {
        check(session_id)?;
        Ok(self.store().get(&revoked_key(session_id)).await?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_revocation_is_seen_then_expires_with_its_session() {
        let (_store, records) = crate::testing::lima().await;
        assert!(!records.session_revoked("00ff").await.unwrap());
        records
            .revoke_session("00ff", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(records.session_revoked("00ff").await.unwrap());
        assert!(!records.session_revoked("00fe").await.unwrap());
        assert!(records.session_revoked("not hex").await.is_err());
        tokio::time::sleep(Duration::from_secs(61) + REVOCATION_LEASE_MIN).await;
        assert!(!records.session_revoked("00ff").await.unwrap());
    }
}
