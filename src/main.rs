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
use litewarden::config::LoadError;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    if let Err(error) = handle_signals(&cli) {
        eprintln!("error: cannot handle signals: {error}");
        return ExitCode::FAILURE;
    }
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
        Err(Error::Config(LoadError::Invalid(errors))) => {
            if cli.json() {
                print_json_error(serde_json::json!({ "ok": false, "errors": errors }));
            }
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
            let line = one_line(anyhow::Error::from(error));
            if cli.json() {
                print_json_error(serde_json::json!({ "ok": false, "error": line }));
            }
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

/// The failure of a `--json` command, as a JSON document on stdout.
fn print_json_error(document: serde_json::Value) {
    println!("{document}");
}

/// Makes a file-size limit (`ulimit -f`) fail the write with EFBIG, named
/// in the error, instead of killing the process with SIGXFSZ; and, for
/// every command but `run` (which drains its jobs on a signal), makes
/// SIGINT and SIGTERM remove this process's temp files before it exits.
fn handle_signals(cli: &Cli) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM, SIGXFSZ};
    signal_hook::flag::register(SIGXFSZ, Arc::new(std::sync::atomic::AtomicBool::new(false)))?;
    if matches!(cli.command, cli::Command::Run) {
        return Ok(());
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                litewarden::durable::exit_removing_temps(128 + signal, |removed| {
                    eprintln!(
                        "interrupted by signal {signal}: the unfinished step was abandoned and left no partial file ({removed} temp file{} removed)",
                        if removed == 1 { "" } else { "s" }
                    )
                });
            }
        })?;
    Ok(())
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
