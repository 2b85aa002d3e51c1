//! A task's CPU time: the worker process's user and system time (Linux's `/proc/self/stat`)
//! read as the task starts and as it ends. A worker runs one task at a time, so the
//! difference is the task's, its threads' included. Where there is no `/proc`, there is none.

/// The process's CPU seconds so far, user and system.
pub fn seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name, in parentheses, may hold spaces: the fields after it are counted.
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Clock ticks of USER_HZ, which Linux fixes at 100 for /proc.
    Some(ticks as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn work_shows_as_cpu_time() {
        let Some(before) = super::seconds() else {
            return; // no /proc here
        };
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed().as_secs_f64() < 0.3 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let spent = super::seconds().unwrap() - before;
        assert!(spent >= 0.2, "{spent} s of CPU for 0.3 s of spinning");
    }
}
