//! Printed forms of a physical plan: text for people (what snapshot tests compare) and DOT
//! for drawing the stages and their channels.

use crate::ops::Channel;
use crate::physical::{Exchange, PhysicalPlan, Stage};
use crate::units;
use std::fmt::Write as _;

/// The plan as a readable listing: totals, then each stage with its operators and the
/// exchanges leaving it, every choice followed by its reason.
pub fn text(plan: &PhysicalPlan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan for `{}` ({}), objective: {}",
        plan.profile,
        plan.profile_origin,
        plan.objective.describe()
    );
    if plan.stages.iter().all(|s| s.functions > 0) && !plan.stages.is_empty() {
        let _ = write!(
            out,
            "predicted: {}, {}",
            units::seconds(plan.predicted_s),
            units::usd(plan.predicted_usd)
        );
        if plan.rendezvous_usd > 0.0 {
            let _ = write!(
                out,
                " (rendezvous host {})",
                units::usd(plan.rendezvous_usd)
            );
        }
        let functions: u64 = plan
            .stages
            .iter()
            .filter(|s| s.runs_in == s.id)
            .map(|s| u64::from(s.functions))
            .sum();
        let _ = writeln!(
            out,
            "; {} stage{}, {functions} function{}",
            plan.stages.len(),
            plural(plan.stages.len() as u64),
            plural(functions)
        );
        if let Some(t) = &plan.time {
            let _ = writeln!(
                out,
                "time: start-up {}, {} job{} one after another {} ({} of it the coordinator's overhead and planning), teardown {}",
                units::seconds(t.start_up_s),
                t.jobs,
                plural(u64::from(t.jobs)),
                units::seconds(t.jobs_fixed_s + t.jobs_work_s),
                units::seconds(t.jobs_fixed_s),
                units::seconds(t.teardown_s)
            );
        }
    }
    for note in &plan.notes {
        let _ = writeln!(out, "note: {note}");
    }
    if plan.stages.is_empty() {
        let _ = writeln!(out);
        for op in &plan.ops {
            let _ = writeln!(out, "#{} {}{}", op.id, op.op.kind, inputs(&op.op.inputs));
        }
        return out;
    }
    for stage in &plan.stages {
        let _ = writeln!(out);
        stage_text(&mut out, plan, stage);
    }
    out
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn inputs(ids: &[usize]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = ids.iter().map(|i| format!("#{i}")).collect();
        format!(" <- {}", list.join(", "))
    }
}

fn stage_text(out: &mut String, plan: &PhysicalPlan, stage: &Stage) {
    let _ = write!(out, "stage {}", stage.id);
    if stage.functions == 0 {
        let kind = if stage.partitioned {
            "partitioned"
        } else {
            "one function"
        };
        let _ = writeln!(out, " ({kind}; not sized yet)");
    } else {
        let _ = writeln!(
            out,
            ": {} × {} MB ({:.2} vCPU{}), task {}, {}, runs {} → {}",
            stage.functions,
            stage.memory_mb,
            stage.vcpus,
            if stage.vcpus == 1.0 { "" } else { "s" },
            units::seconds(stage.predicted_s),
            units::usd(stage.predicted_usd),
            units::seconds(stage.start_s),
            units::seconds(stage.finish_s),
        );
        let _ = writeln!(
            out,
            "  why: {}{}",
            stage.reason,
            if stage.forced { " [override]" } else { "" }
        );
        if stage.runs_in != stage.id {
            let _ = writeln!(out, "  runs in the function(s) of stage {}", stage.runs_in);
        }
        if stage.pipelined {
            let _ = writeln!(
                out,
                "  starts with its producers and reads them as they write"
            );
        }
    }
    for x in plan.exchanges.iter().filter(|x| x.to == stage.id) {
        let _ = writeln!(
            out,
            "  in:  {} from stage {} (#{} → #{})",
            x.pattern.name(),
            x.from,
            x.producer,
            x.consumer
        );
    }
    for id in &stage.ops {
        let op = &plan.ops[*id];
        let _ = writeln!(
            out,
            "  #{} {}{}  → {} rows, {}",
            op.id,
            op.op.kind,
            inputs(&op.op.inputs),
            units::count(op.rows),
            units::bytes(op.bytes)
        );
    }
    if let Some(c) = &stage.collective {
        let every = if c.every == 1 {
            String::new()
        } else {
            format!(" every {} steps", c.every)
        };
        let _ = writeln!(
            out,
            "  sync: {} ({}, {}){every}, {} steps",
            crate::physical::sync_name(c.sync),
            c.algorithm.name(),
            c.channel.name(),
            c.steps
        );
        let _ = writeln!(out, "    why: {}", c.reason);
    }
    if let Some(b) = &stage.batching {
        let _ = writeln!(
            out,
            "  batching: {} rows per call over {} function(s)",
            b.batch, b.fan_out
        );
        let _ = writeln!(out, "    why: {}", b.reason);
    }
    for x in plan.exchanges.iter().filter(|x| x.from == stage.id) {
        exchange_text(out, x);
    }
}

fn exchange_text(out: &mut String, x: &Exchange) {
    let keys = x
        .keys
        .map(|k| format!(" on {k} key(s)"))
        .unwrap_or_default();
    let partial = if x.partial {
        " of partial aggregates"
    } else {
        ""
    };
    let _ = write!(
        out,
        "  out: {}{keys}{partial} to stage {}, {}",
        x.pattern.name(),
        x.to,
        units::bytes(x.bytes)
    );
    if x.reason.is_empty() {
        let _ = writeln!(out, " (channel not chosen yet)");
        return;
    }
    let _ = writeln!(
        out,
        " {}, {}, {}",
        x.channel.name(),
        units::seconds(x.predicted_s),
        units::usd(x.predicted_usd)
    );
    let _ = writeln!(
        out,
        "    why: {}{}",
        x.reason,
        if x.forced { " [override]" } else { "" }
    );
}

/// The plan as a Graphviz digraph: one box per stage, one edge per exchange.
pub fn dot(plan: &PhysicalPlan) -> String {
    let mut out = String::from(
        "digraph plan {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for s in &plan.stages {
        let ops: Vec<String> = s
            .ops
            .iter()
            .map(|id| escape(&plan.ops[*id].op.kind.to_string()))
            .collect();
        let _ = writeln!(
            out,
            "  s{} [label=\"stage {}\\n{} × {} MB, {}\\n{}\"];",
            s.id,
            s.id,
            s.functions,
            s.memory_mb,
            units::seconds(s.predicted_s),
            ops.join("\\n")
        );
    }
    for x in &plan.exchanges {
        let style = match x.channel {
            Channel::Direct => "solid",
            Channel::Storage => "dashed",
            Channel::Fused => "dotted",
        };
        let _ = writeln!(
            out,
            "  s{} -> s{} [label=\"{} {}\\n{}, {}\", style={style}];",
            x.from,
            x.to,
            x.pattern.name(),
            x.channel.name(),
            units::bytes(x.bytes),
            units::seconds(x.predicted_s)
        );
    }
    out.push_str("}\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
