//! Fuzz target: the access-token verifier, as every token replica runs it on every request.
//!
//! `verify::<AccessClaims>` with the access-token rules and a key set of one fixed key. It must
//! never panic, and whatever it accepts must be signed by that key and meet every rule
//! (`authscale_fuzz::model`). See `authscale_fuzz::input` for how the bytes become a token.

#![no_main]

use auth_core::claims::AccessClaims;
use auth_core::verify::{kid_of, verify};
use authscale_fuzz::keys::{self, Kind};
use authscale_fuzz::{input, model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fixture = keys::fixture();
    let Some(token) = input::token(data, Kind::Access) else {
        return;
    };
    let _ = kid_of(&token.text);
    let before = auth_core::now_secs();
    let verdict = verify::<AccessClaims>(&token.text, &fixture.keys, &fixture.access);
    let after = auth_core::now_secs();
    if let Ok(claims) = verdict {
        model::assert_acceptable(&token, Kind::Access, before, after);
        assert_eq!(claims.iss, keys::ISSUER);
        assert_eq!(claims.aud, keys::AUDIENCE);
    }
});
