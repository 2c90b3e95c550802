//! Turns "watch this pid / exe name / cgroup" into kernel map entries. The kernel follows
//! forks and exec'd exe names by itself; this module adds what already exists when the
//! daemon starts (running processes and their descendants, nested cgroups) and rescans
//! cgroups periodically for sub-cgroups and, on cgroup v1, new members.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::probes::{ProbeError, Probes};
use crate::host::cgroupfs::{cgroup_id, is_cgroup2};

/// Scope errors.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// A watched cgroup path does not exist or is not a cgroup directory.
    #[error("{option} {path}: {reason}")]
    Cgroup {
        /// Where it was given: `--watch-cgroup` or the configuration's `watch.cgroups`.
        option: &'static str,
        /// The path given.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A watched pid does not exist.
    #[error("{option} {pid}: no such process")]
    NoPid {
        /// Where it was given: `--watch-pid` or the configuration's `watch.pids`.
        option: &'static str,
        /// The pid.
        pid: u32,
    },
    /// Writing a kernel map failed.
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

/// `ppid → children` over all processes.
fn children_map() -> HashMap<u32, Vec<u32>> {
    let mut m: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in crate::host::procfs::all_pids() {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            if let Some((_, ppid, _)) = crate::host::procfs::parse_stat(&stat) {
                m.entry(ppid).or_default().push(pid);
            }
        }
    }
    m
}

fn subtree(root: u32, children: &HashMap<u32, Vec<u32>>) -> Vec<u32> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            for &p in c {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        i += 1;
    }
    out
}

/// Applies scopes to the kernel maps and remembers them for rescans.
pub struct Scope {
    cgroups_v2: Vec<PathBuf>,
    cgroups_v1: Vec<PathBuf>,
    known_cgroup_ids: HashSet<u64>,
    /// tgids put in scope by userspace (for seeding the process table).
    pub seeded: Vec<u32>,
    /// Watched roots found at start (`--watch-pid` targets, running watched exes): each
    /// starts a workspace.
    pub roots: Vec<u32>,
}

/// Whether `path` is a cgroup v2 directory (`true`) or v1 (`false`); the error says why
/// it is neither.
pub fn check_cgroup(path: &std::path::Path) -> Result<bool, String> {
    if !path.is_dir() {
        return Err("not a directory".into());
    }
    if is_cgroup2(path) {
        Ok(true)
    } else if path.join("cgroup.procs").is_file() {
        Ok(false)
    } else {
        Err("not a cgroup directory (no cgroup.procs)".into())
    }
}

impl Scope {
    /// Validates and applies the watch lists (check the configuration's own entries
    /// first with [`check_cgroup`], so that errors name where they came from). `self_pid` is never watched.
    pub fn apply(
        probes: &mut Probes,
        pids: &[u32],
        exes: &[String],
        cgroups: &[PathBuf],
        self_pid: u32,
    ) -> Result<Scope, ScopeError> {
        let mut s = Scope {
            cgroups_v2: Vec::new(),
            cgroups_v1: Vec::new(),
            known_cgroup_ids: HashSet::new(),
            seeded: Vec::new(),
            roots: Vec::new(),
        };
        for path in cgroups {
            match check_cgroup(path) {
                Ok(true) => s.cgroups_v2.push(path.clone()),
                Ok(false) => s.cgroups_v1.push(path.clone()),
                Err(reason) => {
                    return Err(ScopeError::Cgroup {
                        option: "--watch-cgroup",
                        path: path.clone(),
                        reason,
                    })
                }
            }
        }
        for n in exes {
            probes.watch_exe(n)?;
        }
        let children = children_map();
        let mut roots = Vec::new();
        for &pid in pids {
            if !crate::host::procfs::alive(pid) {
                return Err(ScopeError::NoPid {
                    option: "--watch-pid",
                    pid,
                });
            }
            roots.push(pid);
        }
        if !exes.is_empty() {
            for pid in crate::host::procfs::all_pids() {
                let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
                let base = exe
                    .as_ref()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned());
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if exes
                    .iter()
                    .any(|e| Some(e) == base.as_ref() || e.as_str() == comm.trim())
                {
                    roots.push(pid);
                }
            }
        }
        s.roots = roots.clone();
        for root in roots {
            for pid in subtree(root, &children) {
                if pid != self_pid && !s.seeded.contains(&pid) {
                    probes.watch_tgid(pid)?;
                    s.seeded.push(pid);
                }
            }
        }
        s.rescan(probes)?;
        Ok(s)
    }

    /// Adds cgroup v2 descendants and cgroup v1 members not seen before. Returns new tgids.
    pub fn rescan(&mut self, probes: &mut Probes) -> Result<Vec<u32>, ScopeError> {
        for root in self.cgroups_v2.clone() {
            for dir in walk_dirs(&root) {
                if let Ok(id) = cgroup_id(&dir) {
                    if self.known_cgroup_ids.insert(id) {
                        probes.watch_cgroup(id)?;
                    }
                }
            }
        }
        let mut new = Vec::new();
        if !self.cgroups_v1.is_empty() {
            let children = children_map();
            for root in self.cgroups_v1.clone() {
                for dir in walk_dirs(&root) {
                    let procs =
                        std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                        for p in subtree(pid, &children) {
                            if p != std::process::id() && !probes.is_tgid_watched(p) {
                                probes.watch_tgid(p)?;
                                new.push(p);
                            }
                        }
                    }
                }
            }
        }
        self.seeded.extend(new.iter().copied());
        Ok(new)
    }

    /// Whether any cgroup needs periodic rescans.
    pub fn has_cgroups(&self) -> bool {
        !self.cgroups_v2.is_empty() || !self.cgroups_v1.is_empty()
    }
}

fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() && out.len() < 100_000 {
        if let Ok(rd) = std::fs::read_dir(&out[i]) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_follows_children() {
        let mut m = HashMap::new();
        m.insert(1, vec![2, 3]);
        m.insert(3, vec![4]);
        let mut t = subtree(1, &m);
        t.sort();
        assert_eq!(t, vec![1, 2, 3, 4]);
        assert_eq!(subtree(9, &m), vec![9]);
    }
}
