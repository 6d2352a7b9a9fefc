//! The proxy-wasm adapter: Envoy's wasm filter calls into the SDK's context traits; each request
//! gets a [`Lifecycle`] and a [`WasmHost`] that carries out what it asks.

mod abi;
mod http;
mod metrics;

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use crate::config::Config;
use crate::host::Level;
use abi::BUFFER_PLUGIN_CONFIGURATION;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { shared: None }) });
}}

/// What every request on this worker shares: the configuration and the metric ids.
pub struct Shared {
    pub config: Config,
    pub metrics: metrics::Metrics,
}

struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

impl RootContext for Root {
    /// The VM's own configuration (`vm_config.configuration`) is not read: the plugin
    /// configuration is. A configuration put there (where some proxy-wasm filters take theirs)
    /// would leave the filter on its defaults without a word, so it stops the VM instead.
    fn on_vm_start(&mut self, vm_configuration_size: usize) -> bool {
        if vm_configuration_size == 0 {
            return true;
        }
        abi::log(
            Level::Error,
            &format!(
                "invalid configuration: \"vm_config.configuration\" is not read ({vm_configuration_size} bytes given): put the plugin configuration in \"config.configuration\""
            ),
        );
        false
    }

    fn on_configure(&mut self, size: usize) -> bool {
        let text = match abi::get_buffer(BUFFER_PLUGIN_CONFIGURATION, 0, size) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(e) => {
                let message = format!("cannot read the plugin configuration (host status {})", e.0);
                abi::log(Level::Error, &message);
                return false;
            }
        };
        let config = std::str::from_utf8(&text)
            .map_err(|_| "plugin configuration is not UTF-8".to_string())
            .and_then(Config::parse);
        match config {
            Ok(config) => {
                for warning in config.warnings() {
                    abi::log(Level::Warn, &warning);
                }
                // Which build is running, for the operator reading Envoy's log (once per VM).
                abi::log(
                    Level::Info,
                    &format!("consent-gate {} configured", crate::VERSION),
                );
                let metrics = metrics::Metrics::define(&config);
                self.shared = Some(Rc::new(Shared { config, metrics }));
                true
            }
            Err(message) => {
                // Envoy prints this line and refuses to start (or to take the new config).
                abi::log(
                    Level::Error,
                    &format!("invalid plugin configuration: {message}"),
                );
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Without a configuration no context is created; on_configure's failure already stopped
        // Envoy from using this plugin, so this cannot happen in a running filter.
        let shared = self.shared.clone()?;
        Some(Box::new(http::Http::new(shared)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
