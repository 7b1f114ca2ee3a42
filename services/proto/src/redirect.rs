//! Owner redirects of device streams: a device's long-lived stream (a camera's `Commands`, a
//! terminal's `Assignments`) is best served by the node that owns the device, with no proxy in
//! between. The protocol, as docs/devices.md describes it for device vendors:
//!
//! 1. A device that can follow redirects says so on the stream's request: metadata
//!    [`FOLLOW_OWNER`] = `1`. A device that does not send it is served wherever it connects
//!    (a node that does not own it proxies the stream to the owner), as before.
//! 2. A node that does not own the device answers such a request with `UNAVAILABLE` whose
//!    metadata names the owner: [`OWNER_ADDR`] (`host:port`, the owner's advertised gRPC
//!    address) and [`OWNER_NODE`] (its node id). The device reconnects there, with the scheme
//!    (and so the TLS) it already used: a redirect never turns `https` into `http`, and over TLS
//!    the owner's certificate is checked against the same CA.
//! 3. When ownership moves (a node joined or left), the owner's stream ends with the same
//!    status naming the new owner, and the device follows again. When the owner dies, the
//!    stream just breaks: the device goes back to the addresses it was configured with, where a
//!    live node redirects it to the new owner.
//!
//! Authentication comes first: a caller that may not act as the device gets
//! `UNAUTHENTICATED`/`PERMISSION_DENIED`, never an owner's address.

use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

/// Request metadata a device sends to say it follows owner redirects (value `1`).
pub const FOLLOW_OWNER: &str = "centinela-follow-owner";
/// Status metadata of a redirect: the owner's advertised gRPC address, `host:port`.
pub const OWNER_ADDR: &str = "centinela-owner";
/// Status metadata of a redirect: the owner's node id (for logs; the address is what counts).
pub const OWNER_NODE: &str = "centinela-owner-node";

/// The owner a redirect names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub node: String,
    /// `host:port`.
    pub addr: String,
}

impl Owner {
    /// The owner's URL with `scheme_of`'s scheme (`http://` or `https://`): the device keeps
    /// speaking what it spoke to the node that redirected it.
    pub fn url_like(&self, scheme_of: &str) -> String {
        let scheme = if scheme_of.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }
}

/// Whether the request's metadata asks for owner redirects.
pub fn follows_owner(metadata: &MetadataMap) -> bool {
    metadata
        .get(FOLLOW_OWNER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "1")
}

/// Marks a request as coming from a device that follows owner redirects.
pub fn ask_to_follow<T>(request: &mut tonic::Request<T>) {
    request.metadata_mut().insert(
        FOLLOW_OWNER,
        tonic::metadata::MetadataValue::from_static("1"),
    );
}

/// The redirect a node answers with: `kind` `id` is owned by `owner`.
pub fn status(kind: &str, id: &str, owner: &Owner) -> Status {
    let mut status = Status::unavailable(format!(
        "{kind} '{id}' is served by node {} at {}; reconnect there ({OWNER_ADDR})",
        owner.node, owner.addr
    ));
    // Both values were a member's id and address; one that does not fit in metadata leaves
    // the redirect without it, and the device retries where it was configured to.
    if let Ok(addr) = owner.addr.parse() {
        status.metadata_mut().insert(OWNER_ADDR, addr);
    }
    if let Ok(node) = owner.node.parse() {
        status.metadata_mut().insert(OWNER_NODE, node);
    }
    status
}

/// The owner a status names, when it is a redirect.
pub fn owner_of(status: &Status) -> Option<Owner> {
    if status.code() != Code::Unavailable {
        return None;
    }
    let addr = status.metadata().get(OWNER_ADDR)?.to_str().ok()?.trim();
    if addr.is_empty() || addr.contains('/') || addr.contains(char::is_whitespace) {
        return None;
    }
    let node = status
        .metadata()
        .get(OWNER_NODE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    Some(Owner {
        node: node.to_string(),
        addr: addr.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_round_trips_and_keeps_the_scheme() {
        let owner = Owner {
            node: "n2".into(),
            addr: "10.0.0.2:7400".into(),
        };
        let status = status("camera", "C01", &owner);
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("n2"), "{}", status.message());
        assert_eq!(owner_of(&status), Some(owner.clone()));
        assert_eq!(owner.url_like("https://n1:7400"), "https://10.0.0.2:7400");
        assert_eq!(owner.url_like("http://n1:7400"), "http://10.0.0.2:7400");
    }

    #[test]
    fn only_an_unavailable_with_an_address_is_a_redirect() {
        assert_eq!(owner_of(&Status::unavailable("node gone")), None);
        let mut other = Status::permission_denied("no");
        other
            .metadata_mut()
            .insert(OWNER_ADDR, "10.0.0.2:7400".parse().unwrap());
        assert_eq!(owner_of(&other), None);
        let mut odd = Status::unavailable("x");
        odd.metadata_mut()
            .insert(OWNER_ADDR, "evil/path".parse().unwrap());
        assert_eq!(owner_of(&odd), None);
    }

    #[test]
    fn following_is_opt_in() {
        let mut request = tonic::Request::new(());
        assert!(!follows_owner(request.metadata()));
        ask_to_follow(&mut request);
        assert!(follows_owner(request.metadata()));
    }
}
