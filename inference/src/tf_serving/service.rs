//! TensorFlow Serving's gRPC API for the same model, so `tensorflow-serving-api` clients work unchanged:
//! `tensorflow.serving.PredictionService` (Predict, Classify, GetModelMetadata) and
//! `tensorflow.serving.ModelService` (GetModelStatus), answering with TF Serving's codes and messages.
//!
//! The model is served as version 1, labelled `stable`; its signatures are in [`crate::tf_serving::tensor`].

use crate::echo;
use crate::oip::service::{MODEL_NAME, ModelService, refusal};
use crate::proto::tensorflow::error::Code;
use crate::proto::tensorflow::serving::model_service_server::ModelService as TfModelService;
use crate::proto::tensorflow::serving::prediction_service_server::PredictionService;
use crate::proto::tensorflow::serving::{
    ClassificationRequest, ClassificationResponse, GetModelMetadataRequest, GetModelMetadataResponse,
    GetModelStatusRequest, GetModelStatusResponse, ModelSpec, ModelVersionStatus, PredictRequest, PredictResponse,
    StatusProto, model_spec::VersionChoice, model_version_status::State,
};
use crate::tf_serving::tensor::{self, Signature};
use prost::Message;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tonic::{Request, Response, Status};

/// The served version, as TF Serving numbers versions.
pub const VERSION: i64 = 1;
/// The one version label (TF Serving's `version_labels`): `stable` is version 1.
pub const STABLE_LABEL: &str = "stable";
/// The only metadata field TF Serving defines.
const SIGNATURE_DEF: &str = "signature_def";

#[derive(Clone)]
pub struct TfServing {
    model: ModelService,
}

impl TfServing {
    /// TF Serving's API over `model` (the same network and counters as its Open Inference Protocol service).
    pub fn new(model: ModelService) -> Self {
        Self { model }
    }

    /// The version `spec` names, or TF Serving's answer for a model or version not served here.
    fn resolve(&self, spec: Option<&ModelSpec>) -> Result<i64, Status> {
        let spec = spec.ok_or_else(|| Status::invalid_argument("Missing ModelSpec"))?;
        let version = match &spec.version_choice {
            None => None,
            Some(VersionChoice::Version(v)) => Some(*v),
            Some(VersionChoice::VersionLabel(label)) if label == STABLE_LABEL => Some(VERSION),
            Some(VersionChoice::VersionLabel(label)) => {
                return Err(Status::invalid_argument(format!(
                    "Unrecognized servable version label: {} (this server labels version {VERSION} \
                     `{STABLE_LABEL}`)",
                    echo::text(label)
                )));
            }
        };
        if spec.name != MODEL_NAME || version.is_some_and(|v| v != VERSION) {
            self.model.count_not_found();
            let name = echo::text(&spec.name);
            let request = match version {
                None => format!("Latest({name})"),
                Some(v) => format!("Specific({name}, {v})"),
            };
            return Err(Status::not_found(format!(
                "Servable not found for request: {request}; this server serves `{MODEL_NAME}` version {VERSION}"
            )));
        }
        Ok(VERSION)
    }

    fn answer_spec(version: i64, signature: Option<Signature>) -> ModelSpec {
        ModelSpec {
            name: MODEL_NAME.to_owned(),
            version_choice: Some(VersionChoice::Version(version)),
            signature_name: signature.map(Signature::name).unwrap_or_default().to_owned(),
        }
    }
}

