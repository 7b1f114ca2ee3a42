//! Any bytes as a stored record (the store's JSON): decoding never panics, every decoded value
//! satisfies the domain's validation, and the audit verification of any decoded incident
//! terminates with a verdict (it is what `audit verify` runs on tampered records).
#![no_main]

use libfuzzer_sys::fuzz_target;

use centinela_core::brigade::Brigade;
use centinela_core::button::Button;
use centinela_core::camera::Camera;
use centinela_core::incident::Incident;

fuzz_target!(|data: &[u8]| {
    if let Ok(incident) = serde_json::from_slice::<Incident>(data) {
        let key = centinela_core::seal::AuditKey::from_secret(b"fuzz");
        let verdict = incident.verify_audit(Some(&key));
        assert_eq!(verdict.entries, incident.audit.len());
        assert!(verdict.chained <= verdict.entries);
        assert_eq!(verdict.head.len(), 64);
        let json = serde_json::to_vec(&incident).expect("encodes");
        let back: Incident = serde_json::from_slice(&json).expect("decodes again");
        assert_eq!(back.verify_audit(Some(&key)), verdict);
    }
    let _ = serde_json::from_slice::<Brigade>(data);
    let _ = serde_json::from_slice::<Button>(data);
    let _ = serde_json::from_slice::<Camera>(data);
});
