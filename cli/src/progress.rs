//! The progress display of a distributed run: one bar per stage with its tasks done and the
//! bytes its tasks sent to their channel. Shown only when stderr is a terminal. What the run
//! prints while bars are drawn (`show`'s tables) goes above them, whole lines at a time
//! ([`Above`]), so a redraw never erases it.

use flow_planner::units::bytes;
use flow_runtime::distributed::{StageRecord, TaskRecord, Watch};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::Mutex;

/// One bar per stage, keyed by (job, stage).
#[derive(Default)]
pub struct Progress {
    multi: MultiProgress,
    stages: Mutex<HashMap<(usize, usize), StageBar>>,
    /// Which sink runs, above the stages' bars (the only line of a one-process run).
    sink: Mutex<Option<ProgressBar>>,
}

struct StageBar {
    bar: ProgressBar,
    done: HashSet<usize>,
    bytes: u64,
}

impl Progress {
    /// A writer over `inner` whose lines are printed above the bars.
    pub fn above<W: Write>(&self, inner: W) -> Above<W> {
        Above {
            multi: self.multi.clone(),
            inner,
            pending: Vec::new(),
        }
    }
}

/// Writes whole lines to `inner` with the bars taken down and drawn again after; a partial
/// line waits for its end (or a flush).
pub struct Above<W: Write> {
    multi: MultiProgress,
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> Above<W> {
    fn write_pending(&mut self, upto: usize) -> std::io::Result<()> {
        let lines: Vec<u8> = self.pending.drain(..upto).collect();
        let inner = &mut self.inner;
        self.multi
            .suspend(|| inner.write_all(&lines).and_then(|()| inner.flush()))
    }
}

impl<W: Write> Write for Above<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(last) = self.pending.iter().rposition(|b| *b == b'\n') {
            self.write_pending(last + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let all = self.pending.len();
        if all > 0 {
            self.write_pending(all)?;
        }
        Ok(())
    }
}

impl<W: Write> Drop for Above<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// Bars whose stage labels, padded to the longest of `width` characters, are never cut: a
/// stage's name is what tells its bar apart.
fn style(width: usize) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{{prefix:<{width}}} [{{bar:24}}] {{pos}}/{{len}} tasks {{msg}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

impl Watch for Progress {
    fn stages(&self, stages: &[StageRecord]) {
        let Ok(mut map) = self.stages.lock() else {
            return;
        };
        let labels: Vec<String> = stages.iter().map(StageRecord::label).collect();
        let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        for (s, label) in stages.iter().zip(labels) {
            let bar = self.multi.add(ProgressBar::new(s.tasks as u64));
            bar.set_style(style(width));
            bar.set_prefix(label);
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

    fn sink(&self, index: usize, total: usize, label: &str) {
        let Ok(mut sink) = self.sink.lock() else {
            return;
        };
        let bar = sink.get_or_insert_with(|| {
            let bar = self.multi.insert(0, ProgressBar::new_spinner());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        bar.set_message(format!("{} of {total}: {label}", index + 1));
    }

    fn finished(&self) {
        if let Ok(mut sink) = self.sink.lock()
            && let Some(bar) = sink.take()
        {
            bar.finish_and_clear();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sink_line_says_which_sink_runs_and_goes_when_the_run_ends() {
        let progress = Progress::default();
        progress
            .multi
            .set_draw_target(indicatif::ProgressDrawTarget::hidden());
        progress.sink(1, 3, "save to out/x.csv");
        let message = progress.sink.lock().unwrap().as_ref().unwrap().message();
        assert_eq!(message, "2 of 3: save to out/x.csv");
        progress.finished();
        assert!(progress.sink.lock().unwrap().is_none());
    }

    #[test]
    fn stage_names_are_drawn_whole_and_aligned() {
        let term = indicatif::InMemoryTerm::new(10, 200);
        let progress = Progress::default();
        progress
            .multi
            .set_draw_target(indicatif::ProgressDrawTarget::term_like(Box::new(
                term.clone(),
            )));
        let long = "scan + filter + join + aggregate + project + sort";
        let stages = [(3, vec!["scan"]), (1, long.split(" + ").collect())];
        let records: Vec<StageRecord> = stages
            .iter()
            .enumerate()
            .map(|(i, (tasks, ops))| StageRecord {
                stage: i,
                tasks: *tasks,
                ops: ops.iter().map(|o| o.to_string()).collect(),
                ..StageRecord::default()
            })
            .collect();
        progress.stages(&records);
        for s in progress.stages.lock().unwrap().values() {
            s.bar.tick();
        }
        let screen = term.contents();
        let line = |start: &str| {
            screen
                .lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no line for {start} in\n{screen}"))
                .to_string()
        };
        let (short, long_line) = (line("stage 0: scan "), line(&format!("stage 1: {long}")));
        assert_eq!(
            short.find('['),
            long_line.find('['),
            "bars not aligned:\n{screen}"
        );
    }

    #[test]
    fn lines_go_out_whole_and_a_partial_line_waits_for_its_end() {
        let progress = Progress::default();
        progress
            .multi
            .set_draw_target(indicatif::ProgressDrawTarget::hidden());
        let mut out = Vec::new();
        {
            let mut above = progress.above(&mut out);
            above.write_all(b"+---+\n| 1 |\n+--").unwrap();
            assert_eq!(above.inner.as_slice(), b"+---+\n| 1 |\n");
            above.write_all(b"-+\n(1 row)").unwrap();
            assert_eq!(above.inner.as_slice(), b"+---+\n| 1 |\n+---+\n");
        }
        // Dropping it writes what was left.
        assert_eq!(out, b"+---+\n| 1 |\n+---+\n(1 row)");
    }
}
