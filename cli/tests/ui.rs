//! UI tests: every program of `tests/ui` fails `flowc check`, every program of `tests/ui-run`
//! fails `flowc run`, every program of `tests/ui-plan` fails `flowc plan`, each with coded diagnostics whose rendering is snapshotted. Together
//! they cover every code of the catalogue.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

fn flowc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("flowc runs")
}

fn programs(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(dir),
    )
    .unwrap()
    .filter_map(|e| e.ok())
    .map(|e| e.file_name().to_string_lossy().to_string())
    .filter(|n| n.ends_with(".flow"))
    .collect();
    files.sort();
    files
}

fn codes_in(text: &str, into: &mut BTreeSet<String>) {
    for code in flow_lang::diagnostic::CODES {
        if text.contains(code.as_str()) {
            into.insert(code.as_str().to_string());
        }
    }
}

fn run_corpus(dir: &str, verb: &str, seen: &mut BTreeSet<String>) {
    let files = programs(dir);
    assert!(!files.is_empty());
    for file in files {
        let path = format!("tests/{dir}/{file}");
        let out = flowc(&[verb, &path]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{path} should exit 1:\n{stderr}"
        );
        assert!(stderr.contains("E0"), "{path} printed no code:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{path} panicked:\n{stderr}");
        codes_in(&stderr, seen);
        let source =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(&path)).unwrap();
        let name = format!("{dir}__{}", file.trim_end_matches(".flow"));
        insta::assert_snapshot!(name, format!("{source}\n----- {verb} -----\n{stderr}"));
    }
}

#[test]
fn every_code_has_a_ui_test() {
    let mut seen = BTreeSet::new();
    run_corpus("ui", "check", &mut seen);
    run_corpus("ui-run", "run", &mut seen);
    run_corpus("ui-plan", "plan", &mut seen);
    // The generated programs of `generated_inputs` cover E0026 (not text).
    seen.insert("E0026".into());
    // E0028 is retired: every step that checks can run.
    seen.insert("E0028".into());
    // E0034 needs a saved plan beside its program: `a_stale_plan_is_refused_and_writes_nothing`.
    seen.insert("E0034".into());
    let all: BTreeSet<String> = flow_lang::diagnostic::CODES
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    let missing: Vec<_> = all.difference(&seen).collect();
    assert!(missing.is_empty(), "codes without a UI test: {missing:?}");
}

#[test]
fn a_failed_run_leaves_no_output() {
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui-run/out");
    let _ = std::fs::remove_dir_all(&out_dir);
    let out = flowc(&["run", "tests/ui-run/failed_run_saves_nothing.flow"]);
    assert_eq!(out.status.code(), Some(1));
    let left: Vec<_> = std::fs::read_dir(&out_dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "a failed run left {left:?}");
}

