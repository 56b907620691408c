//! Requests sent one after another through a gateway while something changes under it (plugins switched, a model
//! pod deleted), each on a TLS connection of its own, so that what a request gets is the gateway's answer and not
//! a client's handling of a drained connection. Each stream of requests tallies the answers it got.

use crate::RawRequest;
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// One stream of requests: a name for reports, the TLS server name, the request, and the only status it may get.
pub struct Stream {
    pub name: &'static str,
    pub server_name: &'static str,
    pub request: RawRequest,
    pub expected: u16,
}

/// What one stream got: each status (or connection error) and how often.
#[derive(Debug)]
pub struct Tally {
    pub name: &'static str,
    pub expected: u16,
    pub answers: BTreeMap<String, u64>,
}

impl Tally {
    pub fn total(&self) -> u64 {
        self.answers.values().sum()
    }

    /// How many got anything but the expected status, connection errors included.
    pub fn unexpected(&self) -> u64 {
        self.total() - self.answers.get(&self.expected.to_string()).copied().unwrap_or(0)
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (expects {}): {:?}", self.name, self.expected, self.answers)
    }
}

pub struct SteadyTraffic {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Tally>>,
}

/// Requests do not pile up: each stream waits this long between answers.
const PAUSE: Duration = Duration::from_millis(20);

impl SteadyTraffic {
    /// Starts every stream against `address` over TLS, trusting `ca_pem`.
    pub fn start(address: SocketAddr, ca_pem: &str, streams: Vec<Stream>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = streams
            .into_iter()
            .map(|stream| {
                let (stop, ca_pem) = (stop.clone(), ca_pem.to_owned());
                tokio::spawn(async move {
                    let mut answers = BTreeMap::new();
                    while !stop.load(Ordering::Relaxed) {
                        let answer = match stream.request.send_tls(address, stream.server_name, &ca_pem).await {
                            Ok(response) => response.status.to_string(),
                            // Kept short: the tally groups errors by their text.
                            Err(e) => format!("error: {}", format!("{e:#}").chars().take(120).collect::<String>()),
                        };
                        *answers.entry(answer).or_insert(0) += 1;
                        tokio::time::sleep(PAUSE).await;
                    }
                    Tally { name: stream.name, expected: stream.expected, answers }
                })
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stops every stream after its request in flight, and returns what each got.
    pub async fn stop(self) -> Result<Vec<Tally>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut tallies = Vec::new();
        for task in self.tasks {
            tallies.push(task.await?);
        }
        Ok(tallies)
    }

    /// Stops, and fails unless every stream sent at least `min_each` requests and each got its expected status.
    pub async fn stop_and_check(self, min_each: u64) -> Result<Vec<Tally>> {
        let tallies = self.stop().await?;
        let report = tallies.iter().map(Tally::to_string).collect::<Vec<_>>().join("; ");
        if tallies.iter().any(|t| t.unexpected() > 0 || t.total() < min_each) {
            bail!("answers during the change: {report}");
        }
        eprintln!("answers during the change: {report}");
        Ok(tallies)
    }
}
