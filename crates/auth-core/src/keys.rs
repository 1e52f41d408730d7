//! RSA keys: where they come from, what they are called, what the world may see of them.
//!
//! - The issuer holds one private key. It is loaded from a PEM file, or generated on first start
//!   and written there with mode 0600 so only the service's user can read it.
//! - Its name, the `kid`, is the RFC 7638 thumbprint of the public key: derived from the key
//!   itself, so the same key always has the same name and two keys never share one.
//! - What leaves the issuer is the public half only, as a JWK Set (RFC 7517) at
//!   `/.well-known/jwks.json`. The JWK type here has no field for a private member, so a private
//!   key cannot be published by mistake.
//!
//! - Each RSA key also gives the issuers an HMAC key for refresh tokens, derived from its private
//!   half (see [`crate::refresh_key`]); it never leaves the issuers.
//!
//! Division of labour between the two RSA libraries (see docs/SECURITY.md, "Crypto"): AWS-LC generates and
//! signs (constant time; RUSTSEC-2023-0071 covers the `rsa` crate's private-key operations),
//! while the `rsa` crate only reads and writes PEM and extracts the public numbers, which involves
//! no secret-dependent timing an attacker can observe.

use crate::refresh_key::RefreshKey;
use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// RSA key sizes the issuer will generate. Below 2048 bits is not offered (RFC 7518 section 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyBits {
    B2048,
    B3072,
    B4096,
}

impl std::str::FromStr for KeyBits {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "2048" => Ok(KeyBits::B2048),
            "3072" => Ok(KeyBits::B3072),
            "4096" => Ok(KeyBits::B4096),
            other => Err(format!(
                "unsupported RSA key size {other:?} (use 2048, 3072 or 4096)"
            )),
        }
    }
}

/// One public key as a JWK (RFC 7517), in exactly the form the contract publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    pub kid: String,
    pub kty: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub n: String,
    pub e: String,
}

impl Jwk {
    /// The RS256 signing JWK of an RSA public key, named by its RFC 7638 thumbprint.
    pub fn rs256(n: &[u8], e: &[u8]) -> Jwk {
        let n = URL_SAFE_NO_PAD.encode(n);
        let e = URL_SAFE_NO_PAD.encode(e);
        Jwk {
            kid: thumbprint(&n, &e),
            kty: "RSA".into(),
            alg: "RS256".into(),
            use_: "sig".into(),
            n,
            e,
        }
    }
}

/// A JWK Set: what `/.well-known/jwks.json` serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// The issuer's private key, parsed once and kept ready to sign.
pub struct SigningKey {
    pair: aws_lc_rs::rsa::KeyPair,
    pkcs8_der: Vec<u8>,
    public: Jwk,
    refresh: RefreshKey,
}

impl std::fmt::Debug for SigningKey {
    // Never print key material, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key pair from AWS-LC.
    pub fn generate(bits: KeyBits) -> anyhow::Result<Self> {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::KeySize;
        let size = match bits {
            KeyBits::B2048 => KeySize::Rsa2048,
            KeyBits::B3072 => KeySize::Rsa3072,
            KeyBits::B4096 => KeySize::Rsa4096,
        };
        let pair = aws_lc_rs::rsa::KeyPair::generate(size)
            .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
        let der = pair
            .as_der()
            .map_err(|_| anyhow::anyhow!("cannot encode the new key"))?;
        Self::from_pkcs8_der(der.as_ref())
    }

