//! `predict`: the final timeline and bill. Every stage starts when its inputs have arrived
//! (stages after the first are started early, so only the first pays a cold start on the
//! critical path) and finishes one task later; the plan takes as long as its last stage. The
//! cost adds every function's GB-seconds and requests, every exchange, and, when any channel
//! is direct, the rendezvous host once per job (not per message) for as long as peers are
//! being introduced, at least a minute.

use super::{Planning, Rule};
use crate::ops::Channel;
use crate::options::PlanError;

/// EC2 bills at least a minute per start.
pub const RENDEZVOUS_MIN_S: f64 = 60.0;

pub struct Predict;

impl Rule for Predict {
    fn name(&self) -> &'static str {
        "predict"
    }

    fn apply(&self, p: &mut Planning) -> Result<(), PlanError> {
        let mut usd = 0.0;
        let mut end: f64 = 0.0;
        for (stage, c) in p.chosen.iter().enumerate() {
            usd += c.usd;
            end = end.max(c.finish_s);
            p.plan.stages[stage].predicted_usd = c.compute_usd;
        }
        // The rendezvous host only introduces peers: it runs from the first direct
        // exchange's producers starting to the last one's consumers starting (and through
        // training that exchanges over direct channels), billed for at least a minute.
        let stages = &p.plan.stages;
        let mut window: Option<(f64, f64)> = None;
        let mut widen = |from: f64, to: f64| {
            window = Some(window.map_or((from, to), |(a, b)| (a.min(from), b.max(to))));
        };
        for x in p
            .plan
            .exchanges
            .iter()
            .filter(|x| x.channel == Channel::Direct)
        {
            widen(stages[x.from].start_s, stages[x.to].start_s);
        }
        for s in stages {
            if s.collective
                .as_ref()
                .is_some_and(|c| c.channel == Channel::Direct)
            {
                widen(s.start_s, s.finish_s);
            }
        }
        p.plan.rendezvous_usd = window.map_or(0.0, |(a, b)| {
            p.profile.direct.rendezvous_usd_per_hour * (b - a).max(RENDEZVOUS_MIN_S) / 3600.0
        });
        p.plan.predicted_s = end;
        p.plan.predicted_usd = usd + p.plan.rendezvous_usd;
        Ok(())
    }
}
