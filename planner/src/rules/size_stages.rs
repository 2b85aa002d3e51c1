//! `size_stages`: chooses, stage by stage from the sources on, how many functions run it and
//! with how much memory (memory buys vCPUs), by the objective.
//!
//! Candidates are powers of two up to the `workers` bound (and the concurrency limit), and
//! the count that gives each function a fair share of the rows and the work (see
//! [`StageWork::useful_functions`](crate::work::StageWork::useful_functions)), times the memory sizes worth having (powers of two and whole vCPUs). A candidate is
//! infeasible when a task would need more memory than it has or run longer than a function
//! may, so a task over a limit is split over more functions. Each candidate is priced with
//! the best channel for every exchange feeding it; the fastest (or cheapest) wins. Hints
//! (`workers`, `memory_mb`) and flags fix a choice; one that cannot work is an error. A
//! stage pinned to its consumer's size ([`Pin`](super::Pin), the planner's second pass) takes
//! that size when it is feasible.

use super::{Planning, Rule, SAME_COST_RATIO, SAME_TIME_RATIO, SAME_TIME_S, Score};
use crate::candidate::{self, Candidate};
use crate::options::PlanError;
use crate::units;
use crate::work::{StageWork, stage_work};

pub struct SizeStages;

impl Rule for SizeStages {
    fn name(&self) -> &'static str {
        "size_stages"
    }

    fn apply(&self, p: &mut Planning) -> Result<(), PlanError> {
        p.reset_timeline();
        p.chosen.clear();
        for stage in 0..p.plan.stages.len() {
            let best = size(p, stage)?;
            candidate::commit(p, &best.0);
            p.chosen.push(best.0.clone());
            let s = &mut p.plan.stages[stage];
            s.functions = best.0.functions;
            s.memory_mb = best.0.memory_mb;
            s.vcpus = p.profile.vcpus_when(best.0.memory_mb, best.0.functions);
            s.predicted_s = best.0.task_s;
            s.start_s = best.0.start_s;
            s.finish_s = best.0.finish_s;
            s.needs_mb = best.0.needs_mb;
            s.runs_in = best.0.runs_in;
            s.pipelined = best.0.pipelined;
            s.forced = best.1;
            s.reason = best.2;
        }
        Ok(())
    }
}

/// The stage's hints, checked against each other.
fn hints(p: &Planning, stage: usize) -> Result<(Option<u32>, Option<u32>), PlanError> {
    let mut workers = None;
    let mut memory = None;
    for id in &p.plan.stages[stage].ops {
        let h = &p.graph.ops[*id].hints;
        for (value, slot, what) in [
            (h.workers, &mut workers, "workers"),
            (h.memory_mb, &mut memory, "memory_mb"),
        ] {
            if let Some(v) = value {
                if slot.is_some_and(|s| s != v) {
                    return Err(PlanError::override_(
                        format!("two steps that run in the same stage ask for different `{what}`"),
                        Some(h.span),
                    )
                    .with_help("give the hint once, on the last step of the stage"));
                }
                *slot = Some(v);
            }
        }
    }
    Ok((workers, memory))
}

fn size(p: &Planning, stage: usize) -> Result<(Candidate, bool, String), PlanError> {
    let work = stage_work(
        p.profile,
        &p.graph,
        &p.sizes,
        &p.plan.stages[stage].ops,
        &p.cuts,
    );
    let (hint_workers, hint_memory) = hints(p, stage)?;
    let hinted = hint_workers.is_some() || hint_memory.is_some();
    let memory = memory_candidates(p, stage, hint_memory)?;
    let functions = function_candidates(p, stage, &work, hint_workers)?;
    let forced = hinted || p.options.memory_mb.is_some() || p.options.exact_workers;
    // A memory size the planner's own search tries sizes like one asked for, but is no
    // override of the person's.
    let asked = forced && !(p.options.searched && !hinted && !p.options.exact_workers);

    // A pin (see `Pin`) replaces the search when the stage has no size of its own to honour.
    let pin = p.pins.get(stage).copied().flatten().filter(|pin| {
        !forced
            && functions.contains(&pin.functions)
            && memory.contains(&pin.memory_mb)
            && candidate::evaluate(p, stage, &work, pin.functions, pin.memory_mb).is_ok()
    });
    let (functions, memory) = match pin {
        Some(pin) => (vec![pin.functions], vec![pin.memory_mb]),
        None => (functions, memory),
    };
    let search = search(p, stage, &work, &functions, &memory);
    let Some(best) = search.best.clone() else {
        return Err(candidate::unplannable(p, stage, &search.last_error, forced));
    };
    let reason = if let Some(pin) = pin {
        format!(
            "sized like stage {}, so that it runs in the same function{}",
            pin.consumer,
            if pin.functions == 1 { "" } else { "s" }
        )
    } else if hinted {
        "as the hint on the step asks".to_string()
    } else if asked {
        "as the flags ask".to_string()
    } else {
        search.reason(p, p.plan.stages[stage].partitioned)
    };
    Ok((best, asked, reason))
}

