//! The keyring on disk, and the two rotations (`auth-issuer rotate-key [--revoke-previous]`).
//!
//! Keys live in files, not behind an admin endpoint: there is nothing extra to protect, and
//! several issuers sharing one volume agree on the keys without talking to each other.
//!
//! ```text
//! KEY_PATH                                    the signing key (private, 0600)
//! KEY_PATH.pending/<activate_at>-<kid>.pem    published, signs from activate_at (private, 0600)
//! KEY_PATH.retired/<retired_at>-<kid>.json    a former signing key: its public half, and the
//!                                             HMAC key of its refresh tokens (secret, 0600)
//! KEY_PATH.revoked/<kid>                      never to be trusted again (after a compromise)
//! ```
//!
//! Each RSA key also gives an HMAC key, for refresh tokens (`auth_core::refresh_key`): derived from
//! its private half, so it needs no file of its own while that half exists (`KEY_PATH`, pending
//! keys, `KEY_NEXT_PATH`, `KEY_PREVIOUS_PATH`). A retired key keeps no private half, so its
//! retired record keeps the derived HMAC key instead, and the record is a secret like the keys:
//! 0600, in a 0700 directory, deleted once no refresh token of that key can be valid, deleted at
//! once on revocation. It is the smaller secret to keep: it can forge refresh tokens for the
//! issuers only (never an access token: no replica accepts HS256), and only while the issuers
//! trust it, which is exactly the window its own refresh tokens need. Storing the HMAC key instead
//! of keeping the retired RSA private key means an old RSA key is never on disk again, so no
//! access token of it can ever be forged from a retired record.
//!
//! The directories are 0700. A key file appears whole or not at all: it is written under a
//! scratch name and renamed into place (a rename is atomic within one file system), so an issuer
//! reading at any moment never sees half a key.
//!
//! Every issuer re-reads the files every `KEY_RELOAD_SECS` ([`KeyFiles::keyring`]), and the first
//! to do so after a pending key's activation time promotes it: it files the current key's public
//! half as retired (at the activation time), then renames the pending file onto `KEY_PATH`.
//! Several issuers may promote at the same instant, and that is safe:
//!
//! - the retired record's name and content depend only on the old key and the activation time
//!   (the HMAC key in it is derived from the old key), so issuers that write it at once write the
//!   same file;
//! - the rename of one pending file succeeds for exactly one issuer; the others find it gone,
//!   which means it was promoted, and carry on;
//! - an issuer that reads `KEY_PATH` after that rename finds the pending key's own `kid` there
//!   and files nothing.
//!
//! Revocation writes the `revoked/` markers first and only then deletes files, so a promotion
//! racing with it cannot bring a revoked key back: whatever an issuer files, a revoked `kid` is
//! skipped on every read.
//!
//! ## Read-only keys: orchestrator secrets
//!
//! Issuers on several hosts share no volume; Docker Swarm and Kubernetes hand each one the key as
//! a read-only secret file instead, and nothing above that writes can work there. Two more files,
//! both optional and only ever read, let an operator rotate by changing which secrets are mounted
//! (docs/PAST-ONE-MACHINE.md gives the commands):
//!
//! ```text
//! KEY_NEXT_PATH       published, its HMAC key trusted for refresh tokens, signs nothing (step 1: wait
//!                     for the replicas' JWKS refresh)
//! KEY_PREVIOUS_PATH   the key that signed before KEY_PATH (step 2: the new key at KEY_PATH,
//!                     the old one here): treated as retired
//!                     when this issuer first saw it there, so it leaves the JWKS after the
//!                     access-token lifetime and is trusted for refresh tokens for the
//!                     refresh-token lifetime, as a retired key is (step 3: unmount it)
//! ```
//!
//! Both files hold the private key (the old secret itself for the previous one): refresh tokens
//! are HMAC-signed with a key derived from it (`auth_core::refresh_key`), which its public half
//! cannot give back. An issuer that restarts during step 2 counts the previous key's windows
//! from its own start: later, never sooner, than the first issuer did.
//!
//! During each step's rolling update, old and new issuers publish the same two keys, so no
//! replica meets an unknown `kid` and no refresh token is refused by the other generation.

use crate::keyring::{Keyring, Lifetimes, Pending, Retired};
use anyhow::Context;
use auth_core::keys::{Jwk, KeyBits, KeyOrigin, SigningKey};
use auth_core::refresh_key::RefreshKey;
use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The key files of one issuer (or of several sharing a volume).
#[derive(Debug, Clone)]
pub struct KeyFiles {
    pub path: PathBuf,
    pub bits: KeyBits,
    /// `KEY_NEXT_PATH`: a mounted key to publish before it signs.
    pub next: Option<PathBuf>,
    /// `KEY_PREVIOUS_PATH`: a mounted key that signed before `path`.
    pub previous: Option<PathBuf>,
}