    /// A key from PEM text: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> anyhow::Result<Self> {
        let key = rsa::PrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| rsa::PrivateKey::from_pkcs1_pem(pem))
            .context("not an RSA private key in PKCS#8 or PKCS#1 PEM")?;
        let der = key
            .to_pkcs8_der()
            .context("cannot re-encode the key as PKCS#8")?;
        Self::from_pkcs8_der(der.as_bytes())
    }

    fn from_pkcs8_der(der: &[u8]) -> anyhow::Result<Self> {
        let key = rsa::PrivateKey::from_pkcs8_der(der).context("not a PKCS#8 RSA key")?;
        let bits = key.n().bit_width_vartime();
        if bits < 2048 {
            bail!("RSA key of {bits} bits is too small: RS256 needs at least 2048 (RFC 7518 3.3)");
        }
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(der)
            .map_err(|e| anyhow::anyhow!("AWS-LC rejected the key: {e}"))?;
        let public = Jwk::rs256(&key.n_bytes(), &key.e_bytes());
        // Parsing the primes takes variable time, but only here, once per key file read: no
        // request can time it.
        let primes: Vec<Vec<u8>> = key
            .primes()
            .iter()
            .map(|p| p.as_ref().to_be_bytes_trimmed_vartime().into_vec())
            .collect();
        let refresh = RefreshKey::derive(&public.kid, &primes)
            .map_err(|_| anyhow::anyhow!("deriving the refresh-token key failed"))?;
        Ok(SigningKey {
            pair,
            pkcs8_der: der.to_vec(),
            public,
            refresh,
        })
    }

    /// Load the key at `path`, or generate one and persist it there (mode 0600) when no file
    /// exists. A file that exists but cannot be read is an error, never a reason to generate:
    /// silently replacing a key would invalidate every token in circulation.
    pub fn load_or_generate(path: &Path, bits: KeyBits) -> anyhow::Result<(Self, KeyOrigin)> {
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                let key = Self::from_pem(&pem)
                    .with_context(|| format!("reading the signing key {}", path.display()))?;
                Ok((key, KeyOrigin::Loaded))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate(bits)?;
                key.persist(path)?;
                Ok((key, KeyOrigin::Generated))
            }
            Err(e) => Err(e).with_context(|| format!("reading the signing key {}", path.display())),
        }
    }

    /// Write the key as PKCS#8 PEM, readable by the owner only. The file is created with mode
    /// 0600 from the start (not chmod-ed afterwards) and never overwritten.
    pub fn persist(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the key directory {}", dir.display()))?;
        }
        let key = rsa::PrivateKey::from_pkcs8_der(&self.pkcs8_der)?;
        let pem = key.to_pkcs8_pem(LineEnding::LF)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating the key file {}", path.display()))?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()?;
        Ok(())
    }

    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    /// The public half, as published in the JWKS.
    pub fn public_jwk(&self) -> &Jwk {
        &self.public
    }

    /// The HMAC key derived from this key, for refresh tokens (issuers only).
    pub fn refresh_key(&self) -> &RefreshKey {
        &self.refresh
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`: the RS256 signature (RFC 7518 3.3).
    pub fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair.sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            message,
            &mut signature,
        )?;
        Ok(signature)
    }
}

/// Whether [`SigningKey::load_or_generate`] found a key or made one (worth a log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    Loaded,
    Generated,
}

/// RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order, with no
/// white space, base64url-encoded.
pub fn thumbprint(n: &str, e: &str) -> String {
    URL_SAFE_NO_PAD.encode(thumbprint_digest(n, e))
}

/// The RFC 7638 thumbprint as raw bytes (the SHA-256 that [`thumbprint`] encodes): what
/// identifies a key's material in memory.
pub fn thumbprint_digest(n: &str, e: &str) -> [u8; 32] {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // The worked example of RFC 7638 section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn generated_key_round_trips_through_a_0600_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/issuer.pem");
        let (a, origin) = SigningKey::load_or_generate(&path, KeyBits::B2048).unwrap();
        assert_eq!(origin, KeyOrigin::Generated);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (b, origin) = SigningKey::load_or_generate(&path, KeyBits::B2048).unwrap();
        assert_eq!(origin, KeyOrigin::Loaded);
        assert_eq!(a.kid(), b.kid());
        assert_eq!(a.public_jwk(), b.public_jwk());
    }

    #[test]
    fn an_unreadable_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("issuer.pem");
        std::fs::write(&path, "not a key").unwrap();
        assert!(SigningKey::load_or_generate(&path, KeyBits::B2048).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    }

    /// The HMAC key follows from the RSA key alone: the same in PKCS#1 and PKCS#8, so issuers
    /// reading one key in either form agree; different for another key.
    #[test]
    fn the_refresh_key_follows_from_the_rsa_key_not_its_encoding() {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        let key = SigningKey::generate(KeyBits::B2048).unwrap();
        let parsed = rsa::PrivateKey::from_pkcs8_der(&key.pkcs8_der).unwrap();
        let pkcs1 = parsed.to_pkcs1_pem(LineEnding::LF).unwrap();
        let again = SigningKey::from_pem(&pkcs1).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.refresh_key().kid(), format!("rt-{}", key.kid()));
        assert_eq!(
            again.refresh_key().to_base64(),
            key.refresh_key().to_base64()
        );
        let other = SigningKey::generate(KeyBits::B2048).unwrap();
        assert_ne!(
            other.refresh_key().to_base64(),
            key.refresh_key().to_base64()
        );
        assert!(!format!("{key:?}").contains(&key.refresh_key().to_base64()));
    }

    #[test]
    fn the_published_jwk_has_no_private_member() {
        let key = SigningKey::generate(KeyBits::B2048).unwrap();
        let json = serde_json::to_value(key.public_jwk()).unwrap();
        let mut members: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        members.sort();
        assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);
        assert!(!format!("{key:?}").contains(&key.public_jwk().n));
    }
}
