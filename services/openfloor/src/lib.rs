//! The openfloor service: configuration, and the embedded server that runs
//! the API, the projector and the web client in one process.

pub mod cli;
pub mod server;
