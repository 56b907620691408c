//! `inference.GRPCInferenceService` for the cat / non-cat model, and the model's run shared with
//! [`crate::tf_serving::service`].

use crate::budget::{Budget, Limits};
use crate::echo;
use crate::input_error::InputError;
use crate::model::{DEFAULT_SIZES, IMAGE_SHAPE, Network};
use crate::oip::tensor::{self, INPUT, LABELS, PROBABILITIES};
use crate::proto::grpc_inference_service_server::GrpcInferenceService;
use crate::proto::model_metadata_response::TensorMetadata;
use crate::proto::*;
use ndarray::Array2;
use prost::Message;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tonic::{Request, Response, Status};

pub const MODEL_NAME: &str = "catnet";
pub const MODEL_VERSION: &str = "1";
pub const SERVER_NAME: &str = "wasmgate-inference";

/// What the server has done since it started; read by tests and logged at shutdown.
#[derive(Debug, Default)]
pub struct Stats {
    /// Inference calls (ModelInfer, Predict, Classify) received in full and not yet answered.
    pub in_flight: AtomicU64,
    pub infer_ok: AtomicU64,
    pub infer_invalid: AtomicU64,
    /// Calls of any RPC naming a model or version this server does not serve.
    pub not_found: AtomicU64,
    pub images: AtomicU64,
    /// Bytes of `raw_input_contents` (ModelInfer) and `tensor_content` (Predict) of answered calls.
    pub raw_input_bytes: AtomicU64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            infer_ok: self.infer_ok.load(Ordering::Relaxed),
            infer_invalid: self.infer_invalid.load(Ordering::Relaxed),
            not_found: self.not_found.load(Ordering::Relaxed),
            images: self.images.load(Ordering::Relaxed),
            raw_input_bytes: self.raw_input_bytes.load(Ordering::Relaxed),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub in_flight: u64,
    pub infer_ok: u64,
    pub infer_invalid: u64,
    pub not_found: u64,
    pub images: u64,
    pub raw_input_bytes: u64,
}

#[derive(Clone)]
pub struct ModelService {
    network: Arc<Network<f32>>,
    stats: Arc<Stats>,
    limits: Limits,
}

impl ModelService {
    /// Serves `network`, which must take 64×64×3 images; other shapes are refused here, not at the first request.
    pub fn new(network: Network<f32>) -> Result<Self, String> {
        if network.input_size() != DEFAULT_SIZES[0] {
            return Err(format!(
                "the model takes {} inputs, but this server feeds it 64x64x3 images ({})",
                network.input_size(),
                DEFAULT_SIZES[0]
            ));
        }
        Ok(Self { network: Arc::new(network), stats: Arc::default(), limits: Limits::default() })
    }

