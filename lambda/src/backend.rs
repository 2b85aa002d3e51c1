//! Lambda invocations as a run's workers. The coordinator starts workers through the
//! runtime's [`Backend`] trait and speaks the worker protocol to them; here each worker is a
//! relay in this process: it joins the coordinator like a `flowc worker` (proving the run's
//! secret), and turns every task or training member it is sent into one synchronous
//! invocation of the function with the stage's memory, whose answer it passes back. The
//! runtime owns retries: the SDK's are off, an invocation that errors or passes its deadline
//! is a failed attempt the coordinator retries, and throttling (429) is waited out here with
//! exponential backoff and jitter, and counted.

use crate::deployment::Deployment;
use crate::names::function_name;
use crate::request::{MAX_PAYLOAD_BYTES, Reply, Request, Run, Signed, Spill, Work};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_lambda::config::ProvideCredentials;
use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::LogType;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flow_planner::PhysicalPlan;
use flow_runtime::distributed::auth::Secret;
use flow_runtime::distributed::backend::{Backend, Launch};
use flow_runtime::distributed::protocol::{
    AttemptId, ToCoordinator, ToWorker, read_frame, receive, send,
};
use flow_runtime::interrupt::{Registered, on_interrupt};
use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Lambda's longest invocation.
pub const MAX_TASK: Duration = Duration::from_secs(900);

/// How a run invokes its functions.
#[derive(Debug, Clone)]
pub struct LambdaOptions {
    /// The plan the run executes: each stage's memory picks the function.
    pub plan: Arc<PhysicalPlan>,
    /// The functions it may invoke.
    pub deployment: Deployment,
    /// The longest a task may take; by default ten times its stage's predicted time, at
    /// least a minute, at most [`MAX_TASK`].
    pub task_timeout: Option<Duration>,
}

/// What the relays share: the client and what every invocation needs.
struct Invoker {
    runtime: &'static tokio::runtime::Runtime,
    client: aws_sdk_lambda::Client,
    plan: Arc<PhysicalPlan>,
    prefix: String,
    key: Secret,
    task_timeout: Option<Duration>,
    throttled: AtomicU64,
}

/// Starts relays that run a run's tasks as Lambda invocations.
pub struct LambdaBackend {
    invoker: Arc<Invoker>,
    relays: Arc<Mutex<HashMap<u32, Relay>>>,
    next: u32,
    /// Ctrl-C stops the relays: no invocation is sent after it.
    _interrupt: Registered,
}

impl std::fmt::Debug for LambdaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaBackend")
            .field("prefix", &self.invoker.prefix)
            .finish_non_exhaustive()
    }
}

/// A started relay: how to stop it.
struct Relay {
    stop: Arc<AtomicBool>,
    control: Option<TcpStream>,
}

/// What an AWS call's failure says, short: the service's code and message when it answered,
/// else the whole chain of causes (a connection refused, no credentials).
pub fn said<E, R>(e: &aws_sdk_lambda::error::SdkError<E, R>) -> String
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_lambda::error::ProvideErrorMetadata;
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => DisplayErrorContext(e).to_string(),
    }
}

/// The runtime the SDK's calls run on: one for the process, never dropped (a runtime cannot
/// be dropped from within another, where a run's backend may end).
pub fn sdk_runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("flow-aws")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// The AWS configuration from the standard settings (credentials, region, `AWS_ENDPOINT_URL*`),
/// with the SDK's retries off: the runtime owns them.
pub async fn aws_config() -> Result<aws_config::SdkConfig, String> {
    aws_config_in(None).await
}

/// [`aws_config`], in `region` when one is given.
pub async fn aws_config_in(region: Option<&str>) -> Result<aws_config::SdkConfig, String> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::disabled());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_string()));
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(
            "no AWS region is set: set AWS_REGION (or AWS_DEFAULT_REGION), or a region in ~/.aws/config"
                .into(),
        );
    }
    let credentials = config
        .credentials_provider()
        .ok_or("the AWS SDK has no credentials provider")?;
    if let Err(e) = credentials.provide_credentials().await {
        return Err(format!(
            "no AWS credentials were found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials): {e}"
        ));
    }
    Ok(config)
}

