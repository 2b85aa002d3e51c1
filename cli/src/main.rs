//! `flowc`, the command-line driver of flow: `check`, `fmt`, `explain`, `plan`, `run` and `lsp`. It owns all
//! process concerns (arguments, files, terminals, exit codes) and calls the pure crates.

/// `print!` through [`stdout::print`]: a closed standard output ends the program quietly.
macro_rules! out {
    ($($arg:tt)*) => { $crate::stdout::print(format_args!($($arg)*)) };
}

/// `println!` through [`stdout::print`].
macro_rules! outln {
    ($($arg:tt)*) => { $crate::stdout::print(format_args!("{}\n", format_args!($($arg)*))) };
}

mod deploy;
mod interrupted;
mod logging;
mod lsp;
mod plan;
mod progress;
mod render;
mod run;
mod run_report;
mod stdout;

use clap::{Parser, Subcommand, ValueEnum};
use flow_compiler::Compiled;
use flow_lang::{Code, Diagnostic, Parsed, diagnostic::has_errors};
use flow_runtime::FileSchemaSource;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// Checking a program builds many small, short-lived values (plans, schemas, expressions);
// mimalloc serves them at a fraction of the system allocator's cost. It is built without
// transparent huge pages (`no_thp`): a run's worker processes are short-lived and touch most
// of their memory once, and with huge pages each first touch had the kernel zero (and, on a
// fragmented machine, compact) 2 MB — a third of a distributed TPC-H run's CPU time, spread
// unevenly over the workers (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes: 0 ok, 1 the user's program or data is wrong, 2 bad usage.
const USER_ERROR: u8 = 1;
const USAGE: u8 = 2;

#[derive(Parser)]
#[command(name = "flowc", version, about = "Check, format, explain, plan and run flow pipelines", long_about = None)]
#[command(
    after_help = "Examples:\n  flowc run examples/quickstart.flow\n  flowc check pipeline.flow\n  flowc explain E0004"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum OutputFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check programs for errors without running them
    #[command(
        after_help = "Examples:\n  flowc check pipeline.flow\n  flowc check --format json a.flow b.flow"
    )]
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How to print diagnostics
        #[arg(long, value_enum, default_value = "human")]
        format: OutputFormat,
    },
    /// Format programs in place (canonical layout, comments kept)
    #[command(
        after_help = "Examples:\n  flowc fmt pipeline.flow\n  flowc fmt --check examples/*.flow\n  flowc fmt - < pipeline.flow    (standard input to standard output, for editors)"
    )]
    Fmt {
        /// Programs to format; `-` reads standard input and writes standard output
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Do not write; exit 1 if a file is not formatted
        #[arg(long)]
        check: bool,
    },
    /// Explain a diagnostic code, a step, a function, a model kind, or print a program's DAG
    #[command(
        after_help = "Examples:\n  flowc explain              (every diagnostic code)\n  flowc explain E0003\n  flowc explain logistic\n  flowc explain round\n  flowc explain pipeline.flow"
    )]
    Explain {
        /// A code (E0003), a step (join), a function (round), a model kind (logistic), or a
        /// .flow file; nothing lists the codes
        what: Option<String>,
    },
    /// Plan a pipeline across functions: stages, memory, channels, predicted time and cost
    #[command(
        after_help = "Examples:\n  flowc plan pipeline.flow\n  flowc plan pipeline.flow --target lambda --objective cost\n  flowc plan pipeline.flow --target lambda --format json\n  flowc plan pipeline.flow --target lambda --sweep workers=1..64\n  flowc plan pipeline.flow --verbose"
    )]
    Plan(plan::PlanArgs),
    /// Measure this machine and write the `local` profile the planner reads
    #[command(
        after_help = "Examples:\n  flowc calibrate\n  flowc calibrate --output my-machine.toml\n  flowc plan pipeline.flow --profile my-machine.toml\n  AWS_ENDPOINT_URL=http://127.0.0.1:9000 flowc calibrate --store s3://bucket/runs --output minio.toml"
    )]
    Calibrate {
        /// Where to write the profile (default: $XDG_CONFIG_HOME/flow/local.toml, which
        /// `flowc plan --target local` reads)
        #[arg(long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// Measure less, for a rough profile in a few seconds
        #[arg(long)]
        quick: bool,
        /// Measure storage in this store (a folder or s3://bucket/prefix, as `flowc run
        /// --store` takes) instead of a local folder; what it writes there is removed
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
    /// Run a pipeline
    #[command(
        after_help = "Examples:\n  flowc run examples/quickstart.flow\n  flowc run pipeline.flow --workers 4\n  flowc run pipeline.flow --workers 2 --channel storage --store /tmp/flow-store\n  flowc run pipeline.flow --workers 4 --report run.html\n  flowc run pipeline.flow --workers 4 --channel direct --rendezvous HOST:7400\n  AWS_ENDPOINT_URL=http://127.0.0.1:9000 flowc run pipeline.flow --channel storage --store s3://bucket/runs\n\nWithout --workers, --channel, --objective, --profile, --store, --compression or --report\nthe pipeline runs in this process. With them it runs on `flowc worker` processes as planned for the\nlocal profile. Ctrl-C stops the workers and removes temporary files (exit code 130)."
    )]
    Run(run::RunArgs),
    /// Deploy flowc as AWS Lambda functions, one per memory size, for `run --target lambda`
    #[command(
        after_help = "Examples:\n  flowc deploy --role arn:aws:iam::123456789012:role/flow --bucket my-bucket\n  flowc deploy --role ARN --bucket NAME --memory-mb 1769,3538 --dry-run\n  flowc deploy --role ARN --bucket NAME --arch arm64 --package target/lambda/flowc/bootstrap.zip\n\nCredentials, region and endpoints come from the standard AWS settings (AWS_PROFILE,\nAWS_REGION, AWS_ENDPOINT_URL, ...). A second deploy of the same flowc changes nothing."
    )]
    Deploy(deploy::DeployArgs),
    /// Serve as the rendezvous host through which functions behind NAT open direct channels
    #[command(
        after_help = "Examples:\n  flowc rendezvous --listen 0.0.0.0:7400\n  flowc run pipeline.flow --workers 4 --rendezvous HOST:7400\n\nRuns meet here: each proves it belongs to its run (an HMAC with a key derived from the\nrun's secret; strangers are dropped unanswered), learns its peers' public endpoints, and\npunches a connection to them. No data passes through the host. It runs until stopped."
    )]
    Rendezvous {
        /// Address to listen on, HOST:PORT (port 0 picks one, printed on start)
        #[arg(long, value_name = "HOST:PORT")]
        listen: String,
    },
    /// Serve the language server over standard input and output (started by editors)
    #[command(
        after_help = "Examples:\n  flowc lsp    (editors start it; see docs/editors.md for VS Code and Neovim)\n\nIt speaks LSP (JSON-RPC with Content-Length headers) on stdin and stdout and exits\nafter the client's `exit`: 0 after `shutdown`, 1 without."
    )]
    Lsp,
    /// Serve as one worker of a distributed run (started by `flowc run`, not by people)
    #[command(hide = true)]
    Worker(run::WorkerFlags),
}