#[tonic::async_trait]
impl PredictionService for TfServing {
    async fn predict(&self, request: Request<PredictRequest>) -> Result<Response<PredictResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let version = self.resolve(request.model_spec.as_ref())?;
        let name = request.model_spec.as_ref().map(|s| s.signature_name.as_str()).unwrap_or_default();
        let signature = Signature::named(name).ok_or_else(|| {
            Status::failed_precondition(format!("Serving signature key \"{}\" not found.", echo::text(name)))
        })?;
        let content_bytes: usize = request.inputs.values().map(|t| t.tensor_content.len()).sum();
        let answer = self
            .model
            .run(request.encoded_len(), move |budget| {
                // The received tensors are dropped with `request` here, before the forward pass.
                tensor::decode_predict(signature, &request.inputs, &request.output_filter, budget)
            })
            .await?;
        let (probabilities, outputs) = answer.map_err(|e| refusal("Predict", "", &e))?;
        self.model.stats().raw_input_bytes.fetch_add(content_bytes as u64, Ordering::Relaxed);
        tracing::info!(
            api = "Predict",
            signature = signature.name(),
            images = probabilities.len(),
            content_bytes,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "Predict"
        );
        Ok(Response::new(PredictResponse {
            model_spec: Some(Self::answer_spec(version, Some(signature))),
            outputs: tensor::encode_predict(&probabilities, &outputs, signature),
        }))
    }

    async fn classify(
        &self,
        request: Request<ClassificationRequest>,
    ) -> Result<Response<ClassificationResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let version = self.resolve(request.model_spec.as_ref())?;
        let name = request.model_spec.as_ref().map(|s| s.signature_name.as_str()).unwrap_or_default();
        let signature = match Signature::named(name) {
            Some(Signature::Classify) => Signature::Classify,
            Some(Signature::Predict) => {
                return Err(Status::invalid_argument(format!(
                    "Expected classification signature method_name to be {}. Was: {} (name the `{}` signature)",
                    tensor::CLASSIFY_METHOD,
                    tensor::PREDICT_METHOD,
                    Signature::Classify.name(),
                )));
            }
            None => {
                return Err(Status::invalid_argument(format!(
                    "No signature was found with the name: {}",
                    echo::text(name)
                )));
            }
        };
        let answer = self
            .model
            .run(request.encoded_len(), move |budget| {
                tensor::decode_classify(request.input.as_ref().and_then(|i| i.kind.as_ref()), budget).map(|p| (p, ()))
            })
            .await?;
        let (probabilities, ()) = answer.map_err(|e| refusal("Classify", "", &e))?;
        tracing::info!(
            api = "Classify",
            images = probabilities.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "Classify"
        );
        Ok(Response::new(ClassificationResponse {
            model_spec: Some(Self::answer_spec(version, Some(signature))),
            result: Some(tensor::encode_classify(&probabilities)),
        }))
    }

    async fn get_model_metadata(
        &self,
        request: Request<GetModelMetadataRequest>,
    ) -> Result<Response<GetModelMetadataResponse>, Status> {
        let request = request.into_inner();
        if request.model_spec.is_none() {
            return Err(Status::invalid_argument("Missing ModelSpec"));
        }
        if request.metadata_field.is_empty() {
            return Err(Status::invalid_argument(format!(
                "GetModelMetadataRequest must specify at least one metadata_field (`{SIGNATURE_DEF}`)"
            )));
        }
        if let Some(field) = request.metadata_field.iter().find(|f| *f != SIGNATURE_DEF) {
            return Err(Status::invalid_argument(format!(
                "Metadata field {} is not supported (only `{SIGNATURE_DEF}`)",
                echo::text(field)
            )));
        }
        let version = self.resolve(request.model_spec.as_ref())?;
        let signatures = prost_types::Any {
            type_url: "type.googleapis.com/tensorflow.serving.SignatureDefMap".to_owned(),
            value: tensor::signatures().encode_to_vec(),
        };
        Ok(Response::new(GetModelMetadataResponse {
            model_spec: Some(Self::answer_spec(version, None)),
            metadata: [(SIGNATURE_DEF.to_owned(), signatures)].into(),
        }))
    }
}

#[tonic::async_trait]
impl TfModelService for TfServing {
    async fn get_model_status(
        &self,
        request: Request<GetModelStatusRequest>,
    ) -> Result<Response<GetModelStatusResponse>, Status> {
        let spec = request.into_inner().model_spec.ok_or_else(|| Status::invalid_argument("Missing ModelSpec"))?;
        let version = match spec.version_choice {
            Some(VersionChoice::Version(v)) => Some(v),
            // TF Serving reads only a version number here; a label is ignored.
            _ => None,
        };
        if spec.name != MODEL_NAME {
            self.model.count_not_found();
            return Err(Status::not_found(format!("Could not find any versions of model {}", echo::text(&spec.name))));
        }
        if let Some(v) = version.filter(|&v| v != VERSION) {
            self.model.count_not_found();
            return Err(Status::not_found(format!("Could not find version {v} of model {MODEL_NAME}")));
        }
        Ok(Response::new(GetModelStatusResponse {
            model_version_status: vec![ModelVersionStatus {
                version: VERSION,
                state: State::Available as i32,
                status: Some(StatusProto { error_code: Code::Ok as i32, error_message: String::new() }),
            }],
        }))
    }
}