fn check_generated(name: &str, bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("flow-ui-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.flow"));
    std::fs::write(&path, bytes).unwrap();
    let out = flowc(&["check", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
    stderr
}

#[test]
fn generated_inputs_get_diagnostics_not_crashes() {
    let deep = format!(
        "show t | filter {}x{}",
        "(".repeat(20_000),
        ")".repeat(20_000)
    );
    assert!(check_generated("deep", deep.as_bytes()).contains("E0002"));
    let mut long = String::from("let t = load \"x.csv\"\nshow t | derive y = ");
    while long.len() < 180 * 1024 {
        long.push_str("a * 2 + ");
    }
    long.push('1');
    assert!(check_generated("long", long.as_bytes()).contains("E0002"));
    let ifs = format!(
        "show t | derive y = {}1{}",
        "if a then ".repeat(5_000),
        " else 2".repeat(5_000)
    );
    assert!(check_generated("ifs", ifs.as_bytes()).contains("E0002"));
    assert!(check_generated("nul", b"show t\0 | take 1").contains("E0026"));
    assert!(check_generated("utf8", b"show \xff\xfe t").contains("E0026"));
}

#[test]
fn clean_programs_check_cleanly() {
    let dir = std::env::temp_dir().join(format!("flow-clean-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("p.csv"), "name,age\nZoë,3\n").unwrap();
    let cases: [(&str, &str); 3] = [
        ("empty", ""),
        (
            "crlf",
            "# windows\r\nlet p = load \"p.csv\"\r\nshow p\r\n  | filter age > 1\r\n",
        ),
        (
            "unicode",
            "# café ☕ — ünïcode\nlet p = load \"p.csv\"\nshow p | filter name == \"Zoë ☕\" # 名前\n",
        ),
    ];
    for (name, text) in cases {
        let path = dir.join(format!("{name}.flow"));
        std::fs::write(&path, text).unwrap();
        let out = flowc(&["check", path.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn json_diagnostics_for_tools() {
    let out = flowc(&[
        "check",
        "--format",
        "json",
        "tests/ui/unused_binding_and_error.flow",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["code"], "W0001");
    assert_eq!(lines[0]["severity"], "warning");
    assert_eq!(lines[1]["code"], "E0004");
    assert_eq!(lines[1]["line"], 2);
    assert_eq!(lines[1]["column"], 38);
    assert!(lines[1]["help"].as_str().unwrap().contains("age (int64)"));
}

#[test]
fn usage_errors_exit_2_and_explain_prints_the_catalogue() {
    assert_eq!(flowc(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(flowc(&["run"]).status.code(), Some(2));
    // Lambda needs a store every function reaches, and direct channels need a rendezvous host.
    let no_store = flowc(&["run", "tests/ui-run/bad_data.flow", "--target", "lambda"]);
    assert_eq!(no_store.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_store.stderr).contains("--store s3://"));
    let direct = flowc(&[
        "run",
        "tests/ui-run/bad_data.flow",
        "--target",
        "lambda",
        "--store",
        "s3://b/runs",
        "--channel",
        "direct",
    ]);
    assert_eq!(direct.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&direct.stderr).contains("rendezvous"));
    // Punching flags need a rendezvous host; the host needs an address.
    let strict = flowc(&["run", "tests/ui-run/bad_data.flow", "--strict-channels"]);
    assert_eq!(strict.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&strict.stderr).contains("--rendezvous"));
    let forever = flowc(&[
        "run",
        "tests/ui-run/bad_data.flow",
        "--rendezvous",
        "127.0.0.1:1",
        "--punch-timeout",
        "1e300",
    ]);
    assert_eq!(forever.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&forever.stderr).contains("at most 600"));
    let nowhere = flowc(&["rendezvous", "--listen", "nowhere"]);
    assert_eq!(nowhere.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("HOST:PORT"));
    let local_only = flowc(&["run", "tests/ui-run/bad_data.flow", "--task-timeout", "5"]);
    assert_eq!(local_only.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&local_only.stderr).contains("--target lambda"));
    let none = flowc(&["run", "tests/ui-run/bad_data.flow", "--workers", "0"]);
    assert_eq!(none.status.code(), Some(2));
    let explain = flowc(&["explain", "e0003"]);
    assert_eq!(explain.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&explain.stdout).starts_with("E0003: unknown name"));
    let kind = flowc(&["explain", "logistic"]);
    assert!(String::from_utf8_lossy(&kind.stdout).contains("learning_rate"));
    let step = flowc(&["explain", "join"]);
    assert!(String::from_utf8_lossy(&step.stdout).starts_with("join [inner|left|right"));
    assert_eq!(
        flowc(&["explain", "nothing-like-this"]).status.code(),
        Some(1)
    );
    for sub in ["check", "fmt", "explain", "run", "lsp"] {
        let help = flowc(&[sub, "--help"]);
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("Examples:"),
            "{sub} --help has no examples"
        );
    }
}

/// A program, its data and the plan `flowc plan --format json` saved for it, in a folder of
/// their own; returns the folder.
fn planned_program() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orders.csv"),
        "id,store,amount\n1,north,10.5\n2,south,3.0\n3,north,7.25\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.flow"),
        "let orders = load \"orders.csv\"\n\
         save orders | group store { total = sum(amount) } | sort store to \"out/totals.csv\"\n",
    )
    .unwrap();
    let plan = flowc(&[
        "plan",
        dir.path().join("p.flow").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(plan.status.code(), Some(0));
    std::fs::write(dir.path().join("plan.json"), &plan.stdout).unwrap();
    dir
}

fn run_with_plan(dir: &Path, extra: &[&str]) -> Output {
    let program = dir.join("p.flow");
    let plan = dir.join("plan.json");
    let mut args = vec![
        "run",
        program.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    flowc(&args)
}

#[test]
fn a_saved_plan_runs_and_the_report_names_it() {
    let dir = planned_program();
    let report = dir.path().join("r.json");
    let out = run_with_plan(dir.path(), &["--report", report.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = std::fs::read_to_string(dir.path().join("out/totals.csv")).unwrap();
    assert_eq!(saved, "store,total\nnorth,17.75\nsouth,3.0\n");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let hash = report["plan_sha256"].as_str().unwrap();
    assert!(hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()));
    // Flags that plan cannot be given with a plan that is already made.
    let both = run_with_plan(dir.path(), &["--workers", "2"]);
    assert_eq!(both.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&both.stderr).contains("already decides"));
}

#[test]
fn a_stale_plan_is_refused_and_writes_nothing() {
    let stale = |dir: &Path, case: &str| {
        let out = run_with_plan(dir, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr).replace(dir.to_str().unwrap(), "DIR");
        assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
        assert!(stderr.contains("E0034"), "{case}: {stderr}");
        assert!(
            !dir.join("out").exists(),
            "{case}: a refused plan wrote output"
        );
        stderr
    };
    // The program changed.
    let dir = planned_program();
    let program = dir.path().join("p.flow");
    let text = std::fs::read_to_string(&program).unwrap();
    std::fs::write(&program, text.replace("sum(amount)", "max(amount)")).unwrap();
    insta::assert_snapshot!("stale_plan__program", stale(dir.path(), "program"));
    // An input's schema changed.
    let dir = planned_program();
    std::fs::write(
        dir.path().join("orders.csv"),
        "id,store,amount\n1,north,10\n",
    )
    .unwrap();
    insta::assert_snapshot!("stale_plan__schema", stale(dir.path(), "schema"));
    // A plan of another version.
    let dir = planned_program();
    let plan = dir.path().join("plan.json");
    let text = std::fs::read_to_string(&plan).unwrap();
    let version = format!("\"version\": {}", flow_planner::PLAN_VERSION);
    assert!(text.contains(&version));
    std::fs::write(&plan, text.replacen(&version, "\"version\": 999", 1)).unwrap();
    assert!(stale(dir.path(), "version").contains("version 999"));
}

/// `flowc` with standard input from `input`, in the crate's folder.
fn flowc_with_input(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_standard_output_ends_flowc_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(["plan", "../examples/analytics.flow", "--format", "json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before flowc has planned anything, as `| head -c 0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_flags_are_usage_errors_found_before_anything_runs() {
    let dir = planned_program();
    let program = dir.path().join("p.flow");
    let p = program.to_str().unwrap();
    for verb in ["plan", "run"] {
        let out = flowc(&[verb, p, "--memory-mb", "50"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{verb}: {stderr}");
        assert!(
            stderr.starts_with("error: `memory_mb = 50` is outside"),
            "{verb}: {stderr}"
        );
        assert!(!stderr.contains("E0032"), "{verb}: {stderr}");
    }
    for verb in ["plan", "run"] {
        // A bound and an exact count at once, or no function at all, is a usage error.
        let both = flowc(&[verb, p, "--workers", "2", "--functions", "3"]);
        assert_eq!(both.status.code(), Some(2), "{verb}");
        let none = flowc(&[verb, p, "--functions", "0"]);
        assert_eq!(none.status.code(), Some(2), "{verb}");
        assert!(String::from_utf8_lossy(&none.stderr).contains("--functions takes a positive"));
        // More than the profile runs at once is what it runs at once, said once.
        let many = flowc(&[verb, p, "--functions", "100000"]);
        let stderr = String::from_utf8_lossy(&many.stderr);
        assert_eq!(many.status.code(), Some(0), "{verb}: {stderr}");
        let warning = "warning: --functions 100000 is more than the 64 functions the `local` profile runs at once; 64 it is";
        assert_eq!(stderr.matches(warning).count(), 1, "{verb}: {stderr}");
        let _ = std::fs::remove_dir_all(dir.path().join("out"));
    }
    let out = flowc(&["run", p, "--report", "/nonexistent/dir/r.html"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(!dir.path().join("out").exists(), "the run went ahead");
}

#[test]
fn an_empty_program_says_there_is_nothing_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.flow");
    std::fs::write(&empty, "# nothing yet\n").unwrap();
    let out = flowc(&["run", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to run"));
}

#[test]
fn saving_a_model_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../runtime/tests/ml/data/breast_cancer-train.csv");
    let program = dir.path().join("m.flow");
    std::fs::write(
        &program,
        format!(
            "save load \"{}\" | train logistic(label = label, features = [f0, f1], epochs = 1) to \"m.model\"\n",
            data.display()
        ),
    )
    .unwrap();
    let out = flowc(&["run", program.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("saved the model to "), "{stdout}");
    assert!(!stdout.contains("rows"), "{stdout}");
}

#[test]
fn explain_lists_the_codes_and_explains_functions() {
    let codes = flowc(&["explain"]);
    let text = String::from_utf8_lossy(&codes.stdout);
    assert_eq!(codes.status.code(), Some(0));
    for code in flow_lang::diagnostic::CODES {
        assert!(
            text.contains(&format!("{}  {}", code.as_str(), code.info().title)),
            "{text}"
        );
    }
    let round = flowc(&["explain", "round"]);
    assert_eq!(round.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&round.stdout).starts_with("round("));
    let sum = flowc(&["explain", "sum"]);
    assert!(String::from_utf8_lossy(&sum.stdout).contains("aggregate function"));
}

#[test]
fn fmt_dash_formats_standard_input_to_standard_output() {
    let messy = "let  t =load \"x.csv\"\nshow t|filter a>1\n";
    let out = flowc_with_input(&["fmt", "-"], messy);
    assert_eq!(out.status.code(), Some(0));
    let formatted = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(formatted, "let t = load \"x.csv\"\nshow t | filter a > 1\n");
    let check = flowc_with_input(&["fmt", "--check", "-"], messy);
    assert_eq!(check.status.code(), Some(1));
    assert!(check.stdout.is_empty());
    let clean = flowc_with_input(&["fmt", "--check", "-"], &formatted);
    assert_eq!(clean.status.code(), Some(0));
    let broken = flowc_with_input(&["fmt", "-"], "show (");
    assert_eq!(broken.status.code(), Some(1));
    assert!(broken.stdout.is_empty());
}

#[test]
fn diagnostics_end_with_their_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.flow");
    std::fs::write(&path, "show nothing\nshow neither\n").unwrap();
    let out = flowc(&["check", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.trim_end().ends_with("has 2 errors"), "{stderr}");
}

#[test]
fn columns_named_like_keywords_are_written_in_backticks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.csv"),
        "group,unit price\na,1.5\nb,2.0\na,3.0\n",
    )
    .unwrap();
    let program = dir.path().join("q.flow");
    std::fs::write(
        &program,
        "let t = load \"t.csv\"\nshow t | group `group` { total = sum(`unit price`) } | sort `group`\n",
    )
    .unwrap();
    let out = flowc(&["run", program.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| a     | 4.5   |"), "{stdout}");
    assert!(stdout.contains("| b     | 2.0   |"), "{stdout}");
    assert_eq!(
        flowc(&["fmt", program.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let formatted = std::fs::read_to_string(&program).unwrap();
    assert!(
        formatted.contains("group `group` { total = sum(`unit price`) }"),
        "the formatter keeps the backticks: {formatted}"
    );
}

/// A `show` of no rows still prints its table's columns.
#[test]
fn an_empty_table_shows_its_columns() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.csv"), "id,name\n").unwrap();
    let program = dir.path().join("empty.flow");
    std::fs::write(
        &program,
        "show load \"empty.csv\" | group name { n = count() }\n",
    )
    .unwrap();
    let out = flowc(&["run", program.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| name | n |"), "{stdout}");
    assert!(stdout.contains("(0 rows)"), "{stdout}");
}
