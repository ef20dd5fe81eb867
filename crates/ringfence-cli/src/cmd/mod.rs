//! One module per subcommand: argument definitions and the call into the library.

pub mod flows;
pub mod site;
pub mod trace;
pub mod generate;
