//! What the deployed functions are called. One function per memory size a plan uses (Lambda
//! fixes memory, and with it vCPUs, per function), named `PREFIX-MEMmb`.

/// The prefix of the functions' names unless `--function-prefix` says otherwise.
pub const DEFAULT_PREFIX: &str = "flowc";

/// The name of the function with `memory_mb` of memory.
pub fn function_name(prefix: &str, memory_mb: u32) -> String {
    format!("{prefix}-{memory_mb}mb")
}

/// The memory of a function named by [`function_name`] with `prefix`.
pub fn memory_of(prefix: &str, name: &str) -> Option<u32> {
    name.strip_prefix(prefix)?
        .strip_prefix('-')?
        .strip_suffix("mb")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_says_its_memory() {
        assert_eq!(function_name("flowc", 1769), "flowc-1769mb");
        assert_eq!(memory_of("flowc", "flowc-1769mb"), Some(1769));
        assert_eq!(memory_of("flowc", "other-1769mb"), None);
        assert_eq!(memory_of("flowc", "flowc-big"), None);
    }
}
