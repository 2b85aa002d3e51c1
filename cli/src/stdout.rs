//! Standard output for people and for pipes. A reader that closes it early (`flowc plan …
//! | head`) has read what it wanted: the program ends quietly with success instead of
//! panicking on a broken pipe. Every command prints through [`out!`] and [`outln!`].

use std::io::Write;

/// Writes to standard output; a closed output ends the program (exit 0), any other failure
/// to write is reported and ends it with exit code 1.
pub fn print(args: std::fmt::Arguments<'_>) {
    let written = std::io::stdout().lock().write_fmt(args);
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(i32::from(crate::USER_ERROR));
    }
}
