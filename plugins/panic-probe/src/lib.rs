//! A test fixture, not a plugin: its entry point is every plugin's (`wasmgate_common::plugin_main!`), and its
//! request callback panics, as a bug deep in a dependency would. The e2e tests load it to see what the gateway
//! logs and answers when a module panics.

#[cfg(target_arch = "wasm32")]
mod filter {
    use std::rc::Rc;
    use wasmgate_common::{Flow, Host, Loaded, PluginConfig, Shell, StreamFilter};

    wasmgate_common::plugin_main!(PanicProbe);

    pub struct PanicProbe;

    impl PluginConfig for PanicProbe {
        const IMAGE: &'static str = "panic-probe";
        const NAME: &'static str = "panic-probe";
        type Config = ();

        fn parse(_bytes: &[u8]) -> Result<(), wasmgate_common::ConfigError> {
            Ok(())
        }

        fn summary(_config: &()) -> String {
            "panics on every request".into()
        }
    }

    impl Shell for PanicProbe {
        fn counters(_config: &()) -> Vec<String> {
            Vec::new()
        }

        type Filter = Probe;

        fn filter(_state: Rc<Loaded<()>>) -> Probe {
            Probe
        }
    }

    pub struct Probe;

    impl StreamFilter for Probe {
        #[allow(clippy::panic)] // the point of this module
        fn on_request_headers(&mut self, _host: &dyn Host, _end_of_stream: bool) -> Flow {
            panic!("index 7 out of range in a dependency (probe)")
        }
    }
}
