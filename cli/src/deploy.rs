//! `flowc deploy`: the flags, checked, handed to `flow_lambda::deploy`.

use crate::{USAGE, USER_ERROR};
use clap::{Args, ValueEnum};
use flow_lambda::deploy::{Arch, DEFAULT_SIZES, DeployOptions, Package, deploy as run_deploy};
use flow_lambda::names::DEFAULT_PREFIX;
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum ArchFlag {
    #[value(name = "x86_64")]
    X86_64,
    Arm64,
}

#[derive(Args)]
pub struct DeployArgs {
    /// The IAM role the functions run as (it needs S3 access to the run store's bucket)
    #[arg(long, value_name = "ARN")]
    pub role: String,
    /// The S3 bucket the function's package is uploaded to
    #[arg(long, value_name = "NAME")]
    pub bucket: String,
    /// The AWS region (default: AWS_REGION, or the profile's)
    #[arg(long)]
    pub region: Option<String>,
    /// The functions' instruction set (default: this machine's)
    #[arg(long, value_enum)]
    pub arch: Option<ArchFlag>,
    /// Memory sizes to deploy a function for, in MB, comma-separated; runs plan with these
    /// sizes only
    #[arg(long = "memory-mb", value_name = "MB,...", value_delimiter = ',')]
    pub memory_mb: Vec<u32>,
    /// The prefix of the functions' names (default: flowc)
    #[arg(long, value_name = "NAME")]
    pub function_prefix: Option<String>,
    /// A zip holding `bootstrap` (`cargo lambda build --release --bin flowc --output-format
    /// zip`); by default this flowc is packaged
    #[arg(long, value_name = "ZIP")]
    pub package: Option<PathBuf>,
    /// Say what would change, and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn deploy(args: DeployArgs) -> u8 {
    crate::logging::init(0);
    let here = Arch::here();
    let arch = match args.arch {
        Some(ArchFlag::X86_64) => Arch::X86_64,
        Some(ArchFlag::Arm64) => Arch::Arm64,
        None => here.unwrap_or(Arch::X86_64),
    };
    let package = match &args.package {
        Some(zip) => Package::Zip(zip.clone()),
        None if Some(arch) != here || std::env::consts::OS != "linux" => {
            eprintln!(
                "error: this flowc cannot run on {} Lambda functions; build one that can and give it with --package",
                if arch == Arch::Arm64 {
                    "arm64"
                } else {
                    "x86_64"
                }
            );
            eprintln!(
                "hint: cargo lambda build --release --bin flowc --output-format zip{}",
                if arch == Arch::Arm64 { " --arm64" } else { "" }
            );
            return USAGE;
        }
        None => match std::env::current_exe() {
            Ok(exe) => Package::Executable(exe),
            Err(e) => {
                eprintln!("error: cannot find the flowc executable to package: {e}");
                return USER_ERROR;
            }
        },
    };
    let sizes = if args.memory_mb.is_empty() {
        DEFAULT_SIZES.to_vec()
    } else {
        args.memory_mb.clone()
    };
    // The `aws` profile owns Lambda's memory range.
    let (least, most) = flow_planner::Profile::builtin("aws")
        .map(|p| (p.compute.memory_min_mb, p.compute.memory_max_mb))
        .unwrap_or((128, 10240));
    if let Some(m) = sizes.iter().find(|m| !(least..=most).contains(*m)) {
        eprintln!("error: --memory-mb {m}: Lambda functions have {least} to {most} MB");
        return USAGE;
    }
    let options = DeployOptions {
        role: args.role,
        bucket: args.bucket,
        region: args.region,
        arch,
        sizes,
        prefix: args
            .function_prefix
            .unwrap_or_else(|| DEFAULT_PREFIX.into()),
        package,
        dry_run: args.dry_run,
    };
    let mut say = |line: String| outln!("{line}");
    match run_deploy(&options, &mut say) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            USER_ERROR
        }
    }
}
