//! The issuer's HTTP routes, one file each.

pub mod discovery;
pub mod health;
pub mod jwks;
pub mod login;
pub mod logout;
pub mod refresh;
pub mod session;
