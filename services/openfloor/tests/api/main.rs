//! Integration tests of the HTTP API through the real router and a real
//! socket: one test binary, one `spawn_app()` harness.

mod errors;
mod events;
mod helpers;
mod host;
mod limits;
mod questions;
mod service;
