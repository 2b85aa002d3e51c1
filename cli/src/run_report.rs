//! `flowc run --report PATH.json|PATH.html`: what a distributed run did. The JSON holds every
//! stage and every attempt; the HTML draws them as a timeline (one row per function), with
//! the bytes each channel moved and, per stage, the planner's predicted time next to the
//! measured one. The run's stages are the plan's, one for one (same ids, same tasks).

use flow_planner::units::{bytes, seconds, usd};
use flow_planner::{PhysicalPlan, Profile};
use flow_runtime::distributed::channels::StoreRequests;
use flow_runtime::distributed::punched::{FellBack, Links};
use flow_runtime::distributed::record::RunRecord;
use flow_runtime::distributed::{StageRecord, TaskRecord};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Version of the JSON form.
const REPORT_VERSION: u32 = 1;

/// The two forms a report takes, chosen by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Json,
    Html,
}

impl Kind {
    pub fn of(path: &Path) -> Option<Kind> {
        match path.extension()?.to_str()? {
            "json" => Some(Kind::Json),
            "html" | "htm" => Some(Kind::Html),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    version: u32,
    program: String,
    workers: usize,
    channel: &'a str,
    compression: &'a str,
    store: &'a str,
    measured_s: f64,
    predicted_s: Option<f64>,
    /// CPU seconds of `flowc` itself (checking, planning, coordinating, and whatever the
    /// coordinator runs), where it can tell; the functions' own are each stage's `cpu_s`.
    coordinator_cpu_s: Option<f64>,
    /// SHA-256 of the plan's JSON (`flowc plan --format json`): which plan the run followed.
    plan_sha256: Option<String>,
    bytes_per_channel: BTreeMap<&'a str, u64>,
    /// Invocations the platform throttled, each waited out and tried again.
    throttled: u64,
    /// Punched direct channels, when the run went through a rendezvous host.
    #[serde(skip_serializing_if = "Option::is_none")]
    punched: Option<Punched<'a>>,
    stages: Vec<StageReport<'a>>,
    tasks: &'a [TaskRecord],
}

/// What punched direct channels did in a run.
#[derive(Serialize)]
pub struct Punched<'a> {
    /// Connections punched.
    pub connections: usize,
    /// Median and 99th percentile of the time one took, from dialling the host to connected.
    pub p50_s: f64,
    pub p99_s: f64,
    /// Pairs that could not punch and moved their data through storage.
    pub fell_back: &'a [FellBack],
}

impl Punched<'_> {
    /// The summary of `links`; none if nothing was punched or fell back.
    pub fn of(links: &Links) -> Option<Punched<'_>> {
        if links.is_empty() {
            return None;
        }
        let mut times = links.punched.clone();
        times.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((times.len() as f64 - 1.0) * q).round() as usize;
            times.get(i).copied().unwrap_or(0.0)
        };
        Some(Punched {
            connections: times.len(),
            p50_s: at(0.5),
            p99_s: at(0.99),
            fell_back: &links.fell_back,
        })
    }

    /// One line for people, and one per pair that fell back.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "direct channels: {} punched (p50 {:.1} ms, p99 {:.1} ms)",
            self.connections,
            self.p50_s * 1e3,
            self.p99_s * 1e3
        );
        if !self.fell_back.is_empty() {
            let n = self.fell_back.len();
            let _ = write!(
                text,
                "; {n} pair{} fell back to storage:",
                if n == 1 { "" } else { "s" }
            );
            for f in self.fell_back {
                let _ = write!(text, "\n  {} -> {}: {}", f.from, f.to, f.reason);
            }
        }
        text
    }
}

#[derive(Serialize)]
struct StageReport<'a> {
    #[serde(flatten)]
    stage: &'a StageRecord,
    label: String,
    /// First task sent to last task answered, seconds after the run started.
    start_s: f64,
    end_s: f64,
    measured_s: f64,
    rows: u64,
    bytes: u64,
    attempts: usize,
    /// Attempts beyond one per task: tasks run again after a failure or a lost worker.
    retries: usize,
    failed_attempts: usize,
    /// The functions the plan gave the stage (its tasks, unless a flag capped the workers),
    /// and the stage's predicted duration.
    planned_functions: Option<u32>,
    predicted_s: Option<f64>,
    /// Each function's memory as planned, and what the stage's attempts (its invocations)
    /// were billed: seconds as the platform billed them where it said (Lambda's log tail),
    /// else the measured busy time rounded up to the millisecond as Lambda bills; those as
    /// GB-seconds; the store requests its tasks made; and in dollars — compute, invocation
    /// requests and store requests — next to the plan's dollars, on a target with prices.
    memory_mb: Option<u32>,
    /// The most memory any of its tasks held (the workers' peak resident memory).
    peak_mb: Option<f64>,
    /// CPU seconds its attempts spent in the workers, where they could tell.
    cpu_s: Option<f64>,
    billed_s: f64,
    /// Whether `billed_s` is the platform's own figure for every attempt.
    billed_by_platform: bool,
    billed_gb_s: f64,
    store_requests: StoreRequests,
    store_usd: Option<f64>,
    measured_usd: Option<f64>,
    predicted_usd: Option<f64>,
}

