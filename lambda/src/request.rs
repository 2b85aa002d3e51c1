//! What the coordinator's side sends a function in one invocation, and how the function
//! knows it came from whoever deployed it: the request travels as JSON text signed with the
//! deployment's key (HMAC-SHA256), which only the deployer and the functions hold. A payload
//! without a valid signature is refused before any of it is read.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flow_runtime::distributed::auth::Secret;
use flow_runtime::distributed::channels::Compression;
use flow_runtime::distributed::protocol::{ToCoordinator, ToWorker};
use flow_runtime::distributed::punched::PunchOptions;
use flow_runtime::distributed::store::open_store;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The version of the request format; a function refuses any other.
pub const VERSION: u32 = 2;

/// The environment variable holding the deployment's key (hex) in a function, and in
/// `flowc run --target lambda` when it does not read it from the function's configuration.
pub const KEY_ENV: &str = "FLOW_LAMBDA_KEY";

/// Lambda's limit on a synchronous request and on its response.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// The run a request belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// The run's store URL (`s3://bucket/prefix`).
    pub store: String,
    /// The run's prefix in the store.
    pub prefix: String,
    /// Compression of exchanged data, by name.
    pub compression: String,
    /// The run's secret (hex): what its direct channels prove.
    pub secret: String,
}

/// One invocation's work.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    pub run: Run,
    /// Milliseconds since the Unix epoch after which the function must not be working on it.
    pub deadline_ms: u64,
    pub work: Work,
}

/// What an invocation is for.
#[derive(Debug, Serialize, Deserialize)]
pub enum Work {
    /// One task or training member, answered by the invocation's reply.
    Message {
        message: ToWorker,
        /// The frames that follow the message on a worker's control connection, base64.
        frames: Vec<String>,
    },
    /// Serve as one worker of the run until the coordinator ends it (or the deadline): join
    /// the coordinator at `coordinator` and reach peers through the rendezvous host, so that
    /// outputs are served from a function that is still running.
    Join {
        coordinator: String,
        punch: PunchOptions,
    },
}

/// The payload of an invocation: the request's JSON text and its signature, or where in the
/// run's store a payload too large for Lambda was put.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Signed {
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spilled: Option<Spill>,
}

/// An object in a run's store holding what did not fit in Lambda's 6 MB.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spill {
    /// The run's store URL.
    pub store: String,
    /// The object's path in it.
    pub path: String,
}

/// What a function answers: the reply itself, or where it put a reply over 6 MB, or (for
/// [`Work::Join`]) that it served as a worker until the run let it go.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Answer(ToCoordinator),
    Spilled(Spill),
    Served,
}

impl Spill {
    /// Puts `bytes` under the run's prefix (removed with the run's other objects).
    pub async fn put(run: &Run, what: &str, bytes: Vec<u8>) -> Result<Spill, String> {
        let mut name = [0u8; 16];
        getrandom::fill(&mut name).map_err(|e| e.to_string())?;
        let name: String = name.iter().map(|b| format!("{b:02x}")).collect();
        let spill = Spill {
            store: run.store.clone(),
            path: format!("{}/lambda/{what}/{name}", run.prefix),
        };
        let store = open_store(&spill.store)?;
        store
            .put(&ObjectPath::from(spill.path.as_str()), bytes.into())
            .await
            .map_err(|e| format!("cannot put {what} over 6 MB in the run's store: {e}"))?;
        Ok(spill)
    }

    /// The bytes put there.
    pub async fn get(&self) -> Result<Vec<u8>, String> {
        let store = open_store(&self.store)?;
        let object = store
            .get(&ObjectPath::from(self.path.as_str()))
            .await
            .map_err(|e| format!("cannot read {} from the run's store: {e}", self.path))?;
        let bytes = object.bytes().await.map_err(|e| e.to_string())?;
        Ok(bytes.to_vec())
    }
}

impl Request {
    /// A request for `message` and its frames, due by `deadline`.
    pub fn new(run: Run, message: ToWorker, frames: &[Vec<u8>], deadline: SystemTime) -> Request {
        let frames = frames.iter().map(|f| STANDARD.encode(f)).collect();
        Request::of(run, Work::Message { message, frames }, deadline)
    }

    /// A request for `work`, due by `deadline`.
    pub fn of(run: Run, work: Work, deadline: SystemTime) -> Request {
        Request {
            version: VERSION,
            run,
            deadline_ms: deadline
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            work,
        }
    }

    /// The request signed with `key`, as the bytes of an invocation's payload.
    pub fn sign(&self, key: &Secret) -> Result<Vec<u8>, String> {
        let body = serde_json::to_string(self).map_err(|e| e.to_string())?;
        let signature = key.sign(body.as_bytes());
        serde_json::to_vec(&Signed {
            body,
            signature,
            spilled: None,
        })
        .map_err(|e| e.to_string())
    }

    /// The request in a signed payload, if `key` signed it and it is of this version.
    pub fn open(signed: &Signed, key: &Secret) -> Result<Request, String> {
        if !key.verify(signed.body.as_bytes(), &signed.signature) {
            return Err("refused: the request is not signed with this deployment's key".into());
        }
        let request: Request =
            serde_json::from_str(&signed.body).map_err(|e| format!("a malformed request: {e}"))?;
        if request.version != VERSION {
            return Err(format!(
                "refused: a request of version {} for a function of version {VERSION} (deploy again)",
                request.version
            ));
        }
        Ok(request)
    }

    /// The frames, decoded (none for [`Work::Join`]).
    pub fn frames(&self) -> Result<Vec<Vec<u8>>, String> {
        let Work::Message { frames, .. } = &self.work else {
            return Ok(Vec::new());
        };
        frames
            .iter()
            .map(|f| {
                STANDARD
                    .decode(f)
                    .map_err(|e| format!("a malformed frame: {e}"))
            })
            .collect()
    }

    /// The compression the run uses.
    pub fn compression(&self) -> Result<Compression, String> {
        Compression::parse(&self.run.compression)
            .ok_or_else(|| format!("an unknown compression `{}`", self.run.compression))
    }

    /// How long is left until the deadline (zero once it passed).
    pub fn time_left(&self) -> Duration {
        let deadline = UNIX_EPOCH + Duration::from_millis(self.deadline_ms);
        deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request::new(
            Run {
                store: "s3://b/runs".into(),
                prefix: "run-1".into(),
                compression: "none".into(),
                secret: "00".repeat(32),
            },
            ToWorker::Release {
                prefix: "j0/".into(),
            },
            &[b"plan".to_vec()],
            SystemTime::now() + Duration::from_secs(60),
        )
    }

    #[test]
    fn a_signed_request_opens_with_its_key_only() {
        let key = Secret::generate().unwrap();
        let bytes = request().sign(&key).unwrap();
        let signed: Signed = serde_json::from_slice(&bytes).unwrap();
        let opened = Request::open(&signed, &key).unwrap();
        assert_eq!(opened.frames().unwrap(), vec![b"plan".to_vec()]);
        assert!(opened.time_left() > Duration::from_secs(50));
        let stranger = Secret::generate().unwrap();
        assert!(
            Request::open(&signed, &stranger)
                .unwrap_err()
                .contains("not signed")
        );
    }

    #[test]
    fn a_forged_body_is_refused() {
        let key = Secret::generate().unwrap();
        let bytes = request().sign(&key).unwrap();
        let mut signed: Signed = serde_json::from_slice(&bytes).unwrap();
        signed.body = signed.body.replace("run-1", "run-2");
        assert!(Request::open(&signed, &key).is_err());
    }
}
