//! Any bytes as the body of a node-to-node `Peer` message (`centinela_actors::wire`: JSON of an
//! entity or dispatcher request, or of a response): decoding never panics, and what decodes
//! re-encodes to something that decodes to the same request (validated ids and positions
//! included).
#![no_main]

use libfuzzer_sys::fuzz_target;

use centinela_actors::wire::{self, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = wire::decode_request(data) {
        let again = wire::decode_request(&request.body()).expect("re-encoded request");
        assert_eq!(again.name(), request.name());
        assert_eq!(format!("{again:?}"), format!("{request:?}"));
    }
    if let Ok(response) = wire::decode::<Response>(data) {
        let _: Response = wire::decode(&wire::encode(&response)).expect("re-encoded response");
    }
});
