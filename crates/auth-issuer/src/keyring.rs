//! The issuer's keys over time: one that signs, and the retired ones still worth trusting.
//!
//! Key rotation without downtime (`auth-issuer rotate-key`) works in files, so that it also works
//! with several issuers sharing one volume, and with no admin endpoint to protect:
//!
//! 1. A new private key is written next to the current one (`<KEY_PATH>.next`, mode 0600).
//! 2. The current key's *public* half is filed under `<KEY_PATH>.retired/<unix time>-<kid>.json`.
//!    Only the public half: a retired key never signs again, so its private half is destroyed.
//! 3. The new key atomically replaces `KEY_PATH` (`rename`).
//!
//! Every running issuer re-reads these files every `KEY_RELOAD_SECS` (2 s) and rebuilds its
//! [`Keyring`]: it signs with the new key at once, and keeps trusting a retired key for as long
//! as a token it signed can still be valid:
//!
//! - in the JWKS (what replicas verify access tokens with) for the access-token lifetime plus
//!   the largest leeway a replica may allow: after that no access token it signed is valid, so it
//!   leaves the JWKS;
//! - for refresh tokens (verified here only) for the refresh-token lifetime plus leeway, so a
//!   rotation does not log everybody out. After that the file is deleted.
//!
//! Replicas pick the new key up when they first see its `kid` (a rate-limited JWKS refetch), and
//! drop retired keys on their periodic refresh.

use anyhow::Context;
use auth_core::keys::{Jwk, Jwks, KeyBits, KeyOrigin, SigningKey};
use auth_core::verify::{KeySet, MAX_LEEWAY_SECS};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The keys in force at one moment.
pub struct Keyring {
    pub signing: Arc<SigningKey>,
    /// Published at `/.well-known/jwks.json`.
    pub jwks: Jwks,
    /// Trusted for refresh tokens (a superset of the JWKS).
    pub refresh_keys: KeySet,
    /// The PEM the signing key came from, to notice a rotation cheaply.
    pem: String,
}

/// A retired key's public half and when it stopped signing.
#[derive(Debug, Clone)]
pub struct Retired {
    pub retired_at: u64,
    pub jwk: Jwk,
}

/// How long retired keys stay trusted.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub access_ttl: u64,
    pub refresh_ttl: u64,
}

impl Lifetimes {
    fn in_jwks(&self, retired: &Retired, now: u64) -> bool {
        now < retired.retired_at + self.access_ttl + MAX_LEEWAY_SECS
    }

    fn for_refresh(&self, retired: &Retired, now: u64) -> bool {
        now < retired.retired_at + self.refresh_ttl + MAX_LEEWAY_SECS
    }
}

impl Keyring {
    /// The keyring at time `now`: the signing key, plus the retired keys still in their windows.
    pub fn assemble(
        signing: Arc<SigningKey>,
        pem: String,
        retired: &[Retired],
        life: Lifetimes,
        now: u64,
    ) -> Self {
        let current = signing.public_jwk().clone();
        let published = retired
            .iter()
            .filter(|r| life.in_jwks(r, now))
            .map(|r| r.jwk.clone());
        let jwks = Jwks {
            keys: std::iter::once(current.clone()).chain(published).collect(),
        };
        let for_refresh = retired
            .iter()
            .filter(|r| life.for_refresh(r, now))
            .map(|r| r.jwk.clone());
        let refresh_keys = KeySet::from_jwks(&Jwks {
            keys: std::iter::once(current).chain(for_refresh).collect(),
        });
        Keyring {
            signing,
            jwks,
            refresh_keys,
            pem,
        }
    }
}

/// The key files of one issuer.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    pub path: PathBuf,
    pub bits: KeyBits,
}

impl KeyFiles {
    fn retired_dir(&self) -> PathBuf {
        sibling(&self.path, ".retired")
    }

    fn next_path(&self) -> PathBuf {
        sibling(&self.path, ".next")
    }

    /// Make sure a current key exists: generated (and persisted, 0600) when there is none yet.
    pub fn ensure(&self) -> anyhow::Result<(SigningKey, KeyOrigin)> {
        SigningKey::load_or_generate(&self.path, self.bits)
    }

