//! `flowc run` and `flowc worker`: runs a program in this process, or across worker processes
//! as the planner (or the flags) decide, with a progress display, a report and logs.

use crate::plan::{
    Fanout, ObjectiveFlag, channel_flag, diagnostic, flag_error, options_from, target_profile,
    warn_above_concurrency,
};
use crate::progress::Progress;
use crate::run_report;
use crate::{OutputFormat, USAGE, USER_ERROR, report};
use clap::{Args, ValueEnum};
use flow_compiler::Compiled;
use flow_lambda::LambdaBackend;
use flow_lambda::backend::LambdaOptions;
use flow_lambda::deployment::Deployment;
use flow_lambda::names::DEFAULT_PREFIX;
use flow_lang::diagnostic::has_errors;
use flow_lang::{Code, Diagnostic, Span};
use flow_planner::PhysicalPlan;
use flow_runtime::distributed::Backend;
use flow_runtime::distributed::auth::{SECRET_ENV, Secret};
use flow_runtime::distributed::channels::Compression;
use flow_runtime::distributed::punched::PunchOptions;
use flow_runtime::distributed::store::default_store;
use flow_runtime::distributed::worker::{WorkerArgs, serve};
use flow_runtime::distributed::{Channel, ClusterOptions, Watch};
use flow_runtime::{Cluster, FileStatistics, RunOptions, Saved};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum CompressionFlag {
    None,
    Lz4,
    Zstd,
}

#[derive(Args)]
pub struct RunArgs {
    /// The .flow program to run
    pub file: PathBuf,
    /// Where to run: local (this machine) or lambda (functions deployed with `flowc deploy`,
    /// exchanging data through an S3 --store)
    #[arg(long)]
    pub target: Option<String>,
    /// Worker processes to run the pipeline on (default: as planned)
    #[arg(long)]
    pub workers: Option<u32>,
    /// Exactly this many functions in every stage that can be split, whatever the cost model
    /// prefers (to measure or test a fan-out)
    #[arg(long, value_name = "N", conflicts_with = "workers")]
    pub functions: Option<u32>,
    /// How data moves between workers (default: each exchange as planned)
    #[arg(long, value_parser = channel_flag())]
    pub channel: Option<Channel>,
    /// A profile to plan the run with instead of the `local` one (see `flowc calibrate`)
    #[arg(long, value_name = "PATH")]
    pub profile: Option<PathBuf>,
    /// latency or cost: plan the run for this objective
    #[arg(long, value_enum)]
    pub objective: Option<ObjectiveFlag>,
    /// Memory per function in MB (the Lambda backend sizes functions with it)
    #[arg(long = "memory-mb")]
    pub memory_mb: Option<u32>,
    /// Object store for storage hops: a folder, file:///path or s3://bucket/prefix (S3
    /// endpoint and credentials from the AWS_* variables). Default: the system's temporary
    /// folder
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Compression of the data workers exchange (default: none)
    #[arg(long, value_enum)]
    pub compression: Option<CompressionFlag>,
    /// Write a report of a distributed run: PATH.json (data) or PATH.html (a timeline)
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Run this saved plan (`flowc plan FILE --format json > PATH`) instead of planning;
    /// refused when the program or its inputs' schemas changed since it was made
    #[arg(long, value_name = "PATH")]
    pub plan: Option<PathBuf>,
    /// The prefix of the deployed Lambda functions' names (default: flowc)
    #[arg(long, value_name = "NAME")]
    pub function_prefix: Option<String>,
    /// On Lambda, the longest a task may take before it is stopped and retried (default:
    /// ten times its stage's predicted time, at least 60 s, at most Lambda's 900 s)
    #[arg(long, value_name = "SECONDS")]
    pub task_timeout: Option<f64>,
    /// Connect workers' direct channels through this rendezvous host (`flowc rendezvous`),
    /// for workers that cannot accept connections (each behind its own NAT): pairs punch
    /// through, and a pair that cannot falls back to the storage hop
    #[arg(long, value_name = "HOST:PORT")]
    pub rendezvous: Option<String>,
    /// With --rendezvous: how long a pair tries to punch before falling back to storage
    #[arg(long, value_name = "SECONDS", requires = "rendezvous")]
    pub punch_timeout: Option<f64>,
    /// With --rendezvous: fail the run instead of falling back to storage when a pair
    /// cannot punch (for experiments)
    #[arg(long, requires = "rendezvous")]
    pub strict_channels: bool,
    /// Where the coordinator listens for its workers: HOST or HOST:PORT (default: 127.0.0.1,
    /// any free port); with --rendezvous, workers that cannot reach it punch to it instead
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Log what the run does (-v: steps, -vv: details, -vvv: everything); RUST_LOG overrides
    #[arg(short, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How to print diagnostics
    #[arg(long, value_enum, default_value = "human")]
    pub format: OutputFormat,
}

