//! `cargo xtask install`: puts the daemon, its systemd unit, the default configuration and
//! the rule files where a host (or a package, with `--destdir`) expects them, with explicit
//! modes. An existing configuration is never overwritten.
//!
//! Layout for the default `--prefix /usr/local` (`--sysconfdir /etc`):
//!
//! | file | mode |
//! |---|---|
//! | `/usr/local/bin/token-sensor` | 0755 |
//! | `/usr/local/lib/systemd/system/token-sensor.service` | 0644 |
//! | `/etc/token-sensor/config.yaml` (only if absent) | 0600 |
//! | `/usr/local/share/token-sensor/default-config.yaml` | 0644 |
//! | `/usr/local/share/token-sensor/rules/*.yaml` | 0644 |

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The installed binary's name (the cargo binary is `sensor`, too generic for `$PATH`).
pub const BIN_NAME: &str = "token-sensor";

/// Paths in the shipped unit file that the installer rewrites for the chosen layout.
const UNIT_BIN: &str = "/usr/local/bin/token-sensor";
const UNIT_CONFIG: &str = "/etc/token-sensor/config.yaml";

/// Where things go.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Installation prefix as the running system sees it (`/usr/local`, `/usr`).
    pub prefix: PathBuf,
    /// Configuration root as the running system sees it (`/etc`).
    pub sysconfdir: PathBuf,
    /// systemd unit directory; `<prefix>/lib/systemd/system` when `None`.
    pub unitdir: Option<PathBuf>,
    /// Staging root prepended to every path written (packaging); paths inside the
    /// installed files do not include it.
    pub destdir: Option<PathBuf>,
}

impl Layout {
    fn bin(&self) -> PathBuf {
        self.prefix.join("bin").join(BIN_NAME)
    }
    fn unitdir(&self) -> PathBuf {
        self.unitdir
            .clone()
            .unwrap_or_else(|| self.prefix.join("lib/systemd/system"))
    }
    fn confdir(&self) -> PathBuf {
        self.sysconfdir.join("token-sensor")
    }
    fn datadir(&self) -> PathBuf {
        self.prefix.join("share/token-sensor")
    }
    /// Where a path of the running system is written now.
    fn staged(&self, p: &Path) -> PathBuf {
        match &self.destdir {
            Some(d) => d.join(p.strip_prefix("/").unwrap_or(p)),
            None => p.to_path_buf(),
        }
    }
}

/// The unit file text with its paths rewritten for `layout`.
pub fn unit_for(shipped: &str, layout: &Layout) -> Result<String> {
    for p in [UNIT_BIN, UNIT_CONFIG] {
        if !shipped.contains(p) {
            bail!("the shipped unit no longer mentions {p}: update xtask/src/install.rs");
        }
    }
    Ok(shipped
        .replace(UNIT_BIN, &layout.bin().display().to_string())
        .replace(
            UNIT_CONFIG,
            &layout.confdir().join("config.yaml").display().to_string(),
        ))
}

/// Installs `binary` and the repository's deployment files from `root` into `layout`.
pub fn install(root: &Path, binary: &Path, layout: &Layout) -> Result<()> {
    for (name, p) in [
        ("--prefix", &layout.prefix),
        ("--sysconfdir", &layout.sysconfdir),
    ] {
        if !p.is_absolute() {
            bail!("{name} {} must be an absolute path", p.display());
        }
    }
    if !binary.is_file() {
        bail!("binary {} does not exist", binary.display());
    }
    let bin_bytes =
        std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    put(layout, &layout.bin(), &bin_bytes, 0o755)?;

    let unit_src = root.join("deploy/systemd/token-sensor.service");
    let shipped = std::fs::read_to_string(&unit_src)
        .with_context(|| format!("reading {}", unit_src.display()))?;
    let unit = unit_for(&shipped, layout)?;
    put(
        layout,
        &layout.unitdir().join("token-sensor.service"),
        unit.as_bytes(),
        0o644,
    )?;

    let default_cfg = std::fs::read(root.join("sensor/default-config.yaml"))
        .context("reading sensor/default-config.yaml")?;
    put(
        layout,
        &layout.datadir().join("default-config.yaml"),
        &default_cfg,
        0o644,
    )?;
    // The configuration may hold output credentials: readable by root only (the service's
    // CAP_DAC_READ_SEARCH reads it). An existing one is the operator's: never replaced.
    let cfg = layout.confdir().join("config.yaml");
    let staged_cfg = layout.staged(&cfg);
    if staged_cfg.exists() {
        eprintln!(
            "xtask install: kept existing {} (the shipped default is {})",
            staged_cfg.display(),
            layout.datadir().join("default-config.yaml").display()
        );
    } else {
        put(layout, &cfg, &default_cfg, 0o600)?;
    }

    let rules = root.join("rules");
    let mut n = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&rules)
        .with_context(|| format!("reading {}", rules.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "toml")
                )
        })
        .collect();
    entries.sort();
    for f in entries {
        let bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
        let name = f.file_name().expect("a file has a name");
        put(
            layout,
            &layout.datadir().join("rules").join(name),
            &bytes,
            0o644,
        )?;
        n += 1;
    }
    if n == 0 {
        bail!("no rule files in {}", rules.display());
    }
    Ok(())
}

/// Writes `bytes` to `path` (under the destdir) with `mode`, atomically: a running binary
/// or a reader never sees a half-written file. Created directories get 0755.
fn put(layout: &Layout, path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dst = layout.staged(path);
    let dir = dst.parent().expect("installed files live in a directory");
    create_dirs(dir)?;
    let tmp = dir.join(format!(
        ".{}.xtask-tmp",
        dst.file_name().expect("a file name").to_string_lossy()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", tmp.display()))?;
    std::fs::rename(&tmp, &dst).with_context(|| format!("installing {}", dst.display()))?;
    eprintln!("xtask install: {:o} {}", mode, dst.display());
    Ok(())
}

fn create_dirs(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_paths_follow_the_layout() {
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/token-sensor.service"),
        )
        .unwrap();
        let l = Layout {
            prefix: "/usr".into(),
            sysconfdir: "/etc".into(),
            unitdir: None,
            destdir: Some("/tmp/pkg".into()),
        };
        let u = unit_for(&shipped, &l).unwrap();
        assert!(
            u.contains(
                "ExecStart=/usr/bin/token-sensor run --config /etc/token-sensor/config.yaml"
            ),
            "{u}"
        );
        assert!(!u.contains("/usr/local") && !u.contains("/tmp/pkg"), "{u}");
        assert_eq!(l.unitdir(), Path::new("/usr/lib/systemd/system"));
        assert_eq!(
            l.staged(&l.bin()),
            Path::new("/tmp/pkg/usr/bin/token-sensor")
        );
        assert!(unit_for("ExecStart=/bin/true", &l).is_err());
    }
}
