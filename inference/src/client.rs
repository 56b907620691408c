//! A client for the model server: reads images (PNG, JPEG, or `.npy` batches), sends them as one UINT8 batch over
//! the Open Inference Protocol or TF Serving's Predict, and returns each image's probability of being a cat.

use crate::model::{IMAGE_SHAPE, IMAGE_VALUES};
use crate::oip::service::MODEL_NAME;
use crate::oip::tensor::{INPUT, PROBABILITIES};
use crate::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use crate::proto::model_infer_request::InferInputTensor;
use crate::proto::tensorflow::serving::prediction_service_client::PredictionServiceClient;
use crate::proto::tensorflow::serving::{ModelSpec, PredictRequest, PredictResponse};
use crate::proto::tensorflow::{DataType, TensorProto, TensorShapeProto, tensor_shape_proto::Dim};
use crate::proto::{ModelInferRequest, ModelInferResponse};
use anyhow::{Context, Result, bail};
use base64::Engine;
use bytes::Bytes;
use ndarray::{Array, IxDyn};
use std::path::Path;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

/// Images ready to send: `pixels` holds `names.len()` images of 64×64×3 bytes, row-major.
#[derive(Debug, Default)]
pub struct Images {
    pub names: Vec<String>,
    pub pixels: Vec<u8>,
}

impl Images {
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Adds a PNG or JPEG (resized to 64×64) or an `.npy` of uint8 `[64,64,3]` or `[N,64,64,3]`.
    pub fn add_file(&mut self, path: &Path) -> Result<()> {
        let name = path.display().to_string();
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
            let array: Array<u8, IxDyn> = ndarray_npy::read_npy(path)
                .with_context(|| format!("reading {name}: expected a uint8 .npy of shape [64,64,3] or [N,64,64,3]"))?;
            let shape = array.shape().to_vec();
            let count = match shape.as_slice() {
                [h, w, c] if [*h, *w, *c] == IMAGE_SHAPE => 1,
                [n, h, w, c] if [*h, *w, *c] == IMAGE_SHAPE => *n,
                _ => bail!("{name} has shape {shape:?}; expected [64,64,3] or [N,64,64,3]"),
            };
            self.pixels.extend(array.iter().copied());
            self.names.extend((0..count).map(|i| if count == 1 { name.clone() } else { format!("{name}[{i}]") }));
            return Ok(());
        }
        let bytes = std::fs::read(path).with_context(|| format!("reading {name}"))?;
        // The server's own preprocessing, so a file gets the answer the web page gets for it.
        self.pixels.extend(crate::encoded::to_pixels(&bytes, &name)?);
        self.names.push(name);
        Ok(())
    }

    /// The request for this batch, as raw UINT8 contents.
    pub fn request(&self) -> ModelInferRequest {
        let count = i64::try_from(self.len()).unwrap_or(i64::MAX);
        ModelInferRequest {
            model_name: MODEL_NAME.to_owned(),
            inputs: vec![InferInputTensor {
                name: INPUT.to_owned(),
                datatype: "UINT8".to_owned(),
                shape: vec![count, IMAGE_SHAPE[0] as i64, IMAGE_SHAPE[1] as i64, IMAGE_SHAPE[2] as i64],
                ..Default::default()
            }],
            raw_input_contents: vec![Bytes::copy_from_slice(&self.pixels)],
            ..Default::default()
        }
    }

    /// The same batch as TF Serving's Predict on `serving_default`: DT_UINT8 in `tensor_content`.
    pub fn predict_request(&self) -> PredictRequest {
        let count = i64::try_from(self.len()).unwrap_or(i64::MAX);
        let dims = [count, IMAGE_SHAPE[0] as i64, IMAGE_SHAPE[1] as i64, IMAGE_SHAPE[2] as i64];
        let tensor = TensorProto {
            dtype: DataType::DtUint8 as i32,
            tensor_shape: Some(TensorShapeProto {
                dim: dims.iter().map(|&size| Dim { size, name: String::new() }).collect(),
                unknown_rank: false,
            }),
            tensor_content: Bytes::copy_from_slice(&self.pixels),
            ..Default::default()
        };
        PredictRequest {
            model_spec: Some(ModelSpec { name: MODEL_NAME.to_owned(), ..Default::default() }),
            inputs: [(INPUT.to_owned(), tensor)].into(),
            output_filter: vec![PROBABILITIES.to_owned()],
        }
    }
}

/// Which of the server's APIs a client calls.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
pub enum Api {
    /// The Open Inference Protocol v2 (`inference.GRPCInferenceService/ModelInfer`).
    #[default]
    Oip,
    /// TensorFlow Serving's `tensorflow.serving.PredictionService/Predict`.
    Tf,
}