fn main() -> ExitCode {
    // Lambda starts the function's `bootstrap` (this binary) with no arguments.
    if flow_lambda::function::started_by_lambda() && std::env::args_os().len() == 1 {
        return match flow_lambda::function::serve() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(USER_ERROR)
            }
        };
    }
    // The compiler recurses over the program; a large stack keeps the limits of the parser
    // (not the machine's default stack) the binding ones.
    let worker = std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn(|| {
            let cli = Cli::parse();
            dispatch(cli.command)
        });
    match worker.map(|h| h.join()) {
        Ok(Ok(code)) => ExitCode::from(code),
        _ => ExitCode::from(101),
    }
}

/// `flowc rendezvous`: serves until the process is stopped.
fn rendezvous(listen: &str) -> u8 {
    logging::init(0);
    if std::net::ToSocketAddrs::to_socket_addrs(listen).is_err() {
        eprintln!("error: --listen {listen}: give HOST:PORT, such as 0.0.0.0:7400");
        return USAGE;
    }
    let listener = match flow_runtime::distributed::rendezvous::server::listen(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return USER_ERROR;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("rendezvous host listening on {addr}"),
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return USER_ERROR;
        }
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
    flow_runtime::distributed::rendezvous::server::serve(listener, Default::default());
    0
}

fn dispatch(command: Command) -> u8 {
    match command {
        Command::Check { files, format } => check(&files, format),
        Command::Fmt { files, check } => fmt(&files, check),
        Command::Explain { what: Some(what) } => explain(&what),
        Command::Explain { what: None } => explain_codes(),
        Command::Plan(args) => plan::plan(&args),
        Command::Calibrate {
            output,
            quick,
            store,
        } => calibrate(output, quick, store.as_deref()),
        Command::Run(args) => run::run(args),
        Command::Deploy(args) => deploy::deploy(args),
        Command::Lsp => lsp::serve(),
        Command::Rendezvous { listen } => rendezvous(&listen),
        Command::Worker(flags) => run::worker(flags),
    }
}

