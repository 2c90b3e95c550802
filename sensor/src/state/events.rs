//! The daemon's enriched events: what a process did, which process (with its parent chain,
//! cgroup and container), and where the bytes went. These are what detection consumes and
//! what `--print-events` prints. Payload bytes and environment values are never serialized:
//! JSON carries their length and a keyed fingerprint only.

use std::net::SocketAddr;

use serde::Serialize;

use crate::redact::Fingerprinter;

/// Kind of object an fd refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FdKind {
    /// A network or unix socket.
    Socket,
    /// A pipe or FIFO.
    Pipe,
    /// A terminal (pty or console).
    Tty,
    /// A regular file or other path.
    File,
    /// eventfd, epoll, … or not known.
    Other,
    /// Could not be determined (process gone before resolution).
    Unknown,
}

/// Where an fd leads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Endpoint {
    /// IPv4/IPv6 socket peer.
    Inet {
        /// "tcp", "udp" or "ip" when unknown.
        proto: String,
        /// Peer address.
        addr: SocketAddr,
    },
    /// Unix socket path (`@name` for abstract sockets), empty when unnamed.
    Unix {
        /// Path.
        path: String,
    },
    /// A filesystem path (file, tty, FIFO).
    Path {
        /// Path.
        path: String,
    },
    /// A pipe (by inode when known).
    Pipe {
        /// Pipe inode, 0 when unknown.
        inode: u64,
    },
}

/// One ancestor in a process's parent chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ancestor {
    pub pid: u32,
    pub exe: String,
}

/// Who reads what a process writes into a pipe or local socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// The channel was created inside the writer's workspace and every process reading
    /// from it belongs to that workspace: the bytes have not left it.
    pub internal: bool,
    /// Processes holding the reading end (or owning the listening socket).
    pub readers: Vec<Ancestor>,
    /// The tracker's id of the pipe or socketpair (which end is read is implied).
    #[serde(skip)]
    pub pipe: Option<u64>,
}

/// The process an event belongs to.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessRef {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub exe: String,
    pub argv: Vec<String>,
    pub cgroup: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_runtime: Option<String>,
    /// Parent chain, nearest first.
    pub ancestry: Vec<Ancestor>,
    /// The workspace the process belongs to.
    #[serde(skip)]
    pub workspace: std::sync::Arc<super::workspace::WorkspaceRef>,
}

#[cfg(test)]
impl ProcessRef {
    /// Unit-test fixture: a process of the process-tree workspace rooted at pid 1, with
    /// its ancestors (nearest first; the nearest is its parent, else pid 1).
    pub fn fixture(pid: u32, exe: &str, ancestry: &[(u32, &str)]) -> ProcessRef {
        ProcessRef {
            pid,
            ppid: ancestry.first().map(|a| a.0).unwrap_or(1),
            uid: 0,
            exe: exe.into(),
            argv: Vec::new(),
            cgroup: String::new(),
            container_id: None,
            container_runtime: None,
            ancestry: ancestry
                .iter()
                .map(|(pid, exe)| Ancestor {
                    pid: *pid,
                    exe: exe.to_string(),
                })
                .collect(),
            workspace: std::sync::Arc::new(super::workspace::WorkspaceRef::tree(
                1, "0", "init", "",
            )),
        }
    }
}

