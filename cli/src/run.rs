//! `flowc run` and `flowc worker`: runs a program in this process, or across worker processes
//! as the planner (or the flags) decide.

use crate::plan::{ChannelFlag, ObjectiveFlag, diagnostic, options_from, profile};
use crate::{OutputFormat, USER_ERROR, diagnostics, load, report};
use flow_compiler::Compiled;
use flow_lang::diagnostic::has_errors;
use flow_planner::Channel;
use flow_runtime::distributed::auth::Secret;
use flow_runtime::distributed::store::default_store;
use flow_runtime::distributed::worker::{WorkerArgs, serve};
use flow_runtime::distributed::{ChannelKind, ClusterOptions};
use flow_runtime::{Cluster, FileStatistics, RunOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the flags of a distributed run ask for.
pub struct Request {
    pub workers: Option<u32>,
    pub channel: Option<ChannelFlag>,
    pub objective: Option<ObjectiveFlag>,
    pub memory_mb: Option<u32>,
    pub store: Option<String>,
}

/// Attempts a task gets before a run fails.
const MAX_ATTEMPTS: u32 = 4;

pub fn run(path: &Path, format: OutputFormat, request: Option<Request>) -> u8 {
    let Ok(loaded) = load(path) else {
        return USER_ERROR;
    };
    let (all, compiled) = diagnostics(&loaded, path);
    report(&loaded, &all, format);
    let Some(compiled) = compiled.filter(|_| !has_errors(&all)) else {
        return USER_ERROR;
    };
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let cluster = match request {
        None => None,
        Some(request) => match cluster(&compiled, request) {
            Ok(c) => Some(c),
            Err(d) => {
                report(&loaded, &[d], format);
                return USER_ERROR;
            }
        },
    };
    let options = RunOptions {
        base_dir: base,
        partitions: None,
        cluster,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match flow_runtime::run(&compiled, &options, &mut out) {
        Ok(summary) => {
            for (file, rows) in summary.saved {
                let _ = writeln!(out, "saved {rows} rows to {}", file.display());
            }
            0
        }
        Err(d) => {
            report(&loaded, &[d], format);
            USER_ERROR
        }
    }
}

/// Workers and channel for a distributed run: the flags where given, else the plan's choice
/// under the local profile.
fn cluster(compiled: &Compiled, request: Request) -> Result<Cluster, flow_lang::Diagnostic> {
    let exe = std::env::current_exe().map_err(|e| {
        flow_lang::Diagnostic::error(
            flow_lang::Code::E0029,
            format!("cannot find the flowc executable to start workers: {e}"),
            flow_lang::Span::default(),
            "while starting the run",
        )
    })?;
    let profile = profile("local", None).map_err(|e| {
        flow_lang::Diagnostic::error(
            flow_lang::Code::E0029,
            e,
            flow_lang::Span::default(),
            "while planning the run",
        )
    })?;
    let options = options_from(
        &compiled.settings,
        request.objective,
        request.workers,
        request.memory_mb,
        request.channel,
    );
    let graph = flow_planner::ops::lower(&compiled.dag, &FileStatistics);
    let plan = flow_planner::plan_graph(graph, &profile, &options).map_err(|e| diagnostic(&e))?;
    let workers = request.workers.unwrap_or_else(|| {
        plan.stages
            .iter()
            .map(|s| s.functions)
            .max()
            .unwrap_or(1)
            .clamp(1, 64)
    });
    let channel = match request.channel {
        Some(ChannelFlag::Direct) => ChannelKind::Direct,
        Some(ChannelFlag::Storage) => ChannelKind::Storage,
        None => {
            let storage = plan
                .exchanges
                .iter()
                .filter(|e| e.channel == Channel::Storage)
                .count();
            let direct = plan
                .exchanges
                .iter()
                .filter(|e| e.channel == Channel::Direct)
                .count();
            if storage > direct {
                ChannelKind::Storage
            } else {
                ChannelKind::Direct
            }
        }
    };
    Ok(Cluster {
        options: ClusterOptions {
            workers,
            channel,
            store: request.store.unwrap_or_else(default_store),
            max_attempts: MAX_ATTEMPTS,
        },
        exe,
    })
}

pub fn worker(connect: String, store: String, prefix: String) -> u8 {
    let Some(secret) = Secret::from_env() else {
        eprintln!(
            "error: `flowc worker` is started by `flowc run` for a distributed run and needs the run's secret in {}",
            flow_runtime::distributed::auth::SECRET_ENV
        );
        return crate::USAGE;
    };
    match serve(
        &WorkerArgs {
            connect,
            store,
            prefix,
        },
        secret,
    ) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: worker: {e}");
            USER_ERROR
        }
    }
}
