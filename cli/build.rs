//! Links `flowc` as a position-dependent executable on Linux (glibc). A position-independent
//! one has its ~300,000 relative relocations (vtables and other tables of pointers in the
//! libraries it embeds) applied by the loader at every start, which writes ~1,400 private
//! pages: 4 ms of a process start of 6 ms on the development VM. A run starts a process per
//! worker, and editors and scripts start `flowc check` over and over, so the start is the cost
//! people feel. The objects stay position-independent; only the final link is fixed, so the
//! executable's own address is not randomised (its libraries, heap and stacks still are).

fn main() {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    // glibc targets only: musl ones link statically, where the flag would fight `-static-pie`.
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
