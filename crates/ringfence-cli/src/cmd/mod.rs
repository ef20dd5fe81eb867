//! One module per subcommand: argument definitions and the call into the library.

pub mod cis;
pub mod deploy;
pub mod diff;
pub mod fleet;
pub mod flows;
pub mod generate;
pub mod lab;
pub mod probe;
pub mod report;
pub mod site;
pub mod trace;
pub mod verify;
pub mod watch;
