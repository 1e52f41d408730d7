// Reading a JWT: what any holder of the token can do, with no key at all.
//
// A JWT is three base64url parts joined by dots: header.payload.signature. The first two are
// JSON, only encoded (not encrypted); the third is the issuer's signature over the first two.

/** The three parts, raw and decoded. Throws if `token` is not a JWT. */
export function decodeJwt(token) {
  const parts = token.split('.');
  if (parts.length !== 3) {
    throw new Error(`a JWT has three parts separated by dots, this has ${parts.length}`);
  }
  const [header, payload, signature] = parts;
  return {
    raw: { header, payload, signature },
    header: JSON.parse(base64urlText(header)),
    payload: JSON.parse(base64urlText(payload)),
    signatureBytes: base64urlBytes(signature).length,
  };
}

/** base64url (RFC 4648 section 5: `-` and `_` instead of `+` and `/`, no `=` padding) to bytes. */
function base64urlBytes(text) {
  const base64 = text.replaceAll('-', '+').replaceAll('_', '/');
  const padded = base64 + '==='.slice((text.length + 3) % 4);
  return Uint8Array.from(atob(padded), (char) => char.charCodeAt(0));
}

function base64urlText(text) {
  return new TextDecoder().decode(base64urlBytes(text));
}

/** What each header parameter means, in one plain sentence. */
export const HEADER_NOTES = {
  alg: 'RS256: an RSA signature over SHA-256. The issuer signs with its private key; anyone can check with the public key.',
  typ: 'at+jwt: an access token (RFC 9068). Replicas accept only this type, so no other kind of JWT can pass for one.',
  kid: "key id: which of the issuer's public keys (at /.well-known/jwks.json) checks the signature.",
};

/** What each claim means. The time claims' notes end where describeClaim adds the time. */
export const CLAIM_NOTES = {
  iss: 'issuer: who made and signed the token.',
  sub: 'subject: the user the token is about.',
  aud: 'audience: who should accept it (the API replicas).',
  exp: 'expires: every replica refuses it after',
  iat: 'issued at',
  nbf: 'not before: refused until',
  jti: 'token id: unique for every token.',
  client_id: 'the application the token was issued to.',
  name: "the user's name: the replica reads it from here, without a database.",
  roles: "the user's roles: the replica decides what is allowed from these alone.",
  fam: 'family: every refresh token descended from one login. Reuse of a spent one revokes them all.',
};

const TIME_CLAIMS = new Set(['exp', 'iat', 'nbf']);

/** One line for claim `name` with `value`; times (seconds since 1970) also as a clock time. */
export function describeClaim(name, value) {
  const note = CLAIM_NOTES[name] ?? '(not explained here)';
  if (TIME_CLAIMS.has(name) && typeof value === 'number') {
    return `${note} ${clockTime(value)}.`;
  }
  return note;
}

/** 12:34:56 in local time for a Unix time in seconds. */
export function clockTime(unixSecs) {
  return new Date(unixSecs * 1000).toLocaleTimeString('en-GB', { hour12: false });
}

/** "in 4 s", "12 s ago", "in 14 days". */
export function relative(deltaSecs) {
  const abs = Math.abs(Math.round(deltaSecs));
  const amount =
    abs >= 2 * 86400 ? `${Math.round(abs / 86400)} days`
      : abs >= 2 * 3600 ? `${Math.round(abs / 3600)} h`
        : abs >= 120 ? `${Math.round(abs / 60)} min`
          : `${abs} s`;
  return deltaSecs >= 0 ? `in ${amount}` : `${amount} ago`;
}