/// Default of `flowc run --punch-timeout`.
const PUNCH_TIMEOUT_S: f64 = 3.0;

/// The longest `--punch-timeout`: a pair that has not met in ten minutes will not.
const MAX_PUNCH_TIMEOUT_S: f64 = 600.0;

impl RunArgs {
    /// Whether any flag asks for worker processes.
    fn distributed(&self) -> bool {
        self.lambda()
            || self.workers.is_some()
            || self.functions.is_some()
            || self.channel.is_some()
            || self.objective.is_some()
            || self.memory_mb.is_some()
            || self.store.is_some()
            || self.compression.is_some()
            || self.report.is_some()
            || self.profile.is_some()
            || self.plan.is_some()
            || self.rendezvous.is_some()
            || self.listen.is_some()
    }

    /// How workers reach each other through the rendezvous host, if one is given.
    fn punch(&self) -> Option<PunchOptions> {
        Some(PunchOptions {
            rendezvous: self.rendezvous.clone()?,
            within: Duration::from_secs_f64(self.punch_timeout.unwrap_or(PUNCH_TIMEOUT_S)),
            strict: self.strict_channels,
        })
    }

    /// The coordinator's control address.
    fn listen(&self) -> String {
        match self.listen.as_deref() {
            None => "127.0.0.1:0".into(),
            Some(host) if host.parse::<std::net::SocketAddr>().is_ok() => host.into(),
            Some(host) => format!("{host}:0"),
        }
    }

    fn lambda(&self) -> bool {
        self.target.as_deref() == Some("lambda")
    }

    /// The planning flags given, which a saved plan has already decided.
    fn planning_flags(&self) -> Vec<&'static str> {
        [
            (self.workers.is_some(), "--workers"),
            (self.functions.is_some(), "--functions"),
            (self.channel.is_some(), "--channel"),
            (self.objective.is_some(), "--objective"),
            (self.memory_mb.is_some(), "--memory-mb"),
            (self.profile.is_some(), "--profile"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect()
    }
}

/// Attempts a task gets before a run fails.
const MAX_ATTEMPTS: u32 = 4;

pub fn run(args: RunArgs) -> u8 {
    if let Some(code) = refuse_usage(&args) {
        return code;
    }
    crate::logging::init(args.verbose);
    let format = args.format;
    let Ok((loaded, all, compiled)) = crate::load_checked(&args.file) else {
        return USER_ERROR;
    };
    report(&loaded, &all, format);
    crate::count(&loaded, &all, format);
    let Some(compiled) = compiled.filter(|_| !has_errors(&all)) else {
        return USER_ERROR;
    };
    if compiled.dag.sinks().is_empty() {
        eprintln!(
            "note: {} has no `save` or `show`: there is nothing to run",
            loaded.name
        );
        return 0;
    }
    let (cluster, plan) = if args.distributed() {
        match cluster(&compiled, &args) {
            Ok((c, plan)) => (Some(c), Some(plan)),
            Err(Refused::Program(d)) => {
                report(&loaded, &[d], format);
                return USER_ERROR;
            }
            Err(Refused::Flags(message)) => {
                eprintln!("{message}");
                return USAGE;
            }
        }
    } else {
        (None, None)
    };
    // On a terminal, one-process runs say which sink runs; distributed ones add a bar per
    // stage.
    let progress = (args.verbose == 0 && std::io::stderr().is_terminal())
        .then(|| Arc::new(Progress::default()));
    let watch = progress.clone().map(|p| p as Arc<dyn Watch>);
    let options = RunOptions {
        partitions: None,
        cluster,
        watch,
    };
    crate::interrupted::stop_cleanly_on_ctrl_c();
    let stdout = std::io::stdout();
    // With bars on the terminal, what the run prints goes above them.
    let mut out: Box<dyn Write> = match &progress {
        Some(progress) => Box::new(progress.above(stdout.lock())),
        None => Box::new(stdout.lock()),
    };
    match flow_runtime::run(&compiled, &options, &mut out) {
        Ok(summary) => {
            for saved in &summary.saved {
                let _ = match saved {
                    Saved::Table(file, 1) => writeln!(out, "saved 1 row to {}", file.display()),
                    Saved::Table(file, rows) => {
                        writeln!(out, "saved {rows} rows to {}", file.display())
                    }
                    Saved::Model(file) => writeln!(out, "saved the model to {}", file.display()),
                };
            }
            if let Some(record) = summary.cluster.as_ref().filter(|r| r.throttled > 0) {
                eprintln!(
                    "note: Lambda throttled {} invocation{}; each was retried after a pause",
                    record.throttled,
                    if record.throttled == 1 { "" } else { "s" }
                );
            }
            if let Some(punched) = summary
                .cluster
                .as_ref()
                .and_then(|r| run_report::Punched::of(&r.links))
            {
                eprintln!("{}", punched.describe());
            }
            if let (Some(path), Some(record)) = (&args.report, &summary.cluster) {
                // A run on Lambda is billed: its report prices what ran as the plan did.
                let prices = args
                    .lambda()
                    .then(|| flow_planner::Profile::builtin("aws").ok())
                    .flatten();
                let text =
                    run_report::render(path, &args.file, record, plan.as_deref(), prices.as_ref());
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("error: cannot write the report {}: {e}", path.display());
                    return USER_ERROR;
                }
                let _ = writeln!(out, "wrote the run's report to {}", path.display());
            }
            0
        }
        Err(d) => {
            // Torn down by Ctrl-C: the interrupt handler reports and exits.
            while flow_runtime::interrupt::interrupted() {
                std::thread::park();
            }
            report(&loaded, &[d], format);
            USER_ERROR
        }
    }
}

