//! The `litewarden` binary: parse the command line, run it, map the result
//! to an exit code (0 ok, 1 error, 2 changes pending for `plan`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use litewarden::Error;
use litewarden::cli::{self, Cli, ExitStatus, LogFormat};
use litewarden::clock::{Clock, OffsetClock, SystemClock};
use litewarden::config::Environment;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let clock: Arc<dyn Clock> = match std::env::var("LITEWARDEN_CLOCK_OFFSET") {
        Ok(offset) => match OffsetClock::parse(&offset) {
            Ok(clock) => Arc::new(clock),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => Arc::new(SystemClock),
    };
    let mut stdout = std::io::stdout().lock();
    match cli::run(&cli, &Environment::from_process(), clock, &mut stdout) {
        Ok(ExitStatus::Success) => ExitCode::SUCCESS,
        Ok(ExitStatus::ChangesPending) => ExitCode::from(2),
        Ok(ExitStatus::Failure) => ExitCode::FAILURE,
        Err(Error::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(Error::Config(errors)) => {
            for error in &errors {
                eprintln!("{error}");
            }
            eprintln!(
                "{}: {} error{}",
                cli.config.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {}", one_line(anyhow::Error::from(error)));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping causes that only repeat
/// what is already said (SQLite errors often carry their text twice).
fn one_line(error: anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain().map(ToString::to_string) {
        if !line.contains(&cause) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&cause);
        }
    }
    line
}

fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("litewarden=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
