//! Bounds of the API's wire handling, each with its reason.

/// The buffer tonic allocates up front for every call's messages (each response stream's
/// encoder, each client stream's decoder), and keeps for as long as the call is open. Tonic's
/// default is 8 KiB, sized for bulk transfers; our device streams carry a few hundred bytes at
/// a time (a camera command ~100, an assignment ~200), and a node holds one such buffer per
/// attached device for days: at 110,000 attached cameras and terminals the default alone is
/// 900 MB, and 1 KiB still measured ~1 KB of heap per open stream (heaptrack, docs/benchmarks.md
/// "Memory per attached device"). A larger message still goes through: the buffer grows as it is
/// written (and shrinks again only when the call ends, so a call that once sent a big reply
/// keeps the room).
pub const CODEC_BUFFER_BYTES: usize = 256;

/// Encoded bytes a response stream gathers before it hands them to HTTP/2: tonic's default
/// (32 KiB); only a burst of many messages reaches it.
pub const CODEC_YIELD_THRESHOLD_BYTES: usize = 32 * 1024;
