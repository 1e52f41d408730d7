//! # authscale-fuzz: what the fuzz targets share
//!
//! The property tests (`verify.rs` and `startup.rs`, module `properties`) throw random input at
//! the token verifier and the issuer's routes. A coverage-guided fuzzer does the same, but it
//! watches which branches each input reaches and keeps mutating the inputs that reached new
//! ones, so over minutes or hours it gets much deeper than random cases: into a header that
//! parses, a `kid` that matches, a signature that verifies, a claim of the wrong type. libFuzzer
//! (through cargo-fuzz) does that here; `cargo xtask fuzz` runs it (see `xtask/src/fuzz.rs`).
//!
//! A fuzzer only finds what its target checks, so each target asserts what the property tests
//! assert, and panics (which libFuzzer reports as a crash, saving the input) when it does not
//! hold:
//!
//! - `access_token` and `refresh_token`: the verifier never panics, and whatever it accepts is
//!   signed by the one key it trusts (for a refresh token, HS256 under the key derived from it,
//!   or RS256 from before) and meets every rule, checked again here by a separate,
//!   simpler reading of the token ([`model`]).
//! - `issuer_bodies`: the issuer's real router answers any body on the login, refresh and logout
//!   routes with a 4xx or the 503 of its unreachable store, with a JSON error body ([`issuer`]).
//!
//! The modules:
//!
//! - [`keys`]: the fixed key every target trusts, and the rules tokens are checked against.
//! - [`input`]: how the fuzzer's bytes become a token (raw; parts the target encodes and may
//!   sign; or small patches to a valid token), so mutations reach the JSON inside the base64.
//! - [`model`]: the independent check of a token the verifier accepted.
//! - [`issuer`]: the issuer's router on a store that refuses every connection, and a request
//!   made of the fuzzer's bytes.
//!
//! Seed inputs are in `fuzz/seeds/<target>/`, written by `examples/make_seeds.rs`; the words
//! libFuzzer inserts whole (header names, claim names, JSON) are in `fuzz/dicts/`.

#![forbid(unsafe_code)]

pub mod input;
pub mod issuer;
pub mod keys;
pub mod model;
