//! Bounds of the API's wire handling, each with its reason.

/// The buffer tonic allocates up front for every call's messages (each response stream's
/// encoder, each client stream's decoder), and keeps for as long as the call is open. Tonic's
/// default is 8 KiB, sized for bulk transfers; our messages are a few hundred bytes (a camera
/// command ~100, an assignment ~200), and a node holds one such buffer per attached device
/// for hours, so at 110,000 attached cameras and terminals the default alone is 900 MB. A
/// larger message still goes through: the buffer grows as it is written (and shrinks again
/// only when the call ends, so a call that once sent a big reply keeps the room).
pub const CODEC_BUFFER_BYTES: usize = 1024;

/// Encoded bytes a response stream gathers before it hands them to HTTP/2: tonic's default
/// (32 KiB); only a burst of many messages reaches it.
pub const CODEC_YIELD_THRESHOLD_BYTES: usize = 32 * 1024;
