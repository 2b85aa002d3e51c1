//! `flowc plan`: plans a program for a target and prints the physical plan (text, JSON or
//! DOT), the plan after each rule (`--verbose`), or a sweep's time/cost frontier.

use crate::{OutputFormat, USAGE, USER_ERROR, load_checked, report};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, ValueEnum};
use flow_lang::diagnostic::has_errors;
use flow_lang::{Code, Diagnostic};
use flow_planner::sweep::{self, Sweep};
use flow_planner::{Channel, Objective, Options, PlanError, Profile, Unmet};
use flow_runtime::FileStatistics;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum PlanFormat {
    Text,
    Json,
    Dot,
}

/// `--channel direct|storage`, read into the planner's [`Channel`] (fused is the planner's
/// choice to make, not a flag's).
pub fn channel_flag() -> impl TypedValueParser<Value = Channel> {
    PossibleValuesParser::new([Channel::Direct.name(), Channel::Storage.name()])
        .try_map(|name: String| Channel::from_name(&name).ok_or("not a channel"))
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum ObjectiveFlag {
    Latency,
    Cost,
}

#[derive(Args)]
pub struct PlanArgs {
    pub file: PathBuf,
    /// Where the plan would run: local (worker processes on this machine) or lambda
    #[arg(long)]
    pub target: Option<String>,
    /// What to optimise
    #[arg(long, value_enum)]
    pub objective: Option<ObjectiveFlag>,
    /// The fastest plan within this many dollars
    #[arg(long = "budget-usd", value_name = "USD")]
    pub budget_usd: Option<f64>,
    /// The cheapest plan within this many seconds
    #[arg(long = "deadline-s", value_name = "SECONDS")]
    pub deadline_s: Option<f64>,
    /// Upper bound of functions per stage
    #[arg(long)]
    pub workers: Option<u32>,
    /// Exactly this many functions in every stage that can be split, whatever the cost model
    /// prefers (to measure or test a fan-out)
    #[arg(long, value_name = "N", conflicts_with = "workers")]
    pub functions: Option<u32>,
    /// Memory of every function, in MB
    #[arg(long = "memory-mb")]
    pub memory_mb: Option<u32>,
    /// Channel of every exchange between functions
    #[arg(long, value_parser = channel_flag())]
    pub channel: Option<Channel>,
    /// A profile file to plan with instead of the target's
    #[arg(long, value_name = "PATH")]
    pub profile: Option<PathBuf>,
    /// A rendezvous host through which Lambda functions would open direct channels; without
    /// one, a Lambda plan moves every exchange through storage
    #[arg(long, value_name = "HOST:PORT")]
    pub rendezvous: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: PlanFormat,
    /// Print the plan after each planner rule
    #[arg(long)]
    pub verbose: bool,
    /// Plan at every value of a knob: workers=1..64, memory_mb=512..4096, workers=1,4,16
    #[arg(long, value_name = "KNOB=RANGE")]
    pub sweep: Option<String>,
    /// Where the sweep's chart goes (default: FILE's name with .sweep.svg, here)
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
}

/// Where `flowc calibrate` writes the measured local profile, and `flowc plan` finds it.
pub fn calibrated_profile_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("flow").join("local.toml"))
}

/// Why Lambda functions cannot reach each other without a rendezvous host.
pub const NO_RENDEZVOUS: &str = "Lambda functions accept no connections, and without a rendezvous host they cannot reach each other";

/// The profile for a target: a file given with `--profile`, the calibrated local profile if
/// `flowc calibrate` wrote one, else the built-in one. On Lambda without a rendezvous host
/// the profile says functions cannot reach each other directly.
pub fn target_profile(
    target: &str,
    file: Option<&Path>,
    rendezvous: Option<&str>,
) -> Result<Profile, String> {
    let mut profile = profile(target, file)?;
    if target == "lambda" && rendezvous.is_none() {
        profile.direct.unreachable = Some(NO_RENDEZVOUS.into());
    }
    Ok(profile)
}