/// What a planned rotation did.
#[derive(Debug)]
pub struct Rotation {
    /// The key that signs until `activate_at`.
    pub previous: String,
    /// The new key: in the JWKS from the issuers' next reload, signing from `activate_at`.
    pub next: String,
    pub activate_at: u64,
}

/// What a revocation did.
#[derive(Debug)]
pub struct Revocation {
    /// Every key trusted until now: the signing one first, then pending and retired ones.
    pub revoked: Vec<String>,
    /// The new key, signing from the issuers' next reload.
    pub next: String,
}

/// A file of `pending/` or `retired/`: `<time>-<kid>.<ext>`.
struct Entry {
    time: u64,
    kid: String,
    path: PathBuf,
}

impl KeyFiles {
    fn pending_dir(&self) -> PathBuf {
        sibling(&self.path, ".pending")
    }

    fn retired_dir(&self) -> PathBuf {
        sibling(&self.path, ".retired")
    }

    fn revoked_dir(&self) -> PathBuf {
        sibling(&self.path, ".revoked")
    }

    /// Where a new private key is written before it is renamed into place.
    fn scratch_path(&self) -> PathBuf {
        sibling(&self.path, ".next")
    }

    /// Make sure a current key exists: generated (and persisted, 0600) when there is none yet.
    pub fn ensure(&self) -> anyhow::Result<(SigningKey, KeyOrigin)> {
        SigningKey::load_or_generate(&self.path, self.bits)
    }

    /// The keyring as the files say at `now`, after promoting any pending key whose time has
    /// come. `previous` lets unchanged keys skip re-parsing.
    pub fn keyring(
        &self,
        previous: Option<&Arc<Keyring>>,
        life: Lifetimes,
        now: u64,
    ) -> anyhow::Result<Keyring> {
        let revoked = self.revoked()?;
        self.promote_due(now, &revoked)?;
        // Pending keys before the signing key, retired ones after: whenever another issuer
        // promotes in between, each key is still seen in one state or the other.
        let mut pending = self.pending(previous, &revoked)?;
        if let Some((jwk, refresh)) = mounted(self.next.as_deref(), &revoked)? {
            pending.push(Pending {
                activate_at: Pending::UNTIL_INSTALLED,
                jwk,
                refresh,
            });
        }
        let pem = std::fs::read_to_string(&self.path)
            .with_context(|| format!("reading the signing key {}", self.path.display()))?;
        let signing = match previous {
            Some(p) if p.pem == pem => Arc::clone(&p.signing),
            _ => Arc::new(
                SigningKey::from_pem(&pem)
                    .with_context(|| format!("reading the signing key {}", self.path.display()))?,
            ),
        };
        anyhow::ensure!(
            !revoked.contains(signing.kid()),
            "the signing key {} (kid {}) is revoked: run `auth-issuer rotate-key --revoke-previous` again",
            self.path.display(),
            signing.kid()
        );
        let mut retired = self.retired(life, now, &revoked)?;
        let mut previous_key = None;
        if let Some((jwk, refresh)) = mounted(self.previous.as_deref(), &revoked)? {
            // Retired when this issuer first saw it mounted (kept from reload to reload).
            let since = previous
                .and_then(|p| p.mounted_previous.as_ref())
                .filter(|seen| seen.jwk.kid == jwk.kid)
                .map_or(now, |seen| seen.retired_at);
            let entry = Retired {
                retired_at: since,
                jwk,
                refresh: Some(refresh),
            };
            retired.insert(0, entry.clone());
            previous_key = Some(entry);
        }
        let mut ring = Keyring::assemble(signing, pem, pending, &retired, life, now);
        ring.mounted_previous = previous_key;
        Ok(ring)
    }

    /// Planned rotation: file a new key as pending, to sign from `activate_at()`, asked once the
    /// key is generated (which can take a while), so the publication delay is not eaten into.
    /// Refused while another key is pending: one change at a time keeps the schedule readable.
    pub fn rotate(&self, activate_at: impl FnOnce() -> u64) -> anyhow::Result<Rotation> {
        let (current, _) = self.ensure()?;
        if let Some(waiting) = list(&self.pending_dir(), "pem")?.first() {
            anyhow::bail!(
                "key {} is already pending and signs from unix time {}: rotate after that, \
                 or use --revoke-previous",
                waiting.kid,
                waiting.time
            );
        }
        let next = SigningKey::generate(self.bits)?;
        let activate_at = activate_at();
        let dir = self.pending_dir();
        create_private_dir(&dir)?;
        self.install(
            &next,
            &dir.join(format!("{activate_at}-{}.pem", next.kid())),
        )?;
        Ok(Rotation {
            previous: current.kid().to_owned(),
            next: next.kid().to_owned(),
            activate_at,
        })
    }