/// What happened.
#[derive(Clone, Debug)]
pub enum EventBody {
    /// A successful execve; `env` holds the environment passed in (never serialized).
    Exec {
        filename: String,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        /// Some environment variables could not be read (block over the kernel's bound and
        /// `/proc/<pid>/environ` gone): `env` is incomplete.
        env_truncated: bool,
        /// Entered the scope because its exe name is watched.
        exe_match: bool,
        /// Pipes and socketpairs (tracker ids) the new program can read from.
        reads: Vec<u64>,
    },
    /// A process forked a child.
    Fork { child: u32 },
    /// A process exited.
    Exit,
    /// A file was opened; `captured` says its reads are being copied.
    Open {
        fd: i32,
        path: String,
        flags: u64,
        captured: bool,
    },
    /// Bytes read from a captured fd: a credential file (`path`), or a DNS answer received
    /// on a socket (`endpoint`: the resolver, `proto` `udp`/`tcp`).
    Read {
        fd: i32,
        path: Option<String>,
        /// The socket's peer, for socket reads.
        endpoint: Option<Endpoint>,
        data: Vec<u8>,
        total: u64,
        truncated: bool,
    },
    /// Bytes written.
    Write {
        fd: i32,
        syscall: &'static str,
        fd_kind: FdKind,
        endpoint: Option<Endpoint>,
        data: Vec<u8>,
        total: u64,
        truncated: bool,
        /// Records of this call were lost.
        incomplete: bool,
        /// Offset of this write in the (pid, fd) stream (of its layer: raw or TLS).
        stream_offset: u64,
        /// `Some(stack)` when these are TLS plaintext bytes taken inside a TLS library
        /// (`openssl`, `gnutls`, `go`) before encryption; `syscall` is then the library
        /// function. `fd` is the socket the ciphertext went out on (-1 if not tied).
        tls: Option<&'static str>,
        /// Who reads it, for pipes and local sockets whose other end is known.
        peer: Option<std::sync::Arc<Peer>>,
    },
    /// TLS plaintext a TLS library returned to the process (received from the peer).
    TlsRead {
        /// Socket the ciphertext came in on (-1 if not tied).
        fd: i32,
        fd_kind: FdKind,
        endpoint: Option<Endpoint>,
        /// `openssl`, `gnutls`, `go`.
        stack: &'static str,
        data: Vec<u8>,
        total: u64,
        truncated: bool,
    },
    /// Which TLS stacks of a process are hooked, and which are opaque (no hook).
    TlsCoverage(crate::kernel::uprobes::Coverage),
    /// connect() on a socket.
    Connect {
        fd: i32,
        endpoint: Option<Endpoint>,
        ret: i64,
    },
    /// accept() returned a connection.
    Accept {
        fd: i32,
        new_fd: i32,
        endpoint: Option<Endpoint>,
    },
    /// Bytes the kernel moved between two fds (sendfile, splice, tee, copy_file_range) that
    /// could not be read back: the source is a pipe or socket, or its file was gone. Copies
    /// whose source file could be read are reported as [`EventBody::Write`] instead.
    Transfer {
        /// Destination fd.
        fd: i32,
        syscall: &'static str,
        fd_kind: FdKind,
        endpoint: Option<Endpoint>,
        /// Source fd and what it is.
        src_fd: i32,
        src_kind: FdKind,
        src_endpoint: Option<Endpoint>,
        /// Bytes moved.
        total: u64,
    },
    /// A watched process used a channel the syscall programs cannot inspect (`io_uring`):
    /// its requests carry data the sensor does not see.
    UnmonitoredChannel {
        /// The channel (`io_uring`).
        channel: &'static str,
        /// What was seen: `setup`, `enter`, `register`, or a request opcode (`write`, `send`…).
        detail: String,
    },
    /// This process (watched or not) reached for a watched process's secrets: opened its
    /// `/proc/<pid>/environ` or `/proc/<pid>/mem`, ptrace-attached to it, read or wrote its
    /// memory with `process_vm_readv`/`writev`, or took one of its fds with `pidfd_getfd`.
    Harvest {
        /// `environ`, `mem`, `ptrace`, `process_vm_readv`, `process_vm_writev`, `pidfd_getfd`.
        method: &'static str,
        /// The watched process.
        target_pid: u32,
        /// The `/proc` path opened (for `environ` and `mem`).
        path: Option<String>,
        /// The syscall that reached for it (`openat`, `ptrace`, `process_vm_readv`, …).
        syscall: &'static str,
        /// The watched process as the tracker knows it (its workspace included).
        target: std::sync::Arc<ProcessRef>,
        /// The reader's command name from the kernel (it may be gone before `/proc` is read).
        comm: String,
    },
    /// A watched process asked libc for an environment variable by name (`getenv`,
    /// `secure_getenv`; reported once per name and process image). The value is not read.
    EnvRead {
        /// The variable's name.
        var: String,
        /// `getenv` or `secure_getenv`.
        func: &'static str,
    },
    /// An fd was closed.
    Close { fd: i32 },
    /// An fd was duplicated.
    Dup { old_fd: i32, new_fd: i32 },
}

/// An enriched event.
#[derive(Clone, Debug)]
pub struct SensorEvent {
    /// Wall-clock time of the kernel record.
    pub time: std::time::SystemTime,
    /// Thread that made the syscall.
    pub tid: u32,
    /// The process (shared between its events; rebuilt when it execs).
    pub process: std::sync::Arc<ProcessRef>,
    pub body: EventBody,
}

