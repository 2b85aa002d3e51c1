//! The flow language server: diagnostics, hover, completion, navigation, formatting, code
//! actions and a plan preview for `.flow` files. Only this crate knows LSP types.
//!
//! It reuses the pure `lang`, `compiler` and `planner` crates unchanged; what needs the
//! machine (reading schemas of data files, statistics for the planner, the planner's profile)
//! comes in through [`Environment`], which `flowc lsp` fills with the runtime's file readers.
//! [`Server`] turns one incoming message into the messages to send back and never panics on
//! any input; [`serve`] runs it over a transport with debounced diagnostics.

mod actions;
mod analysis;
mod completion;
mod convert;
mod document;
mod hover;
mod locate;
mod navigation;
mod preview;
mod schemas;
mod server;
mod tokens;
pub mod transport;

pub use server::{PlanPreview, Server};

use flow_compiler::SchemaSource;
use flow_planner::{Profile, Statistics};
use std::path::Path;
use std::time::Duration;

/// What the server needs from the machine. The CLI gives the real one; tests give fixtures.
pub trait Environment {
    /// A schema source resolving the paths of a program in the folder `base`.
    fn schemas(&self, base: &Path) -> Box<dyn SchemaSource + '_>;

    /// Measures sources for the plan preview.
    fn statistics(&self) -> &dyn Statistics;

    /// The profile the plan preview plans for `target` (`local` or `lambda`) with.
    fn profile(&self, target: &str) -> Result<Profile, String> {
        Profile::builtin(if target == "lambda" { "aws" } else { "local" })
            .map_err(|e| e.to_string())
    }

    /// The entries of a folder — names, and whether each is a folder — for completing paths
    /// inside `load "..."`. Empty when it cannot be read.
    fn list(&self, folder: &Path) -> Vec<(String, bool)> {
        let Ok(entries) = std::fs::read_dir(folder) else {
            return Vec::new();
        };
        let mut out: Vec<(String, bool)> = entries
            .flatten()
            .map(|e| {
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                (e.file_name().to_string_lossy().into_owned(), is_dir)
            })
            .filter(|(name, _)| !name.starts_with('.'))
            .collect();
        out.sort();
        out
    }
}

/// How long the document must be still before its diagnostics are published.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Serves one client over `transport` until it sends `exit` or disconnects. Returns whether
/// the client shut down properly (`shutdown` before `exit`).
pub fn serve(environment: &dyn Environment, transport: transport::Transport) -> bool {
    let clean = serve_until_exit(environment, &transport);
    transport.finish();
    clean
}

fn serve_until_exit(environment: &dyn Environment, transport: &transport::Transport) -> bool {
    let mut server = Server::new(environment);
    loop {
        let incoming = if server.has_pending() {
            match transport.receiver.recv_timeout(DEBOUNCE) {
                Ok(incoming) => Some(incoming),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return false,
            }
        } else {
            match transport.receiver.recv() {
                Ok(incoming) => Some(incoming),
                Err(_) => return false,
            }
        };
        let out = match incoming {
            Some(transport::Incoming::Message(message)) => server.handle(message),
            Some(transport::Incoming::Malformed(problem)) => {
                transport.malformed(&problem);
                Vec::new()
            }
            None => server.publish_pending(),
        };
        for message in out {
            if transport.sender.send(message).is_err() {
                return false;
            }
        }
        if let Some(clean) = server.exited() {
            return clean;
        }
    }
}