    /// Emergency rotation: a new key signs at once, and every other key (signing, pending,
    /// retired) is revoked. Revoking the retired keys too means a key stolen before an earlier
    /// rotation is not left trusted for refresh tokens.
    pub fn revoke(&self, now: u64) -> anyhow::Result<Revocation> {
        let (current, _) = self.ensure()?;
        let pending = list(&self.pending_dir(), "pem")?;
        let retired = list(&self.retired_dir(), "json")?;
        let mut revoked = vec![current.kid().to_owned()];
        for entry in pending.iter().chain(&retired) {
            if !revoked.contains(&entry.kid) {
                revoked.push(entry.kid.clone());
            }
        }

        // Generated first (it takes a while), so that issuers reloading between the markers and
        // the new key's arrival (they refuse to sign with a revoked key) have no time to notice.
        let next = SigningKey::generate(self.bits)?;
        // Markers next: from here on no issuer trusts these keys, whatever files it finds.
        let dir = self.revoked_dir();
        create_private_dir(&dir)?;
        for kid in &revoked {
            let marker = dir.join(kid);
            std::fs::write(&marker, format!("{now}\n"))
                .with_context(|| format!("writing {}", marker.display()))?;
        }
        // Then the files. A pending key is a private key nobody should ever use now.
        for entry in pending.iter().chain(&retired) {
            remove_if_present(&entry.path)?;
        }
        self.install(&next, &self.path)?;
        Ok(Revocation {
            revoked,
            next: next.kid().to_owned(),
        })
    }

    /// Write `key` under the scratch name, then rename it to `dest` (replacing what is there).
    fn install(&self, key: &SigningKey, dest: &Path) -> anyhow::Result<()> {
        let scratch = self.scratch_path();
        remove_if_present(&scratch)?; // a leftover of an interrupted rotation
        key.persist(&scratch)?;
        std::fs::rename(&scratch, dest)
            .with_context(|| format!("installing the key at {}", dest.display()))
    }

    /// Promote every pending key whose activation time has come, in order.
    fn promote_due(&self, now: u64, revoked: &HashSet<String>) -> anyhow::Result<()> {
        for entry in list(&self.pending_dir(), "pem")? {
            if entry.time > now {
                break; // sorted: the rest are later still
            }
            if revoked.contains(&entry.kid) {
                remove_if_present(&entry.path)?;
                continue;
            }
            self.promote(&entry)?;
        }
        Ok(())
    }

