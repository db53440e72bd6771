//! `hearth`: the language server (`hearth lsp`) and the command line around it.

/// `println!` for the command line. A closed stdout (`hearth context --json | head`) ends the
/// process the way SIGPIPE would; SIGPIPE itself stays ignored, so a network peer hanging up is
/// an error with a message, not a silent death.
macro_rules! outln {
    () => {
        $crate::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the command line (see [`outln!`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

mod actions;
mod backend;
mod cli;
mod config;
mod context;
mod documents;
mod pipeline;
mod review;
#[deny(clippy::print_stdout, clippy::print_stderr)]
mod server;
mod transport;
mod usage;
mod watch;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    // stdout is the LSP channel: logs always go to stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if args.is_lsp() { "info" } else { "warn" })
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hearth: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(cli::run(args));
    // Tokio reads stdin on a blocking thread that stays parked in `read` until the client closes
    // the pipe; a normal runtime drop would wait for it after `exit`. Leave it behind.
    runtime.shutdown_background();
    code
}

pub fn write_stdout(args: std::fmt::Arguments) {
    use std::io::Write;
    let result = std::io::stdout().lock().write_fmt(args);
    if let Err(error) = result {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            // The reader is gone: end as `head`'s other writers do.
            #[cfg(unix)]
            // SAFETY: restoring the default disposition and raising the signal ends the process.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
            std::process::exit(141);
        }
        let _ = writeln!(std::io::stderr(), "hearth: cannot write to stdout: {error}");
    }
}
