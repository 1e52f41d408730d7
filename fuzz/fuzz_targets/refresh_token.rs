//! Fuzz target: the refresh-token parser, as the issuer runs it on `/auth/refresh` and
//! `/auth/logout`.
//!
//! `verify_refresh::<RefreshClaims>` with the refresh-token rules (`typ` `rt+jwt`, audience the
//! issuer itself) and the keys an issuer holds for one fixed key: the HS256 key derived from it,
//! and the key itself for RS256 refresh tokens from before HS256. It must never panic, and
//! whatever it accepts must be signed by that key and meet every rule (`authscale_fuzz::model`);
//! an access token, however well signed, is never a refresh token.

#![no_main]

use auth_core::claims::RefreshClaims;
use auth_core::verify::verify_refresh;
use authscale_fuzz::keys::{self, Kind};
use authscale_fuzz::{input, model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fixture = keys::fixture();
    let Some(token) = input::token(data, Kind::Refresh) else {
        return;
    };
    let before = auth_core::now_secs();
    let verdict =
        verify_refresh::<RefreshClaims>(&token.text, &fixture.refresh_keys, &fixture.refresh);
    let after = auth_core::now_secs();
    if let Ok(claims) = verdict {
        model::assert_acceptable(&token, Kind::Refresh, before, after);
        assert_eq!(claims.iss, keys::ISSUER);
        assert_eq!(claims.aud, keys::ISSUER);
    }
});
