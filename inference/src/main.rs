//! `wasmgate-inference`: train the cat / non-cat network, serve it over gRPC, classify images against a server.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use wasmgate_inference::budget::Limits;
use wasmgate_inference::client::{Api, Images, Target};
use wasmgate_inference::http2_settings::Http2Settings;
use wasmgate_inference::model::{DEFAULT_SIZES, GradientDescent, Solver};
use wasmgate_inference::model::{label, weights};
use wasmgate_inference::oip::service::ModelService;
use wasmgate_inference::server::{self, ServerOptions};
use wasmgate_inference::{data, train};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the network on the catvnoncat set and save its weights.
    Train {
        /// Folder with train_x.npy, train_y.npy, test_x.npy, test_y.npy.
        #[arg(long, env = data::DATA_DIR_ENV, default_value_os_t = data::default_dir())]
        data: PathBuf,
        /// Layer sizes, input first.
        #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_SIZES)]
        layers: Vec<usize>,
        #[arg(long, default_value_t = 0.0075)]
        learning_rate: f64,
        #[arg(long, default_value_t = 2500)]
        iterations: usize,
        /// Seed of numpy's legacy generator for the initial weights (the reference uses 1).
        #[arg(long, default_value_t = 1)]
        seed: u32,
        /// How the first layer is updated: dual while examples < input features (same steps, less work).
        #[arg(long, value_enum, default_value_t = SolverArg::Auto)]
        solver: SolverArg,
        /// Where to write the weights (safetensors).
        #[arg(long, short, default_value = "inference/model/catnet.safetensors")]
        output: PathBuf,
        /// Where to draw the cost curve (PNG).
        #[arg(long, default_value = "inference/model/cost.png")]
        plot: PathBuf,
    },
    /// Serve the model over gRPC (Open Inference Protocol v2, TF Serving's API, health, reflection).
    Serve {
        #[arg(long, default_value = "0.0.0.0:8500")]
        listen: SocketAddr,
        /// Weights written by `train`.
        #[arg(long, env = "WASMGATE_MODEL", default_value = "inference/model/catnet.safetensors")]
        model: PathBuf,
        /// Largest request or response message (e.g. 128Mi, 200MB).
        #[arg(long, default_value = "128Mi", value_parser = parse_size)]
        max_message_size: usize,
        /// What decoding one call may allocate beyond a small multiple of its message (protobuf structures,
        /// pixels, decoded images), each stage; more is refused with RESOURCE_EXHAUSTED before it is allocated.
        #[arg(long, default_value = "64Mi", value_parser = parse_size)]
        max_decoded_bytes: usize,
        /// HTTP/2 receive window per call: how much of a large request may be in flight before the server
        /// asks for more.
        #[arg(long, default_value = "16Mi", value_parser = parse_u32_size)]
        http2_stream_window: u32,
        /// HTTP/2 receive window shared by a connection's calls (at least the per-call window).
        #[arg(long, default_value = "32Mi", value_parser = parse_u32_size)]
        http2_connection_window: u32,
        /// Largest HTTP/2 frame the server accepts (16Ki to 16Mi - 1).
        #[arg(long, default_value = "1Mi", value_parser = parse_u32_size)]
        http2_max_frame: u32,
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// The request header naming the user the gateway authenticated; logged with each call.
        #[arg(long, env = "WASMGATE_USER_HEADER", default_value = server::DEFAULT_USER_HEADER)]
        user_header: String,
        /// The built web page (`make web`), served at `/`.
        #[arg(long, env = "WASMGATE_WEB_DIR", default_value = wasmgate_inference::web::page::DEFAULT_WEB_DIR)]
        web_dir: PathBuf,
        /// The catvnoncat data the page's gallery shows; generated images when absent.
        #[arg(long, env = data::DATA_DIR_ENV, default_value_os_t = data::default_dir())]
        samples: PathBuf,
    },
    /// Classify images (PNG, JPEG, or uint8 .npy batches) against a running server.
    Classify {
        /// Server or gateway address.
        #[arg(long, default_value = "http://127.0.0.1:8500")]
        address: String,
        /// `:authority` to send (the host a gateway routes on), e.g. ml.example.com.
        #[arg(long)]
        authority: Option<String>,
        /// User for basic auth at a gateway; the password comes from WASMGATE_PASSWORD.
        #[arg(long)]
        user: Option<String>,
        /// The server's API to call: the Open Inference Protocol (ModelInfer) or TF Serving's (Predict).
        #[arg(long, value_enum, default_value_t = Api::Oip)]
        api: Api,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// A size as the gateway's configs write it (`128Mi`, `4MB`, `1048576`).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize =
        text.parse().map_err(|e| format!("size `{text}`: {e} (e.g. 128Mi, 4MB, 1048576)"))?;
    Ok(size.as_u64())
}

