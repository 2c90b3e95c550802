//! `/proc` readers: seed the process table at start, fill gaps (fds opened before the sensor
//! attached, processes whose exec we did not see) and resolve socket inodes to endpoints.
//! Every reader tolerates a process vanishing under it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// What `/proc/<pid>` says about a process.
#[derive(Clone, Debug, Default)]
pub struct ProcSnapshot {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub exe: String,
    pub comm: String,
    pub argv: Vec<String>,
    pub cgroup: String,
    /// Start time in clock ticks after boot (field 22 of stat).
    pub start_ticks: u64,
}

/// Reads one process; `None` if it is gone or unreadable.
pub fn snapshot(pid: u32) -> Option<ProcSnapshot> {
    let base = format!("/proc/{pid}");
    let stat = std::fs::read_to_string(format!("{base}/stat")).ok()?;
    let (comm, ppid, start_ticks) = parse_stat(&stat)?;
    let status = std::fs::read_to_string(format!("{base}/status")).unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(u32::MAX);
    let exe = std::fs::read_link(format!("{base}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let argv = std::fs::read(format!("{base}/cmdline"))
        .map(|b| split_nul(&b))
        .unwrap_or_default();
    let cgroup = std::fs::read_to_string(format!("{base}/cgroup"))
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| cgroup_path(&s))
        .unwrap_or_default();
    Some(ProcSnapshot {
        pid,
        ppid,
        uid,
        exe,
        comm,
        argv,
        cgroup,
        start_ticks,
    })
}

/// Parses comm, ppid and starttime from `/proc/<pid>/stat` (comm may contain spaces and ')').
pub fn parse_stat(stat: &str) -> Option<(String, u32, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // rest[0] = state (field 3), rest[1] = ppid (field 4), starttime is field 22 → rest[19].
    let ppid = rest.get(1)?.parse().ok()?;
    let start = rest.get(19)?.parse().ok()?;
    Some((comm, ppid, start))
}

/// Splits NUL-separated strings (cmdline, environ).
pub fn split_nul(b: &[u8]) -> Vec<String> {
    b.split(|c| *c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// The cgroup path: the v2 (`0::`) line if present, else the first named v1 line.
pub fn cgroup_path(text: &str) -> String {
    let mut fallback = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && ctrl.is_empty() {
            return path.to_string();
        }
        if fallback.is_none() && path != "/" {
            fallback = Some(path.to_string());
        }
    }
    fallback.unwrap_or_else(|| "/".into())
}

/// All pids in /proc.
pub fn all_pids() -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// What an fd refers to, as `/proc/<pid>/fd/<fd>` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdLink {
    /// A path in the filesystem (regular file, device, …).
    Path(String),
    /// `socket:[inode]`.
    Socket(u64),
    /// `pipe:[inode]`.
    Pipe(u64),
    /// `anon_inode:[kind]` and anything else.
    Other(String),
}

/// The pid a `/proc/<pid>` or `/proc/<pid>/task/<tid>` directory belongs to (the thread
/// group: a task directory names its tgid first).
pub fn proc_dir_pid(dir: &str) -> Option<u32> {
    let rest = dir.strip_prefix("/proc/")?;
    let mut parts = rest.split('/');
    let pid: u32 = parts.next()?.parse().ok()?;
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => Some(pid),
        (Some("task"), Some(tid), None) if tid.parse::<u32>().is_ok() => Some(pid),
        _ => None,
    }
}

/// Reads and classifies an fd link.
pub fn fd_link(pid: u32, fd: i32) -> Option<FdLink> {
    let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    Some(classify_link(&target.to_string_lossy()))
}

/// Classifies the text of an fd link.
pub fn classify_link(t: &str) -> FdLink {
    let inode = |p: &str| {
        t.strip_prefix(p)
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
    };
    if let Some(i) = inode("socket:[") {
        FdLink::Socket(i)
    } else if let Some(i) = inode("pipe:[") {
        FdLink::Pipe(i)
    } else if t.starts_with('/') {
        FdLink::Path(t.to_string())
    } else {
        FdLink::Other(t.to_string())
    }
}

/// All fds of a process.
pub fn fds(pid: u32) -> Vec<(i32, FdLink)> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    rd.filter_map(|e| {
        let fd: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        Some((fd, fd_link(pid, fd)?))
    })
    .collect()
}

/// A socket's endpoints found in `/proc/<pid>/net/*` by inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketInfo {
    /// "tcp", "udp", "unix".
    pub proto: &'static str,
    pub local: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
    /// Unix socket path, if bound/named.
    pub path: Option<String>,
}

