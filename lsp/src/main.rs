//! `hearth`: the language server (`hearth lsp`) and the command line around it.

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

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    #[cfg(unix)]
    if !args.is_lsp() {
        // `hearth context --json | head`: end quietly on a closed pipe, as other CLI tools do.
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
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
    runtime.block_on(cli::run(args))
}
