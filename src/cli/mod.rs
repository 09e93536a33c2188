//! The `postern` subcommands, one module each; `main.rs` parses the command line and picks one.

pub mod codec;
pub mod hwdb;
pub mod remote;
pub mod serve;
pub mod sim;
pub mod template;