/// How to reach the server.
#[derive(Debug, Default, Clone)]
pub struct Target {
    /// `http://host:port`.
    pub address: String,
    /// `:authority` to send instead of the address (a gateway routes on it).
    pub authority: Option<String>,
    /// Basic credentials for a gateway that asks for them.
    pub basic_auth: Option<(String, String)>,
    /// The API [`Client::classify`] calls.
    pub api: Api,
}

impl Target {
    pub async fn connect(&self) -> Result<Client> {
        // The server's HTTP/2 settings on this side too: large answers (a big batch's probabilities) come back
        // without waiting on window updates.
        let http2 = crate::http2_settings::Http2Settings::DEFAULT;
        let mut endpoint = Endpoint::from_shared(self.address.clone())
            .with_context(|| format!("`{}` is not an address like http://127.0.0.1:8500", self.address))?
            .initial_stream_window_size(http2.stream_window)
            .initial_connection_window_size(http2.connection_window)
            .max_frame_size(http2.max_frame);
        if let Some(authority) = &self.authority {
            endpoint = endpoint.origin(format!("http://{authority}").parse().context("bad --authority")?);
        }
        let channel = endpoint.connect().await.with_context(|| format!("connecting to {}", self.address))?;
        let mut client = Client::over(channel, self.basic_auth.as_ref())?;
        client.api = self.api;
        Ok(client)
    }
}

pub struct Client {
    grpc: GrpcInferenceServiceClient<Channel>,
    tf: PredictionServiceClient<Channel>,
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
    api: Api,
}

impl Client {
    /// A client on a channel made elsewhere (e.g. one bound to a given source address).
    pub fn over(channel: Channel, basic_auth: Option<&(String, String)>) -> Result<Self> {
        let authorization = basic_auth
            .map(|(user, password)| {
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                MetadataValue::try_from(format!("Basic {token}")).context("credentials do not fit in a header")
            })
            .transpose()?;
        let grpc = GrpcInferenceServiceClient::new(channel.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let tf = PredictionServiceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        Ok(Client { grpc, tf, authorization, api: Api::default() })
    }

    fn authorized<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = &self.authorization {
            request.metadata_mut().insert("authorization", value.clone());
        }
        request
    }

    pub async fn infer(&mut self, request: ModelInferRequest) -> Result<ModelInferResponse, tonic::Status> {
        let request = self.authorized(request);
        self.grpc.model_infer(request).await.map(tonic::Response::into_inner)
    }

    pub async fn predict(&mut self, request: PredictRequest) -> Result<PredictResponse, tonic::Status> {
        let request = self.authorized(request);
        self.tf.predict(request).await.map(tonic::Response::into_inner)
    }

    /// Each image's probability of being a cat, through the client's API.
    pub async fn classify(&mut self, images: &Images) -> Result<Vec<f32>> {
        let failed = |s: tonic::Status| anyhow::anyhow!("{}: {}", s.code(), s.message());
        match self.api {
            Api::Oip => probabilities(&self.infer(images.request()).await.map_err(failed)?),
            Api::Tf => {
                let response = self.predict(images.predict_request()).await.map_err(failed)?;
                let tensor =
                    response.outputs.get(PROBABILITIES).context("the response has no `probabilities` output")?;
                Ok(tensor.float_val.clone())
            }
        }
    }
}

/// The `probabilities` output of a response, raw or typed.
pub fn probabilities(response: &ModelInferResponse) -> Result<Vec<f32>> {
    let index = response
        .outputs
        .iter()
        .position(|o| o.name == PROBABILITIES)
        .context("the response has no `probabilities` output")?;
    if let Some(raw) = response.raw_output_contents.get(index) {
        return Ok(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect());
    }
    let typed = response.outputs[index].contents.as_ref().map(|c| c.fp32_contents.clone()).unwrap_or_default();
    Ok(typed)
}

/// A ModelInfer request of `count` all-zero FP32 images (4 × 12288 bytes each): a large request of a given size.
pub fn fp32_zeros(count: usize) -> ModelInferRequest {
    let mut request = generated(1).request();
    request.inputs[0].datatype = "FP32".into();
    request.inputs[0].shape[0] = i64::try_from(count).unwrap_or(i64::MAX);
    request.raw_input_contents = vec![vec![0u8; count * IMAGE_VALUES * 4].into()];
    request
}

/// A deterministic batch of `count` images (for demos and benchmarks where the data set is absent).
pub fn generated(count: usize) -> Images {
    let pixels = (0..count * IMAGE_VALUES).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    Images { names: (0..count).map(|i| format!("generated[{i}]")).collect(), pixels }
}
