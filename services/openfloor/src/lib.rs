//! The openfloor service: the command line, the server that runs the API,
//! the projector and the web client in one process, and the in-process
//! stand-in for the projector Lambda on `--backend aws`.

pub mod cli;
pub mod poller;
pub mod server;
