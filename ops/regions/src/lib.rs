//! Several regions of openfloor on one machine, for development and tests
//! (DESIGN.md, "Regions"; README, "Regions"). What AWS provides between
//! regions, and moto does not, is stood in for here:
//!
//! - [`edge`]: the one address for browsers. As the CDN does with static
//!   cache behaviours, it routes each `/r/{region}/…` path to that region's
//!   server, the unprefixed `/api/…` to the default region under its prefix,
//!   and everything else (the pages) to the default region.
//! - [`replicator`]: the global events table. moto keeps each region's
//!   tables apart and replicates nothing, so this copies every new directory
//!   entry to the other regions, as global tables do (a second or so late),
//!   and can be paused to show what replication lag looks like.
//!
//! Never deployed: in production CloudFront and DynamoDB global tables do
//! this (`ops/aws/`).

pub mod edge;
pub mod replicator;
