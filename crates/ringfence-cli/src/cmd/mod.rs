//! One module per subcommand: argument definitions and the call into the library.
pub mod cis;