fn parse_u32_size(text: &str) -> Result<u32, String> {
    u32::try_from(parse_bytes(text)?).map_err(|_| format!("{text} is too large"))
}

fn parse_size(text: &str) -> Result<usize, String> {
    usize::try_from(parse_bytes(text)?).map_err(|_| format!("{text} is too large"))
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SolverArg {
    Auto,
    Primal,
    Dual,
}

impl From<SolverArg> for Solver {
    fn from(arg: SolverArg) -> Self {
        match arg {
            SolverArg::Auto => Solver::Auto,
            SolverArg::Primal => Solver::Primal,
            SolverArg::Dual => Solver::Dual,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train { data, layers, learning_rate, iterations, seed, solver, output, plot } => {
            if !data::available(&data) {
                anyhow::bail!(
                    "no catvnoncat data in {} (train_x.npy, train_y.npy, test_x.npy, test_y.npy); set {} or --data",
                    data.display(),
                    data::DATA_DIR_ENV
                );
            }
            let options = train::TrainOptions {
                data_dir: data,
                sizes: layers,
                descent: GradientDescent { learning_rate, iterations, solver: solver.into() },
                seed,
                output: Some(output.clone()),
                plot: Some(plot.clone()),
                progress: true,
            };
            let report = train::run(&options).context("training")?;
            train::print_summary(&report, Some(&output), Some(&plot));
            Ok(())
        }
        Command::Serve {
            listen,
            model,
            max_message_size,
            max_decoded_bytes,
            http2_stream_window,
            http2_connection_window,
            http2_max_frame,
            log_format,
            user_header,
            web_dir,
            samples,
        } => {
            init_logging(log_format);
            let http2 = Http2Settings {
                stream_window: http2_stream_window,
                connection_window: http2_connection_window,
                max_frame: http2_max_frame,
            };
            http2.validate().map_err(anyhow::Error::msg)?;
            let saved = weights::load(&model, Some(&DEFAULT_SIZES))
                .with_context(|| format!("loading the model from {}", model.display()))?;
            let limits = Limits { max_decoded_bytes: max_decoded_bytes as u64 };
            let service = ModelService::new(saved.network).map_err(anyhow::Error::msg)?.with_limits(limits);
            let stats = service.stats();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let listener =
                    tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
                tracing::info!(
                    address = %listener.local_addr()?,
                    model = %model.display(),
                    max_message_size,
                    max_decoded_bytes,
                    "serving"
                );
                let options = ServerOptions {
                    max_message_bytes: max_message_size,
                    http2,
                    user_header,
                    web_dir,
                    samples_dir: samples,
                };
                server::serve(listener, service, &options, server::termination()).await
            })?;
            tracing::info!(stats = ?stats.snapshot(), "stopped");
            Ok(())
        }
        Command::Classify { address, authority, user, api, files } => {
            let mut images = Images::default();
            for file in &files {
                images.add_file(file)?;
            }
            let basic_auth = match user {
                Some(user) => {
                    Some((user, std::env::var("WASMGATE_PASSWORD").context("--user needs WASMGATE_PASSWORD")?))
                }
                None => None,
            };
            let target = Target { address, authority, basic_auth, api };
            let runtime = tokio::runtime::Runtime::new()?;
            let probabilities = runtime.block_on(async { target.connect().await?.classify(&images).await })?;
            for (name, p) in images.names.iter().zip(probabilities) {
                println!("{:<8} {p:.4}  {name}", label(p));
            }
            Ok(())
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
