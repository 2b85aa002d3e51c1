//! What is deployed: the functions named `PREFIX-MEMmb` ([`crate::names`]), their memory
//! sizes (the only sizes a run on Lambda may plan with) and the deployment's key, which
//! `flowc deploy` puts in every function's environment and the coordinator signs requests
//! with. Found by listing the functions, or given by `FLOW_LAMBDA_MEMORY_MB` (comma-separated
//! sizes) and `FLOW_LAMBDA_KEY` when the Lambda API in use serves invocations only (the local
//! emulator).

use crate::backend::{aws_config, said, sdk_runtime};
use crate::names::memory_of;
use crate::request::KEY_ENV;
use flow_runtime::distributed::auth::Secret;

/// The environment variable listing the deployed memory sizes when they are not looked up.
pub const MEMORY_ENV: &str = "FLOW_LAMBDA_MEMORY_MB";

/// The deployed functions a run may invoke.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The prefix of their names.
    pub prefix: String,
    /// Their memory sizes, ascending.
    pub sizes: Vec<u32>,
    /// The key requests are signed with.
    pub key: Secret,
}

impl Deployment {
    /// The functions deployed under `prefix`: from [`MEMORY_ENV`] and [`KEY_ENV`] when both
    /// are set, else by listing the functions.
    pub fn find(prefix: &str) -> Result<Deployment, String> {
        if let (Some(sizes), Some(key)) = (std::env::var_os(MEMORY_ENV), Secret::from_var(KEY_ENV))
        {
            let sizes = parse_sizes(&sizes.to_string_lossy())?;
            return Ok(Deployment {
                prefix: prefix.to_string(),
                sizes,
                key,
            });
        }
        let runtime = sdk_runtime()?;
        // On a thread of its own: the caller may be running on another runtime.
        std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(list(prefix)))
                .join()
                .unwrap_or_else(|_| Err("listing the deployed functions failed".into()))
        })
    }
}

/// The deployed sizes [`MEMORY_ENV`] names, if it is set: what `flowc plan --target lambda`
/// plans with, without asking AWS.
pub fn sizes_from_env() -> Result<Option<Vec<u32>>, String> {
    std::env::var_os(MEMORY_ENV)
        .map(|sizes| parse_sizes(&sizes.to_string_lossy()))
        .transpose()
}

/// Sizes written `1769,3538`.
fn parse_sizes(text: &str) -> Result<Vec<u32>, String> {
    let mut sizes = text
        .split(',')
        .map(|s| s.trim().parse::<u32>())
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|_| {
            format!("{MEMORY_ENV}={text}: write the deployed sizes in MB, like 1769,3538")
        })?;
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() {
        return Err(format!("{MEMORY_ENV} names no memory size"));
    }
    Ok(sizes)
}

async fn list(prefix: &str) -> Result<Deployment, String> {
    let client = aws_sdk_lambda::Client::new(&aws_config().await?);
    let mut pages = client.list_functions().into_paginator().items().send();
    let mut sizes = Vec::new();
    let mut key = None;
    while let Some(function) = pages.next().await {
        let function =
            function.map_err(|e| format!("cannot list the deployed functions: {}", said(&e)))?;
        let Some(memory) = function
            .function_name()
            .and_then(|name| memory_of(prefix, name))
        else {
            continue;
        };
        sizes.push(memory);
        if key.is_none() {
            key = function
                .environment()
                .and_then(|e| e.variables())
                .and_then(|v| v.get(KEY_ENV))
                .and_then(|k| Secret::from_hex(k));
        }
    }
    if sizes.is_empty() {
        return Err(format!(
            "no functions named {prefix}-<memory>mb are deployed: deploy them with `flowc deploy --role ARN --bucket NAME`"
        ));
    }
    let key = key.ok_or_else(|| {
        format!("the functions {prefix}-*mb have no deployment key ({KEY_ENV}): deploy them again with `flowc deploy`")
    })?;
    sizes.sort_unstable();
    sizes.dedup();
    Ok(Deployment {
        prefix: prefix.to_string(),
        sizes,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_sorted_and_bad_ones_named() {
        assert_eq!(parse_sizes("3538, 1769,1769").unwrap(), vec![1769, 3538]);
        assert!(parse_sizes("big").unwrap_err().contains(MEMORY_ENV));
    }
}