/// The report for `path`'s kind (JSON when the kind is unknown; callers check it first).
pub fn render(
    path: &Path,
    program: &Path,
    record: &RunRecord,
    plan: Option<&PhysicalPlan>,
    prices: Option<&Profile>,
) -> String {
    let report = build(program, record, plan, prices);
    match Kind::of(path) {
        Some(Kind::Html) => html(&report),
        _ => serde_json::to_string_pretty(&report)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")),
    }
}

fn build<'a>(
    program: &Path,
    record: &'a RunRecord,
    plan: Option<&PhysicalPlan>,
    prices: Option<&Profile>,
) -> Report<'a> {
    let mut bytes_per_channel = BTreeMap::new();
    for t in record.tasks.iter().filter(|t| t.ok()) {
        *bytes_per_channel.entry(t.channel.name()).or_insert(0) += t.bytes;
    }
    let stages = record
        .stages
        .iter()
        .map(|stage| {
            let tasks: Vec<&TaskRecord> = record
                .tasks
                .iter()
                .filter(|t| t.id.stage == stage.stage)
                .collect();
            let ok = || tasks.iter().filter(|t| t.ok());
            let start_s = tasks
                .iter()
                .map(|t| t.start_s)
                .fold(f64::INFINITY, f64::min);
            let end_s = tasks.iter().map(|t| t.end_s).fold(0.0, f64::max);
            let start_s = if start_s.is_finite() { start_s } else { 0.0 };
            let planned = plan.and_then(|p| p.stages.get(stage.stage));
            let memory_mb = planned.map(|s| s.memory_mb);
            let billed_s: f64 = tasks
                .iter()
                .map(|t| t.billed_s.unwrap_or((t.busy_s * 1e3).ceil() / 1e3))
                .sum();
            let billed_gb_s = f64::from(memory_mb.unwrap_or(0)) / 1024.0 * billed_s;
            let store_requests =
                tasks
                    .iter()
                    .fold(StoreRequests::default(), |a, t| StoreRequests {
                        puts: a.puts + t.store_requests.puts,
                        gets: a.gets + t.store_requests.gets,
                    });
            let store_usd = prices.map(|p| {
                store_requests.puts as f64 * p.storage.usd_per_put
                    + store_requests.gets as f64 * p.storage.usd_per_get
            });
            let measured_usd = prices.zip(memory_mb).map(|(p, m)| {
                p.compute_usd(m, billed_s)
                    + tasks.len() as f64 * p.compute.usd_per_request
                    + store_usd.unwrap_or(0.0)
            });
            StageReport {
                stage,
                label: stage.label(),
                start_s,
                end_s,
                measured_s: (end_s - start_s).max(0.0),
                rows: ok().map(|t| t.rows).sum(),
                bytes: ok().map(|t| t.bytes).sum(),
                attempts: tasks.len(),
                retries: tasks.len().saturating_sub(stage.tasks),
                failed_attempts: tasks.iter().filter(|t| !t.ok()).count(),
                planned_functions: planned.map(|s| s.functions),
                predicted_s: plan.map(|p| predicted_task_s(p, record, stage.stage)),
                memory_mb,
                peak_mb: ok().filter_map(|t| t.peak_mb).reduce(f64::max),
                cpu_s: tasks.iter().filter_map(|t| t.cpu_s).reduce(|a, b| a + b),
                billed_s,
                billed_by_platform: !tasks.is_empty() && tasks.iter().all(|t| t.billed_s.is_some()),
                billed_gb_s,
                store_requests,
                store_usd,
                measured_usd,
                predicted_usd: planned
                    .filter(|_| prices.is_some())
                    .map(|s| s.predicted_usd),
            }
        })
        .collect();
    Report {
        version: REPORT_VERSION,
        program: program.display().to_string(),
        workers: record.workers,
        channel: &record.channel,
        compression: record.compression.name(),
        store: &record.store,
        measured_s: record.seconds,
        predicted_s: plan.map(|p| p.predicted_s),
        coordinator_cpu_s: flow_runtime::distributed::cpu::seconds(),
        plan_sha256: plan.map(PhysicalPlan::hash),
        bytes_per_channel,
        throttled: record.throttled,
        punched: Punched::of(&record.links),
        stages,
        tasks: &record.tasks,
    }
}

