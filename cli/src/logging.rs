//! Logs through `tracing`, to stderr: `-v` turns on flow's own steps, `-vv` their details,
//! `-vvv` everything; `RUST_LOG` overrides the flags with its own filter.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The filter `-v` flags ask for, or none when they ask for nothing beyond warnings.
pub fn filter(verbose: u8) -> Option<String> {
    match verbose {
        0 => None,
        1 => Some(format!(
            "{QUIET},flow_runtime=info,flow_lambda=info,flow_cli=info"
        )),
        2 => Some(format!(
            "{QUIET},flow_runtime=debug,flow_lambda=debug,flow_cli=debug"
        )),
        _ => Some("trace".into()),
    }
}

/// Warnings only, and none from the AWS SDK, which warns of every credential and region
/// source it tries: flowc says itself what it could not do, and why.
const QUIET: &str =
    "warn,aws_config=error,aws_smithy_runtime=error,aws_smithy_http_client=error,aws_runtime=error";

/// Installs the subscriber once per process; later calls do nothing.
pub fn init(verbose: u8) {
    let env = EnvFilter::try_from_default_env().ok();
    let filter =
        env.unwrap_or_else(|| EnvFilter::new(filter(verbose).unwrap_or_else(|| QUIET.into())));
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .try_init();
}