    /// Retire the current key as of the pending key's activation time, then put the pending key
    /// in its place.
    fn promote(&self, entry: &Entry) -> anyhow::Result<()> {
        let pem = std::fs::read_to_string(&self.path)
            .with_context(|| format!("reading the signing key {}", self.path.display()))?;
        let current = SigningKey::from_pem(&pem)
            .with_context(|| format!("reading the signing key {}", self.path.display()))?;
        // Another issuer may have promoted this very key since we listed it.
        if current.kid() != entry.kid {
            self.file_retired(current.public_jwk(), current.refresh_key(), entry.time)?;
        }
        match std::fs::rename(&entry.path, &self.path) {
            Ok(()) => Ok(()),
            // Promoted by another issuer in the meantime.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| {
                format!(
                    "promoting {} to {}",
                    entry.path.display(),
                    self.path.display()
                )
            }),
        }
    }

    /// File a key's public half and its HMAC key as retired at `retired_at`. The name and content
    /// depend only on the key and the time, so concurrent writers produce the same file. The file
    /// holds a secret, so it is created 0600 from the start, like a private key.
    fn file_retired(&self, jwk: &Jwk, refresh: &RefreshKey, retired_at: u64) -> anyhow::Result<()> {
        let dir = self.retired_dir();
        create_private_dir(&dir)?;
        let name = format!("{retired_at}-{}.json", jwk.kid);
        let file = dir.join(&name);
        if file.exists() {
            return Ok(());
        }
        let record = serde_json::json!({
            "retired_at": retired_at,
            "jwk": jwk,
            "refresh_hmac_key": refresh.to_base64(),
        });
        // A scratch name of its own per writer: two issuers must not write into one file.
        let nonce = auth_core::random_id(8).map_err(|_| anyhow::anyhow!("CSPRNG failure"))?;
        let scratch = dir.join(format!(".{name}.{nonce}.tmp"));
        write_private(&scratch, &serde_json::to_vec_pretty(&record)?)
            .with_context(|| format!("writing {}", scratch.display()))?;
        std::fs::rename(&scratch, &file).with_context(|| format!("writing {}", file.display()))
    }

    /// The pending keys still waiting, soonest first, minus revoked ones.
    fn pending(
        &self,
        previous: Option<&Arc<Keyring>>,
        revoked: &HashSet<String>,
    ) -> anyhow::Result<Vec<Pending>> {
        let mut keys = Vec::new();
        for entry in list(&self.pending_dir(), "pem")? {
            if revoked.contains(&entry.kid) {
                continue;
            }
            // A pending file never changes: same name, same key.
            let known = previous
                .into_iter()
                .flat_map(|p| &p.pending)
                .find(|p| p.activate_at == entry.time && p.jwk.kid == entry.kid);
            let (jwk, refresh) = match known {
                Some(p) => (p.jwk.clone(), p.refresh.clone()),
                None => {
                    let read = |path: &Path| {
                        SigningKey::from_pem(&std::fs::read_to_string(path)?)
                            .map(|k| (k.public_jwk().clone(), k.refresh_key().clone()))
                    };
                    match read(&entry.path) {
                        Ok((jwk, refresh)) if jwk.kid == entry.kid => (jwk, refresh),
                        Ok(_) => anyhow::bail!(
                            "{} holds another key than its name says",
                            entry.path.display()
                        ),
                        // Promoted by another issuer since we listed it: it is KEY_PATH now.
                        Err(e) if is_not_found(&e) => continue,
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("reading {}", entry.path.display()));
                        }
                    }
                }
            };
            keys.push(Pending {
                activate_at: entry.time,
                jwk,
                refresh,
            });
        }
        Ok(keys)
    }

    /// Retired keys still within their refresh window, newest first; files past it, and files of
    /// revoked keys, are deleted.
    fn retired(
        &self,
        life: Lifetimes,
        now: u64,
        revoked: &HashSet<String>,
    ) -> anyhow::Result<Vec<Retired>> {
        let mut keep = Vec::new();
        for entry in list(&self.retired_dir(), "json")? {
            let Some(retired) = read_retired(&entry.path) else {
                continue;
            };
            if life.for_refresh(&retired, now) && !revoked.contains(&retired.jwk.kid) {
                keep.push(retired);
            } else {
                remove_if_present(&entry.path)?;
            }
        }
        keep.sort_by_key(|r| std::cmp::Reverse(r.retired_at));
        Ok(keep)
    }

    /// The revoked kids.
    fn revoked(&self) -> anyhow::Result<HashSet<String>> {
        let dir = self.revoked_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(HashSet::new()),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .collect())
    }
}

/// The `<time>-<kid>.<ext>` files of `dir`, oldest first (a missing directory is empty). Scratch
/// files (names starting with a dot) and anything else are skipped.
fn list(dir: &Path, ext: &str) -> anyhow::Result<Vec<Entry>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut found: Vec<Entry> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
            // A kid is base64url, which may itself contain '-'; the time never does.
            let (time, kid) = stem.split_once('-')?;
            Some(Entry {
                time: time.parse().ok()?,
                kid: kid.to_owned(),
                path: e.path(),
            })
        })
        .collect();
    found.sort_by(|a, b| (a.time, &a.kid).cmp(&(b.time, &b.kid)));
    Ok(found)
}

/// The public half and the HMAC key of the key in an optional read-only file (`KEY_NEXT_PATH`,
/// `KEY_PREVIOUS_PATH`): `None` when unset, not mounted (yet, or any more) or revoked.
fn mounted(
    path: Option<&Path>,
    revoked: &HashSet<String>,
) -> anyhow::Result<Option<(Jwk, RefreshKey)>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let pem = match std::fs::read_to_string(path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let key = SigningKey::from_pem(&pem)
        .with_context(|| format!("reading the key {}", path.display()))?;
    if revoked.contains(key.kid()) {
        return Ok(None);
    }
    Ok(Some((key.public_jwk().clone(), key.refresh_key().clone())))
}