fn profile(target: &str, file: Option<&Path>) -> Result<Profile, String> {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read profile {}: {e}", path.display()))
            .and_then(|text| {
                Profile::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
            })
    };
    if let Some(path) = file {
        return read(path);
    }
    match target {
        "lambda" => Profile::builtin("aws").map_err(|e| e.to_string()),
        _ => match calibrated_profile_path().filter(|p| p.is_file()) {
            Some(path) => read(&path),
            None => Profile::builtin("local").map_err(|e| e.to_string()),
        },
    }
}

pub fn plan(args: &PlanArgs) -> u8 {
    let Ok((loaded, all, compiled)) = load_checked(&args.file) else {
        return USER_ERROR;
    };
    report(&loaded, &all, OutputFormat::Human);
    crate::count(&loaded, &all, OutputFormat::Human);
    let Some(compiled) = compiled.filter(|_| !has_errors(&all)) else {
        return USER_ERROR;
    };
    let settings = &compiled.settings;
    let target = args
        .target
        .clone()
        .or_else(|| settings.target.clone())
        .unwrap_or_else(|| "local".into());
    if target != "local" && target != "lambda" {
        eprintln!("error: unknown target `{target}`; targets are `local` and `lambda`");
        return USAGE;
    }
    let mut profile =
        match target_profile(&target, args.profile.as_deref(), args.rendezvous.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return USER_ERROR;
            }
        };
    if let Some(n) = args.functions {
        warn_above_concurrency("--functions", n, &profile);
    }
    // Runs on Lambda plan with the deployed sizes; a plan for Lambda does too when it is told
    // them (it does not ask AWS).
    if target == "lambda" {
        match flow_lambda::deployment::sizes_from_env() {
            Ok(sizes) => profile.compute.deployed_mb = sizes,
            Err(e) => {
                eprintln!("error: {e}");
                return USAGE;
            }
        }
    }
    for (value, flag) in [(args.workers, "--workers"), (args.functions, "--functions")] {
        if value == Some(0) {
            eprintln!("error: {flag} takes a positive number");
            return USAGE;
        }
    }
    let mut options = options_from(
        settings,
        args.objective,
        Fanout::of(args.workers, args.functions),
        args.memory_mb,
        args.channel,
    );
    for (value, flag) in [
        (args.budget_usd, "--budget-usd"),
        (args.deadline_s, "--deadline-s"),
    ] {
        if value.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
            eprintln!("error: {flag} takes a positive number");
            return USAGE;
        }
    }
    if let Some(usd) = args.budget_usd {
        options.objective = Objective::Budget(usd);
    }
    if let Some(s) = args.deadline_s {
        options.objective = Objective::Deadline(s);
    }
    let graph = flow_planner::ops::lower(&compiled.dag, &FileStatistics);

    if let Some(spec) = &args.sweep {
        let sweep = match Sweep::parse(spec, &profile) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: --sweep: {e}");
                return USAGE;
            }
        };
        let points = sweep::run(&graph, &profile, &options, &sweep);
        out!("{}", sweep::table(sweep.axis, &points));
        let svg_path = args.svg.clone().unwrap_or_else(|| {
            let stem = args.file.file_stem().unwrap_or_default().to_string_lossy();
            PathBuf::from(format!("{stem}.sweep.svg"))
        });
        let title = format!(
            "{} on `{}`: time and cost by {}",
            args.file.display(),
            profile.name,
            sweep.axis.name()
        );
        // The plan the planner makes by itself, marked among the swept ones.
        let chosen = flow_planner::plan_graph(graph.clone(), &profile, &options)
            .ok()
            .map(|p| (p.predicted_s, p.predicted_usd));
        return match sweep::svg(sweep.axis, &title, &points, chosen)
            .and_then(|svg| std::fs::write(&svg_path, svg).map_err(|e| e.to_string()))
        {
            Ok(()) => {
                outln!("chart written to {}", svg_path.display());
                0
            }
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", svg_path.display());
                USER_ERROR
            }
        };
    }

    match flow_planner::plan_traced(graph, &profile, &options) {
        Ok((mut plan, trace)) => {
            plan.program = Some(flow_planner::Fingerprint::of(&compiled.dag));
            if args.verbose {
                for (rule, stage) in &trace {
                    outln!("=== after {rule} ===");
                    outln!("{}", stage.to_text());
                }
            }
            match args.format {
                PlanFormat::Text if !args.verbose => out!("{}", plan.to_text()),
                PlanFormat::Text => {}
                PlanFormat::Json => outln!("{}", plan.to_json()),
                PlanFormat::Dot => out!("{}", flow_planner::render::dot(&plan)),
            }
            0
        }
        Err(e) => match flag_error(&e) {
            Some(message) => {
                eprintln!("{message}");
                USAGE
            }
            None => {
                report(&loaded, &[diagnostic(&e)], OutputFormat::Human);
                USER_ERROR
            }
        },
    }
}

