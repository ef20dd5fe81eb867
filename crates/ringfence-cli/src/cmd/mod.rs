//! One module per subcommand: argument definitions and the call into the library.

pub mod deploy;
pub mod fleet;
pub mod flows;
pub mod site;
pub mod trace;
pub mod generate;
pub mod cis;
pub mod diff;
pub mod verify;
