//! Target profiles: the prices, limits, latencies and bandwidths the cost model reads. They
//! are data (`planner/profiles/*.toml`, each figure with its source) so that a calibration
//! or a new region changes numbers, not code.

use serde::Deserialize;
use std::fmt;

/// Everything the cost model knows about one target.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub compute: Compute,
    pub direct: Direct,
    pub storage: Storage,
}

/// Functions: prices and limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compute {
    pub usd_per_gb_s_x86: f64,
    pub usd_per_gb_s_arm64: f64,
    pub usd_per_request: f64,
    pub memory_min_mb: u32,
    pub memory_max_mb: u32,
    pub mb_per_vcpu: u32,
    pub max_vcpus: u32,
    pub max_duration_s: f64,
    pub max_sync_payload_mb: u32,
    pub cold_start_s: f64,
}

/// Direct TCP channels between functions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Direct {
    pub latency_s: f64,
    /// `[memory_mb, bytes_per_s]` points, by increasing memory.
    pub bandwidth_by_memory: Vec<(u32, f64)>,
    pub flat_fanout_bytes_per_s: f64,
    pub pairing_s: f64,
    pub rendezvous_usd_per_hour: f64,
}

/// The storage hop.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    pub latency_s: f64,
    pub bandwidth_bytes_per_s: f64,
    pub usd_per_put: f64,
    pub usd_per_get: f64,
    pub puts_per_s_per_prefix: u32,
    pub gets_per_s_per_prefix: u32,
    pub max_readers_per_object: u32,
    pub poll_interval_s: f64,
}

/// Why a profile was rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileError(pub String);

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProfileError {}

const BUILTIN: [(&str, &str); 2] = [
    ("aws", include_str!("../profiles/aws.toml")),
    ("local", include_str!("../profiles/local.toml")),
];