/// The planned time of a stage's task: its own, and that of every stage fused into it (the
/// plan counts a fused stage's time where it puts the stage; the runtime computes it in the
/// consumer's task, which is what is measured).
fn predicted_task_s(plan: &PhysicalPlan, record: &RunRecord, stage: usize) -> f64 {
    let own = plan
        .stages
        .get(stage)
        .map_or(0.0, |s| (s.finish_s - s.start_s).max(0.0));
    let fused: f64 = record
        .stages
        .iter()
        .filter(|s| s.computed_in == Some(stage) && s.stage != stage)
        .map(|s| predicted_task_s(plan, record, s.stage))
        .sum();
    own + fused
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn hue(job: usize, stage: usize) -> usize {
    (job * 7 + stage) * 47 % 360
}

fn html(report: &Report) -> String {
    let mut out = String::new();
    let title = format!("flow run of {}", escape(&report.program));
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>\
body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}\
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
.failed{{fill:#d33}}svg text{{font:11px system-ui,sans-serif}}</style></head><body>\n<h1>{title}</h1>\n"
    );
    let predicted = report.predicted_s.map_or("no plan".to_string(), seconds);
    let _ = writeln!(
        out,
        "<p>{} workers, {} channel, compression {}, store <code>{}</code>. Measured {}; the planner predicted {}.</p>",
        report.workers,
        report.channel,
        report.compression,
        escape(report.store),
        seconds(report.measured_s),
        predicted
    );
    out.push_str("<h2>Timeline</h2>\n");
    timeline(&mut out, report);
    out.push_str("<h2>Bytes per channel</h2>\n<table><tr><th>channel</th><th>bytes</th></tr>\n");
    for (channel, n) in &report.bytes_per_channel {
        let _ = writeln!(
            out,
            "<tr><td>{channel}</td><td>{}</td></tr>",
            bytes(*n as f64)
        );
    }
    out.push_str(
        "</table>\n<h2>Stages</h2>\n<table><tr><th>stage</th><th>tasks</th><th>output</th>\
<th>rows</th><th>bytes</th><th>retries</th><th>measured</th><th>runs in</th><th>predicted</th>\
<th>GB-s billed</th><th>cost measured</th><th>cost predicted</th></tr>\n",
    );
    for s in &report.stages {
        let _ = writeln!(
            out,
            "<tr><td><span style=\"color:hsl({},60%,40%)\">■</span> {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{:.4}</td><td>{}</td><td>{}</td></tr>",
            hue(s.stage.job, s.stage.stage),
            escape(&s.label),
            s.stage.tasks,
            s.stage.output,
            s.rows,
            bytes(s.bytes as f64),
            s.retries,
            if s.failed_attempts > 0 {
                format!(" ({} attempts failed)", s.failed_attempts)
            } else {
                String::new()
            },
            seconds(s.measured_s),
            s.stage.runs_in,
            s.predicted_s.map_or("—".into(), seconds),
            s.memory_mb.map_or("—".into(), |m| format!("{m} MB")),
            s.peak_mb.map_or("—".into(), |m| format!("{m:.0} MB")),
            s.billed_gb_s,
            s.measured_usd.map_or("—".into(), usd),
            s.predicted_usd.map_or("—".into(), usd),
        );
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

/// One row per worker; one bar per attempt, coloured by stage, red when it failed.
fn timeline(out: &mut String, report: &Report) {
    // Every function started gets a row, busy or not; replacements add rows below.
    let workers = report
        .tasks
        .iter()
        .map(|t| t.worker + 1)
        .max()
        .unwrap_or(0)
        .max(report.workers);
    let end = report
        .tasks
        .iter()
        .map(|t| t.end_s)
        .fold(report.measured_s, f64::max)
        .max(1e-3);
    let (left, width, row) = (90.0, 900.0, 22.0);
    let height = row * workers as f64 + 30.0;
    let _ = writeln!(
        out,
        "<svg width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"timeline of tasks per worker\">",
        left + width + 10.0
    );
    // Before the first task: the workers starting and the first job being planned.
    let first = report
        .tasks
        .iter()
        .map(|t| t.start_s)
        .fold(f64::INFINITY, f64::min);
    if first.is_finite() && first > 0.0 {
        let _ = writeln!(
            out,
            "<rect x=\"{left}\" y=\"0\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#eee\"><title>start-up: workers starting, the first job planned</title></rect><text x=\"{}\" y=\"{:.1}\">start-up {}</text>",
            width * first / end,
            row * workers as f64,
            left + 2.0,
            row * workers as f64 - 4.0,
            seconds(first)
        );
    }
    for w in 0..workers {
        let y = row * w as f64;
        let _ = writeln!(
            out,
            "<text x=\"0\" y=\"{}\">function {w}</text>",
            y + row * 0.7
        );
    }
    for t in report.tasks {
        let x = left + width * t.start_s / end;
        let w = (width * (t.end_s - t.start_s) / end).max(1.0);
        let y = row * t.worker as f64 + 2.0;
        let class = if t.ok() { "" } else { " class=\"failed\"" };
        let what = match &t.error {
            None => format!("{} rows, {}", t.rows, bytes(t.bytes as f64)),
            Some(e) => format!("failed: {}", escape(e)),
        };
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"hsl({},60%,55%)\"{class}><title>job {} stage {} task {} attempt {}: {} – {} ({what})</title></rect>",
            row - 4.0,
            hue(t.id.job, t.id.stage),
            t.id.job,
            t.id.stage,
            t.id.task,
            t.id.attempt,
            seconds(t.start_s),
            seconds(t.end_s),
        );
    }
    let axis = row * workers as f64 + 15.0;
    let _ = writeln!(
        out,
        "<text x=\"{left}\" y=\"{axis}\">0 s</text><text x=\"{}\" y=\"{axis}\" text-anchor=\"end\">{}</text>\n</svg>",
        left + width,
        seconds(end)
    );
}
