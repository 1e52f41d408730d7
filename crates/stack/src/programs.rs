//! Finding the programs a stack needs from the machine: `nginx` and `redis-server`.
//!
//! They are looked up like a shell would, in the directories of `PATH`, and then in the `sbin`
//! directories, because Debian installs nginx as /usr/sbin/nginx and a normal user's `PATH` often
//! lacks /usr/sbin. When a program is missing, the error names the package that provides it.

use anyhow::bail;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Searched after `PATH`.
const EXTRA_DIRS: [&str; 4] = ["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/local/bin"];

/// nginx, or an error saying how to install it.
pub fn nginx() -> anyhow::Result<PathBuf> {
    find(
        "nginx",
        r#"install it with "apt-get install nginx-light" (or nginx)"#,
    )
}

/// redis-server, or an error saying how to install it.
pub fn redis_server() -> anyhow::Result<PathBuf> {
    find(
        "redis-server",
        r#"install it with "apt-get install redis-server""#,
    )
}

/// The first executable file called `name` in `PATH` or the sbin directories.
pub fn find(name: &str, install_hint: &str) -> anyhow::Result<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let path_dirs = std::env::split_paths(&path_var);
    let extra_dirs = EXTRA_DIRS.iter().map(PathBuf::from);
    match path_dirs
        .chain(extra_dirs)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
    {
        Some(found) => Ok(found),
        None => bail!("{name} not found: {install_hint}"),
    }
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_names_the_package_of_a_missing_program() {
        assert!(find("sh", "").unwrap().ends_with("sh"));
        let err = find(
            "no-such-program-xyz",
            r#"install it with "apt-get install xyz""#,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            r#"no-such-program-xyz not found: install it with "apt-get install xyz""#
        );
    }
}