/// Flags that cannot work together or are not available, as a usage error.
fn refuse_usage(args: &RunArgs) -> Option<u8> {
    let target = args.target.as_deref();
    if let Some(t) = target.filter(|t| *t != "local" && *t != "lambda") {
        eprintln!("error: unknown target `{t}`; targets are `local` and `lambda`");
        return Some(USAGE);
    }
    if let Some(message) = refuse_lambda_usage(args) {
        eprintln!("{message}");
        return Some(USAGE);
    }
    for (value, flag) in [(args.workers, "--workers"), (args.functions, "--functions")] {
        if value == Some(0) {
            eprintln!("error: {flag} takes a positive number");
            return Some(USAGE);
        }
    }
    if let Some(t) = args.punch_timeout
        && !(t.is_finite() && t > 0.0 && t <= MAX_PUNCH_TIMEOUT_S)
    {
        eprintln!(
            "error: --punch-timeout {t}: give seconds above 0, at most {MAX_PUNCH_TIMEOUT_S}"
        );
        return Some(USAGE);
    }
    if let Some(path) = &args.plan
        && let Some(flag) = args.planning_flags().first()
    {
        eprintln!(
            "error: {flag} cannot be given with --plan {}: the saved plan already decides it",
            path.display()
        );
        eprintln!("hint: edit the plan's JSON, or plan again with the flag and save that plan");
        return Some(USAGE);
    }
    if let Some(path) = &args.report
        && run_report::Kind::of(path).is_none()
    {
        eprintln!(
            "error: --report {}: name the report PATH.json (data) or PATH.html (a timeline)",
            path.display()
        );
        return Some(USAGE);
    }
    // Found before the run writes its saves, not after.
    if let Some(path) = &args.report
        && let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty())
        && !folder.is_dir()
    {
        eprintln!(
            "error: --report {}: the folder {} does not exist",
            path.display(),
            folder.display()
        );
        return Some(USAGE);
    }
    None
}

