//! What the distributed tests share: running `flowc`, copies of the examples, a million-row
//! data set with a join/group/sort/union program over it, and outputs in comparable form.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn flowc(args: &[&str], env: &[(&str, &str)]) -> Output {
    flowc_via(&Via::Here, args, env)
}

/// Where a test's `flowc` runs.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    /// On this machine, as it is.
    Here,
    /// On the public host of a NAT test bed (`scripts/nat-testbed`) of `hosts` private hosts,
    /// the first `symmetric` of them behind port-randomising NATs; its workers start in the
    /// private hosts.
    Nat { hosts: usize, symmetric: usize },
}

/// The rendezvous host and coordinator address a NAT test bed gives a run.
pub const NAT_FLAGS: [&str; 4] = ["--rendezvous", "198.18.0.1:7400", "--listen", "198.18.0.1"];

pub fn flowc_via(via: &Via, args: &[&str], env: &[(&str, &str)]) -> Output {
    let exe = env!("CARGO_BIN_EXE_flowc");
    let mut c = match via {
        Via::Here => Command::new(exe),
        Via::Nat { hosts, symmetric } => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/nat-testbed");
            let mut c = Command::new(script);
            c.args(["run", "--hosts", &hosts.to_string()]).args([
                "--symmetric",
                &symmetric.to_string(),
                "--flowc",
                exe,
                "--",
                exe,
            ]);
            c
        }
    };
    c.args(args).env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The examples (programs and data) in a folder of their own, so their `save`s do not race
/// with the examples test.
pub fn examples_copy() -> (tempfile::TempDir, Vec<PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src, dir.path());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "flow"))
        .collect();
    files.sort();
    (dir, files)
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            if e.file_name() != "out" {
                copy_dir(&e.path(), &target);
            }
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Output lines in a canonical order (results are compared order-insensitively; programs
/// that sort are still checked, as every line must be there).
pub fn lines(out: &Output) -> Vec<String> {
    let mut l: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    l.sort();
    l
}

/// A million facts over a thousand keys, and the thousand keys' names.
pub fn big_data(dir: &Path) {
    use std::io::Write;
    let mut facts = std::io::BufWriter::new(std::fs::File::create(dir.join("facts.csv")).unwrap());
    writeln!(facts, "id,key,value").unwrap();
    for id in 0..1_000_000u64 {
        writeln!(facts, "{id},{},{}", (id * 7919) % 1000, (id * 31) % 10007).unwrap();
    }
    facts.flush().unwrap();
    let mut dims = std::fs::File::create(dir.join("dims.csv")).unwrap();
    writeln!(dims, "key,name").unwrap();
    for key in 0..1000 {
        writeln!(dims, "{key},name{}", key % 37).unwrap();
    }
}

pub const BIG: &str = r#"
let facts = load "facts.csv"
let dims = load "dims.csv"

let joined = facts | join dims on key | group name { n = count(), total = sum(value) }
save joined to "out/joined.csv"

let top = facts | filter value > 9000 | sort value desc, id | take 1000
save top to "out/top.csv"

let both = (facts | filter key < 10 | select id, key)
  | union (facts | filter key >= 990 | select id, key)
  | group key { n = count(), low = min(id) }
save both to "out/both.csv"
"#;

/// A join, group and sort over the million rows: a hash shuffle, a gather and a save.
pub const SHUFFLE: &str = r#"
let facts = load "facts.csv"
let dims = load "dims.csv"
let joined = facts | join dims on key | group name { n = count(), total = sum(value) } | sort name
save joined to "out/joined.csv"
"#;

/// A folder with the million-row data and `program` in it; returns the folder and the
/// program's path.
pub fn big_program(program: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    big_data(dir.path());
    let path = dir.path().join("program.flow");
    std::fs::write(&path, program).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

/// A program in `dir` that scores the sentiment example's 300 reviews (`tokenize` cutting at
/// `length`, then `infer`, then `rest`) and saves them to `dir/scores.csv`; its path.
pub fn sentiment_program(dir: &Path, length: usize, infer: &str, rest: &str) -> String {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let program = dir.join("scores.flow");
    std::fs::write(
        &program,
        format!(
            "save load \"{0}/data/imdb_reviews.csv\"\n  | derive tokens = tokenize(review, \"{0}/models/sentiment-tokenizer.json\", length = {length})\n  | infer load \"{0}/models/sentiment.onnx\"{infer}\n{rest}  to \"{1}/scores.csv\"\n",
            examples.display(),
            dir.display()
        ),
    )
    .unwrap();
    program.to_str().unwrap().to_string()
}

/// Runs `flowc` and insists that it succeeds; `what` names the case in failures.
pub fn run_ok(args: &[&str], env: &[(&str, &str)], what: &str) -> Output {
    run_ok_via(&Via::Here, args, env, what)
}

/// [`run_ok`], run where `via` says.
pub fn run_ok_via(via: &Via, args: &[&str], env: &[(&str, &str)], what: &str) -> Output {
    let run = flowc_via(via, args, env);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    run
}

/// Removes the outputs of the previous run of a program in `dir`.
pub fn clear_outputs(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir.join("out"));
}

pub fn saved(dir: &Path, name: &str, sorted: bool) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("out").join(name)).unwrap();
    let mut l: Vec<String> = text.lines().map(str::to_string).collect();
    if !sorted {
        l.sort();
    }
    l
}