/// A source file read and parsed.
struct Loaded {
    name: String,
    text: String,
    parsed: Parsed,
}

fn load(path: &Path) -> Result<Loaded, u8> {
    let (name, text) = read_program(path)?;
    let parsed = flow_lang::parse(&text);
    Ok(Loaded { name, text, parsed })
}

/// A program's name and text, or the reported reason it has none.
fn read_program(path: &Path) -> Result<(String, String), u8> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        eprintln!("error: cannot read {name}: {e}");
        USER_ERROR
    })?;
    match flow_lang::decode(&bytes) {
        Ok(text) => Ok((name, text.to_string())),
        Err(d) => {
            // Not text: report against an empty source so nothing tries to print the bytes.
            eprint!("{}", render::human(&name, "", &d, render::color()));
            Err(USER_ERROR)
        }
    }
}

/// A program loaded and checked, the checking overlapping the parsing. Its diagnostics:
/// syntax first, then (if it parsed) the checker's.
fn load_checked(path: &Path) -> Result<(Loaded, Vec<Diagnostic>, Option<Compiled>), u8> {
    let (name, text) = read_program(path)?;
    let (parsed, compiled) =
        flow_compiler::parse_and_compile(&text, &FileSchemaSource::new(base_dir(path)));
    let mut all = parsed.diagnostics.clone();
    let compiled = (!has_errors(&all)).then_some(compiled);
    if let Some(c) = &compiled {
        all.extend(c.diagnostics.iter().cloned());
    }
    Ok((Loaded { name, text, parsed }, all, compiled))
}

/// The folder a program's relative paths are resolved against.
fn base_dir(path: &Path) -> PathBuf {
    path.parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."))
}

fn report(loaded: &Loaded, diagnostics: &[Diagnostic], format: OutputFormat) {
    match format {
        OutputFormat::Human => {
            let color = render::color();
            for d in diagnostics {
                eprint!("{}", render::human(&loaded.name, &loaded.text, d, color));
            }
        }
        OutputFormat::Json => {
            for d in diagnostics {
                outln!("{}", render::json(&loaded.name, &loaded.text, d));
            }
        }
    }
}

/// After a program's diagnostics, how many there were, when it has errors (people scrolling
/// back through a long list want the total).
fn count(loaded: &Loaded, diagnostics: &[Diagnostic], format: OutputFormat) {
    if format != OutputFormat::Human || !has_errors(diagnostics) {
        return;
    }
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == flow_lang::Severity::Error)
        .count();
    let warnings = diagnostics.len() - errors;
    let mut line = format!("error: {} has {}", loaded.name, plural(errors, "error"));
    if warnings > 0 {
        line.push_str(&format!(" and {}", plural(warnings, "warning")));
    }
    eprintln!("{line}");
}

fn check(files: &[PathBuf], format: OutputFormat) -> u8 {
    let mut failed = false;
    for path in files {
        let Ok((loaded, all, _)) = load_checked(path) else {
            failed = true;
            continue;
        };
        report(&loaded, &all, format);
        count(&loaded, &all, format);
        failed |= has_errors(&all);
    }
    if failed { USER_ERROR } else { 0 }
}

/// `flowc fmt -`: standard input formatted to standard output (with `--check`, only the
/// exit code says whether it was formatted).
fn fmt_stdin(check_only: bool) -> u8 {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes) {
        eprintln!("error: cannot read standard input: {e}");
        return USER_ERROR;
    }
    let name = "<stdin>".to_string();
    let text = match flow_lang::decode(&bytes) {
        Ok(text) => text.to_string(),
        Err(d) => {
            eprint!("{}", render::human(&name, "", &d, render::color()));
            return USER_ERROR;
        }
    };
    let parsed = flow_lang::parse(&text);
    let loaded = Loaded { name, text, parsed };
    if has_errors(&loaded.parsed.diagnostics) {
        report(&loaded, &loaded.parsed.diagnostics, OutputFormat::Human);
        eprintln!("error: standard input has syntax errors; it was not formatted");
        return USER_ERROR;
    }
    let formatted = flow_lang::format::format_program(&loaded.text, &loaded.parsed.program);
    if check_only {
        return if formatted == loaded.text {
            0
        } else {
            USER_ERROR
        };
    }
    out!("{formatted}");
    0
}

