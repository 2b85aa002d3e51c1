//! The progress display of a distributed run: one bar per stage with its tasks done and the
//! bytes its tasks sent to their channel. Shown only when stderr is a terminal.

use flow_planner::units::bytes;
use flow_runtime::distributed::{StageRecord, TaskRecord, Watch};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// One bar per stage, keyed by (job, stage).
#[derive(Default)]
pub struct Progress {
    multi: MultiProgress,
    stages: Mutex<HashMap<(usize, usize), StageBar>>,
}

struct StageBar {
    bar: ProgressBar,
    done: HashSet<usize>,
    bytes: u64,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:<40!} [{bar:24}] {pos}/{len} tasks {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Watch for Progress {
    fn stages(&self, stages: &[StageRecord]) {
        let Ok(mut map) = self.stages.lock() else {
            return;
        };
        for s in stages {
            let bar = self.multi.add(ProgressBar::new(s.tasks as u64));
            bar.set_style(style());
            bar.set_prefix(s.label());
            map.insert(
                (s.job, s.stage),
                StageBar {
                    bar,
                    done: HashSet::new(),
                    bytes: 0,
                },
            );
        }
    }

    fn task(&self, task: &TaskRecord) {
        let Ok(mut map) = self.stages.lock() else {
            return;
        };
        let Some(stage) = map.get_mut(&(task.id.job, task.id.stage)) else {
            return;
        };
        if !task.ok() {
            stage.bar.set_message(format!(
                "{} moved, retrying task {}",
                bytes(stage.bytes as f64),
                task.id.task
            ));
            return;
        }
        stage.bytes += task.bytes;
        stage.done.insert(task.id.task);
        stage.bar.set_position(stage.done.len() as u64);
        stage
            .bar
            .set_message(format!("{} moved", bytes(stage.bytes as f64)));
    }

    fn job_done(&self, job: usize) {
        let Ok(map) = self.stages.lock() else {
            return;
        };
        for ((j, _), stage) in map.iter() {
            if *j == job {
                stage.bar.finish();
            }
        }
    }
}
