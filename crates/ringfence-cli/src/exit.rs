//! Exit codes and error reporting shared by every subcommand.
//!
//! 0: success, nothing found. 1: the analysis found something (a blocked flow,
//! an unexpected CIS failure). 2: bad input or a failure to run.

use ringfence_diag::{InputError, InputErrors};
use std::io::Write;
use std::process::ExitCode;

/// Exit code for a clean result.
pub const SUCCESS: u8 = 0;
/// Exit code when the analysis reports findings.
#[allow(dead_code)] // used by the analysis subcommands as they land
pub const FINDINGS: u8 = 1;
/// Exit code for bad input or failure to run.
pub const BAD_INPUT: u8 = 2;

/// Why a subcommand could not produce its result (always exit code 2).
#[derive(Debug)]
pub enum CliError {
    /// One or more problems in user input, with locations.
    Input(InputErrors),
    /// Reading or writing failed.
    Io(String),
    /// Arguments that clap accepted but that do not fit together.
    #[allow(dead_code)] // used by subcommands with interdependent flags
    Usage(String),
}

impl From<InputError> for CliError {
    fn from(e: InputError) -> Self {
        CliError::Input(e.into())
    }
}

impl From<InputErrors> for CliError {
    fn from(e: InputErrors) -> Self {
        CliError::Input(e)
    }
}

/// Write to stdout, treating a closed pipe (`| head`) as success.
pub fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Io(format!("writing to stdout: {e}"))),
    }
}

/// Write output to `--out PATH` atomically, or to stdout when no path is given.
pub fn emit(out: Option<&std::path::Path>, bytes: &[u8]) -> Result<(), CliError> {
    match out {
        Some(path) => ringfence_diag::write_atomic(path, bytes)
            .map_err(|e| CliError::Io(format!("writing {}: {e}", path.display()))),
        None => write_stdout(bytes),
    }
}

/// Turn a subcommand's result into the process exit code, printing errors.
pub fn finish(result: Result<u8, CliError>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            match err {
                CliError::Input(errors) => {
                    for e in &errors.0 {
                        eprintln!("error: {e}");
                    }
                }
                CliError::Io(msg) => eprintln!("error: {msg}"),
                CliError::Usage(msg) => eprintln!("error: {msg}"),
            }
            ExitCode::from(BAD_INPUT)
        }
    }
}
