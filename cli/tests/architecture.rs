//! The invariants of ARCHITECTURE.md, enforced: crates depend on each other only in the
//! allowed direction, and the pure crates do no IO of their own.

use std::path::Path;

/// Each crate and the flow crates it may depend on (ARCHITECTURE.md's table of crates).
const ALLOWED: &[(&str, &[&str])] = &[
    ("lang", &[]),
    ("stdlib", &[]),
    ("compiler", &["flow-lang", "flow-stdlib"]),
    ("planner", &["flow-compiler", "flow-lang", "flow-stdlib"]),
    (
        "runtime",
        &["flow-planner", "flow-compiler", "flow-lang", "flow-stdlib"],
    ),
    ("lambda", &["flow-planner", "flow-runtime"]),
    (
        "lsp",
        &["flow-lang", "flow-compiler", "flow-planner", "flow-stdlib"],
    ),
    (
        "cli",
        &[
            "flow-lang",
            "flow-stdlib",
            "flow-compiler",
            "flow-planner",
            "flow-runtime",
            "flow-lambda",
            "flow-lsp",
        ],
    ),
];

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The `flow-*` crates named in a manifest's `[dependencies]` section.
fn flow_dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && line.starts_with("flow-") {
            deps.push(line.split(['.', ' ', '=']).next().unwrap().to_string());
        }
    }
    deps
}

#[test]
fn crates_depend_only_in_the_allowed_direction() {
    for (krate, allowed) in ALLOWED {
        let manifest = std::fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
        for dep in flow_dependencies(&manifest) {
            assert!(
                allowed.contains(&dep.as_str()),
                "crate `{krate}` must not depend on `{dep}` (see ARCHITECTURE.md)"
            );
        }
    }
}

#[test]
fn the_dependency_check_catches_a_wrong_edge() {
    let bad = "[dependencies]\nflow-runtime.workspace = true\n";
    assert_eq!(flow_dependencies(bad), vec!["flow-runtime"]);
    assert!(
        !ALLOWED
            .iter()
            .find(|(k, _)| *k == "compiler")
            .unwrap()
            .1
            .contains(&"flow-runtime")
    );
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn pure_crates_do_no_io() {
    let forbidden = [
        "std::fs",
        "std::net",
        "std::env",
        "std::process",
        "tokio::",
        "File::open",
    ];
    for krate in ["lang", "compiler", "stdlib", "planner"] {
        let mut files = Vec::new();
        rust_files(&root().join(krate).join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for f in forbidden {
                assert!(
                    !code.contains(f),
                    "{} uses `{f}`; {krate} must stay pure (IO goes behind a trait)",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn every_crate_root_documents_what_it_owns() {
    for (krate, _) in ALLOWED {
        let root_file = if *krate == "cli" {
            "src/main.rs"
        } else {
            "src/lib.rs"
        };
        let text = std::fs::read_to_string(root().join(krate).join(root_file)).unwrap();
        assert!(
            text.starts_with("//!"),
            "{krate}/{root_file} must start with a //! doc"
        );
    }
}

/// Whether a manifest's `[dependencies]` name a crate.
fn depends_on(manifest: &str, krate: &str) -> bool {
    let mut in_deps = false;
    manifest.lines().any(|line| {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            return false;
        }
        in_deps && line.split(['.', ' ', '=']).next() == Some(krate)
    })
}

#[test]
fn only_the_lsp_crate_knows_lsp() {
    for (krate, _) in ALLOWED {
        let manifest = std::fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
        let knows = ["lsp-types", "lsp-server"]
            .iter()
            .any(|dep| depends_on(&manifest, dep));
        let mut files = Vec::new();
        rust_files(&root().join(krate).join("src"), &mut files);
        let names_it = files.iter().any(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.contains("lsp_types") || text.contains("lsp_server")
        });
        if *krate == "lsp" {
            assert!(
                knows && names_it,
                "the lsp crate speaks LSP through lsp-types"
            );
        } else {
            assert!(
                !knows && !names_it,
                "crate `{krate}` must not know LSP types; only `lsp` does (ARCHITECTURE.md)"
            );
        }
    }
    assert!(depends_on(
        "[dependencies]\nlsp-types.workspace = true\n",
        "lsp-types"
    ));
}

#[test]
fn only_the_lambda_crate_knows_lambda_and_the_aws_sdk() {
    let sdk = [
        "lambda_runtime",
        "aws-config",
        "aws-sdk-lambda",
        "aws-smithy-http-client",
    ];
    for (krate, _) in ALLOWED {
        let manifest = std::fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
        let knows = sdk.iter().any(|dep| depends_on(&manifest, dep));
        assert_eq!(
            knows,
            *krate == "lambda",
            "crate `{krate}`: only `lambda` may depend on Lambda and the AWS SDK (ARCHITECTURE.md)"
        );
    }
}
