//! The caller's SDP offer (parsed with `ezk-sdp-types`) and our answer: one audio stream of
//! G.711, µ-law (PCMU, payload type 0) or A-law (PCMA, 8), whichever the caller lists first.
//! Nothing is transcoded: the browser decodes both.

use std::net::{IpAddr, SocketAddr};

use bytesstr::BytesStr;
use ezk_sdp_types::{MediaType, SessionDescription, TaggedAddress, TransportProtocol};

use crate::limits::SDP_LEN_MAX;

/// A G.711 variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    fn from_payload(payload: u8, named: Option<&str>) -> Option<Self> {
        let name = named.map(str::to_ascii_uppercase);
        match (payload, name.as_deref()) {
            (0, None) | (_, Some("PCMU")) => Some(Codec::Pcmu),
            (8, None) | (_, Some("PCMA")) => Some(Codec::Pcma),
            _ => None,
        }
    }
}

/// What the caller offered that we take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// Where the caller receives RTP.
    pub rtp: SocketAddr,
    pub codec: Codec,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the SDP offer is {0} bytes, at most {SDP_LEN_MAX}")]
    TooLong(usize),
    #[error("the SDP offer does not parse: {0}")]
    Syntax(String),
    #[error("the offer has no RTP/AVP audio stream")]
    NoAudio,
    #[error("the offer has no G.711 (PCMU or PCMA) audio")]
    NoG711,
    #[error("the offer's connection address is not an IP address")]
    NoAddress,
}

/// Takes the first audio stream's first G.711 format.
pub fn parse_offer(body: &[u8]) -> Result<Offer, Error> {
    if body.len() > SDP_LEN_MAX {
        return Err(Error::TooLong(body.len()));
    }
    let text = std::str::from_utf8(body).map_err(|_| Error::Syntax("not UTF-8".into()))?;
    let sdp = SessionDescription::parse(&BytesStr::from(text))
        .map_err(|e| Error::Syntax(e.to_string()))?;
    let audio = sdp
        .media_descriptions
        .iter()
        .find(|m| {
            m.media.media_type == MediaType::Audio
                && matches!(m.media.proto, TransportProtocol::RtpAvp)
                && m.media.port != 0
        })
        .ok_or(Error::NoAudio)?;
    let codec = audio
        .media
        .fmts
        .iter()
        .find_map(|payload| {
            let named = audio
                .rtpmap
                .iter()
                .find(|map| map.payload == *payload)
                .map(|map| map.encoding.as_ref());
            Codec::from_payload(*payload, named)
        })
        .ok_or(Error::NoG711)?;
    let connection = audio
        .connection
        .as_ref()
        .or(sdp.connection.as_ref())
        .ok_or(Error::NoAddress)?;
    let ip: IpAddr = match &connection.address {
        TaggedAddress::IP4(ip) => (*ip).into(),
        TaggedAddress::IP6(ip) => (*ip).into(),
        _ => return Err(Error::NoAddress),
    };
    Ok(Offer {
        rtp: SocketAddr::new(ip, audio.media.port),
        codec,
    })
}

/// Our answer: `codec` at `local` (the node's media socket for this call).
pub fn answer(local: SocketAddr, codec: Codec, session: u64) -> String {
    let family = if local.is_ipv4() { "IP4" } else { "IP6" };
    let ip = local.ip();
    let port = local.port();
    let payload = codec.payload_type();
    let name = codec.name();
    format!(
        "v=0\r\no=centinela {session} {session} IN {family} {ip}\r\ns=centinela\r\n\
c=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {payload}\r\n\
a=rtpmap:{payload} {name}/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

    #[test]
    fn the_first_g711_format_is_taken() {
        let offer = parse_offer(OFFER.as_bytes()).unwrap();
        assert_eq!(offer.codec, Codec::Pcma);
        assert_eq!(offer.rtp, "127.0.0.1:6000".parse().unwrap());
        let answer = answer("127.0.0.1:7000".parse().unwrap(), offer.codec, 1);
        assert!(answer.contains("m=audio 7000 RTP/AVP 8\r\n"));
        // Our answer is itself a valid offer of the same stream.
        assert_eq!(parse_offer(answer.as_bytes()).unwrap().codec, Codec::Pcma);
    }

    #[test]
    fn an_offer_without_g711_is_refused() {
        let opus = OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 111").replace(
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n",
            "a=rtpmap:111 opus/48000/2\r\n",
        );
        assert_eq!(parse_offer(opus.as_bytes()), Err(Error::NoG711));
        assert!(matches!(parse_offer(b"hello"), Err(Error::Syntax(_))));
    }
}
