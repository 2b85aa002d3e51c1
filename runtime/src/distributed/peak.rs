//! A task's peak memory: the process's high-water mark of resident memory (Linux's `VmHWM`),
//! reset as the task starts (`/proc/self/clear_refs`) and read when it ends. A worker runs
//! one task at a time, so the mark is the task's. Where there is no `/proc`, there is none.

/// Starts a new high-water mark.
pub fn reset() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The high-water mark since the last [`reset`], in MB.
pub fn read_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_mark_grows_with_what_the_process_holds() {
        super::reset();
        let Some(before) = super::read_mb() else {
            return; // no /proc here
        };
        let held = vec![1u8; 64 << 20];
        let after = super::read_mb().unwrap();
        assert!(after >= before + 60.0, "{before} MB, then {after} MB");
        drop(held);
    }
}