fn fmt(files: &[PathBuf], check_only: bool) -> u8 {
    if files.iter().any(|f| f.as_os_str() == "-") {
        if files.len() > 1 {
            eprintln!("error: `-` (standard input) cannot be formatted with other files");
            return USAGE;
        }
        return fmt_stdin(check_only);
    }
    let mut status = 0;
    for path in files {
        let Ok(loaded) = load(path) else {
            status = USER_ERROR;
            continue;
        };
        if has_errors(&loaded.parsed.diagnostics) {
            report(&loaded, &loaded.parsed.diagnostics, OutputFormat::Human);
            eprintln!(
                "error: {} has syntax errors; it was not formatted",
                loaded.name
            );
            status = USER_ERROR;
            continue;
        }
        let formatted = flow_lang::format::format_program(&loaded.text, &loaded.parsed.program);
        if formatted == loaded.text {
            continue;
        }
        if check_only {
            eprintln!("would reformat {}", loaded.name);
            status = USER_ERROR;
            continue;
        }
        let temp = path.with_extension("flow.fmt-tmp");
        if let Err(e) = std::fs::write(&temp, &formatted).and_then(|_| std::fs::rename(&temp, path))
        {
            let _ = std::fs::remove_file(&temp);
            eprintln!("error: cannot write {}: {e}", loaded.name);
            status = USER_ERROR;
        }
    }
    status
}

fn explain(what: &str) -> u8 {
    if let Some(code) = Code::parse(what) {
        let info = code.info();
        outln!(
            "{}: {}\n\n{}\n\nExample:\n\n{}",
            info.code,
            info.title,
            info.explanation,
            indent(info.example)
        );
        return 0;
    }
    let path = Path::new(what);
    if what.ends_with(".flow") || path.is_file() {
        let Ok((loaded, all, compiled)) = load_checked(path) else {
            return USER_ERROR;
        };
        report(&loaded, &all, OutputFormat::Human);
        if has_errors(&all) {
            return USER_ERROR;
        }
        if let Some(compiled) = compiled {
            out!("{}", compiled.dag.display());
        }
        return 0;
    }
    if let Some(text) = flow_stdlib::explain(what) {
        out!("{text}");
        return 0;
    }
    if let Some(entry) = flow_lang::reference::find(what) {
        out!("{}", entry.text());
        return 0;
    }
    if let Some(f) = flow_compiler::functions::find(&what.to_lowercase()) {
        let kind = if f.aggregate {
            "aggregate function (use it in `group { ... }`)"
        } else {
            "function"
        };
        outln!("{}\n\n{kind}: {}", f.syntax, f.description);
        return 0;
    }
    eprintln!(
        "error: `{what}` is not a diagnostic code, a step, a function, a model kind or a .flow file"
    );
    eprintln!(
        "hint: try `flowc explain` (the codes), `flowc explain E0001`, `flowc explain train`, `flowc explain round` or `flowc explain pipeline.flow`"
    );
    USER_ERROR
}

/// Every diagnostic code with its title.
fn explain_codes() -> u8 {
    for code in flow_lang::diagnostic::CODES {
        let info = code.info();
        outln!("{}  {}", info.code, info.title);
    }
    outln!(
        "\n`flowc explain CODE` explains one; `flowc explain round`, `join` or `logistic` a name."
    );
    0
}

fn calibrate(output: Option<PathBuf>, quick: bool, store: Option<&str>) -> u8 {
    let Some(path) = output.or_else(plan::calibrated_profile_path) else {
        eprintln!("error: no home folder to write the profile to; give --output PATH");
        return USAGE;
    };
    eprintln!(
        "measuring this machine (loopback TCP, {}, the engine's kernels, a run on two \
         workers)…",
        store.unwrap_or("a local folder")
    );
    let effort = if quick {
        flow_runtime::calibrate::Effort::Quick
    } else {
        flow_runtime::calibrate::Effort::Full
    };
    let exe = std::env::current_exe().ok();
    let measured = flow_runtime::calibrate::calibrate(effort, exe.as_deref(), store);
    let written = measured.and_then(|(profile, report)| {
        for m in &report {
            outln!("{:<46} {}", m.what, m.value);
        }
        let text = flow_runtime::calibrate::to_toml(&profile)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    });
    match written {
        Ok(()) => {
            outln!("profile written to {}", path.display());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            USER_ERROR
        }
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
