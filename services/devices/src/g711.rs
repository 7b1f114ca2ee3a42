//! G.711 (ITU-T G.711, RFC 3551's PCMU and PCMA): 16-bit linear PCM to and from 8-bit µ-law
//! and A-law, the segment-and-quantization tables of the reference implementation (Sun's
//! `g711.c`, which every VoIP stack copies). The simulated button encodes its voice with it
//! and decodes what the operator says to measure it.

/// µ-law's bias (33 in 14-bit units, 132 in 16-bit ones).
const ULAW_BIAS: i32 = 0x84;
/// The largest 14-bit magnitude µ-law encodes before clipping.
const ULAW_CLIP: i32 = 8159;
/// Upper ends of µ-law's eight segments (14-bit magnitudes plus the bias).
const ULAW_SEGMENT_ENDS: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Upper ends of A-law's eight segments (13-bit magnitudes).
const ALAW_SEGMENT_ENDS: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// The segment `value` falls in (8 when beyond the last).
fn segment(value: i32, ends: &[i32; 8]) -> i32 {
    ends.iter().position(|end| value <= *end).unwrap_or(8) as i32
}

/// One 16-bit sample as µ-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut value = i32::from(sample) >> 2;
    let mask = if value < 0 {
        value = -value;
        0x7F
    } else {
        0xFF
    };
    value = value.min(ULAW_CLIP) + (ULAW_BIAS >> 2);
    let segment = segment(value, &ULAW_SEGMENT_ENDS);
    let code = if segment >= 8 {
        0x7F
    } else {
        (segment << 4) | ((value >> (segment + 1)) & 0x0F)
    };
    (code ^ mask) as u8
}

/// One µ-law byte as a 16-bit sample.
pub fn ulaw_decode(code: u8) -> i16 {
    let code = i32::from(!code);
    let magnitude = (((code & 0x0F) << 3) + ULAW_BIAS) << ((code & 0x70) >> 4);
    let sample = if code & 0x80 != 0 {
        ULAW_BIAS - magnitude
    } else {
        magnitude - ULAW_BIAS
    };
    sample as i16
}

/// One 16-bit sample as A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut value = i32::from(sample) >> 3;
    let mask = if value >= 0 {
        0xD5
    } else {
        value = -value - 1;
        0x55
    };
    let segment = segment(value, &ALAW_SEGMENT_ENDS);
    let code = if segment >= 8 {
        0x7F
    } else {
        let shift = if segment < 2 { 1 } else { segment };
        (segment << 4) | ((value >> shift) & 0x0F)
    };
    (code ^ mask) as u8
}

/// One A-law byte as a 16-bit sample.
pub fn alaw_decode(code: u8) -> i16 {
    let code = i32::from(code ^ 0x55);
    let mut magnitude = (code & 0x0F) << 4;
    match (code & 0x70) >> 4 {
        0 => magnitude += 8,
        1 => magnitude += 0x108,
        segment => magnitude = (magnitude + 0x108) << (segment - 1),
    }
    let sample = if code & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    };
    sample as i16
}

/// A G.711 variant, by its static RTP payload type (RFC 3551).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// PCMU, payload type 0.
    Mu,
    /// PCMA, payload type 8.
    A,
}

impl Law {
    pub fn from_payload_type(payload_type: u8) -> Option<Self> {
        match payload_type {
            0 => Some(Law::Mu),
            8 => Some(Law::A),
            _ => None,
        }
    }

    pub fn payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Law::Mu => "PCMU",
            Law::A => "PCMA",
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => ulaw_encode(sample),
            Law::A => alaw_encode(sample),
        }
    }

    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Mu => ulaw_decode(code),
            Law::A => alaw_decode(code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of the reference implementation, checked against an independent one (CPython's
    /// `audioop.lin2ulaw`/`lin2alaw` and back): silence is 0xFF in µ-law and 0xD5 in A-law,
    /// full scale 0x80/0x00 and 0xAA/0x2A.
    #[test]
    fn known_codes_match_the_reference_tables() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_encode(-1), 0x7E);
        assert_eq!(ulaw_encode(1000), 0xCE);
        assert_eq!(ulaw_encode(-1000), 0x4E);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0xCE), 988);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(alaw_encode(1000), 0xFA);
        assert_eq!(alaw_encode(-1000), 0x7A);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_decode(0xFA), 1008);
    }

    /// G.711 is logarithmic: the round trip keeps a sample within its segment's step, a
    /// relative error of a few per cent (plus a small absolute one near silence).
    #[test]
    fn the_round_trip_error_is_within_the_quantization_step() {
        for law in [Law::Mu, Law::A] {
            for sample in (i16::MIN..=i16::MAX).step_by(7) {
                let back = law.decode(law.encode(sample));
                let error = (i32::from(back) - i32::from(sample)).abs();
                let allowed = (i32::from(sample).abs() / 16).max(16) + 1;
                assert!(
                    error <= allowed || i32::from(sample).abs() > 32000,
                    "{law:?}: {sample} came back {back}"
                );
            }
            // Every code decodes to a value that encodes back to the same code (0x7F and
            // 0xFF both mean zero in µ-law: the negative zero comes back positive).
            for code in 0..=u8::MAX {
                let again = law.encode(law.decode(code));
                assert!(
                    again == code || (law == Law::Mu && code == 0x7F && again == 0xFF),
                    "{law:?}: code {code:#04x} came back {again:#04x}"
                );
            }
        }
    }

    #[test]
    fn payload_types_are_rfc_3551s() {
        assert_eq!(Law::from_payload_type(0), Some(Law::Mu));
        assert_eq!(Law::from_payload_type(8), Some(Law::A));
        assert_eq!(Law::from_payload_type(101), None);
        assert_eq!(Law::A.payload_type(), 8);
    }
}
