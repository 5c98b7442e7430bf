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
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if is_broken_pipe(&error) {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "hoist: error: {error:#}");
            ExitCode::from(exit_code(&error))
        }
    }
}

/// The exit code for an error: what kind of fix it needs (see README, "Exit codes").
fn exit_code(error: &anyhow::Error) -> u8 {
    use hoist::registry::RegistryError as R;
    use hoist::Error as E;
    let Some(error) = error.chain().find_map(|cause| cause.downcast_ref::<E>()) else {
        return 1;
    };
    match error {
        E::Invalid { .. }
        | E::SourceMissing { .. }
        | E::SpecialFile { .. }
        | E::NotALayout { .. }
        | E::BuildFile { .. } => 3,
        E::CredentialHelper { .. } | E::Registry(R::Unauthorized { .. } | R::Denied { .. }) => 4,
        E::Registry(R::NotFound { .. }) => 5,
        E::Registry(
            R::Connect { .. } | R::Tls { .. } | R::PlainHttp { .. } | R::Timeout { .. } | R::Stalled { .. },
        ) => 6,
        E::DigestMismatch { .. } | E::CorruptLayout { .. } | E::Registry(R::TooLarge { .. }) => 7,
        E::Registry(R::TooManyRequests { .. }) | E::RetriesExhausted { .. } => 75,
        _ => 1,
    }
}

/// A closed stdout (`hoist … | head`) is not a failure.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}