/// The three files `BIG` saves; only `top.csv` is sorted by the program.
pub fn big_outputs(dir: &Path) -> Vec<Vec<String>> {
    [
        ("joined.csv", false),
        ("top.csv", true),
        ("both.csv", false),
    ]
    .iter()
    .map(|(n, s)| saved(dir, n, *s))
    .collect()
}

/// A local S3-compatible server (moto, installed by `scripts/test`) on a free loopback port,
/// with one empty bucket; stopped when dropped.
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
    pub bucket: String,
}

impl S3Server {
    pub fn start(bucket: &str) -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start python3 -m moto.server ({e}); scripts/test installs it \
                     (pip install 'moto[server]')"
                )
            });
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_string(),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Ok(reply) = server.request("PUT", &format!("/{bucket}")) {
                assert!(
                    reply.starts_with("HTTP/1.1 200"),
                    "creating the bucket: {reply}"
                );
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto did not answer within a minute; is it installed? scripts/test installs it"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        server
    }

    /// One plain HTTP request (moto accepts unsigned ones); the whole reply.
    pub fn request(&self, method: &str, path: &str) -> std::io::Result<String> {
        http_request(&self.endpoint, method, path, "")
    }

    /// Keys of every object in the bucket.
    pub fn keys(&self) -> Vec<String> {
        bucket_keys(&self.endpoint, &self.bucket)
    }

    /// The environment `flowc` reads the endpoint and credentials from.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ]
    }
}

/// One plain HTTP request with `body` to `endpoint` (`http://host:port`); the whole reply.
pub fn http_request(
    endpoint: &str,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr)?;
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Keys of every object in a bucket of the S3 server at `endpoint`.
pub fn bucket_keys(endpoint: &str, bucket: &str) -> Vec<String> {
    let reply = http_request(endpoint, "GET", &format!("/{bucket}?list-type=2"), "").unwrap();
    reply
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .map(str::to_string)
        .collect()
}

/// Sends a running `flowc` Ctrl-C and insists that it stopped as interrupted (exit 130).
pub fn interrupt(child: std::process::Child) {
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
}

/// Insists that a run failed as a user error with a task's attempts used up, leaving no
/// output in `dir` and no object (`keys`) in its store.
pub fn assert_failed_cleanly(run: &Output, dir: &Path, keys: Vec<String>) {
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed 4 times"), "{stderr}");
    assert!(!dir.join("out/joined.csv").exists(), "no partial output");
    assert_eq!(keys, Vec::<String>::new(), "a failed run leaves no objects");
}

/// S3 and Lambda on loopback (`scripts/lambda-emulator.py`): moto, cargo-lambda's Invoke
/// and Runtime APIs, and a front that starts `flowc` function instances as invocations
/// need them. Stops with the test: its standard input is this end of a pipe.
pub struct LambdaEmulator {
    child: std::process::Child,
    /// The variables that point `flowc` at it, with the deployment's key and size.
    pub env: Vec<(String, String)>,
    pub bucket: String,
}

