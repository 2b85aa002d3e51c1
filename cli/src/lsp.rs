//! `flowc lsp`: the language server on standard input and output, with this machine's files
//! behind it (schemas and statistics read as `flowc check` and `flowc plan` read them).

use flow_compiler::SchemaSource;
use flow_planner::{Profile, Statistics};
use flow_runtime::{FileSchemaSource, FileStatistics};
use std::path::Path;

struct Machine;

impl flow_lsp::Environment for Machine {
    fn schemas(&self, base: &Path) -> Box<dyn SchemaSource + '_> {
        Box::new(FileSchemaSource::new(base))
    }

    fn statistics(&self) -> &dyn Statistics {
        &FileStatistics
    }

    fn profile(&self, target: &str) -> Result<Profile, String> {
        crate::plan::target_profile(target, None, None)
    }
}

/// Exit code 0 after `shutdown` then `exit`, 1 when the client left without shutting down.
pub fn serve() -> u8 {
    if flow_lsp::serve(&Machine, flow_lsp::transport::Transport::stdio()) {
        0
    } else {
        crate::USER_ERROR
    }
}
