//! The sections of `make bench`, in the order a full run takes them: one table, so a section's name, what it
//! measures and the code that runs it are written once.

use anyhow::{Result, bail};
use std::future::Future;
use std::pin::Pin;

/// A section's run: its part of the report.
type Run = fn() -> Pin<Box<dyn Future<Output = Result<String>>>>;

pub struct Section {
    /// What `make bench -- <name>` runs.
    pub name: &'static str,
    pub measures: &'static str,
    pub run: Run,
}

pub const SECTIONS: [Section; 7] = [
    Section {
        name: "basic-auth",
        measures: "req/s, latency and Envoy CPU: basic-auth on V8 against passthrough and native basic_auth",
        run: || Box::pin(super::basic_auth::run()),
    },
    Section {
        name: "instructions",
        measures: "instructions per request under callgrind, every plugin, the chain and the suite",
        run: || Box::pin(super::instructions::run()),
    },
    Section {
        name: "flood",
        measures: "a flood of wrong passwords against signed-in clients",
        run: || Box::pin(super::flood::run()),
    },
    Section {
        name: "host-router",
        measures: "host-router with 20 hosts x 10 rules, the last rule matching",
        run: || Box::pin(super::host_router::run()),
    },
    Section {
        name: "chain",
        measures: "each plugin, the three as filters and the suite, with plots",
        run: || Box::pin(super::chain::run()),
    },
    Section {
        name: "payload",
        measures: "100 MB gRPC messages on every path through the gateway",
        run: || Box::pin(super::payload::run()),
    },
    Section {
        name: "inference",
        measures: "the model server's throughput and latency",
        run: || Box::pin(super::inference::run()),
    },
];

/// The section called `name`; an unknown name is an error that lists the sections.
pub fn named(name: &str) -> Result<&'static Section> {
    match SECTIONS.iter().find(|s| s.name == name) {
        Some(section) => Ok(section),
        None => {
            let known: Vec<String> = SECTIONS.iter().map(|s| format!("  {:<13} {}", s.name, s.measures)).collect();
            bail!("no bench section `{name}`; the sections:\n{}", known.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_is_found_by_its_name_and_others_are_refused() {
        for section in &SECTIONS {
            assert_eq!(named(section.name).unwrap().name, section.name);
        }
        let err = named("payloads").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("no bench section `payloads`") && err.contains("instructions"), "{err}");
    }
}
