//! What a viewer is sent, encoded for the browser: a JSON configuration for its decoder (the
//! WebCodecs `VideoDecoderConfig`), then one binary message per access unit, and JSON status
//! messages whenever the stream's state changes.
//!
//! A frame message is, big-endian: `u8` flags (bit 0: key frame), `i64` presentation time in
//! microseconds (the camera's RTP clock), `u64` the node's wall clock in milliseconds when it
//! received the frame, then the access unit in AVC format (4-byte lengths, as the `avcC`
//! description declares).

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::json;

/// Bytes before the access unit in a frame message.
pub const FRAME_HEADER_LEN: usize = 1 + 8 + 8;

/// What a decoder needs to decode a stream: from the SPS/PPS the camera sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameters {
    /// RFC 6381 codec string, `avc1.PPCCLL` (profile, constraints, level from the SPS).
    pub codec: String,
    /// The `AVCDecoderConfigurationRecord` (`avcC`): SPS and PPS.
    pub description: Bytes,
    pub width: u32,
    pub height: u32,
}

impl Parameters {
    /// The configuration message (`{"type":"config", ...}`); the description in base64.
    pub fn message(&self) -> String {
        json!({
            "type": "config",
            "codec": self.codec,
            "description": base64(&self.description),
            "width": self.width,
            "height": self.height,
        })
        .to_string()
    }
}

/// One access unit of a camera's stream.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The parameters it decodes with; shared by every frame until the camera sends new ones.
    pub parameters: std::sync::Arc<Parameters>,
    /// A random access point (IDR): decoding may start here.
    pub key: bool,
    /// Presentation time, µs, from the camera's RTP clock (starts near 0 per session).
    pub timestamp_us: i64,
    /// When the node received it, ms since the Unix epoch: latency estimates.
    pub received_ms: u64,
    /// The access unit (AVC format).
    pub data: Bytes,
}

impl Frame {
    /// The binary message (see the module's documentation).
    pub fn message(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(FRAME_HEADER_LEN + self.data.len());
        out.put_u8(u8::from(self.key));
        out.put_i64(self.timestamp_us);
        out.put_u64(self.received_ms);
        out.put_slice(&self.data);
        out.freeze()
    }
}

/// The state of a camera's upstream, as viewers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Opening the first session.
    Connecting,
    /// Frames are flowing.
    Playing,
    /// The stream failed or stalled; the node retries with back-off.
    Reconnecting { reason: String },
    /// The camera refused the node's account: retrying will not help until an installer
    /// fixes the account (the node keeps retrying, slowly, in case the camera is changed).
    Refused { reason: String },
}

impl Status {
    /// The status message (`{"type":"status","state":...,"reason":...}`).
    pub fn message(&self) -> String {
        let (state, reason) = match self {
            Status::Connecting => ("connecting", None),
            Status::Playing => ("playing", None),
            Status::Reconnecting { reason } => ("reconnecting", Some(reason)),
            Status::Refused { reason } => ("refused", Some(reason)),
        };
        json!({ "type": "status", "state": state, "reason": reason }).to_string()
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn a_frame_message_is_its_header_then_the_access_unit() {
        let parameters = std::sync::Arc::new(Parameters {
            codec: "avc1.42c01e".into(),
            description: Bytes::from_static(&[1, 0x42]),
            width: 640,
            height: 360,
        });
        let frame = Frame {
            parameters,
            key: true,
            timestamp_us: -2,
            received_ms: 7,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        };
        let message = frame.message();
        assert_eq!(message.len(), FRAME_HEADER_LEN + 5);
        assert_eq!(message[0], 1);
        assert_eq!(&message[1..9], &(-2i64).to_be_bytes());
        assert_eq!(&message[9..17], &7u64.to_be_bytes());
        assert_eq!(&message[17..], &[0, 0, 0, 1, 0x65]);
    }

    #[test]
    fn status_messages_name_the_state_and_reason() {
        let refused = Status::Refused {
            reason: "401".into(),
        };
        let value: serde_json::Value = serde_json::from_str(&refused.message()).unwrap();
        assert_eq!(value["state"], "refused");
        assert_eq!(value["reason"], "401");
        let value: serde_json::Value = serde_json::from_str(&Status::Playing.message()).unwrap();
        assert_eq!(value["reason"], serde_json::Value::Null);
    }
}