/// Finds a socket inode in the process's network namespace tables.
pub fn socket_info(pid: u32, inode: u64) -> Option<SocketInfo> {
    for (file, proto, v6) in [
        ("tcp", "tcp", false),
        ("tcp6", "tcp", true),
        ("udp", "udp", false),
        ("udp6", "udp", true),
    ] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[9].parse::<u64>().ok() != Some(inode) {
                continue;
            }
            let local = parse_hex_addr(f[1], v6);
            let peer =
                parse_hex_addr(f[2], v6).filter(|a| !a.ip().is_unspecified() || a.port() != 0);
            return Some(SocketInfo {
                proto,
                local,
                peer,
                path: None,
            });
        }
    }
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/unix")) {
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 7 && f[6].parse::<u64>().ok() == Some(inode) {
                return Some(SocketInfo {
                    proto: "unix",
                    local: None,
                    peer: None,
                    path: f.get(7).map(|s| s.to_string()),
                });
            }
        }
    }
    None
}

/// Parses `0100007F:1F90` (IPv4) or the 32-hex-digit IPv6 form of /proc/net/tcp.
pub fn parse_hex_addr(s: &str, v6: bool) -> Option<SocketAddr> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let ip = if !v6 {
        let n = u32::from_str_radix(a, 16).ok()?;
        IpAddr::V4(Ipv4Addr::from(n.to_le_bytes()))
    } else {
        if a.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for w in 0..4 {
            let n = u32::from_str_radix(&a[w * 8..w * 8 + 8], 16).ok()?;
            bytes[w * 4..w * 4 + 4].copy_from_slice(&n.to_le_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(bytes))
    };
    Some(SocketAddr::new(ip, port))
}

/// The environment a process started with (`/proc/<pid>/environ`).
pub fn environ(pid: u32) -> Vec<(String, String)> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|b| {
            split_nul(&b)
                .into_iter()
                .filter_map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Processes owning the socket that listens on unix `path` (`@name` for abstract
/// sockets), as seen from `pid`'s network namespace. Empty when nobody listens there.
pub fn unix_listener_owners(pid: u32, path: &str) -> Vec<u32> {
    /// `__SO_ACCEPTCON` in the flags column: a listening socket.
    const ACCEPTCON: u32 = 0x0001_0000;
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/unix")) else {
        return Vec::new();
    };
    let inodes: Vec<u64> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            (f.get(7) == Some(&path) && flags & ACCEPTCON != 0).then(|| f[6].parse().ok())?
        })
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    all_pids()
        .into_iter()
        .filter(|&p| {
            fds(p)
                .iter()
                .any(|(_, l)| matches!(l, FdLink::Socket(i) if inodes.contains(i)))
        })
        .collect()
}

/// Does `/proc/<pid>` exist?
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_directories_name_their_process() {
        assert_eq!(proc_dir_pid("/proc/4242"), Some(4242));
        assert_eq!(proc_dir_pid("/proc/4242/task/4250"), Some(4242));
        assert_eq!(proc_dir_pid("/proc/self"), None);
        assert_eq!(proc_dir_pid("/proc/4242/fd"), None);
        assert_eq!(proc_dir_pid("/proc/4242/task/x"), None);
        assert_eq!(proc_dir_pid("/home/dev/proc/4242"), None);
    }

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let s = "1234 (a b) c)) S 77 1234 1234 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 555 1000 10 18446744073709551615";
        assert_eq!(parse_stat(s), Some(("a b) c)".to_string(), 77, 555)));
    }

    #[test]
    fn hex_addresses() {
        assert_eq!(
            parse_hex_addr("0100007F:1F90", false),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            parse_hex_addr("00000000000000000000000001000000:0050", true),
            Some("[::1]:80".parse().unwrap())
        );
    }

    #[test]
    fn cgroup_lines() {
        assert_eq!(
            cgroup_path("4:memory:/x\n0::/system.slice/docker-ab.scope\n"),
            "/system.slice/docker-ab.scope"
        );
        assert_eq!(
            cgroup_path("4:memory:/process_api/12\n1:cpu:/\n"),
            "/process_api/12"
        );
    }

    #[test]
    fn links() {
        assert_eq!(classify_link("socket:[123]"), FdLink::Socket(123));
        assert_eq!(classify_link("pipe:[9]"), FdLink::Pipe(9));
        assert_eq!(
            classify_link("/dev/pts/0"),
            FdLink::Path("/dev/pts/0".into())
        );
        assert_eq!(
            classify_link("anon_inode:[eventfd]"),
            FdLink::Other("anon_inode:[eventfd]".into())
        );
    }

    #[test]
    fn reads_self() {
        let me = snapshot(std::process::id()).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(!me.exe.is_empty());
        assert!(!fds(std::process::id()).is_empty());
    }
}
