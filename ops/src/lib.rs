//! Operator tools. Every change in openfloor is an immutable record, so an
//! operator can rebuild any view from the log (at any moment in the past),
//! check the stored views against the log, read who did what, and move an
//! event's log elsewhere intact. All of it runs on the storage traits, so
//! it works on every backend.

pub mod audit;
pub mod cli;
pub mod export;
pub mod replay;
