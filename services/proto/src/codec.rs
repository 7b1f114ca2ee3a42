//! The codec of every `centinela.v1` service and client: prost's, except that a message that
//! does not decode is `INVALID_ARGUMENT` (what the caller sent is wrong) instead of prost's
//! `INTERNAL` (which reads as the server's fault and is what monitoring alerts on).
//!
//! Its buffers are smaller than tonic's default ([`CODEC_BUFFER_BYTES`]): a node keeps one
//! per open stream, and attached devices keep streams open for hours.
//!
//! Set by `build.rs` (`codec_path`). The standard health and reflection services keep tonic's
//! own codec.

use std::marker::PhantomData;

use tonic::Status;
use tonic::codec::{
    BufferSettings, Codec as TonicCodec, DecodeBuf, Decoder as TonicDecoder, EncodeBuf,
    Encoder as TonicEncoder,
};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

use crate::limits::{CODEC_BUFFER_BYTES, CODEC_YIELD_THRESHOLD_BYTES};

fn buffer_settings() -> BufferSettings {
    BufferSettings::new(CODEC_BUFFER_BYTES, CODEC_YIELD_THRESHOLD_BYTES)
}

/// prost's codec with decode errors as `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct Codec<T, U> {
    _messages: PhantomData<(T, U)>,
}

impl<T, U> Codec<T, U> {
    pub fn new() -> Self {
        Self {
            _messages: PhantomData,
        }
    }
}

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, U> TonicCodec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = Encoder<T>;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        Encoder {
            inner: ProstCodec::<T, U>::default().encoder(),
        }
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decoder {
            inner: ProstCodec::<T, U>::default().decoder(),
        }
    }
}

/// prost's encoder, with our buffer sizes.
#[derive(Debug, Clone)]
pub struct Encoder<T> {
    inner: ProstEncoder<T>,
}

impl<T: prost::Message> TonicEncoder for Encoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        self.inner.encode(item, buf)
    }

    fn buffer_settings(&self) -> BufferSettings {
        buffer_settings()
    }
}

/// prost's decoder, its errors mapped, with our buffer sizes.
#[derive(Debug, Clone)]
pub struct Decoder<U> {
    inner: ProstDecoder<U>,
}

impl<U: prost::Message + Default> TonicDecoder for Decoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.inner.decode(buf).map_err(|status| {
            Status::invalid_argument(format!(
                "malformed {} message: {}",
                std::any::type_name::<U>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("protobuf"),
                status.message()
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        buffer_settings()
    }
}