    /// The same service, decoding each call within `limits`.
    pub fn with_limits(self, limits: Limits) -> Self {
        Self { limits, ..self }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Decodes a request of `message_bytes` within its input budget and runs the model on it, both off the async
    /// workers (they are CPU work), counting the call in [`Stats`] whatever API it came through. The outer error is
    /// the task's failure; the inner one the input's, for the caller to answer in its API's terms.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        message_bytes: usize,
        decode: impl FnOnce(&mut Budget) -> Result<(Array2<f32>, T), InputError> + Send + 'static,
    ) -> Result<Result<(Vec<f32>, T), InputError>, Status> {
        let _in_flight = InFlight::enter(&self.stats);
        let network = Arc::clone(&self.network);
        let mut budget = self.limits.input(message_bytes);
        let answer = tokio::task::spawn_blocking(move || {
            let (pixels, rest) = decode(&mut budget)?;
            Ok((network.predict(pixels.view()).to_vec(), rest))
        })
        .await
        .map_err(|e| Status::internal(format!("inference task failed: {e}")))?;
        match &answer {
            Ok((probabilities, _)) => {
                self.stats.infer_ok.fetch_add(1, Ordering::Relaxed);
                self.stats.images.fetch_add(probabilities.len() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.stats.infer_invalid.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(answer)
    }

    /// Counts a call naming a model or version this server does not serve.
    pub(crate) fn count_not_found(&self) {
        self.stats.not_found.fetch_add(1, Ordering::Relaxed);
    }

    fn check_model(&self, name: &str, version: &str) -> Result<(), Status> {
        if name != MODEL_NAME {
            self.stats.not_found.fetch_add(1, Ordering::Relaxed);
            return Err(Status::not_found(format!(
                "unknown model `{}`; this server serves `{MODEL_NAME}`",
                echo::text(name)
            )));
        }
        if !version.is_empty() && version != MODEL_VERSION {
            self.stats.not_found.fetch_add(1, Ordering::Relaxed);
            return Err(Status::not_found(format!(
                "model `{MODEL_NAME}` has no version `{}` (only `{MODEL_VERSION}`)",
                echo::text(version)
            )));
        }
        Ok(())
    }
}

/// The status refusing a request's input: RESOURCE_EXHAUSTED when it would cost more than a call may,
/// INVALID_ARGUMENT otherwise; logged once, with the request's id if it has one. The message and the log quote the
/// client only in bounded prefixes ([`crate::echo`]).
pub(crate) fn refusal(api: &str, request_id: &str, error: &InputError) -> Status {
    let request_id = echo::text(request_id);
    tracing::info!(api, %request_id, error = %error, too_costly = error.is_too_costly(), "refused");
    if error.is_too_costly() {
        Status::resource_exhausted(error.to_string())
    } else {
        Status::invalid_argument(error.to_string())
    }
}

/// Counts a call as in flight until it is answered, however it ends.
struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    fn enter(stats: &'a Stats) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn tensor_metadata(name: &str, datatype: &str, shape: &[i64]) -> TensorMetadata {
    TensorMetadata { name: name.to_owned(), datatype: datatype.to_owned(), shape: shape.to_vec() }
}

#[tonic::async_trait]
impl GrpcInferenceService for ModelService {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse { ready: true }))
    }

    async fn model_ready(&self, request: Request<ModelReadyRequest>) -> Result<Response<ModelReadyResponse>, Status> {
        let request = request.into_inner();
        let ready = request.name == MODEL_NAME && (request.version.is_empty() || request.version == MODEL_VERSION);
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: SERVER_NAME.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            extensions: Vec::new(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let request = request.into_inner();
        self.check_model(&request.name, &request.version)?;
        let image = [-1, IMAGE_SHAPE[0] as i64, IMAGE_SHAPE[1] as i64, IMAGE_SHAPE[2] as i64];
        Ok(Response::new(ModelMetadataResponse {
            name: MODEL_NAME.to_owned(),
            versions: vec![MODEL_VERSION.to_owned()],
            platform: "wasmgate_ndarray".to_owned(),
            // UINT8 is the advertised form; FP32 pixels scaled to [0, 1] are accepted as well.
            inputs: vec![tensor_metadata(INPUT, "UINT8", &image)],
            outputs: vec![tensor_metadata(PROBABILITIES, "FP32", &[-1, 1]), tensor_metadata(LABELS, "BYTES", &[-1, 1])],
        }))
    }

    async fn model_infer(&self, request: Request<ModelInferRequest>) -> Result<Response<ModelInferResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        self.check_model(&request.model_name, &request.model_version)?;
        let raw_bytes: usize = request.raw_input_contents.iter().map(bytes::Bytes::len).sum();
        let id = request.id.clone();
        let answer = self
            .run(request.encoded_len(), move |budget| {
                // The received tensor is dropped with `request` here, before the forward pass.
                tensor::decode(&request, budget).map(|batch| (batch.pixels, (batch.outputs, batch.raw_output)))
            })
            .await?;
        let (probabilities, (outputs, raw)) = answer.map_err(|e| refusal("ModelInfer", &id, &e))?;
        self.stats.raw_input_bytes.fetch_add(raw_bytes as u64, Ordering::Relaxed);
        tracing::info!(
            request_id = %echo::text(&id),
            images = probabilities.len(),
            raw_bytes,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "ModelInfer"
        );
        let (tensors, raw_output_contents) = tensor::encode(&probabilities, &outputs, raw);
        Ok(Response::new(ModelInferResponse {
            model_name: MODEL_NAME.to_owned(),
            model_version: MODEL_VERSION.to_owned(),
            id,
            parameters: Default::default(),
            outputs: tensors,
            raw_output_contents,
        }))
    }
}
