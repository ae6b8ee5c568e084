//! Operator tools: replay, verify, audit, export/import.
pub mod cli;
