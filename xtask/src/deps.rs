//! System packages the test suite needs (real TLS clients, terminals, resolvers, …),
//! installed from Debian's archive when missing so `cargo xtask test` works on a fresh
//! machine. Each entry says which test needs it.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Debian packages the integration tests run, with why.
pub const TEST_PACKAGES: &[(&str, &str)] = &[
    ("curl", "TLS client tests (OpenSSL through libcurl)"),
    ("ca-certificates", "TLS clients' trust store"),
    ("openssl", "test certificate authorities (TLS clients, the HTTPS output's ca_file)"),
];

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs the missing packages of `pkgs` with apt-get (needs root).
pub fn ensure_debian(pkgs: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    let st = Command::new("apt-get")
        .arg("update")
        .arg("-q")
        .envs(env)
        .status()
        .context("apt-get update")?;
    if !st.success() {
        bail!("apt-get update failed: {st}");
    }
    let st = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .envs(env)
        .status()
        .context("apt-get install")?;
    if !st.success() {
        bail!("apt-get install {} failed: {st}", missing.join(" "));
    }
    Ok(())
}
