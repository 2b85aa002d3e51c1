//! What a run must undo when the user interrupts it (Ctrl-C). Whatever a run creates that must
//! not outlive it — worker processes, objects under the run prefix, temporary `save` files —
//! is registered here while it exists; the CLI's signal handler calls [`undo_all`] and exits.
//! Normal runs clean up on their own paths and drop their registrations unrun.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

type Undo = Box<dyn FnOnce() + Send>;

static PENDING: Mutex<Vec<(u64, Undo)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether [`undo_all`] has begun: the run is being torn down, so nothing should be started
/// again and its failures are not the user's to read.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// A registration; dropping it forgets the undo action without running it.
#[derive(Debug)]
#[must_use = "dropping the registration forgets the undo action at once"]
pub struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        let id = self.0;
        if let Ok(mut pending) = PENDING.lock() {
            pending.retain(|(i, _)| *i != id);
        }
    }
}

/// Registers `undo` to run if the process is interrupted while the registration lives.
pub fn on_interrupt(undo: impl FnOnce() + Send + 'static) -> Registered {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut pending) = PENDING.lock() {
        pending.push((id, Box::new(undo)));
    }
    Registered(id)
}

/// Runs every registered undo action in the order they were registered: a run's backend is
/// registered before its store, so its workers stop before their objects are removed.
pub fn undo_all() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let taken = match PENDING.lock() {
        Ok(mut pending) => std::mem::take(&mut *pending),
        Err(_) => return,
    };
    for (_, undo) in taken {
        undo();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn live_registrations_run_once_and_dropped_ones_never() {
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = |n: usize| {
            let ran = ran.clone();
            move || {
                ran.fetch_add(n, Ordering::SeqCst);
            }
        };
        let kept = on_interrupt(counter(1));
        drop(on_interrupt(counter(10)));
        undo_all();
        undo_all();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        drop(kept);
    }
}