/// Where a hint on one of the stage's steps is written, for errors.
fn hint_span(p: &Planning, stage: usize) -> Option<flow_lang::Span> {
    p.plan.stages[stage]
        .ops
        .iter()
        .map(|id| &p.graph.ops[*id].hints)
        .find(|h| h.workers.is_some() || h.memory_mb.is_some())
        .map(|h| h.span)
}

/// The memory sizes a stage may have: the hint's or the flag's, else every size the profile
/// offers worth having.
fn memory_candidates(
    p: &Planning,
    stage: usize,
    hint_memory: Option<u32>,
) -> Result<Vec<u32>, PlanError> {
    let (profile, c) = (p.profile, &p.profile.compute);
    match hint_memory.or(p.options.memory_mb) {
        Some(m) if m < c.memory_min_mb || m > c.memory_max_mb => Err(PlanError::override_(
            format!(
                "`memory_mb = {m}` is outside what `{}` offers ({} to {} MB)",
                profile.name, c.memory_min_mb, c.memory_max_mb
            ),
            hint_memory.and(hint_span(p, stage)),
        )),
        Some(m) => Ok(vec![m]),
        None => Ok(profile.memory_candidates()),
    }
}

/// The function counts a stage may have: the hint's, one for a stage that cannot be split,
/// else powers of two up to the bound, the bound, and the count that gives each function a
/// fair share of the rows and work ([`StageWork::useful_functions`]). All are priced:
/// whether another function pays for its start-up is the cost model's to say.
fn function_candidates(
    p: &Planning,
    stage: usize,
    work: &StageWork,
    hint_workers: Option<u32>,
) -> Result<Vec<u32>, PlanError> {
    let (profile, c) = (p.profile, &p.profile.compute);
    let partitioned = p.plan.stages[stage].partitioned;
    match hint_workers {
        Some(w) if w > 1 && !partitioned => Err(PlanError::override_(
            format!(
                "`workers = {w}` cannot be honoured: stage {stage} ({}) reads all its rows in one function",
                candidate::describe_stage(p, stage)
            ),
            hint_span(p, stage),
        )
        .with_help("a global sort, `take`, `save`, `show` or `evaluate` gathers its input; put the hint on an earlier step")),
        Some(w) if w > c.max_concurrency => Err(PlanError::override_(
            format!(
                "`workers = {w}` is more than the {} functions `{}` runs at once",
                c.max_concurrency, profile.name
            ),
            hint_span(p, stage),
        )),
        Some(w) => Ok(vec![w]),
        None if !partitioned => Ok(vec![1]),
        None if p.options.exact_workers => Ok(vec![
            p.options.workers.unwrap_or(1).clamp(1, c.max_concurrency),
        ]),
        None => {
            let bound = p
                .options
                .workers
                .unwrap_or(c.max_concurrency)
                .min(c.max_concurrency)
                .max(1);
            let cap = bound.min(work.useful_functions(profile));
            let mut n = Vec::new();
            let mut k = 1u32;
            while k < cap {
                n.push(k);
                k = k.saturating_mul(2);
            }
            n.push(cap);
            let mut k = cap.saturating_mul(2);
            while k <= bound {
                n.push(k);
                k = k.saturating_mul(2);
            }
            if *n.last().unwrap_or(&1) != bound {
                n.push(bound);
            }
            Ok(n)
        }
    }
}

/// What searching a stage's sizes found.
struct Search {
    best: Option<Candidate>,
    /// Every feasible size's (functions, memory, finish, cost), to say what the others
    /// would do.
    priced: Vec<(u32, u32, f64, f64)>,
    feasible: usize,
    considered: usize,
    first_feasible_n: Option<u32>,
    first_error: Option<String>,
    last_error: String,
}