impl SensorEvent {
    /// Short type name.
    pub fn kind(&self) -> &'static str {
        self.body.kind()
    }
}

impl EventBody {
    /// Short type name.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Exec { .. } => "exec",
            EventBody::Fork { .. } => "fork",
            EventBody::Exit => "exit",
            EventBody::Open { .. } => "open",
            EventBody::Read { .. } => "read",
            EventBody::Write { .. } => "write",
            EventBody::Connect { .. } => "connect",
            EventBody::Accept { .. } => "accept",
            EventBody::Close { .. } => "close",
            EventBody::Transfer { .. } => "transfer",
            EventBody::Harvest { .. } => "harvest",
            EventBody::UnmonitoredChannel { .. } => "unmonitored_channel",
            EventBody::Dup { .. } => "dup",
            EventBody::TlsRead { .. } => "tls_read",
            EventBody::TlsCoverage(_) => "tls_coverage",
            EventBody::EnvRead { .. } => "env_read",
        }
    }
}

impl SensorEvent {
    /// The JSON form: metadata plus payload length and keyed fingerprint, never raw bytes.
    pub fn to_json(&self, fp: &Fingerprinter) -> serde_json::Value {
        use serde_json::json;
        let mut v = json!({
            "type": "event",
            "event": self.kind(),
            "time": humantime::format_rfc3339_nanos(self.time).to_string(),
            "tid": self.tid,
            "process": &*self.process,
            "workspace": &self.process.workspace.id,
        });
        let o = v.as_object_mut().expect("object");
        let payload = |o: &mut serde_json::Map<String, serde_json::Value>, data: &[u8]| {
            o.insert("payload_len".into(), json!(data.len()));
            o.insert("payload_fp".into(), json!(fp.fingerprint(data)));
        };
        match &self.body {
            EventBody::Exec {
                filename,
                argv,
                env,
                env_truncated,
                exe_match,
                ..
            } => {
                o.insert("filename".into(), json!(filename));
                o.insert("argv".into(), json!(argv));
                o.insert(
                    "env_names".into(),
                    json!(env.iter().map(|(k, _)| k).collect::<Vec<_>>()),
                );
                o.insert("env_truncated".into(), json!(env_truncated));
                o.insert("exe_match".into(), json!(exe_match));
            }
            EventBody::Fork { child } => {
                o.insert("child".into(), json!(child));
            }
            EventBody::Exit => {}
            EventBody::Open {
                fd,
                path,
                flags,
                captured,
            } => {
                o.insert("fd".into(), json!(fd));
                o.insert("path".into(), json!(path));
                o.insert("flags".into(), json!(flags));
                o.insert("captured".into(), json!(captured));
            }
            EventBody::Read {
                fd,
                path,
                endpoint,
                data,
                total,
                truncated,
            } => {
                o.insert("fd".into(), json!(fd));
                o.insert("path".into(), json!(path));
                if let Some(ep) = endpoint {
                    o.insert("endpoint".into(), json!(ep));
                }
                o.insert("total".into(), json!(total));
                o.insert("truncated".into(), json!(truncated));
                payload(o, data);
            }
            EventBody::Write {
                fd,
                syscall,
                fd_kind,
                endpoint,
                data,
                total,
                truncated,
                incomplete,
                stream_offset,
                tls,
                peer,
            } => {
                if let Some(peer) = peer {
                    o.insert("peer".into(), json!(peer));
                }
                o.insert("fd".into(), json!(fd));
                o.insert("syscall".into(), json!(syscall));
                if let Some(stack) = tls {
                    o.insert("tls".into(), json!(stack));
                }
                o.insert("fd_kind".into(), json!(fd_kind));
                o.insert("endpoint".into(), json!(endpoint));
                o.insert("total".into(), json!(total));
                o.insert("truncated".into(), json!(truncated));
                o.insert("incomplete".into(), json!(incomplete));
                o.insert("stream_offset".into(), json!(stream_offset));
                payload(o, data);
            }
            EventBody::Connect { fd, endpoint, ret } => {
                o.insert("fd".into(), json!(fd));
                o.insert("endpoint".into(), json!(endpoint));
                o.insert("ret".into(), json!(ret));
            }
            EventBody::Accept {
                fd,
                new_fd,
                endpoint,
            } => {
                o.insert("fd".into(), json!(fd));
                o.insert("new_fd".into(), json!(new_fd));
                o.insert("endpoint".into(), json!(endpoint));
            }
            EventBody::Close { fd } => {
                o.insert("fd".into(), json!(fd));
            }
            EventBody::Transfer {
                fd,
                syscall,
                fd_kind,
                endpoint,
                src_fd,
                src_kind,
                src_endpoint,
                total,
            } => {
                o.insert("fd".into(), json!(fd));
                o.insert("syscall".into(), json!(syscall));
                o.insert("fd_kind".into(), json!(fd_kind));
                o.insert("endpoint".into(), json!(endpoint));
                o.insert("src_fd".into(), json!(src_fd));
                o.insert("src_kind".into(), json!(src_kind));
                o.insert("src_endpoint".into(), json!(src_endpoint));
                o.insert("total".into(), json!(total));
            }
            EventBody::Harvest {
                method,
                target_pid,
                path,
                syscall,
                target,
                comm,
            } => {
                o.insert("method".into(), json!(method));
                o.insert("comm".into(), json!(comm));
                o.insert("target_pid".into(), json!(target_pid));
                o.insert("path".into(), json!(path));
                o.insert("syscall".into(), json!(syscall));
                o.insert("target_exe".into(), json!(target.exe));
                o.insert("target_workspace".into(), json!(target.workspace.id));
            }
            EventBody::UnmonitoredChannel { channel, detail } => {
                o.insert("channel".into(), json!(channel));
                o.insert("detail".into(), json!(detail));
            }
            EventBody::Dup { old_fd, new_fd } => {
                o.insert("old_fd".into(), json!(old_fd));
                o.insert("new_fd".into(), json!(new_fd));
            }
            EventBody::TlsRead {
                fd,
                fd_kind,
                endpoint,
                stack,
                data,
                total,
                truncated,
            } => {
                o.insert("fd".into(), json!(fd));
                o.insert("fd_kind".into(), json!(fd_kind));
                o.insert("endpoint".into(), json!(endpoint));
                o.insert("tls".into(), json!(stack));
                o.insert("total".into(), json!(total));
                o.insert("truncated".into(), json!(truncated));
                payload(o, data);
            }
            EventBody::TlsCoverage(c) => {
                o.insert("objects".into(), json!(c.objects));
            }
            EventBody::EnvRead { var, func } => {
                o.insert("var".into(), json!(var));
                o.insert("func".into(), json!(func));
            }
        }
        v
    }
}