/// Flags that only mean something on Lambda, and what Lambda needs.
fn refuse_lambda_usage(args: &RunArgs) -> Option<String> {
    if !args.lambda() {
        let flag = [
            (args.function_prefix.is_some(), "--function-prefix"),
            (args.task_timeout.is_some(), "--task-timeout"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))?;
        return Some(format!(
            "error: {flag} is for runs on Lambda; add `--target lambda`"
        ));
    }
    if !args
        .store
        .as_deref()
        .is_some_and(|s| s.starts_with("s3://"))
    {
        return Some(
            "error: `--target lambda` needs a store every function can reach: `--store s3://BUCKET/PREFIX`\nhint: `scripts/local-lambda start` gives a local S3 and Lambda to try it without an AWS account"
                .into(),
        );
    }
    if args.channel == Some(Channel::Direct) && args.rendezvous.is_none() {
        return Some(format!(
            "error: --channel direct cannot run on Lambda without --rendezvous: {}",
            crate::plan::NO_RENDEZVOUS
        ));
    }
    if let Some(t) = args.task_timeout
        && !(t.is_finite() && t > 0.0 && t <= 900.0)
    {
        return Some(format!(
            "error: --task-timeout {t}: give seconds between 0 and Lambda's limit of 900"
        ));
    }
    None
}

fn run_error(message: String, label: &str) -> Diagnostic {
    Diagnostic::error(Code::E0029, message, Span::default(), label)
}

/// Why a distributed run was not set up: its program, or the flags it was given.
enum Refused {
    Program(Diagnostic),
    Flags(String),
}

impl From<Diagnostic> for Refused {
    fn from(d: Diagnostic) -> Refused {
        Refused::Program(d)
    }
}

/// Workers and channel for a distributed run: the flags where given, else the plan's choice
/// under the local profile. Returns the plan too, for the report's predictions.
fn cluster(compiled: &Compiled, args: &RunArgs) -> Result<(Cluster, Arc<PhysicalPlan>), Refused> {
    let exe = std::env::current_exe().map_err(|e| {
        run_error(
            format!("cannot find the flowc executable to start workers: {e}"),
            "while starting the run",
        )
    })?;
    let target = if args.lambda() { "lambda" } else { "local" };
    let mut profile = target_profile(target, args.profile.as_deref(), args.rendezvous.as_deref())
        .map_err(|e| Refused::Flags(format!("error: {e}")))?;
    let deployment = if args.lambda() {
        let prefix = args.function_prefix.as_deref().unwrap_or(DEFAULT_PREFIX);
        let deployment = Deployment::find(prefix)
            .map_err(|e| run_error(e, "while looking for the deployed Lambda functions"))?;
        profile.compute.deployed_mb = Some(deployment.sizes.clone());
        Some(deployment)
    } else {
        None
    };
    let plan = match &args.plan {
        Some(path) => saved_plan(path, compiled)?,
        None => {
            let options = options_from(
                &compiled.settings,
                args.objective,
                Fanout::of(args.workers, args.functions),
                args.memory_mb,
                args.channel,
            );
            flow_planner::plan(&compiled.dag, &FileStatistics, &profile, &options).map_err(|e| {
                match flag_error(&e) {
                    Some(message) => Refused::Flags(message),
                    None => Refused::Program(diagnostic(&e)),
                }
            })?
        }
    };
    // Workers follow the plan: as many as it runs at once, never more than asked.
    let most = plan.peak_functions();
    let workers = match (args.workers, args.functions) {
        (Some(n), _) => capped_workers("--workers", n, &profile),
        (None, Some(n)) => capped_workers("--functions", n, &profile),
        (None, None) => most,
    }
    .min(most);
    let plan = Arc::new(plan);
    let compression = match args.compression {
        None | Some(CompressionFlag::None) => Compression::None,
        Some(CompressionFlag::Lz4) => Compression::Lz4,
        Some(CompressionFlag::Zstd) => Compression::Zstd,
    };
    let options = ClusterOptions {
        workers,
        plan: plan.clone(),
        forced: args.channel,
        store: args.store.clone().unwrap_or_else(default_store),
        max_attempts: MAX_ATTEMPTS,
        compression,
        log: crate::logging::filter(args.verbose),
        // Lambda functions reach each other only through a rendezvous host.
        direct: !args.lambda() || args.rendezvous.is_some(),
        listen: args.listen(),
        punch: args.punch(),
    };
    let cluster = match deployment {
        Some(deployment) => lambda_cluster(options, deployment, args),
        None => Cluster::local(options, exe),
    };
    Ok((cluster, plan))
}

