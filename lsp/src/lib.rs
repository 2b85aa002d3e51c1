//! The flow language server: diagnostics, hover, completion and navigation for `.flow` files,
//! reusing the pure `lang` and `compiler` crates. Only this crate knows LSP types.
//!
//! Not implemented yet (issue "Language server"); it exposes nothing until then.
