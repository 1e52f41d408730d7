//! Fuzz target: the login, refresh and logout body parsers, through the issuer's real router.
//!
//! Every input is one POST (route, content type and body from the input's bytes: see
//! `authscale_fuzz::issuer`) to the router `auth_issuer::startup::router` builds, with a store
//! that refuses every connection. Whatever the body, the answer must be a 4xx or the store's
//! 503, with a JSON error body; never a 200, another 5xx or a panic.

#![no_main]

use authscale_fuzz::issuer::Issuer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    Issuer::shared().post(data).assert_refused_cleanly();
});
