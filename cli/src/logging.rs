//! Logs through `tracing`, to stderr: `-v` turns on flow's own steps, `-vv` their details,
//! `-vvv` everything; `RUST_LOG` overrides the flags with its own filter.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The filter `-v` flags ask for, or none when they ask for nothing beyond warnings.
pub fn filter(verbose: u8) -> Option<String> {
    match verbose {
        0 => None,
        1 => Some("warn,flow_runtime=info,flow_cli=info".into()),
        2 => Some("warn,flow_runtime=debug,flow_cli=debug".into()),
        _ => Some("trace".into()),
    }
}

/// Installs the subscriber once per process; later calls do nothing.
pub fn init(verbose: u8) {
    let env = EnvFilter::try_from_default_env().ok();
    let filter =
        env.unwrap_or_else(|| EnvFilter::new(filter(verbose).unwrap_or_else(|| "warn".into())));
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .try_init();
}
