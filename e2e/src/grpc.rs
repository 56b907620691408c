//! A tonic gRPC client that sends raw bytes as one message to any method: the plugins judge frames, not
//! protobuf, and the upstream sink answers with the SHA-256 of what reached it.

use bytes::{Buf, BufMut, Bytes};
use std::net::SocketAddr;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use tonic::{Status, metadata::MetadataValue};

/// A ModelInfer request for `images` generated images, framed as one gRPC message.
pub fn infer_body(images: usize) -> Vec<u8> {
    use prost::Message;
    frame(&wasmgate_inference::client::generated(images).request().encode_to_vec())
}

/// `message` as one uncompressed gRPC frame: flag 0, the length in 4 big-endian bytes, the message. A message
/// over 4 GiB - 1 cannot be framed; its length is written as the largest there is.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// A channel to `addr` whose requests carry `:authority` `host`.
pub async fn channel(addr: SocketAddr, host: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?.origin(format!("http://{host}").parse()?).connect().await?)
}

/// A channel like [`channel`] whose connection comes from `source` (any address of 127.0.0.0/8): another
/// client, as far as the gateway can tell.
pub async fn channel_from(addr: SocketAddr, host: &str, source: std::net::IpAddr) -> anyhow::Result<Channel> {
    let connector = tower::service_fn(move |_: http::Uri| async move {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind((source, 0).into())?;
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
    });
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .origin(format!("http://{host}").parse()?)
        .connect_with_connector(connector)
        .await?)
}

/// Sends `payload` as one message to `path` (`/pkg.Service/Method`) with `metadata`; returns the reply message.
pub async fn raw_unary(
    channel: Channel,
    path: &str,
    payload: Bytes,
    metadata: &[(&'static str, &str)],
) -> Result<Bytes, Status> {
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(usize::MAX);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(payload);
    for (k, v) in metadata {
        let value: MetadataValue<_> = v.parse().map_err(|_| Status::internal("bad metadata value"))?;
        request.metadata_mut().insert(*k, value);
    }
    let path = path.parse().map_err(|_| Status::internal("bad path"))?;
    grpc.unary(request, path, RawCodec).await.map(tonic::Response::into_inner)
}
