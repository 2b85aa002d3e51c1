//! `flowc calibrate` writes a profile that `flowc plan --target local` then plans with.

use std::process::Command;

#[test]
fn calibrated_profile_is_read_back_by_plan() {
    let config = tempfile::tempdir().unwrap();
    let flowc = env!("CARGO_BIN_EXE_flowc");
    let calibrate = Command::new(flowc)
        .args(["calibrate", "--quick"])
        .env("XDG_CONFIG_HOME", config.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&calibrate.stdout);
    assert_eq!(
        calibrate.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&calibrate.stderr)
    );
    for measured in [
        "direct latency",
        "storage bandwidth",
        "hash join",
        "train",
        "worker start-up",
        "task overhead",
        "job overhead",
        "teardown",
    ] {
        assert!(
            stdout.contains(measured),
            "calibrate did not report {measured}: {stdout}"
        );
    }
    let written = config.path().join("flow/local.toml");
    assert!(written.is_file());
    // The fixed costs come from a real run on worker processes: start-up is never free.
    let profile =
        flow_planner::Profile::from_toml(&std::fs::read_to_string(&written).unwrap()).unwrap();
    assert!(profile.compute.cold_start_s > 0.0, "{profile:?}");
    assert!(profile.compute.task_overhead_s > 0.0, "{profile:?}");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/quickstart.flow");
    let plan = Command::new(flowc)
        .args(["plan", example])
        .env("XDG_CONFIG_HOME", config.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(0), "{text}");
    assert!(text.contains("measured by `flowc calibrate`"), "{text}");

    // A broken profile is a user error that names the file.
    std::fs::write(&written, "name = \"local\"\n").unwrap();
    let broken = Command::new(flowc)
        .args(["plan", example])
        .env("XDG_CONFIG_HOME", config.path())
        .output()
        .unwrap();
    assert_eq!(broken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&broken.stderr).contains("local.toml"));
}
