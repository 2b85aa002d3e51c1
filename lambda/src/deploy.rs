//! `flowc deploy`: packages `flowc` as a Lambda function (a zip holding `bootstrap`, the
//! custom runtime `provided.al2023`), uploads it to the bucket once per content, and creates
//! or updates one function per memory size ([`crate::names`]), each with the deployment's
//! key in its environment, waiting until each is active. Idempotent: a function whose code,
//! memory, role, timeout, architecture and key are already as asked is left alone. Nothing
//! is created when the package cannot be uploaded, and a `--dry-run` reads but changes
//! nothing.

use crate::backend::{MAX_TASK, aws_config_in, said, sdk_runtime};
use crate::names::function_name;
use crate::request::KEY_ENV;
use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::types::{Architecture, Environment, FunctionCode, Runtime};
use base64::Engine;
use flow_runtime::distributed::auth::Secret;
use flow_runtime::distributed::store::open_bucket;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Lambda's limit on a function's unzipped code.
const MAX_UNZIPPED: u64 = 250 * 1024 * 1024;

/// How long a function may take to become active or updated.
const WAIT: Duration = Duration::from_secs(300);

/// The memory sizes deployed unless `--memory-mb` says otherwise: a small function, one
/// vCPU, two, and the largest.
pub const DEFAULT_SIZES: [u32; 4] = [512, 1769, 3538, 10240];

/// The instruction set the functions run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    fn lambda(self) -> Architecture {
        match self {
            Arch::X86_64 => Architecture::X8664,
            Arch::Arm64 => Architecture::Arm64,
        }
    }

    /// The architecture of this build of flowc.
    pub fn here() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

/// What the function's code is.
#[derive(Debug, Clone)]
pub enum Package {
    /// A zip holding `bootstrap` (`cargo lambda build --release --bin flowc --output-format zip`).
    Zip(PathBuf),
    /// An executable to zip as `bootstrap` (the running flowc, by default).
    Executable(PathBuf),
}

/// What `flowc deploy` was asked.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub role: String,
    pub bucket: String,
    pub region: Option<String>,
    pub arch: Arch,
    pub sizes: Vec<u32>,
    pub prefix: String,
    pub package: Package,
    pub dry_run: bool,
}

/// Deploys, saying each step to `say`.
pub fn deploy(options: &DeployOptions, say: &mut (dyn FnMut(String) + Send)) -> Result<(), String> {
    let zip = package(&options.package)?;
    let digest = Sha256::digest(&zip);
    let sha = base64::engine::general_purpose::STANDARD.encode(digest);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("{}/code/{hex}.zip", options.prefix);
    say(format!(
        "package: {} bytes, sha256 {}",
        zip.len(),
        &hex[..16]
    ));
    let runtime = sdk_runtime()?;
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(deploy_async(options, zip, &sha, &key, say)))
            .join()
            .unwrap_or_else(|_| Err("the deployment stopped unexpectedly".into()))
    })
}

/// The zip of the package, checked.
fn package(package: &Package) -> Result<Vec<u8>, String> {
    match package {
        Package::Zip(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("--package {}: cannot read it: {e}", path.display()))?;
            let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes))
                .map_err(|e| format!("--package {}: not a zip file: {e}", path.display()))?;
            let size = archive
                .by_name("bootstrap")
                .map_err(|_| {
                    format!(
                        "--package {}: it holds no `bootstrap`, the executable Lambda's custom runtime starts",
                        path.display()
                    )
                })?
                .size();
            check_unzipped(size)?;
            Ok(bytes)
        }
        Package::Executable(path) => {
            let mut file = std::fs::File::open(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut exe = Vec::new();
            file.read_to_end(&mut exe)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            check_unzipped(exe.len() as u64)?;
            zip_bootstrap(&exe)
        }
    }
}

fn check_unzipped(size: u64) -> Result<(), String> {
    if size > MAX_UNZIPPED {
        return Err(format!(
            "the function's code is {} MB unzipped, over Lambda's limit of 250 MB",
            size / (1024 * 1024)
        ));
    }
    Ok(())
}

/// A zip holding `exe` as `bootstrap`, the same bytes for the same executable (a fixed
/// date), so an unchanged flowc deploys nothing.
fn zip_bootstrap(exe: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::default());
    writer
        .start_file("bootstrap", options)
        .and_then(|()| writer.write_all(exe).map_err(Into::into))
        .and_then(|()| writer.finish().map(|_| ()))
        .map_err(|e| format!("cannot zip the function: {e}"))?;
    Ok(out.into_inner())
}

