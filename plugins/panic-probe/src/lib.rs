//! A test fixture, not a plugin: its entry point is every plugin's (`wasmgate_common::plugin_main!`), and its
//! request callback panics, as a bug deep in a dependency would. The e2e tests load it to see what the gateway
//! logs and answers when a module panics.

#[cfg(target_arch = "wasm32")]
mod filter {
    use proxy_wasm::traits::{Context, HttpContext};
    use proxy_wasm::types::Action;
    use std::rc::Rc;
    use wasmgate_common::PluginConfig;
    use wasmgate_common::host::{Loaded, Plugin};

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

    impl Plugin for PanicProbe {
        fn counters(_config: &()) -> Vec<String> {
            Vec::new()
        }

        fn http_context(_state: Rc<Loaded<()>>) -> Box<dyn HttpContext> {
            Box::new(Probe)
        }
    }

    struct Probe;

    impl Context for Probe {}

    impl HttpContext for Probe {
        #[allow(clippy::panic)] // the point of this module
        fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            panic!("index 7 out of range in a dependency (probe)")
        }
    }
}
