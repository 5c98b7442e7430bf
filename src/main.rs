//! The `hoist` command line: parses flags, calls the library, prints results.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let level = match (args.quiet, args.verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::WARN,
        (false, 1) => tracing::Level::INFO,
        (false, _) => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(|| cli::progress::LogWriter)
        .with_ansi(cli::progress::colour())
        .without_time()
        .with_target(false)
        .init();
    let command = args.command_name();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if is_broken_pipe(&error) {
                return ExitCode::SUCCESS;
            }
            if let Some(interrupted @ hoist::Error::Interrupted { .. }) = library_error(&error) {
                // One line per blob left unfinished, each saying how to continue.
                for line in interrupted.to_string().lines() {
                    let _ = writeln!(std::io::stderr(), "hoist: {}", hoist::text::printable(line));
                }
                return ExitCode::from(interrupted.exit_code());
            }
            let message = cli::without_own_hint(&hoist::text::printable(&format!("{error:#}")), &command);
            let _ = writeln!(std::io::stderr(), "hoist: error: {message}");
            ExitCode::from(exit_code(&error))
        }
    }
}

/// The exit code for an error: the library's [`hoist::Error::exit_code`], else 1.
fn exit_code(error: &anyhow::Error) -> u8 {
    library_error(error).map_or(hoist::error::exit::OTHER, hoist::Error::exit_code)
}

/// The library's error behind `error`, if any.
fn library_error(error: &anyhow::Error) -> Option<&hoist::Error> {
    error.chain().find_map(|cause| cause.downcast_ref::<hoist::Error>())
}

/// A closed stdout (`hoist … | head`) is not a failure.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}
