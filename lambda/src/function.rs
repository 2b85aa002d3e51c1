//! The function role of `flowc`: started by Lambda (`AWS_LAMBDA_RUNTIME_API` set, no
//! arguments), it answers invocations one at a time through `lambda_runtime`. Each
//! invocation is one signed [`Request`]: a task (its plans, which read their inputs from the
//! run's store and write their outputs there) or a member of a training. The work itself is
//! the runtime's [`Function`], kept between invocations of the same run while the sandbox
//! lives. A request past its deadline is refused; a task that reaches it stops.

use crate::request::{KEY_ENV, MAX_PAYLOAD_BYTES, Reply, Request, Run, Signed, Spill, Work};
use flow_runtime::distributed::auth::Secret;
use flow_runtime::distributed::channels::Compression;
use flow_runtime::distributed::protocol::ToWorker;
use flow_runtime::distributed::worker::{self, Function, WorkerArgs};
use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The variables Lambda sets for a function; `lambda_runtime` cannot start without them.
const LAMBDA_ENV: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Whether Lambda started this process as a function.
pub fn started_by_lambda() -> bool {
    std::env::var_os(LAMBDA_ENV[0]).is_some()
}

/// Serves invocations until the Lambda runtime API goes away.
pub fn serve() -> Result<(), String> {
    let missing: Vec<&str> = LAMBDA_ENV
        .iter()
        .copied()
        .filter(|v| std::env::var_os(v).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "started as a Lambda function, but {} {} not set",
            missing.join(", "),
            if missing.len() == 1 { "is" } else { "are" }
        ));
    }
    // `lambda_runtime` panics on an address that is not a URI: Lambda's is `host:port`, an
    // emulator's may be a URL with a path.
    let api = std::env::var(LAMBDA_ENV[0]).unwrap_or_default();
    if api.contains('/') && !api.starts_with("http://") && !api.starts_with("https://") {
        return Err(format!(
            "{}={api} is neither host:port nor an http:// URL",
            LAMBDA_ENV[0]
        ));
    }
    let key = Secret::from_var(KEY_ENV).ok_or_else(|| {
        format!("the function has no key: {KEY_ENV} must hold the deployment's key (`flowc deploy` sets it)")
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let handler = service_fn(move |event: LambdaEvent<Signed>| {
        let key = key.clone();
        async move { answer(&key, event.payload).await }
    });
    runtime
        .block_on(lambda_runtime::run(handler))
        .map_err(|e| e.to_string())
}

/// The run this sandbox served last, and its function.
static SANDBOX: Mutex<Option<(String, Arc<Function>)>> = Mutex::new(None);

/// The function for the request's run: the one kept from an earlier invocation of the same
/// run, else a new one (a sandbox serves one run at a time).
fn function_for(run: &Run, compression: Compression) -> Result<Arc<Function>, String> {
    let id = format!("{}\n{}", run.store, run.prefix);
    let mut sandbox = SANDBOX.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((kept, function)) = sandbox.as_ref()
        && *kept == id
    {
        return Ok(function.clone());
    }
    let secret = Secret::from_hex(&run.secret).ok_or("a malformed run secret")?;
    let function = Arc::new(Function::new(
        &run.store,
        &run.prefix,
        compression,
        secret,
        // Every exchange of a Lambda run goes through storage: no rendezvous host yet.
        None,
    )?);
    *sandbox = Some((id, function.clone()));
    Ok(function)
}

/// Least time a request must have left to be started.
const LEAST_TIME: Duration = Duration::from_millis(100);

async fn answer(key: &Secret, signed: Signed) -> Result<Reply, lambda_runtime::Error> {
    let signed = match &signed.spilled {
        Some(spill) => serde_json::from_slice(&spill.get().await?)?,
        None => signed,
    };
    let request = Request::open(&signed, key)?;
    let run = request.run.clone();
    let left = request.time_left();
    if left < LEAST_TIME {
        return Err("refused: the request's deadline has passed".into());
    }
    let frames = request.frames()?;
    let compression = request.compression()?;
    let deadline = Instant::now() + left;
    let (message, frames) = match request.work {
        Work::Join { coordinator, punch } => {
            let args = WorkerArgs {
                connect: coordinator,
                store: run.store.clone(),
                prefix: run.prefix.clone(),
                compression,
                punch: Some(punch),
            };
            let secret = Secret::from_hex(&run.secret).ok_or("a malformed run secret")?;
            tokio::task::spawn_blocking(move || worker::serve(&args, secret)).await??;
            return Ok(Reply::Served);
        }
        Work::Message {
            message: ToWorker::Release { .. } | ToWorker::Shutdown,
            ..
        } => {
            return Err("refused: a function is sent tasks and training members only".into());
        }
        Work::Message { message, .. } => (message, frames),
    };
    // Off the async threads: a function holds a runtime of its own, which may neither run
    // nor be dropped (when the sandbox moves to another run) inside this one.
    let run_of = request.run.clone();
    let reply = tokio::task::spawn_blocking(move || {
        let function = function_for(&run_of, compression)?;
        Ok::<_, String>(function.handle_until(message, frames, Some(deadline)))
    })
    .await??;
    let reply = reply.ok_or("the request asked for no answer")?;
    let bytes = serde_json::to_vec(&reply)?;
    if bytes.len() > MAX_PAYLOAD_BYTES - 1024 {
        return Ok(Reply::Spilled(Spill::put(&run, "replies", bytes).await?));
    }
    Ok(Reply::Answer(reply))
}
