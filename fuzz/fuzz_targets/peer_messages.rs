//! Any bytes as the body of a node-to-node `Peer` message (JSON of the actor request or
//! response): decoding never panics, and what decodes re-encodes to something that decodes to
//! the same request (validated ids and positions included).
#![no_main]

use libfuzzer_sys::fuzz_target;

use centinela_actors::peer::{self, Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = peer::decode::<Request>(data) {
        let again: Request = peer::decode(&peer::encode(&request)).expect("re-encoded request");
        assert_eq!(again.name(), request.name());
        assert_eq!(again.target(), request.target());
    }
    if let Ok(response) = peer::decode::<Response>(data) {
        let _: Response = peer::decode(&peer::encode(&response)).expect("re-encoded response");
    }
});