/// A retired record. A record without an HMAC key (written before refresh tokens were HS256)
/// trusts none; one whose HMAC key is malformed trusts none either (fail closed: its refresh
/// tokens are refused, its access tokens still verify).
fn read_retired(path: &Path) -> Option<Retired> {
    #[derive(serde::Deserialize)]
    struct Record {
        retired_at: u64,
        jwk: Jwk,
        refresh_hmac_key: Option<String>,
    }
    let record: Record = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let refresh = record.refresh_hmac_key.as_deref().and_then(|text| {
        let key = RefreshKey::from_base64(&record.jwk.kid, text);
        if key.is_none() {
            tracing::warn!(file = %path.display(), "retired record with a malformed refresh-token key: its refresh tokens are refused");
        }
        key
    });
    Some(Retired {
        retired_at: record.retired_at,
        jwk: record.jwk,
        refresh,
    })
}

/// Create `path` readable by the owner only (0600 from the start, never chmod-ed afterwards) and
/// write `bytes` to it.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == ErrorKind::NotFound)
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
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
    use auth_core::verify::MAX_LEEWAY_SECS;

    const LIFE: Lifetimes = Lifetimes {
        access_ttl: 300,
        refresh_ttl: 3600,
    };
    const T0: u64 = 1_000_000;
    const PUBLISH: u64 = 90;

    fn files(dir: &Path) -> KeyFiles {
        KeyFiles {
            path: dir.join("issuer.pem"),
            bits: KeyBits::B2048,
            next: None,
            previous: None,
        }
    }

    fn kids(ring: &Keyring) -> Vec<String> {
        ring.jwks.keys.iter().map(|k| k.kid.clone()).collect()
    }

    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |d| d.count())
    }

    #[test]
    fn a_rotated_key_is_published_at_once_but_signs_only_from_its_activation_time() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        let (first, _) = files.ensure().unwrap();
        let rotation = files.rotate(|| T0 + PUBLISH).unwrap();
        let (old, new) = (rotation.previous.clone(), rotation.next.clone());
        assert_eq!(old, first.kid());
        assert_ne!(old, new);

        // Until activation: the old key signs, the new one is published and trusted.
        for now in [T0, T0 + PUBLISH - 1] {
            let ring = files.keyring(None, LIFE, now).unwrap();
            assert_eq!(ring.signing.kid(), old, "at {now}");
            assert_eq!(kids(&ring), [old.clone(), new.clone()]);
            assert!(ring.refresh_keys.trusts(&new));
        }
        assert_eq!(count(&files.retired_dir()), 0);

        // From activation on, the new key signs and the old one is retired as of that time.
        let ring = files.keyring(None, LIFE, T0 + PUBLISH).unwrap();
        assert_eq!(ring.signing.kid(), new);
        assert_eq!(kids(&ring), [new.clone(), old.clone()]);
        assert!(ring.pending.is_empty());
        assert_eq!(count(&files.pending_dir()), 0);
        let retired = list(&files.retired_dir(), "json").unwrap();
        assert_eq!(retired.len(), 1);
        assert_eq!(
            (retired[0].time, retired[0].kid.as_str()),
            (T0 + PUBLISH, old.as_str())
        );
        let on_disk = SigningKey::from_pem(&std::fs::read_to_string(&files.path).unwrap()).unwrap();
        assert_eq!(on_disk.kid(), new);

        // Once no access token of the old key can be valid, it leaves the JWKS...
        let active = T0 + PUBLISH;
        let later = files
            .keyring(None, LIFE, active + 300 + MAX_LEEWAY_SECS)
            .unwrap();
        assert_eq!(kids(&later), [new.as_str()]);
        // ...but still verifies refresh tokens until they expire too.
        assert!(later.refresh_keys.trusts(&old));
        let much_later = files
            .keyring(None, LIFE, active + 3600 + MAX_LEEWAY_SECS)
            .unwrap();
        assert!(!much_later.refresh_keys.trusts(&old));
        assert_eq!(count(&files.retired_dir()), 0, "pruned");
    }

    /// Swarm and Kubernetes: the keys are read-only secrets, and a rotation changes which are
    /// mounted where. Nothing is written next to them.
    #[test]
    fn mounted_keys_rotate_in_two_steps_without_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let (current, next, previous) = (
            dir.path().join("signing_key"),
            dir.path().join("signing_key_next"),
            dir.path().join("signing_key_previous"),
        );
        let files = KeyFiles {
            path: current.clone(),
            bits: KeyBits::B2048,
            next: Some(next.clone()),
            previous: Some(previous.clone()),
        };
        let (old, new) = (
            SigningKey::generate(KeyBits::B2048).unwrap(),
            SigningKey::generate(KeyBits::B2048).unwrap(),
        );
        let (old_kid, new_kid) = (old.kid().to_owned(), new.kid().to_owned());
        old.persist(&current).unwrap();
        let ring = files.keyring(None, LIFE, T0).unwrap();
        assert_eq!(kids(&ring), [old_kid.as_str()]);

        // Step 1: the new key mounted as the next one is published, trusted, and signs nothing.
        new.persist(&next).unwrap();
        let ring = files.keyring(None, LIFE, T0).unwrap();
        assert_eq!(ring.signing.kid(), old_kid);
        assert_eq!(kids(&ring), [old_kid.clone(), new_kid.clone()]);
        assert!(ring.refresh_keys.trusts(&new_kid));

        // Step 2: the new key signs; the old one (the old secret itself) is retired from the
        // moment it is seen there: in the JWKS for the access-token lifetime, trusted for
        // refresh tokens for the refresh-token lifetime, however long it stays mounted.
        std::fs::remove_file(&current).unwrap();
        std::fs::rename(&next, &current).unwrap();
        old.persist(&previous).unwrap();
        let seen = files.keyring(None, LIFE, T0).unwrap();
        assert_eq!(seen.signing.kid(), new_kid);
        assert_eq!(kids(&seen), [new_kid.clone(), old_kid.clone()]);
        assert!(seen.refresh_keys.trusts(&old_kid));
        let seen = Arc::new(seen);
        let later = files
            .keyring(Some(&seen), LIFE, T0 + 300 + MAX_LEEWAY_SECS)
            .unwrap();
        assert_eq!(kids(&later), [new_kid.as_str()], "out of the JWKS");
        assert!(
            later.refresh_keys.trusts(&old_kid),
            "still trusted for refresh"
        );
        let much_later = files
            .keyring(Some(&Arc::new(later)), LIFE, T0 + 3600 + MAX_LEEWAY_SECS)
            .unwrap();
        assert!(
            !much_later.refresh_keys.trusts(&old_kid),
            "mounted, but past its window"
        );

        // Step 3: unmounted, it is trusted no more.
        std::fs::remove_file(&previous).unwrap();
        let ring = files.keyring(None, LIFE, T0).unwrap();
        assert_eq!(kids(&ring), [new_kid.as_str()]);
        assert!(!ring.refresh_keys.trusts(&old_kid));
        assert_eq!(
            count(dir.path()),
            1,
            "only the mounted key: nothing was written"
        );
    }

    #[test]
    fn a_second_rotation_while_one_is_pending_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        let first = files.rotate(|| T0 + PUBLISH).unwrap();
        let error = files.rotate(|| T0 + 1 + PUBLISH).unwrap_err().to_string();
        assert!(error.contains(&first.next), "{error}");
        assert_eq!(count(&files.pending_dir()), 1);
        // Once the first has signed, the next rotation is fine.
        files.keyring(None, LIFE, T0 + PUBLISH).unwrap();
        files.rotate(|| T0 + 2 * PUBLISH).unwrap();
    }

    /// Several issuers share the volume and reload at the same moment, right at the activation
    /// time: one promotion, one retired record of the old key, every issuer signs with the new
    /// key, and the new key is never filed as retired.
    #[test]
    fn issuers_promoting_at_once_promote_once_and_retire_the_old_key_once() {
        const ISSUERS: usize = 8;
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        let mut activate_at = T0;
        for round in 0..10 {
            activate_at += PUBLISH;
            let rotation = files.rotate(|| activate_at).unwrap();
            let start = std::sync::Barrier::new(ISSUERS);
            let signing: Vec<String> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..ISSUERS)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            let ring = files.keyring(None, LIFE, activate_at).unwrap();
                            ring.signing.kid().to_owned()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert!(
                signing.iter().all(|k| *k == rotation.next),
                "round {round}: {signing:?}"
            );
            let retired = list(&files.retired_dir(), "json").unwrap();
            let of_round: Vec<_> = retired.iter().filter(|e| e.time == activate_at).collect();
            assert_eq!(of_round.len(), 1, "round {round}");
            assert_eq!(of_round[0].kid, rotation.previous, "round {round}");
            assert!(
                retired.iter().all(|e| e.kid != rotation.next),
                "round {round}"
            );
            assert_eq!(count(&files.pending_dir()), 0);
            let ring = files.keyring(None, LIFE, activate_at).unwrap();
            assert_eq!(ring.signing.kid(), rotation.next);
            assert_eq!(kids(&ring)[1], rotation.previous);
        }
    }

    /// The interleaving the concurrent test may or may not hit: an issuer lists the pending key,
    /// another promotes it, then the first goes on promoting with what it listed.
    #[test]
    fn an_issuer_promoting_a_key_already_promoted_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        let rotation = files.rotate(|| T0).unwrap();
        let listed = list(&files.pending_dir(), "pem").unwrap();
        files.keyring(None, LIFE, T0).unwrap(); // the other issuer
        files.promote(&listed[0]).unwrap();
        let retired = list(&files.retired_dir(), "json").unwrap();
        let retired: Vec<_> = retired.iter().map(|e| e.kid.as_str()).collect();
        assert_eq!(retired, [rotation.previous.as_str()]);
        let ring = files.keyring(None, LIFE, T0).unwrap();
        assert_eq!(kids(&ring), [rotation.next, rotation.previous]);
    }

    #[test]
    fn revocation_drops_every_other_key_at_once_and_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        let earlier = files.rotate(|| T0).unwrap(); // signs from T0; the first key is retired then
        files.keyring(None, LIFE, T0).unwrap();
        let pending = files.rotate(|| T0 + PUBLISH).unwrap();
        let before = files.keyring(None, LIFE, T0 + 1).unwrap();
        assert_eq!(kids(&before).len(), 3);

        let revocation = files.revoke(T0 + 2).unwrap();
        assert_eq!(
            revocation.revoked,
            [
                pending.previous.clone(),
                pending.next.clone(),
                earlier.previous.clone()
            ]
        );
        let ring = files.keyring(None, LIFE, T0 + 2).unwrap();
        assert_eq!(ring.signing.kid(), revocation.next);
        assert_eq!(kids(&ring), [revocation.next.as_str()]);
        for kid in &revocation.revoked {
            assert!(!ring.refresh_keys.trusts(kid), "{kid}");
        }
        assert_eq!(
            count(&files.pending_dir()),
            0,
            "no private key left pending"
        );
        assert_eq!(count(&files.retired_dir()), 0);

        // An issuer that was promoting when the revocation ran may still file the old key as
        // retired: the marker keeps it out all the same, and the stray file is cleaned up.
        let stray = &before.signing;
        assert_eq!(stray.kid(), pending.previous);
        files
            .file_retired(stray.public_jwk(), stray.refresh_key(), T0 + 2)
            .unwrap();
        let ring = files.keyring(None, LIFE, T0 + 3).unwrap();
        assert_eq!(kids(&ring), [revocation.next.as_str()]);
        assert_eq!(count(&files.retired_dir()), 0);
    }

    /// A refresh token as the issuer signs it, with `key`'s HMAC key.
    fn refresh_token(key: &SigningKey) -> String {
        let claims = auth_core::claims::RefreshClaims {
            iss: "iss".into(),
            sub: "alice".into(),
            aud: "iss".into(),
            exp: auth_core::now_secs() + 600,
            iat: auth_core::now_secs(),
            jti: "j".into(),
            fam: "f".into(),
        };
        auth_core::sign::sign_refresh_jwt(key.refresh_key(), &claims).unwrap()
    }

    fn refreshes(ring: &Keyring, token: &str) -> bool {
        let rules = auth_core::verify::TokenRules::refresh("iss", MAX_LEEWAY_SECS);
        auth_core::verify::verify_refresh::<auth_core::claims::RefreshClaims>(
            token,
            &ring.refresh_keys,
            &rules,
        )
        .is_ok()
    }

    /// A planned rotation logs nobody out: a refresh token signed (HS256) before the rotation
    /// still verifies after the old key is retired, on an issuer that never held the old key in
    /// memory (it reads the retired record), until the refresh window closes.
    #[test]
    fn refresh_tokens_of_a_retired_key_verify_until_its_window_closes() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        let (first, _) = files.ensure().unwrap();
        let before = refresh_token(&first);
        let rotation = files.rotate(|| T0 + PUBLISH).unwrap();
        // Pending: its HMAC key is trusted already (another issuer may have promoted it).
        let ring = files.keyring(None, LIFE, T0).unwrap();
        assert!(ring.refresh_keys.trusts(&rotation.next));
        assert!(refreshes(&ring, &before));

        let ring = files.keyring(None, LIFE, T0 + PUBLISH).unwrap();
        assert_eq!(ring.signing.kid(), rotation.next);
        let fresh_issuer = files.keyring(None, LIFE, T0 + PUBLISH + 1).unwrap();
        assert!(
            refreshes(&fresh_issuer, &before),
            "logged out by a rotation"
        );
        assert!(refreshes(&fresh_issuer, &refresh_token(&ring.signing)));

        let closed = files
            .keyring(None, LIFE, T0 + PUBLISH + 3600 + MAX_LEEWAY_SECS)
            .unwrap();
        assert!(!refreshes(&closed, &before));
    }

    /// After a compromise, the HMAC keys go with their RSA keys: refresh tokens of every revoked
    /// key (the signing one, a retired one) are refused, the new key's are accepted.
    #[test]
    fn revocation_refuses_the_refresh_tokens_of_every_revoked_key() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        let (first, _) = files.ensure().unwrap();
        let of_first = refresh_token(&first);
        files.rotate(|| T0).unwrap();
        let ring = files.keyring(None, LIFE, T0).unwrap();
        let of_second = refresh_token(&ring.signing);
        assert!(refreshes(&ring, &of_first) && refreshes(&ring, &of_second));

        files.revoke(T0 + 1).unwrap();
        let ring = files.keyring(None, LIFE, T0 + 1).unwrap();
        assert!(!refreshes(&ring, &of_first), "retired key's token");
        assert!(!refreshes(&ring, &of_second), "signing key's token");
        assert!(refreshes(&ring, &refresh_token(&ring.signing)));
    }

    /// Orchestrator secrets: the mounted next and previous keys bring their HMAC keys, and
    /// unmounting the previous key ends its refresh tokens.
    #[test]
    fn mounted_next_and_previous_keys_trust_their_refresh_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let (current, next, previous) = (
            dir.path().join("signing_key"),
            dir.path().join("signing_key_next"),
            dir.path().join("signing_key_previous"),
        );
        let files = KeyFiles {
            path: current.clone(),
            bits: KeyBits::B2048,
            next: Some(next.clone()),
            previous: Some(previous.clone()),
        };
        let (old, new) = (
            SigningKey::generate(KeyBits::B2048).unwrap(),
            SigningKey::generate(KeyBits::B2048).unwrap(),
        );
        old.persist(&current).unwrap();
        new.persist(&next).unwrap();
        let ring = files.keyring(None, LIFE, T0).unwrap();
        assert!(refreshes(&ring, &refresh_token(&new)));

        std::fs::remove_file(&current).unwrap();
        std::fs::rename(&next, &current).unwrap();
        old.persist(&previous).unwrap();
        let ring = files.keyring(None, LIFE, T0).unwrap();
        assert!(refreshes(&ring, &refresh_token(&old)));
        std::fs::remove_file(&previous).unwrap();
        let ring = files.keyring(None, LIFE, T0).unwrap();
        assert!(!refreshes(&ring, &refresh_token(&old)));
    }

    /// A retired record written before refresh tokens were HS256 has no HMAC key: its public key
    /// is still published, and it trusts no HS256 token.
    #[test]
    fn an_old_retired_record_without_an_hmac_key_still_publishes_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        files.ensure().unwrap();
        let old = SigningKey::generate(KeyBits::B2048).unwrap();
        create_private_dir(&files.retired_dir()).unwrap();
        let record = serde_json::json!({ "retired_at": T0, "jwk": old.public_jwk() });
        std::fs::write(
            files.retired_dir().join(format!("{T0}-{}.json", old.kid())),
            record.to_string(),
        )
        .unwrap();
        let ring = files.keyring(None, LIFE, T0 + 1).unwrap();
        assert!(kids(&ring).contains(&old.kid().to_owned()));
        assert!(!ring.refresh_keys.trusts(old.kid()));
        assert!(ring.refresh_keys.trusts_legacy(old.kid()));
        assert!(!refreshes(&ring, &refresh_token(&old)));
    }

    #[test]
    fn key_files_are_private_and_retired_ones_hold_no_private_key() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        files.rotate(|| T0).unwrap();
        assert_eq!(mode(&files.pending_dir()), 0o700);
        for entry in std::fs::read_dir(files.pending_dir()).unwrap() {
            assert_eq!(mode(&entry.unwrap().path()), 0o600);
        }
        files.keyring(None, LIFE, T0).unwrap();
        assert_eq!(mode(&files.retired_dir()), 0o700);
        for entry in std::fs::read_dir(files.retired_dir()).unwrap() {
            let path = entry.unwrap().path();
            // No RSA private key, but the HMAC key of its refresh tokens: a secret, so 0600.
            assert_eq!(mode(&path), 0o600);
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains("PRIVATE") && !text.contains("\"d\""),
                "{text}"
            );
            assert!(text.contains("refresh_hmac_key"), "{text}");
        }
        assert_eq!(mode(&files.path), 0o600);
        assert!(!files.scratch_path().exists());
        files.revoke(T0 + 1).unwrap();
        assert_eq!(mode(&files.path), 0o600);
        assert_eq!(mode(&files.revoked_dir()), 0o700);
    }
}
