//! The gRPC codec of the server's own services: prost's, with what decoding a message will allocate estimated
//! from its bytes ([`crate::wire_cost`]) and refused with RESOURCE_EXHAUSTED when it is more than the message may
//! cost ([`crate::budget`]). build.rs names it as the generated services' codec.
//!
//! The generated code builds a codec with `Default`, so the limits are the process's: [`configure`] sets them
//! when the server starts.

use crate::budget::{DEFAULT_MAX_DECODED_BYTES, Limits};
use crate::wire_cost::{self, Undecoded};
use bytes::Buf;
use prost::{Message, Name};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

static MAX_DECODED_BYTES: AtomicU64 = AtomicU64::new(DEFAULT_MAX_DECODED_BYTES);

/// The limits every message decoded from now on is held to.
pub fn configure(limits: Limits) {
    MAX_DECODED_BYTES.store(limits.max_decoded_bytes, Ordering::Relaxed);
}

/// The limits in force.
pub fn limits() -> Limits {
    Limits { max_decoded_bytes: MAX_DECODED_BYTES.load(Ordering::Relaxed) }
}

#[derive(Debug)]
pub struct BoundedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for BoundedCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for BoundedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Name + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder(PhantomData)
    }
}

#[derive(Debug)]
pub struct BoundedDecoder<U>(PhantomData<U>);

impl<U: Message + Default + Name> Decoder for BoundedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // tonic holds the message in one buffer: taking it whole is a slice of it, not a copy.
        let wire = buf.copy_to_bytes(buf.remaining());
        match wire_cost::decode::<U>(wire, &limits()) {
            Ok(message) => Ok(Some(message)),
            Err(Undecoded::TooCostly(error)) => {
                tracing::info!(error = %error, "refused before decoding");
                Err(Status::resource_exhausted(error.to_string()))
            }
            // As tonic's own codec reports it (INTERNAL, as gRPC's status code guide says for parse errors).
            Err(Undecoded::Malformed(error)) => Err(Status::internal(error.to_string())),
        }
    }
}
