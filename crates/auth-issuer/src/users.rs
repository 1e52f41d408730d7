//! Who may log in: users with Argon2id password hashes.
//!
//! Passwords are never stored, only their Argon2id hashes in PHC string form
//! (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), which carry their own salt and parameters.
//! The defaults (19 MiB, 2 passes, 1 lane) are OWASP's recommended minimum for Argon2id: slow
//! enough to make every guess cost tens of milliseconds of one core (the load test measures it).
//!
//! An attacker must not learn which usernames exist by timing the answer: an unknown user is
//! checked against a dummy hash with the same parameters, so both cases cost one Argon2id
//! verification. Verification runs on the [`HashPool`]'s few threads, so a burst of logins
//! queues briefly or is refused instead of exhausting memory (each verification holds 19 MiB).

use crate::hash_pool::{HashPool, HashingLimits};
use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, phc::PasswordHash};
use auth_core::error::ApiError;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// The built-in demo users: alice / wonderland and bob / builder (hashes only).
const DEMO_USERS: &str = include_str!("../demo-users.json");

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub username: String,
    pub name: String,
    pub roles: Vec<String>,
    password_hash: String,
}

#[derive(Deserialize)]
struct UsersFile {
    users: Vec<User>,
}

pub struct Users {
    by_name: HashMap<String, User>,
    dummy_hash: String,
    hashing: HashPool,
}

impl Users {
    /// Load `path`, or the demo users when no file is configured.
    pub fn load(path: Option<&Path>, hashing: HashingLimits) -> anyhow::Result<Self> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("reading USERS_FILE {}", p.display()))?,
            None => DEMO_USERS.to_owned(),
        };
        Self::from_json(&text, hashing)
    }

    fn from_json(text: &str, hashing: HashingLimits) -> anyhow::Result<Self> {
        let file: UsersFile = serde_json::from_str(text).context("users file is not valid JSON")?;
        let mut by_name = HashMap::new();
        for user in file.users {
            PasswordHash::new(&user.password_hash)
                .map_err(|e| anyhow::anyhow!("user {:?}: bad password hash: {e}", user.username))?;
            anyhow::ensure!(
                user.password_hash.starts_with("$argon2id$"),
                "user {:?}: only Argon2id hashes are accepted",
                user.username
            );
            by_name.insert(user.username.clone(), user);
        }
        // The dummy costs what a real verification costs, because it uses the same parameters.
        let dummy_hash = hash_password("timing-equaliser")?;
        Ok(Users {
            by_name,
            dummy_hash,
            hashing: HashPool::start(hashing)?,
        })
    }

    pub fn get(&self, username: &str) -> Option<&User> {
        self.by_name.get(username)
    }

    /// The user, if `password` is theirs (`Ok(None)` if not). Unknown users take as long as
    /// wrong passwords. `Err(Overloaded)` when the hash workers are all busy for too long.
    pub async fn authenticate(
        &self,
        username: &str,
        password: String,
    ) -> Result<Option<User>, ApiError> {
        let user = self.by_name.get(username).cloned();
        let hash = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let matches = self.hashing.verify(password, hash).await?;
        Ok(if matches { user } else { None })
    }
}

/// A new Argon2id PHC string with a random salt (for `auth-issuer hash-password`).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HashingLimits = HashingLimits {
        workers: 1,
        queue: 8,
        wait: std::time::Duration::from_secs(30),
    };

    #[tokio::test]
    async fn demo_users_log_in_with_their_passwords_only() {
        let users = Users::load(None, LIMITS).unwrap();
        let alice = users
            .authenticate("alice", "wonderland".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(alice.roles, ["user"]);
        let bob = users
            .authenticate("bob", "builder".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bob.roles, ["user", "recruiter"]);
        assert!(
            users
                .authenticate("alice", "builder".into())
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            users
                .authenticate("mallory", "wonderland".into())
                .await
                .unwrap()
                .is_none()
        );
        assert!(users.authenticate("", "".into()).await.unwrap().is_none());
    }

    #[test]
    fn non_argon2id_hashes_are_refused() {
        let json = r#"{"users":[{"username":"u","name":"U","roles":[],
            "password_hash":"$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$Yc2b8U9Fy2gnvpIp1HNQQQ"}]}"#;
        assert!(Users::from_json(json, LIMITS).is_err());
    }
}
