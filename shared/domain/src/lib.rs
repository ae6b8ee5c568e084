//! The domain model of openfloor, shared by the API, the projector and the
//! operator tools.
//!
//! Everything here is pure: no I/O, and time only through the [`clock`]
//! trait. Untrusted input becomes a newtype through a fallible constructor
//! ([`input`], [`ids`]); everything an event goes through is an immutable
//! [`record::Record`]; [`fold`] turns any set of records into an event's
//! state, [`view`] renders that state into the exact bytes clients read, and
//! [`command`] decides each change from the same fold.

pub mod clock;
pub mod command;
pub mod fold;
pub mod ids;
pub mod input;
pub mod record;
pub mod secret;
pub mod stored_state;
pub mod toggles;
pub mod view;

/// Milliseconds since the Unix epoch, the unit of every time in the API.
pub type Millis = u64;