impl Search {
    /// Why the search chose what it chose, in one line.
    fn reason(&self, p: &Planning, partitioned: bool) -> String {
        if self.considered == 1 {
            return if partitioned {
                "the only size worth trying".to_string()
            } else {
                "one function: the stage reads all its input in one place".to_string()
            };
        }
        let next = self.next_best(p);
        let choices = format!(
            "{} feasible choice{}",
            self.feasible,
            if self.feasible == 1 { "" } else { "s" }
        );
        let mut r = match (&next, p.score) {
            // The next best is ahead on the objective's own measure by less than counts:
            // the choice won on the other one.
            (Some((_, true)), Score::Latency) => format!(
                "the cheapest of the {choices} that finish as soon as any (within {}% or {})",
                SAME_TIME_RATIO * 100.0,
                units::seconds(SAME_TIME_S)
            ),
            (Some((_, true)), Score::Cost) => format!(
                "the fastest of the {choices} that cost as little as any (within {}%)",
                SAME_COST_RATIO * 100.0
            ),
            _ => format!("the {} of {choices}", p.score.describe()),
        };
        if let Some((other, _)) = next {
            r.push_str(&format!("; {other}"));
        }
        if let (Some(n), Some(why)) = (self.first_feasible_n.filter(|n| *n > 1), &self.first_error)
        {
            r.push_str(&format!("; with fewer than {n} functions {why}"));
        }
        r
    }

    /// What the next best size would do instead, in words: "2 × 128 MB would finish
    /// 0.31 ms later"; and whether it is ahead on the objective's own measure (by less than
    /// what counts as a difference).
    fn next_best(&self, p: &Planning) -> Option<(String, bool)> {
        let best = self.best.as_ref()?;
        let (n, m, finish, usd) = self
            .priced
            .iter()
            .filter(|(n, m, ..)| (*n, *m) != (best.functions, best.memory_mb))
            .copied()
            .reduce(|a, b| {
                if p.score.better((b.2, b.3), (a.2, a.3)) {
                    b
                } else {
                    a
                }
            })?;
        // Differences the objective treats as ties are still shown as they are.
        let slack = 1e-6;
        let dt = finish - best.finish_s;
        let dc = usd - best.usd;
        let time = if dt > slack {
            format!("finish {} later", units::seconds(dt))
        } else if dt < -slack {
            format!("finish {} sooner", units::seconds(-dt))
        } else {
            "finish as soon".to_string()
        };
        let cost = if dc > 1e-15 {
            format!(" and cost {} more", units::usd(dc))
        } else if dc < -1e-15 {
            format!(" and cost {} less", units::usd(-dc))
        } else {
            String::new()
        };
        if dt.abs() <= slack && dc.abs() <= 1e-15 {
            return Some((
                format!("{n} × {m} MB would do as well (a tie keeps the first size tried)"),
                false,
            ));
        }
        let ahead = match p.score {
            Score::Latency => dt < -slack,
            Score::Cost => dc < -1e-15,
            Score::Weighted(_) => false,
        };
        Some((
            format!("the next best, {n} × {m} MB, would {time}{cost}"),
            ahead,
        ))
    }
}

/// Prices every candidate size and keeps the best by the objective.
fn search(
    p: &Planning,
    stage: usize,
    work: &StageWork,
    functions: &[u32],
    memory: &[u32],
) -> Search {
    let c = &p.profile.compute;
    let mut found = Search {
        best: None,
        priced: Vec::new(),
        feasible: 0,
        considered: 0,
        first_feasible_n: None,
        first_error: None,
        last_error: String::new(),
    };
    for &n in functions {
        for &m in memory {
            // Every exchange forced onto direct channels needs its producers and consumers
            // alive at once: on one machine, a stage may take at most half of it.
            if p.options.channel == Some(crate::ops::Channel::Direct)
                && let Some(total) = c.shared_memory_mb
                && 2 * u64::from(n) * u64::from(m) > u64::from(total)
                && m > c.memory_min_mb
            {
                continue;
            }
            found.considered += 1;
            match candidate::evaluate(p, stage, work, n, m) {
                Ok(cand) => {
                    found.feasible += 1;
                    found.priced.push((n, m, cand.finish_s, cand.usd));
                    found.first_feasible_n.get_or_insert(n);
                    if found.best.as_ref().is_none_or(|b| {
                        p.score
                            .better((cand.finish_s, cand.usd), (b.finish_s, b.usd))
                    }) {
                        found.best = Some(cand);
                    }
                }
                Err(why) => {
                    found.last_error = format!("with {n} function(s) of {m} MB, {why}");
                    if found.first_feasible_n.is_none() {
                        found.first_error = Some(why);
                    }
                }
            }
        }
    }
    found
}