/// Decodes a `struct sockaddr` as captured by the probes.
pub fn parse_sockaddr(b: &[u8]) -> Option<Endpoint> {
    if b.len() < 2 {
        return None;
    }
    let family = u16::from_ne_bytes([b[0], b[1]]);
    match family as i32 {
        libc::AF_INET if b.len() >= 8 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let ip = std::net::Ipv4Addr::new(b[4], b[5], b[6], b[7]);
            Some(Endpoint::Inet {
                proto: "ip".into(),
                addr: SocketAddr::new(ip.into(), port),
            })
        }
        libc::AF_INET6 if b.len() >= 24 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[8..24]);
            let ip = std::net::Ipv6Addr::from(a);
            let ip = ip
                .to_ipv4_mapped()
                .map(std::net::IpAddr::V4)
                .unwrap_or(ip.into());
            Some(Endpoint::Inet {
                proto: "ip".into(),
                addr: SocketAddr::new(ip, port),
            })
        }
        libc::AF_UNIX => {
            let p = &b[2..];
            let path = if p.first() == Some(&0) {
                let end = p.len();
                format!(
                    "@{}",
                    String::from_utf8_lossy(&p[1..end]).trim_end_matches('\0')
                )
            } else {
                let end = p.iter().position(|c| *c == 0).unwrap_or(p.len());
                String::from_utf8_lossy(&p[..end]).into_owned()
            };
            Some(Endpoint::Unix { path })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddrs() {
        let mut v4 = vec![0u8; 16];
        v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&8080u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(
            parse_sockaddr(&v4),
            Some(Endpoint::Inet {
                proto: "ip".into(),
                addr: "127.0.0.1:8080".parse().unwrap()
            })
        );
        let mut un = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        un.extend_from_slice(b"/run/x.sock\0");
        assert_eq!(
            parse_sockaddr(&un),
            Some(Endpoint::Unix {
                path: "/run/x.sock".into()
            })
        );
        assert_eq!(parse_sockaddr(&[1]), None);
    }
}
