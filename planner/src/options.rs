//! What the user asks of a plan: the objective, bounds and overrides, from the program's
//! `config` block and the command line; and the error when the plan cannot honour them.

use crate::ops::Channel;
use crate::physical::Objective;
use flow_compiler::Settings;
use flow_lang::Span;
use std::fmt;

/// Choices the planner must honour.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// What the plan optimises.
    pub objective: Objective,
    /// Upper bound of functions per stage (`workers`).
    pub workers: Option<u32>,
    /// Use exactly `workers` functions in every stage that can be split (for simulations
    /// that fix every choice; `flowc plan --workers` and sweeps give an upper bound).
    pub exact_workers: bool,
    /// Memory of every function (`memory_mb`).
    pub memory_mb: Option<u32>,
    /// Channel of every exchange between functions (`--channel`).
    pub channel: Option<Channel>,
    /// Whether `workers` and `memory_mb` are bounds the planner's own search tries rather
    /// than ones asked for (stages sized under them are not overrides).
    pub searched: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            objective: Objective::Latency,
            workers: None,
            exact_workers: false,
            memory_mb: None,
            channel: None,
            searched: false,
        }
    }
}

impl Options {
    /// Options from a program's `config` block. A budget or deadline turns the objective
    /// into the matching constraint.
    pub fn from_settings(settings: &Settings) -> Options {
        let objective = match (settings.budget_usd, settings.deadline_s) {
            (Some(usd), _) => Objective::Budget(usd),
            (None, Some(s)) => Objective::Deadline(s),
            _ if settings.objective.as_deref() == Some("cost") => Objective::Cost,
            _ => Objective::Latency,
        };
        Options {
            objective,
            workers: settings.workers,
            exact_workers: false,
            memory_mb: settings.memory_mb,
            channel: None,
            searched: false,
        }
    }
}

/// What kind of demand could not be met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmet {
    /// A limit of the target or a budget or deadline.
    Constraint,
    /// A hint in the program or a flag.
    Override,
}

/// Why no plan exists: the demand, the limit it breaks, and what would help.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanError {
    /// Whether a limit or an override could not be met.
    pub unmet: Unmet,
    /// The demand and the limit it breaks, as a sentence.
    pub message: String,
    /// The hint the error is about, when it is written in the program.
    pub span: Option<Span>,
    /// What would help.
    pub help: Option<String>,
}

impl PlanError {
    /// An error about a limit, a budget or a deadline.
    pub fn constraint(message: impl Into<String>) -> PlanError {
        PlanError {
            unmet: Unmet::Constraint,
            message: message.into(),
            span: None,
            help: None,
        }
    }

    /// An error about a hint or flag; `span` is where the hint is written.
    pub fn override_(message: impl Into<String>, span: Option<Span>) -> PlanError {
        PlanError {
            unmet: Unmet::Override,
            message: message.into(),
            span: span.filter(|s| *s != Span::default()),
            help: None,
        }
    }

    /// Adds what would help.
    pub fn with_help(mut self, help: impl Into<String>) -> PlanError {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, " ({help})")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanError {}
