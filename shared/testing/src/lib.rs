//! What openfloor's test suites share, so that no library ships test code
//! and no test suite keeps its own copy:
//!
//! - [`scenarios`]: the storage scenarios, written once and run against
//!   every backend with [`backend_scenarios!`];
//! - [`fixtures`]: directory entries, ids and records to build test data;
//! - [`api`]: a typed HTTP client for the API of a running server;
//! - [`aws`]: the connection to the AWS stand-in (moto's server) and fresh
//!   resource names per test;
//! - [`process`]: a real `openfloor` process, as a server or a command.
//!
//! Only test suites (dev-dependencies) use this crate. It depends on the
//! shared libraries alone, never on a service, so every suite can use it.

pub mod api;
pub mod aws;
pub mod damage;
pub mod fixtures;
pub mod process;
pub mod scenarios;
