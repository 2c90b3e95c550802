//! cgroupfs facts: where cgroup v2 is mounted, a cgroup directory's id, and an index from
//! cgroup v2 ids (what the kernel stamps on every record) back to cgroup paths, so a
//! process that lived too briefly for `/proc` is still attributed to its container.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Mount point of the cgroup v2 hierarchy, if any.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in text.lines() {
        let (pre, post) = line.split_once(" - ")?;
        if post.split_whitespace().next() == Some("cgroup2") {
            return pre.split_whitespace().nth(4).map(PathBuf::from);
        }
    }
    None
}

pub fn is_cgroup2(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC }
}

/// cgroup v2 id of a cgroup directory: its inode number.
pub fn cgroup_id(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)?.ino())
}

/// Lazily built id → path index of the cgroup v2 hierarchy.
pub struct CgroupIndex {
    root: Option<PathBuf>,
    paths: HashMap<u64, String>,
    last_walk: Option<Instant>,
}

/// Minimum time between two walks of the hierarchy on cache misses.
const REWALK: Duration = Duration::from_secs(1);

impl CgroupIndex {
    /// An empty index over the cgroup v2 mount (if any).
    pub fn new() -> CgroupIndex {
        CgroupIndex {
            root: cgroup2_mount(),
            paths: HashMap::new(),
            last_walk: None,
        }
    }

    fn walk(&mut self) {
        let Some(root) = self.root.clone() else {
            return;
        };
        self.last_walk = Some(Instant::now());
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            if let Ok(id) = cgroup_id(&dir) {
                let rel = dir
                    .strip_prefix(&root)
                    .map(|p| format!("/{}", p.display()))
                    .unwrap_or_default();
                self.paths
                    .insert(id, if rel == "/" { "/".into() } else { rel });
            }
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        stack.push(e.path());
                    }
                }
            }
            if self.paths.len() > 200_000 {
                break;
            }
        }
    }

    /// The path of a cgroup id, relative to the v2 mount ("/system.slice/…").
    pub fn path(&mut self, id: u64) -> Option<String> {
        if let Some(p) = self.paths.get(&id) {
            return Some(p.clone());
        }
        if self.last_walk.is_none_or(|t| t.elapsed() >= REWALK) {
            self.walk();
        }
        self.paths.get(&id).cloned()
    }
}

impl Default for CgroupIndex {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_resolves() {
        let Some(root) = cgroup2_mount() else { return };
        let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let mine = crate::host::procfs::cgroup_path(&text);
        let dir = root.join(mine.trim_start_matches('/'));
        if !dir.is_dir() {
            return; // hybrid hierarchy where this process is only in v1
        }
        let id = cgroup_id(&dir).unwrap();
        let mut idx = CgroupIndex::new();
        assert_eq!(
            idx.path(id).as_deref(),
            Some(if mine.is_empty() { "/" } else { mine.as_str() })
        );
        assert_eq!(idx.path(u64::MAX), None);
    }
}