/// How many functions a stage may have, as the flags say: at most N (`--workers`), or
/// exactly N in every stage that can be split (`--functions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fanout {
    AtMost(u32),
    Exactly(u32),
}

impl Fanout {
    /// The fan-out `--workers` or `--functions` asks for (clap lets only one through).
    pub fn of(workers: Option<u32>, functions: Option<u32>) -> Option<Fanout> {
        functions
            .map(Fanout::Exactly)
            .or(workers.map(Fanout::AtMost))
    }

    /// The number of functions it names.
    pub fn count(self) -> u32 {
        match self {
            Fanout::AtMost(n) | Fanout::Exactly(n) => n,
        }
    }
}

/// Says, on stderr, that `flag N` asks for more functions than `profile` runs at once, and
/// that its most is what it gets; whether it did.
pub fn warn_above_concurrency(flag: &str, asked: u32, profile: &Profile) -> bool {
    let most = profile.compute.max_concurrency.max(1);
    if asked > most {
        eprintln!(
            "warning: {flag} {asked} is more than the {most} functions the `{}` profile runs at once; {most} it is",
            profile.name
        );
    }
    asked > most
}

/// Planner options from a program's `config` with the command's flags on top.
pub fn options_from(
    settings: &flow_compiler::Settings,
    objective: Option<ObjectiveFlag>,
    fanout: Option<Fanout>,
    memory_mb: Option<u32>,
    channel: Option<Channel>,
) -> Options {
    let mut options = Options::from_settings(settings);
    if let Some(o) = objective {
        options.objective = match o {
            ObjectiveFlag::Latency => Objective::Latency,
            ObjectiveFlag::Cost => Objective::Cost,
        };
    }
    options.workers = fanout.map(Fanout::count).or(options.workers);
    options.exact_workers = matches!(fanout, Some(Fanout::Exactly(_)));
    options.memory_mb = memory_mb.or(options.memory_mb);
    options.channel = channel;
    options
}

/// A planning failure caused by a flag (an override without a hint in the program behind
/// it), as the usage error to print; `None` when the program is what cannot be planned.
pub fn flag_error(e: &PlanError) -> Option<String> {
    if e.unmet != Unmet::Override || e.span.is_some() {
        return None;
    }
    let mut message = format!("error: {}", e.message);
    if let Some(help) = &e.help {
        message.push_str(&format!("\nhint: {help}"));
    }
    Some(message)
}

/// A planning failure as a diagnostic: at the hint when there is one.
pub fn diagnostic(e: &PlanError) -> Diagnostic {
    let code = match e.unmet {
        Unmet::Constraint => Code::E0031,
        Unmet::Override => Code::E0032,
    };
    let label = match (e.unmet, e.span.is_some()) {
        (Unmet::Override, true) => "this hint",
        _ => "while planning this program",
    };
    Diagnostic::error(code, e.message.clone(), e.span.unwrap_or_default(), label)
        .with_optional_help(e.help.clone())
}
