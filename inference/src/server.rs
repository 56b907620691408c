//! The server: the Open Inference Protocol v2, TensorFlow Serving's API, `grpc.health.v1` and server reflection
//! on one port, with a bounded message size, gRPC only (see [`crate::web::grpc_only`]) and graceful shutdown; gRPC-Web
//! for browsers and the web page ([`crate::web::page`]) beside them.

use crate::echo;
use crate::http2_settings::Http2Settings;
use crate::oip::service::ModelService;
use crate::proto::tensorflow::serving::model_service_server::ModelServiceServer;
use crate::proto::tensorflow::serving::prediction_service_server::PredictionServiceServer;
use crate::proto::{self, grpc_inference_service_server::GrpcInferenceServiceServer};
use crate::tf_serving::service::TfServing;
use std::future::Future;
use std::path::PathBuf;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;

/// 128 MiB: room for a 100 MB batch, while tonic, which reserves a message's announced length up front, stays
/// bounded.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 128 << 20;

/// The header the gateway's basic-auth sets to the authenticated user (`forward_user_header` in the manifests).
pub const DEFAULT_USER_HEADER: &str = "x-wasmgate-user";

pub struct ServerOptions {
    pub max_message_bytes: usize,
    pub http2: Http2Settings,
    /// Whose call it was: the request header naming the user the gateway authenticated, logged with every call.
    pub user_header: String,
    /// The built web page (`inference/web/dist`); served at `/` when it holds `index.html`.
    pub web_dir: PathBuf,
    /// The catvnoncat data folder for the page's gallery; generated images when it is absent.
    pub samples_dir: PathBuf,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            http2: Http2Settings::DEFAULT,
            user_header: DEFAULT_USER_HEADER.to_owned(),
            web_dir: PathBuf::from(crate::web::page::DEFAULT_WEB_DIR),
            samples_dir: crate::data::default_dir(),
        }
    }
}

/// Serves until `shutdown` completes, then stops accepting and lets in-flight calls finish. Sets OpenBLAS to one
/// thread per call for the whole process (see [`crate::blas`]).
pub async fn serve(
    listener: TcpListener,
    service: ModelService,
    options: &ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    options.http2.validate().map_err(anyhow::Error::msg)?;
    crate::blas::single_threaded_unless_configured();
    // The generated services build their codec with `Default`: the decode limits are the process's.
    crate::codec::configure(service.limits());
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<GrpcInferenceServiceServer<ModelService>>().await;
    health.set_serving::<PredictionServiceServer<TfServing>>().await;
    health.set_serving::<ModelServiceServer<TfServing>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let tf_serving = TfServing::new(service.clone());
    let inference = GrpcInferenceServiceServer::new(service)
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let prediction = PredictionServiceServer::new(tf_serving.clone())
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let model_status = ModelServiceServer::new(tf_serving);
    let grpc = Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(inference)
        .add_service(prediction)
        .add_service(model_status)
        .into_axum_router();
    // gRPC-Web (the page's calls) becomes gRPC here, so the gateway needs no grpc_web filter and its plugins see
    // the browser's own request. Only around the services: tonic-web refuses any other HTTP/1.1 request, and the
    // page is fetched with plain GETs.
    let grpc = tower::ServiceBuilder::new()
        .layer(crate::web::grpc_only::GrpcOnlyLayer)
        .layer(tonic_web::GrpcWebLayer::new())
        .map_request(|request: http::Request<tonic::body::Body>| request.map(axum::body::Body::new))
        .map_response(|response: http::Response<axum::body::Body>| response.map(tonic::body::Body::new))
        .service(grpc);
    let samples = crate::web::page::Samples::load(&options.samples_dir)?;
    tracing::info!(source = %samples.source, images = samples.images.len(), "web page gallery");
    let routes = Routes::from(crate::web::page::router(&options.web_dir, &samples)?.fallback_service(grpc));
    let user_header = options.user_header.clone();
    tonic::transport::Server::builder()
        // The page's GETs and browsers without TLS speak HTTP/1.1; gRPC clients and the gateway speak h2.
        .accept_http1(true)
        .initial_stream_window_size(options.http2.stream_window)
        .initial_connection_window_size(options.http2.connection_window)
        .max_frame_size(options.http2.max_frame)
        // Every call's log lines carry its method and the user the gateway vouched for, so a call can be
        // followed from the gateway's log to the model's.
        .trace_fn(move |request| {
            let user = request.headers().get(user_header.as_str()).and_then(|v| v.to_str().ok()).unwrap_or_default();
            tracing::info_span!("call", method = %echo::text(request.uri().path()), user = %echo::text(user))
        })
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await?;
    Ok(())
}

/// Accepted connections with Nagle's algorithm off: a small answer must not wait for the client's delayed ACK
/// (measured: every batch-64 call took ~44 ms with it on), and keepalive probes to notice dead peers.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(std::time::Duration::from_secs(60)))
}

/// Resolves on SIGTERM (what Kubernetes sends) or Ctrl-C.
pub async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
