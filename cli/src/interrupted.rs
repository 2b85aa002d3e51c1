//! Ctrl-C during `flowc run`: stop every worker, remove the run's temporary objects and any
//! half-written `save`, then exit with 130 (the shell's code for an interrupted command).

/// Exit code of a run the user interrupted.
const INTERRUPTED: i32 = 130;

/// Watches for SIGINT and SIGTERM on a thread of its own for the rest of the process.
pub fn stop_cleanly_on_ctrl_c() {
    let watcher = std::thread::Builder::new()
        .name("flow-interrupt".into())
        .spawn(|| {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let signalled = runtime.block_on(async {
                let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                else {
                    return tokio::signal::ctrl_c().await.is_ok();
                };
                tokio::select! {
                    c = tokio::signal::ctrl_c() => c.is_ok(),
                    _ = term.recv() => true,
                }
            });
            drop(runtime);
            if signalled {
                eprintln!("\ninterrupted: stopping the workers and removing temporary files");
                flow_runtime::interrupt::undo_all();
                std::process::exit(INTERRUPTED);
            }
        });
    if let Err(e) = watcher {
        tracing::warn!("Ctrl-C will not clean up: cannot start its watcher: {e}");
    }
}
