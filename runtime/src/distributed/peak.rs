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
    /// Resident memory now, in MB.
    fn resident_mb() -> f64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<f64>()
            .unwrap()
            / 1024.0
    }

    #[test]
    fn the_mark_covers_what_the_process_holds() {
        super::reset();
        if super::read_mb().is_none() {
            return; // no /proc here
        }
        // Other tests of this process allocate and free meanwhile: what holds whatever they
        // do is that the mark is at least what is resident, which includes these 64 MB.
        let held = vec![1u8; 64 << 20];
        let resident = resident_mb();
        let mark = super::read_mb().unwrap();
        assert!(resident >= 64.0, "{resident} MB resident");
        assert!(mark >= resident, "mark {mark} MB, resident {resident} MB");
        drop(held);
    }
}
