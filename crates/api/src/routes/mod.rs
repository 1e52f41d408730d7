//! A replica's HTTP routes, one file each. The same handlers serve both modes.

pub mod health;
pub mod jobs;
pub mod me;
pub mod ping;
pub mod stats;