impl LambdaEmulator {
    /// Starts it with `args` (`--throttle-every 3`, say); its function instances also see
    /// `env` (`FLOW_FAULTS`, say).
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> LambdaEmulator {
        use std::io::BufRead;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lambda-emulator.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--flowc", env!("CARGO_BIN_EXE_flowc"), "--while-stdin"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start scripts/lambda-emulator.py: {e}"));
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!("the emulator did not start ({e}): {line:?}; scripts/test installs moto and cargo-lambda")
        });
        let mut vars: Vec<(String, String)> = ready["env"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        vars.push((
            "FLOW_LAMBDA_KEY".into(),
            ready["key"].as_str().unwrap().into(),
        ));
        vars.push(("FLOW_LAMBDA_MEMORY_MB".into(), "1769".into()));
        let bucket = ready["env"]["FLOW_LAMBDA_BUCKET"]
            .as_str()
            .unwrap()
            .to_string();
        LambdaEmulator {
            child,
            env: vars,
            bucket,
        }
    }

    /// [`LambdaEmulator::env`] as `flowc` takes it, plus `more`.
    pub fn vars<'a>(&'a self, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(more.iter().copied())
            .collect()
    }

    /// Its variables without the deployment it stands in for (key and sizes): what a user
    /// has after `scripts/local-lambda start`, before `flowc deploy`.
    pub fn undeployed_vars(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .filter(|(k, _)| !k.starts_with("FLOW_LAMBDA_KEY") && k != "FLOW_LAMBDA_MEMORY_MB")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// The value of one of its variables.
    pub fn var(&self, name: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    /// `--store` for runs in its bucket.
    pub fn store(&self) -> String {
        format!("s3://{}/runs", self.bucket)
    }

    /// Keys of every object in its bucket.
    pub fn keys(&self) -> Vec<String> {
        bucket_keys(self.var("AWS_ENDPOINT_URL"), &self.bucket)
    }
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        // Its standard input closing stops it and everything it started.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every example without ML steps, run with each of `variants` (extra `flowc run` flags),
/// prints the same rows as in one process.
pub fn examples_match(variants: &[Vec<String>], env: &[(&str, &str)]) {
    examples_match_via(&Via::Here, variants, env);
}

/// [`examples_match`], the variants run where `via` says.
pub fn examples_match_via(via: &Via, variants: &[Vec<String>], env: &[(&str, &str)]) {
    let (_dir, files) = examples_copy();
    for path in files {
        let p = path.to_str().unwrap();
        // Data-parallel training takes other steps to an equally good model, so a trained
        // example's metrics are not the single-process ones: on the examples' small test
        // sets one row is several points. Their output is compared in shape; how close the
        // metrics come is `tests/training.rs`'s business, on data sets large enough to say.
        let text = std::fs::read_to_string(&path).unwrap();
        let trains = text.contains("| train ");
        // Sums of floating-point numbers taken over other shares of the rows (and a model's
        // scores over other batches) differ in their last bits: the same to far more digits
        // than anyone reads.
        let single = run_ok(&["run", p], &[], p);
        for flags in variants {
            let what = format!("{p} with {}", flags.join(" "));
            let mut args = vec!["run", p];
            args.extend(flags.iter().map(String::as_str));
            let got = lines(&run_ok_via(via, &args, env, &what));
            let tolerance = if trains { f64::INFINITY } else { 1e-9 };
            assert_close(&got, &lines(&single), tolerance, &what);
        }
    }
}

/// The same lines, except that numbers may differ by `tolerance` (any number, when it is
/// infinite).
pub fn assert_close(got: &[String], want: &[String], tolerance: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:#?} vs {want:#?}");
    let words = |l: &str| -> Vec<String> {
        // Table borders follow the width of the numbers; they are not compared.
        l.split(|c: char| c == '|' || c.is_whitespace())
            .filter(|w| !w.is_empty() && !w.chars().all(|c| c == '+' || c == '-'))
            .map(str::to_string)
            .collect()
    };
    for (g, w) in got.iter().zip(want) {
        let (gw, ww) = (words(g), words(w));
        let same = gw.len() == ww.len()
            && gw.iter().zip(&ww).all(|(a, b)| {
                a == b
                    || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if (x - y).abs() <= tolerance)
            });
        assert!(same, "{what}: `{g}` vs `{w}`");
    }
}

/// `BIG` on the million rows, run with each of `variants`, saves the same files as in one
/// process.
pub fn big_matches(variants: &[Vec<String>], env: &[(&str, &str)]) {
    big_matches_via(&Via::Here, variants, env);
}

/// [`big_matches`], the variants run where `via` says.
pub fn big_matches_via(via: &Via, variants: &[Vec<String>], env: &[(&str, &str)]) {
    let (dir, p) = big_program(BIG);
    run_ok(&["run", &p], &[], "one process");
    let expected = big_outputs(dir.path());
    assert_eq!(expected[1].len(), 1001, "header and 1000 rows");
    for flags in variants {
        clear_outputs(dir.path());
        let what = flags.join(" ");
        let mut args = vec!["run", p.as_str()];
        args.extend(flags.iter().map(String::as_str));
        run_ok_via(via, &args, env, &what);
        assert_eq!(big_outputs(dir.path()), expected, "{what}");
    }
}

/// `--functions N` for 1, 2, 4 and 8 functions in every stage that can be split (a bound,
/// `--workers`, leaves the count to the cost model, which picks one function for small
/// inputs), each followed by `more`.
pub fn on_1_2_4_8_functions(more: &[&str]) -> Vec<Vec<String>> {
    ["1", "2", "4", "8"]
        .iter()
        .map(|n| {
            ["--functions", n]
                .iter()
                .chain(more)
                .map(|s| s.to_string())
                .collect()
        })
        .collect()
}