impl Profile {
    /// The names of the profiles shipped with flow.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(name, _)| *name)
    }

    /// A profile shipped with flow (`aws`, `local`).
    pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
        let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            ProfileError(format!(
                "no built-in profile `{name}`; profiles: {}",
                Self::builtin_names().collect::<Vec<_>>().join(", ")
            ))
        })?;
        Profile::from_toml(text)
    }

    /// Reads and validates a profile written as TOML.
    pub fn from_toml(text: &str) -> Result<Profile, ProfileError> {
        let profile: Profile =
            toml::from_str(text).map_err(|e| ProfileError(format!("invalid profile: {e}")))?;
        profile.validate()?;
        Ok(profile)
    }

    fn validate(&self) -> Result<(), ProfileError> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let c = &self.compute;
        let fail = |what: &str| Err(ProfileError(format!("profile `{}`: {what}", self.name)));
        let non_negative = [
            c.usd_per_gb_s_x86,
            c.usd_per_gb_s_arm64,
            c.usd_per_request,
            c.cold_start_s,
            self.direct.latency_s,
            self.direct.pairing_s,
            self.direct.rendezvous_usd_per_hour,
            self.storage.latency_s,
            self.storage.usd_per_put,
            self.storage.usd_per_get,
            self.storage.poll_interval_s,
        ];
        if non_negative.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
            return fail("prices, latencies and intervals must be finite and not negative");
        }
        if c.memory_min_mb == 0 || c.memory_min_mb > c.memory_max_mb {
            return fail("memory_min_mb must be positive and at most memory_max_mb");
        }
        if c.mb_per_vcpu == 0 || c.max_vcpus == 0 || !positive(c.max_duration_s) {
            return fail("mb_per_vcpu, max_vcpus and max_duration_s must be positive");
        }
        let points = &self.direct.bandwidth_by_memory;
        if points.is_empty() || points.iter().any(|(_, b)| !positive(*b)) {
            return fail(
                "direct.bandwidth_by_memory needs at least one point with a positive bandwidth",
            );
        }
        if points.windows(2).any(|w| w[0].0 >= w[1].0) {
            return fail("direct.bandwidth_by_memory must list memories in increasing order");
        }
        if !positive(self.storage.bandwidth_bytes_per_s)
            || !positive(self.direct.flat_fanout_bytes_per_s)
        {
            return fail("bandwidths must be positive");
        }
        Ok(())
    }

    /// vCPUs a function of this memory gets: memory buys compute, at least one.
    pub fn vcpus(&self, memory_mb: u32) -> f64 {
        (f64::from(memory_mb) / f64::from(self.compute.mb_per_vcpu))
            .clamp(1.0 / 16.0, f64::from(self.compute.max_vcpus))
    }

    /// Direct-channel bandwidth of a function with this memory, in bytes per second:
    /// linear between the measured points, flat outside them.
    pub fn direct_bandwidth(&self, memory_mb: u32) -> f64 {
        let points = &self.direct.bandwidth_by_memory;
        let m = f64::from(memory_mb);
        let first = points[0];
        let last = points[points.len() - 1];
        if m <= f64::from(first.0) {
            return first.1;
        }
        if m >= f64::from(last.0) {
            return last.1;
        }
        let i = points.partition_point(|(pm, _)| f64::from(*pm) <= m);
        let (m0, b0) = points[i - 1];
        let (m1, b1) = points[i];
        b0 + (b1 - b0) * (m - f64::from(m0)) / f64::from(m1 - m0)
    }

    /// Dollars for `seconds` of one function with this memory (x86 prices).
    pub fn compute_usd(&self, memory_mb: u32, seconds: f64) -> f64 {
        f64::from(memory_mb) / 1024.0 * seconds * self.compute.usd_per_gb_s_x86
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_load_and_validate() {
        for name in Profile::builtin_names() {
            let p = Profile::builtin(name).unwrap();
            assert_eq!(p.name, name);
        }
        assert!(
            Profile::builtin("gcp")
                .unwrap_err()
                .0
                .contains("aws, local")
        );
    }

    #[test]
    fn aws_figures_follow_the_public_prices() {
        let aws = Profile::builtin("aws").unwrap();
        // 1,024 MB for one second costs the GB-second price.
        assert!((aws.compute_usd(1024, 1.0) - 0.0000166667).abs() < 1e-12);
        assert_eq!(aws.vcpus(1769), 1.0);
        let most = aws.vcpus(10240);
        assert!(most > 5.7 && most <= 6.0, "{most}");
        assert_eq!(aws.vcpus(20_000), 6.0);
        assert!(aws.vcpus(128) < 0.1);
    }

    #[test]
    fn direct_bandwidth_interpolates_between_points() {
        let aws = Profile::builtin("aws").unwrap();
        assert_eq!(aws.direct_bandwidth(128), 165e6);
        assert_eq!(aws.direct_bandwidth(256), 165e6);
        assert_eq!(aws.direct_bandwidth(4096), 470e6);
        let mid = aws.direct_bandwidth(1152);
        assert!((mid - (165e6 + 305e6 / 2.0)).abs() < 1.0, "{mid}");
    }

    #[test]
    fn bad_profiles_are_rejected_with_a_reason() {
        let good = include_str!("../profiles/local.toml");
        let negative = good.replace("usd_per_request = 0.0", "usd_per_request = -1.0");
        assert!(
            Profile::from_toml(&negative)
                .unwrap_err()
                .0
                .contains("not negative")
        );
        let unknown = good.replace("[storage]", "[storage]\nwhatever = 1");
        assert!(
            Profile::from_toml(&unknown)
                .unwrap_err()
                .0
                .contains("whatever")
        );
        let unordered = good.replace("[[128, 2.7e9]]", "[[256, 1e9], [128, 2e9]]");
        assert!(
            Profile::from_toml(&unordered)
                .unwrap_err()
                .0
                .contains("increasing")
        );
    }
}