    /// The keyring as the files say now; `previous` lets an unchanged key skip re-parsing.
    pub fn keyring(
        &self,
        previous: Option<&Arc<Keyring>>,
        life: Lifetimes,
        now: u64,
    ) -> anyhow::Result<Keyring> {
        let pem = std::fs::read_to_string(&self.path)
            .with_context(|| format!("reading the signing key {}", self.path.display()))?;
        let signing = match previous {
            Some(p) if p.pem == pem => Arc::clone(&p.signing),
            _ => Arc::new(
                SigningKey::from_pem(&pem)
                    .with_context(|| format!("reading the signing key {}", self.path.display()))?,
            ),
        };
        let retired = self.retired(life, now)?;
        Ok(Keyring::assemble(signing, pem, &retired, life, now))
    }

    /// Retired keys still within their refresh window; files past it are deleted.
    fn retired(&self, life: Lifetimes, now: u64) -> anyhow::Result<Vec<Retired>> {
        let dir = self.retired_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        let mut keep = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(retired) = read_retired(&path) else {
                continue;
            };
            if life.for_refresh(&retired, now) {
                keep.push(retired);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
        keep.sort_by_key(|r| std::cmp::Reverse(r.retired_at));
        Ok(keep)
    }

    /// Rotate: a new signing key replaces the current one, whose public half is retired.
    /// Returns (old kid, new kid).
    pub fn rotate(&self, now: u64) -> anyhow::Result<(String, String)> {
        let (current, _) = self.ensure()?;
        let next = SigningKey::generate(self.bits)?;
        let next_path = self.next_path();
        let _ = std::fs::remove_file(&next_path); // a leftover of an interrupted rotation
        next.persist(&next_path)?;

        let dir = self.retired_dir();
        create_private_dir(&dir)?;
        let record = serde_json::json!({ "retired_at": now, "jwk": current.public_jwk() });
        let file = dir.join(format!("{now}-{}.json", current.kid()));
        std::fs::write(&file, serde_json::to_vec_pretty(&record)?)
            .with_context(|| format!("writing {}", file.display()))?;

        std::fs::rename(&next_path, &self.path)
            .with_context(|| format!("replacing {}", self.path.display()))?;
        Ok((current.kid().to_owned(), next.kid().to_owned()))
    }
}

fn read_retired(path: &Path) -> Option<Retired> {
    #[derive(serde::Deserialize)]
    struct Record {
        retired_at: u64,
        jwk: Jwk,
    }
    let record: Record = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    Some(Retired {
        retired_at: record.retired_at,
        jwk: record.jwk,
    })
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFE: Lifetimes = Lifetimes {
        access_ttl: 300,
        refresh_ttl: 3600,
    };

    fn files(dir: &Path) -> KeyFiles {
        KeyFiles {
            path: dir.join("issuer.pem"),
            bits: KeyBits::B2048,
        }
    }

    #[test]
    fn rotation_signs_with_the_new_key_and_keeps_the_old_one_public_for_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        let (first, _) = files.ensure().unwrap();
        let t0 = 1_000_000;

        let (old, new) = files.rotate(t0).unwrap();
        assert_eq!(old, first.kid());
        assert_ne!(old, new);

        let ring = files.keyring(None, LIFE, t0 + 1).unwrap();
        assert_eq!(ring.signing.kid(), new);
        let published: Vec<_> = ring.jwks.keys.iter().map(|k| k.kid.clone()).collect();
        assert_eq!(published, [new.clone(), old.clone()]);

        // Once no access token of the old key can be valid, it leaves the JWKS...
        let later = files
            .keyring(None, LIFE, t0 + 300 + MAX_LEEWAY_SECS)
            .unwrap();
        assert_eq!(later.jwks.keys.len(), 1);
        // ...but still verifies refresh tokens until they expire too.
        assert!(later.refresh_keys.contains(&old));

        let much_later = files
            .keyring(None, LIFE, t0 + 3600 + MAX_LEEWAY_SECS)
            .unwrap();
        assert!(!much_later.refresh_keys.contains(&old));
        assert_eq!(
            std::fs::read_dir(files.retired_dir()).unwrap().count(),
            0,
            "pruned"
        );
    }

    #[test]
    fn retired_files_hold_no_private_key_and_the_new_key_is_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        files.rotate(5).unwrap();
        for entry in std::fs::read_dir(files.retired_dir()).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            assert!(
                !text.contains("PRIVATE") && !text.contains("\"d\""),
                "{text}"
            );
        }
        let mode = std::fs::metadata(&files.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!files.next_path().exists());
    }
}
