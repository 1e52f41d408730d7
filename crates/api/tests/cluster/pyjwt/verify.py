"""Verify an authscale access token with PyJWT, a JWT library authscale did not write.

Usage: verify.py ISSUER_URL AUDIENCE TOKEN

It starts from the issuer URL alone, as any OpenID client would: it reads the discovery
document, checks that the document names this issuer, takes its jwks_uri, and lets PyJWT's
PyJWKClient pick the key by the token's kid. PyJWT then checks the RS256 signature, iss, aud
and exp (with no leeway), and that those claims are present.

Prints one JSON line: {"ok": true, "claims": {...}} and exits 0, or {"ok": false, "error":
"<exception class>", "detail": "..."} and exits 1. It never prints the token.
"""

import json
import sys
import urllib.request

import jwt


def main():
    issuer, audience, token = sys.argv[1:4]
    where = issuer.rstrip("/") + "/.well-known/openid-configuration"
    with urllib.request.urlopen(where, timeout=10) as response:
        metadata = json.load(response)
    if metadata.get("issuer") != issuer:
        # RFC 8414 3.3: a document describing another issuer must not be used.
        raise ValueError("discovery names issuer %r, not %r" % (metadata.get("issuer"), issuer))
    keys = jwt.PyJWKClient(metadata["jwks_uri"])
    key = keys.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iss", "aud", "sub"]},
    )
    print(json.dumps({"ok": True, "jwks_uri": metadata["jwks_uri"], "claims": claims}))


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # the test reads which check refused the token
        print(json.dumps({"ok": False, "error": type(error).__name__, "detail": str(error)}))
        sys.exit(1)