/// What matters of a deployed function.
#[derive(Debug)]
struct Current {
    code_sha256: Option<String>,
    memory: Option<i32>,
    role: Option<String>,
    timeout: Option<i32>,
    arch: Option<Architecture>,
    key: Option<String>,
}

/// One function as deployed, if it is.
async fn existing(client: &aws_sdk_lambda::Client, name: &str) -> Result<Option<Current>, String> {
    match client
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
    {
        Ok(c) => Ok(Some(Current {
            key: c
                .environment()
                .and_then(|e| e.variables())
                .and_then(|v| v.get(KEY_ENV))
                .cloned(),
            arch: c.architectures().first().cloned(),
            code_sha256: c.code_sha256,
            memory: c.memory_size,
            role: c.role,
            timeout: c.timeout,
        })),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(format!("cannot read the function {name}: {}", said(&e))),
    }
}

async fn deploy_async(
    options: &DeployOptions,
    zip: Vec<u8>,
    sha: &str,
    key: &str,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), String> {
    let config = aws_config_in(options.region.as_deref()).await?;
    let client = aws_sdk_lambda::Client::new(&config);
    let names: Vec<(u32, String)> = options
        .sizes
        .iter()
        .map(|m| (*m, function_name(&options.prefix, *m)))
        .collect();
    let mut deployed = Vec::new();
    for (_, name) in &names {
        deployed.push(existing(&client, name).await?);
    }
    // Every function of a deployment shares one key; a new deployment makes it.
    let secret = deployed
        .iter()
        .flatten()
        .find_map(|c| c.key.clone())
        .map_or_else(|| Secret::generate().map(|s| s.to_hex()), Ok)
        .map_err(|e| format!("no randomness for the deployment's key: {e}"))?;
    let code_needed = deployed.iter().any(|d| {
        d.as_ref()
            .is_none_or(|c| c.code_sha256.as_deref() != Some(sha))
    });
    let uploaded = if code_needed {
        upload(options, &zip, key, say).await?
    } else {
        None
    };
    let wanted = Wanted {
        options,
        sha,
        key,
        secret: &secret,
    };
    for (k, ((memory, name), current)) in names.iter().zip(&deployed).enumerate() {
        if let Err(e) = wanted
            .apply(&client, *memory, name, current.as_ref(), say)
            .await
        {
            // Refused before anything used it: the package goes too.
            if k == 0
                && let Some(store) = uploaded
            {
                let _ = store.delete(&ObjectPath::from(key)).await;
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Puts the package in the bucket, unless an object of the same content is there; the
/// bucket when this call put it.
async fn upload(
    options: &DeployOptions,
    zip: &[u8],
    key: &str,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<Option<std::sync::Arc<dyn object_store::ObjectStore>>, String> {
    let bucket = &options.bucket;
    let store = open_bucket(bucket, options.region.as_deref())
        .map_err(|e| format!("--bucket {bucket}: {e}"))?;
    let path = ObjectPath::from(key);
    match store.head(&path).await {
        Ok(_) => {
            say(format!("s3://{bucket}/{key} is already uploaded"));
            return Ok(None);
        }
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(format!("--bucket {bucket}: cannot reach the bucket: {e}")),
    }
    if options.dry_run {
        say(format!("would upload the package to s3://{bucket}/{key}"));
        return Ok(None);
    }
    store
        .put(&path, zip.to_vec().into())
        .await
        .map_err(|e| format!("--bucket {bucket}: cannot upload the package: {e}"))?;
    say(format!("uploaded the package to s3://{bucket}/{key}"));
    Ok(Some(store))
}

/// What every function should be.
struct Wanted<'a> {
    options: &'a DeployOptions,
    sha: &'a str,
    key: &'a str,
    secret: &'a str,
}

impl Wanted<'_> {
    fn environment(&self) -> Environment {
        Environment::builder()
            .variables(KEY_ENV, self.secret)
            .build()
    }

    fn timeout(&self) -> i32 {
        MAX_TASK.as_secs() as i32
    }

    /// Brings one function to what is wanted.
    async fn apply(
        &self,
        client: &aws_sdk_lambda::Client,
        memory: u32,
        name: &str,
        current: Option<&Current>,
        say: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), String> {
        let o = self.options;
        let arch = o.arch.lambda();
        let Some(current) = current else {
            if o.dry_run {
                say(format!(
                    "would create {name} ({memory} MB, {})",
                    arch.as_str()
                ));
                return Ok(());
            }
            self.create(client, memory, name).await?;
            say(format!("created {name} ({memory} MB, {})", arch.as_str()));
            return Ok(());
        };
        let code_differs = current.code_sha256.as_deref() != Some(self.sha)
            || current.arch.as_ref() != Some(&arch);
        let config_differs = current.memory != Some(memory as i32)
            || current.role.as_deref() != Some(o.role.as_str())
            || current.timeout != Some(self.timeout())
            || current.key.as_deref() != Some(self.secret);
        if !code_differs && !config_differs {
            say(format!("{name} is up to date"));
            return Ok(());
        }
        if code_differs {
            if o.dry_run {
                say(format!(
                    "would update the code of {name} and publish a version"
                ));
            } else {
                let version = self.update_code(client, name).await?;
                say(format!(
                    "updated the code of {name} and published version {version}"
                ));
            }
        }
        if config_differs {
            if o.dry_run {
                say(format!("would update the configuration of {name}"));
            } else {
                self.update_configuration(client, memory, name).await?;
                say(format!("updated the configuration of {name}"));
            }
        }
        Ok(())
    }

    async fn create(
        &self,
        client: &aws_sdk_lambda::Client,
        memory: u32,
        name: &str,
    ) -> Result<(), String> {
        let o = self.options;
        client
            .create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(&o.role)
            .code(
                FunctionCode::builder()
                    .s3_bucket(&o.bucket)
                    .s3_key(self.key)
                    .build(),
            )
            .memory_size(memory as i32)
            .timeout(self.timeout())
            .architectures(o.arch.lambda())
            .environment(self.environment())
            .publish(true)
            .send()
            .await
            .map_err(|e| self.refused(name, "create", &e))?;
        self.wait_active(client, name).await
    }

    /// Points the function at the package and publishes a version; the version.
    async fn update_code(
        &self,
        client: &aws_sdk_lambda::Client,
        name: &str,
    ) -> Result<String, String> {
        let o = self.options;
        let updated = client
            .update_function_code()
            .function_name(name)
            .s3_bucket(&o.bucket)
            .s3_key(self.key)
            .architectures(o.arch.lambda())
            .publish(true)
            .send()
            .await
            .map_err(|e| self.refused(name, "update the code of", &e))?;
        self.wait_updated(client, name).await?;
        Ok(updated.version().unwrap_or("?").to_string())
    }

    async fn update_configuration(
        &self,
        client: &aws_sdk_lambda::Client,
        memory: u32,
        name: &str,
    ) -> Result<(), String> {
        let o = self.options;
        client
            .update_function_configuration()
            .function_name(name)
            .role(&o.role)
            .memory_size(memory as i32)
            .timeout(self.timeout())
            .environment(self.environment())
            .send()
            .await
            .map_err(|e| self.refused(name, "update the configuration of", &e))?;
        self.wait_updated(client, name).await
    }

    /// Lambda's refusal, naming the setting that caused it where it is clear.
    fn refused<E, R>(
        &self,
        name: &str,
        what: &str,
        e: &aws_sdk_lambda::error::SdkError<E, R>,
    ) -> String
    where
        E: aws_sdk_lambda::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let text = said(e);
        let role = &self.options.role;
        if text.to_lowercase().contains("role") {
            format!("--role {role}: Lambda cannot use this role to {what} {name}: {text}")
        } else if text.contains("S3") || text.to_lowercase().contains("bucket") {
            format!(
                "--bucket {}: Lambda cannot read the package to {what} {name}: {text}",
                self.options.bucket
            )
        } else {
            format!("cannot {what} {name}: {text}")
        }
    }

    async fn wait_active(&self, client: &aws_sdk_lambda::Client, name: &str) -> Result<(), String> {
        client
            .wait_until_function_active_v2()
            .function_name(name)
            .wait(WAIT)
            .await
            .map(|_| ())
            .map_err(|e| format!("{name} did not become active: {}", DisplayErrorContext(&e)))
    }

    async fn wait_updated(
        &self,
        client: &aws_sdk_lambda::Client,
        name: &str,
    ) -> Result<(), String> {
        client
            .wait_until_function_updated_v2()
            .function_name(name)
            .wait(WAIT)
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "{name} did not finish updating: {}",
                    DisplayErrorContext(&e)
                )
            })
    }
}
