//! Every bound of the TLS layer, with its reason.

use std::time::Duration;

/// A connection that has not finished its TLS handshake in this long is closed. A handshake
/// is two round trips and a few signatures: seconds even between sites on a bad link; a
/// client that takes longer is stuck or hostile, and it holds one of the listener's
/// connection slots meanwhile.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them. The server takes them as fast
/// as it accepts plain ones; a small queue only smooths bursts (each entry holds a slot of
/// the listener's cap anyway, so the cap bounds the handshakes in flight).
pub const HANDSHAKEN_QUEUE: usize = 64;

/// How often, at most, a certificate's and key's files are looked at for a change (one
/// `stat` each, done on a handshake, never in the background): cert-manager renews a
/// certificate days before it expires, so noticing it within seconds is plenty.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// A PEM file larger than this is not a certificate, key or CA bundle we would use (a CA
/// bundle of the whole Web PKI is about 220 KiB).
pub const PEM_BYTES_MAX: u64 = 1024 * 1024;