/// A run whose workers are invocations of the deployed Lambda functions.
fn lambda_cluster(options: ClusterOptions, deployment: Deployment, args: &RunArgs) -> Cluster {
    let lambda = LambdaOptions {
        plan: options.plan.clone(),
        deployment,
        task_timeout: args.task_timeout.map(Duration::from_secs_f64),
    };
    Cluster {
        options,
        backend: Arc::new(move || {
            LambdaBackend::new(lambda.clone()).map(|b| Box::new(b) as Box<dyn Backend>)
        }),
    }
}

/// Worker processes for a run: what was asked, at most what the `local` profile (or
/// `--profile`) runs at once, with a warning when that cuts the request.
fn capped_workers(flag: &str, asked: u32, profile: &flow_planner::Profile) -> u32 {
    warn_above_concurrency(flag, asked, profile);
    asked.clamp(1, profile.compute.max_concurrency.max(1))
}

/// A plan saved by `flowc plan --format json`, when it belongs to the program as compiled now
/// (same version, same program, same inputs' schemas); E0034 says what differs otherwise.
fn saved_plan(path: &std::path::Path, compiled: &Compiled) -> Result<PhysicalPlan, Diagnostic> {
    let stale = |why: String, at: Span, label: &str| {
        Diagnostic::error(
            Code::E0034,
            format!("the plan {} cannot run this program: {why}", path.display()),
            at,
            label,
        )
        .with_help(format!(
            "make the plan again: `flowc plan FILE --format json > {}`",
            path.display()
        ))
    };
    let whole = |why: String| stale(why, Span::default(), "the program as it is now");
    let text =
        std::fs::read_to_string(path).map_err(|e| whole(format!("it cannot be read ({e})")))?;
    let plan = PhysicalPlan::from_json(&text).map_err(whole)?;
    let Some(made_for) = &plan.program else {
        return Err(whole(
            "it does not say which program it was made for".into(),
        ));
    };
    let Some(difference) = made_for.differs(&flow_planner::Fingerprint::of(&compiled.dag)) else {
        return Ok(plan);
    };
    let load = difference.source.as_deref().and_then(|source| {
        let dag = &compiled.dag;
        dag.graph
            .node_indices()
            .map(|n| dag.node(n))
            .find(|n| n.label == source && matches!(n.kind, flow_compiler::NodeKind::Source { .. }))
    });
    Err(match load {
        Some(node) => stale(difference.message, node.span, "this input changed"),
        None => whole(difference.message),
    })
}

/// What `flowc worker` is started with.
#[derive(Args)]
pub struct WorkerFlags {
    /// The coordinator's control address
    #[arg(long)]
    connect: String,
    /// The run's object store
    #[arg(long)]
    store: String,
    /// The run's prefix in the store
    #[arg(long)]
    prefix: String,
    /// Compression of exchanged data
    #[arg(long, default_value = "none")]
    compression: String,
    /// The rendezvous host peers are reached through (they cannot listen)
    #[arg(long, value_name = "HOST:PORT")]
    rendezvous: Option<String>,
    /// How long a pair tries to punch before falling back to storage
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 3000,
        requires = "rendezvous"
    )]
    punch_timeout_ms: u64,
    /// Fail instead of falling back to storage
    #[arg(long, requires = "rendezvous")]
    strict_channels: bool,
}

pub fn worker(flags: WorkerFlags) -> u8 {
    crate::logging::init(0);
    let Some(secret) = Secret::from_env() else {
        eprintln!(
            "error: `flowc worker` is started by `flowc run` for a distributed run and needs the run's secret in {SECRET_ENV}"
        );
        return USAGE;
    };
    let Some(compression) = Compression::parse(&flags.compression) else {
        eprintln!(
            "error: --compression {}: choose one of {}",
            flags.compression,
            Compression::NAMES.join(", ")
        );
        return USAGE;
    };
    let punch = flags.rendezvous.map(|rendezvous| PunchOptions {
        rendezvous,
        within: Duration::from_millis(flags.punch_timeout_ms),
        strict: flags.strict_channels,
    });
    let args = WorkerArgs {
        connect: flags.connect,
        store: flags.store,
        prefix: flags.prefix,
        compression,
        punch,
    };
    match serve(&args, secret) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: worker: {e}");
            USER_ERROR
        }
    }
}