impl LambdaBackend {
    /// A backend invoking the functions of `options.deployment`.
    pub fn new(options: LambdaOptions) -> Result<LambdaBackend, String> {
        let runtime = sdk_runtime()?;
        // On a thread of its own: the caller may be running on another runtime.
        let config = std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(aws_config()))
                .join()
                .unwrap_or_else(|_| Err("setting up the AWS client failed".into()))
        })?;
        let client = aws_sdk_lambda::Client::new(&config);
        let relays: Arc<Mutex<HashMap<u32, Relay>>> = Arc::default();
        Ok(LambdaBackend {
            invoker: Arc::new(Invoker {
                runtime,
                client,
                plan: options.plan,
                prefix: options.deployment.prefix,
                key: options.deployment.key,
                task_timeout: options.task_timeout,
                throttled: AtomicU64::new(0),
            }),
            relays: relays.clone(),
            next: 1,
            _interrupt: on_interrupt(move || stop_all(&relays)),
        })
    }

    fn relays(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Relay>> {
        self.relays.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn stop_all(relays: &Mutex<HashMap<u32, Relay>>) {
    let mut relays = relays.lock().unwrap_or_else(PoisonError::into_inner);
    for (_, relay) in relays.drain() {
        relay.stop();
    }
}

impl Backend for LambdaBackend {
    fn launch(&mut self, launch: &Launch, secret: &Secret) -> std::io::Result<()> {
        let run = Run {
            store: launch.store.clone(),
            prefix: launch.prefix.clone(),
            compression: launch.compression.name().to_string(),
            secret: secret.to_hex(),
        };
        // With a rendezvous host, a function joins the run as a worker for as long as the run
        // needs it, so that its outputs can be served to peers over punched channels.
        if let Some(punch) = &launch.punch {
            let work = Work::Join {
                coordinator: launch.coordinator.clone(),
                punch: punch.clone(),
            };
            let request = Request::of(run, work, SystemTime::now() + MAX_TASK);
            let invoker = self.invoker.clone();
            std::thread::spawn(move || invoker.join(&request));
            return Ok(());
        }
        let pid = self.next;
        self.next += 1;
        let mut control = TcpStream::connect(&launch.coordinator)?;
        let _ = control.set_nodelay(true);
        secret.answer(&mut control)?;
        send(
            &mut control,
            &ToCoordinator::Hello {
                data_addr: format!("lambda-relay-{pid}"),
                pid,
            },
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        self.relays().insert(
            pid,
            Relay {
                stop: stop.clone(),
                control: control.try_clone().ok(),
            },
        );
        let invoker = self.invoker.clone();
        std::thread::spawn(move || relay(&invoker, &run, control, &stop));
        Ok(())
    }

    fn throttled(&self) -> u64 {
        self.invoker.throttled.load(Ordering::Relaxed)
    }

    fn kill(&mut self, pid: u32) {
        if let Some(relay) = self.relays().remove(&pid) {
            relay.stop();
        }
    }

    /// Stops every relay. An invocation already sent runs on to its deadline: Lambda cannot
    /// stop it, and its function stops itself there.
    fn shutdown(&mut self) {
        stop_all(&self.relays);
    }
}

impl Relay {
    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(control) = &self.control {
            let _ = control.shutdown(Shutdown::Both);
        }
    }
}

/// One relay: passes each message the coordinator sends it to an invocation, and the
/// invocation's answer back, until the coordinator or the backend stops it.
fn relay(invoker: &Invoker, run: &Run, mut control: TcpStream, stop: &AtomicBool) {
    while let Ok(message) = receive::<ToWorker>(&mut control) {
        let frames: std::io::Result<Vec<Vec<u8>>> = (0..message.frames())
            .map(|_| read_frame(&mut control))
            .collect();
        let Ok(frames) = frames else { return };
        if matches!(message, ToWorker::Shutdown) || stop.load(Ordering::SeqCst) {
            return;
        }
        // Nothing is kept in a function between invocations that a release could free.
        if matches!(message, ToWorker::Release { .. }) {
            continue;
        }
        let reply = invoker.invoke(run, message, &frames);
        if stop.load(Ordering::SeqCst) || send(&mut control, &reply).is_err() {
            return;
        }
    }
}

/// Waits before trying a throttled invocation again: exponential from 100 ms, at most 5 s,
/// with full jitter so throttled relays do not come back together.
fn backoff(tries: u32) -> Duration {
    let cap = Duration::from_millis(100 * (1u64 << tries.min(6))).min(Duration::from_secs(5));
    let jitter = getrandom::u32().unwrap_or(u32::MAX / 2);
    cap.mul_f64(f64::from(jitter) / f64::from(u32::MAX))
}

impl Invoker {
    /// The plan's stage a message works for, if it names one.
    fn stage(&self, message: &ToWorker) -> Option<&flow_planner::Stage> {
        let id = match message {
            ToWorker::Task { id, .. } => Some(id.stage),
            ToWorker::Train { stage, .. } => *stage,
            ToWorker::Release { .. } | ToWorker::Shutdown => None,
        };
        id.and_then(|s| self.plan.stages.get(s))
    }

    /// The longest the message's work may take.
    fn timeout(&self, stage: Option<&flow_planner::Stage>) -> Duration {
        if let Some(t) = self.task_timeout {
            return t.min(MAX_TASK);
        }
        let predicted = stage.map_or(0.0, |s| s.predicted_s.max(0.0));
        Duration::from_secs_f64((10.0 * predicted).clamp(60.0, MAX_TASK.as_secs_f64()))
    }

    /// Runs one message as one invocation and returns the function's answer, or a failure
    /// for the coordinator to retry.
    fn invoke(&self, run: &Run, message: ToWorker, frames: &[Vec<u8>]) -> ToCoordinator {
        let stage = self.stage(&message);
        let memory = stage
            .map(|s| s.memory_mb)
            .or_else(|| self.plan.stages.iter().map(|s| s.memory_mb).max())
            .unwrap_or(1769);
        let name = function_name(&self.prefix, memory);
        let timeout = self.timeout(stage);
        let fail = failure(&message);
        let request = Request::new(run.clone(), message, frames, SystemTime::now() + timeout);
        let payload = match request.sign(&self.key) {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        self.runtime
            .block_on(async {
                // Over Lambda's limit, the request waits in the run's store.
                let payload = if payload.len() > MAX_PAYLOAD_BYTES - 1024 {
                    tracing::info!(
                        "the request for {name} is {} bytes, over Lambda's limit: it goes through the run's store",
                        payload.len()
                    );
                    let spilled = Spill::put(run, "requests", payload).await?;
                    serde_json::to_vec(&Signed {
                        spilled: Some(spilled),
                        ..Signed::default()
                    })
                    .map_err(|e| e.to_string())?
                } else {
                    payload
                };
                let (reply, billed_s) = self.call(&name, payload, timeout).await?;
                let mut answer = match reply {
                    Reply::Answer(answer) => answer,
                    Reply::Spilled(spill) => {
                        tracing::info!(
                            "the reply from {name} is over Lambda's limit: it came through the run's store"
                        );
                        serde_json::from_slice(&spill.get().await?)
                            .map_err(|e| format!("{name} spilled a reply that is not one: {e}"))?
                    }
                    Reply::Served => {
                        return Err(format!("{name} answered a task as if it had joined"));
                    }
                };
                if let ToCoordinator::Done { billed_s: b, .. } = &mut answer {
                    *b = billed_s;
                }
                Ok(answer)
            })
            .unwrap_or_else(fail)
    }

    /// Invokes a function of the plan's largest memory to serve as a worker until the run
    /// lets it go ([`Work::Join`]). A function that fails to join is noticed by the
    /// coordinator, which starts another.
    fn join(&self, request: &Request) {
        let memory = self.plan.stages.iter().map(|s| s.memory_mb).max();
        let name = function_name(&self.prefix, memory.unwrap_or(1769));
        let joined = request.sign(&self.key).and_then(|payload| {
            self.runtime
                .block_on(self.call(&name, payload, MAX_TASK))
                .and_then(|(reply, _)| match reply {
                    Reply::Served => Ok(()),
                    _ => Err(format!(
                        "{name} answered a request to join with a task's reply"
                    )),
                })
        });
        if let Err(e) = joined {
            tracing::warn!("a function joining the run as a worker ended: {e}");
        }
    }

    /// Invokes `name` until it answers or fails for a reason other than throttling; the reply,
    /// and the duration Lambda billed for it where the invocation's log tail says.
    async fn call(
        &self,
        name: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<(Reply, Option<f64>), String> {
        // The function stops itself at its deadline; the answer may take a little longer.
        let patience = timeout + Duration::from_secs(5);
        let mut tries = 0;
        loop {
            let call = self
                .client
                .invoke()
                .function_name(name)
                .payload(Blob::new(payload.clone()))
                .log_type(LogType::Tail)
                .send();
            let answered = tokio::time::timeout(patience, call).await.map_err(|_| {
                format!(
                    "the invocation of {name} did not answer within {} s",
                    patience.as_secs()
                )
            })?;
            match answered {
                Ok(out) => return Ok((reply(name, &out)?, billed_s(&out))),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_too_many_requests_exception()) =>
                {
                    self.throttled.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff(tries)).await;
                    tries += 1;
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    return Err(format!(
                        "there is no function {name}: deploy the functions with `flowc deploy`"
                    ));
                }
                Err(e) => return Err(format!("invoking {name}: {}", said(&e))),
            }
        }
    }
}

/// The function's answer in an invocation's output, or why there is none.
fn reply(
    name: &str,
    out: &aws_sdk_lambda::operation::invoke::InvokeOutput,
) -> Result<Reply, String> {
    let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
    if out.function_error().is_some() {
        return Err(format!("{name} failed: {}", error_text(body)));
    }
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "{name} answered something that is not a flow reply ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })
}

/// The duration Lambda billed for an invocation, from the `REPORT` line of its log tail
/// (`Billed Duration: 123 ms`), when the response carries one.
fn billed_s(out: &aws_sdk_lambda::operation::invoke::InvokeOutput) -> Option<f64> {
    let tail = STANDARD.decode(out.log_result()?).ok()?;
    billed_in(&String::from_utf8_lossy(&tail))
}

fn billed_in(log: &str) -> Option<f64> {
    let after = log.rsplit_once("Billed Duration:")?.1.trim_start();
    let ms: f64 = after.split_whitespace().next()?.parse().ok()?;
    Some(ms / 1e3)
}

/// The message of a function error's payload (`{"errorType": ..., "errorMessage": ...}`).
fn error_text(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

/// How to report a message's failure to the coordinator.
fn failure(message: &ToWorker) -> impl Fn(String) -> ToCoordinator + use<> {
    enum Who {
        Task(AttemptId),
        Member(String, usize),
        Nobody,
    }
    let who = match message {
        ToWorker::Task { id, .. } => Who::Task(*id),
        ToWorker::Train { key, member, .. } => Who::Member(key.clone(), member.rank),
        ToWorker::Release { .. } | ToWorker::Shutdown => Who::Nobody,
    };
    move |error| match &who {
        Who::Task(id) => ToCoordinator::Failed {
            id: *id,
            error,
            lost_peer: None,
            failed_producer: None,
        },
        Who::Member(key, rank) => ToCoordinator::TrainFailed {
            key: key.clone(),
            rank: *rank,
            error,
            lost_peer: None,
        },
        Who::Nobody => ToCoordinator::Hello {
            data_addr: String::new(),
            pid: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_billed_duration_is_read_from_the_report_line() {
        let tail = "START RequestId: 1 Version: $LATEST\nEND RequestId: 1\nREPORT RequestId: 1\tDuration: 101.25 ms\tBilled Duration: 102 ms\tMemory Size: 1769 MB\tMax Memory Used: 80 MB\t\n";
        assert_eq!(billed_in(tail), Some(0.102));
        assert_eq!(billed_in("no report"), None);
        assert_eq!(billed_in("Billed Duration: soon"), None);
    }
}
