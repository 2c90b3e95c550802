//! TLS uprobe attachment: which objects carry a TLS stack, where its write/read functions
//! are, and keeping those uprobes attached once per file.
//!
//! At start the host's system TLS libraries (libssl, libgnutls, found through
//! `/etc/ld.so.cache` and the standard library directories) are hooked, so a library a
//! watched process `dlopen`s later (Python's `_ssl`) is covered from its first call. Then,
//! whenever a watched process execs or maps a new executable object, its
//! `/proc/<pid>/maps` is read (objects opened through `/proc/<pid>/root`, so container
//! files resolve), each new object (by device and inode) is analysed once — exported
//! `SSL_write`/`gnutls_record_send`, Go `crypto/tls` in the pclntab, stripped BoringSSL by
//! signature, or evidence of a stack that cannot be hooked (rustls, …) — and attached once.
//! Each process's coverage is reported back (hooked stacks, and objects whose TLS stays
//! opaque) so the monitor can mark its streams and the log names what is not covered.
//!
//! The same manager places the environment-access hooks: any object that defines
//! `getenv`/`secure_getenv` (the system libc at start, the glibc or musl a watched
//! process maps, a static binary with symbols) gets the `env_get` uprobe, attached per file
//! or per process exactly like the TLS hooks.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aya::programs::uprobe::UProbeLinkId;
use sensor_common::{EnvFn, TlsFn};

use super::probes::Probes;
use crate::host::elf::{self, Elf, ElfError};

/// A TLS implementation the sensor can hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stack {
    /// OpenSSL 1.1/3.x (`libssl.so`, or statically linked and exported, as in `node`).
    OpenSsl,
    /// GnuTLS (`libgnutls.so`).
    GnuTls,
    /// BoringSSL statically linked and stripped (Bun, Electron), found by signature.
    BoringSsl,
    /// Go `crypto/tls`.
    Go,
}

impl Stack {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Stack::OpenSsl => "openssl",
            Stack::GnuTls => "gnutls",
            Stack::BoringSsl => "boringssl",
            Stack::Go => "go",
        }
    }
}

/// One uprobe to place: program, file offset, cookie, and the function it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookPoint {
    pub program: &'static str,
    pub offset: u64,
    pub cookie: u64,
    pub function: String,
}

/// What one object file offers.
#[derive(Clone, Debug, Default)]
pub struct ObjectTls {
    /// The hookable stack found, if any.
    pub stack: Option<Stack>,
    pub hooks: Vec<HookPoint>,
    /// TLS implementations present without a hook (`rustls`, `boringssl: SSL_write: 2
    /// functions match …`): their streams are opaque.
    pub opaque: Vec<String>,
    /// `getenv`/`secure_getenv` defined here (libc): the environment-access hooks.
    pub env_hooks: Vec<HookPoint>,
}

/// Analyses one file: its TLS stack and its `getenv` functions.
pub fn analyze(path: &Path) -> Result<ObjectTls, ElfError> {
    let elf = Elf::open(path)?;
    let mut out = analyze_tls(&elf);
    out.env_hooks = getenv_hooks(&elf);
    Ok(out)
}

/// The `env_get` hooks of an object that defines `getenv`/`secure_getenv` (the cookie is
/// the [`EnvFn`]). `secure_getenv` is hooked only where it does not branch to `getenv`
/// itself (glibc's and musl's do: the `getenv` hook sees those reads already, and a second
/// breakpoint on glibc's first instruction, which the kernel single-steps, costs every
/// caller on the host ~12 µs per call — measured, see the README).
pub fn getenv_hooks(elf: &Elf) -> Vec<HookPoint> {
    let getenv = elf.symbol(EnvFn::Getenv.name());
    let mut out = Vec::new();
    if let Some(off) = getenv.and_then(|v| elf.file_offset(v)) {
        out.push(hook("env_get", off, EnvFn::Getenv as u64, "getenv"));
    }
    if let Some(v) = elf.symbol(EnvFn::SecureGetenv.name()) {
        let wraps = getenv.is_some_and(|g| elf::branches_to(elf, v, 64, g));
        if let (false, Some(off)) = (wraps, elf.file_offset(v)) {
            out.push(hook(
                "env_get",
                off,
                EnvFn::SecureGetenv as u64,
                "secure_getenv",
            ));
        }
    }
    out
}

fn analyze_tls(elf: &Elf) -> ObjectTls {
    let mut out = ObjectTls::default();
    let off = |v: u64| elf.file_offset(v);
    let ssl = TlsFn::OpenSsl as u64;
    // Exported OpenSSL API (libssl, node, and BoringSSL builds that export it).
    if let Some(w) = elf.symbol("SSL_write").and_then(off) {
        let mut hooks = vec![
            hook("tls_write", w, ssl, "SSL_write"),
            hook("tls_write_ret", w, ssl, "SSL_write"),
        ];
        if let Some(o) = elf.symbol("SSL_write_ex").and_then(off) {
            hooks.push(hook("tls_write_ex", o, ssl, "SSL_write_ex"));
            hooks.push(hook("tls_write_ret", o, ssl, "SSL_write_ex"));
        }
        if let Some(o) = elf.symbol("SSL_read").and_then(off) {
            hooks.push(hook("tls_read", o, ssl, "SSL_read"));
            hooks.push(hook("tls_read_ret", o, ssl, "SSL_read"));
        }
        if let Some(o) = elf.symbol("SSL_read_ex").and_then(off) {
            hooks.push(hook("tls_read_ex", o, ssl, "SSL_read_ex"));
            hooks.push(hook("tls_read_ret", o, ssl, "SSL_read_ex"));
        }
        out.stack = Some(Stack::OpenSsl);
        out.hooks = hooks;
        return out;
    }
    if let Some(w) = elf.symbol("gnutls_record_send").and_then(off) {
        let g = TlsFn::GnuTls as u64;
        let mut hooks = vec![
            hook("tls_write", w, g, "gnutls_record_send"),
            hook("tls_write_ret", w, g, "gnutls_record_send"),
        ];
        if let Some(o) = elf.symbol("gnutls_record_recv").and_then(off) {
            hooks.push(hook("tls_read", o, g, "gnutls_record_recv"));
            hooks.push(hook("tls_read_ret", o, g, "gnutls_record_recv"));
        }
        out.stack = Some(Stack::GnuTls);
        out.hooks = hooks;
        return out;
    }
    const GO_WRITE: &str = "crypto/tls.(*Conn).Write";
    const GO_READ: &str = "crypto/tls.(*Conn).Read";
    let go = elf::go_functions(elf, &[GO_WRITE, GO_READ]);
    if !go.is_empty() {
        let version = elf::go_version(elf).unwrap_or_default();
        if !version.is_empty() && !elf::go_register_abi(&version) {
            out.opaque.push(format!(
                "go crypto/tls ({version}: stack-based ABI not supported)"
            ));
            return out;
        }
        let g = TlsFn::Go as u64;
        for (name, f) in &go {
            let Some(entry) = off(f.entry) else { continue };
            if name == GO_WRITE {
                out.hooks.push(hook("go_tls_write", entry, g, GO_WRITE));
            } else {
                out.hooks.push(hook("go_tls_read", entry, g, GO_READ));
                for ret in elf::ret_instructions(elf, *f) {
                    if let Some(r) = off(ret) {
                        out.hooks.push(hook(
                            "go_tls_read_ret",
                            r,
                            g,
                            "crypto/tls.(*Conn).Read RET",
                        ));
                    }
                }
            }
        }
        out.stack = Some(Stack::Go);
        return out;
    }
    let evidence = elf::unhookable_tls_evidence(elf);
    if evidence.contains(&"boringssl") {
        match elf::boringssl(elf) {
            Ok(b) => {
                if let (Some(w), Some(r)) = (off(b.ssl_write), off(b.ssl_read)) {
                    out.stack = Some(Stack::BoringSsl);
                    out.hooks = vec![
                        hook("tls_write", w, ssl, "SSL_write (signature)"),
                        hook("tls_write_ret", w, ssl, "SSL_write (signature)"),
                        hook("tls_read", r, ssl, "SSL_read (signature)"),
                        hook("tls_read_ret", r, ssl, "SSL_read (signature)"),
                    ];
                }
            }
            Err(e) => out.opaque.push(format!("boringssl ({e})")),
        }
    }
    out.opaque.extend(
        evidence
            .into_iter()
            .filter(|e| *e != "boringssl")
            .map(String::from),
    );
    out
}

fn hook(program: &'static str, offset: u64, cookie: u64, function: &str) -> HookPoint {
    HookPoint {
        program,
        offset,
        cookie,
        function: function.to_string(),
    }
}

/// A file, by device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// One executable mapping of a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub id: FileId,
    /// Path as the process sees it.
    pub path: String,
}

/// Executable file mappings in a `/proc/<pid>/maps` text, one per file.
pub fn exec_mappings(maps: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (_, perms, _, dev, ino) = (f.next(), f.next(), f.next(), f.next(), f.next());
        let path: String = f.collect::<Vec<_>>().join(" ");
        let (Some(perms), Some(dev), Some(ino)) = (perms, dev, ino) else {
            continue;
        };
        if !perms.contains('x') || !path.starts_with('/') || path.ends_with(" (deleted)") {
            continue;
        }
        let Ok(ino) = ino.parse::<u64>() else {
            continue;
        };
        let Some((maj, min)) = dev.split_once(':') else {
            continue;
        };
        let (Ok(maj), Ok(min)) = (u64::from_str_radix(maj, 16), u64::from_str_radix(min, 16))
        else {
            continue;
        };
        // The same encoding as `st_dev`, so ids from maps and from stat agree.
        let id = FileId {
            dev: libc::makedev(maj as u32, min as u32),
            ino,
        };
        if ino != 0 && !out.iter().any(|m| m.id == id) {
            out.push(Mapping { id, path });
        }
    }
    out
}

/// Coverage of one object in one process, as reported.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ObjectCoverage {
    pub path: String,
    /// The hooked stack, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<Stack>,
    /// Whether its uprobes are attached.
    pub hooked: bool,
    /// TLS present but not hookable (or attach failed): why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub opaque: Vec<String>,
}

/// A process's TLS coverage after a scan of its mappings: every object with a TLS stack.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Coverage {
    pub pid: u32,
    pub objects: Vec<ObjectCoverage>,
}

impl Coverage {
    /// Whether some TLS stack of the process is hooked.
    pub fn any_hooked(&self) -> bool {
        self.objects.iter().any(|o| o.hooked)
    }
}

struct Attached {
    links: Vec<(&'static str, UProbeLinkId)>,
}

/// Which uprobes the manager places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookKinds {
    /// TLS write/read hooks (`tls_uprobes`).
    pub tls: bool,
    /// `getenv`/`secure_getenv` hooks (`getenv_uprobes`).
    pub getenv: bool,
}

/// The attachment manager (runs on its own thread: ELF analysis and attach are blocking).
pub struct TlsHooks {
    probes: Arc<Mutex<Probes>>,
    /// Attach per watched process instead of per file.
    per_process: bool,
    kinds: HookKinds,
    analyses: HashMap<FileId, Arc<ObjectTls>>,
    /// Per-file attachments (global mode).
    attached: HashMap<FileId, Attached>,
    /// Per-process attachments (per-process mode).
    pid_attached: HashMap<u32, HashMap<FileId, Attached>>,
    /// Attach failures by file (not retried).
    failed: HashMap<FileId, String>,
    /// Objects already seen per process.
    seen: HashMap<u32, HashSet<FileId>>,
    /// Last coverage reported per process.
    reported: HashMap<u32, Coverage>,
}

impl TlsHooks {
    /// A manager over the loaded probes placing `kinds` of hooks; `per_process` attaches
    /// per watched process.
    pub fn new(probes: Arc<Mutex<Probes>>, per_process: bool, kinds: HookKinds) -> TlsHooks {
        TlsHooks {
            probes,
            per_process,
            kinds,
            analyses: HashMap::new(),
            attached: HashMap::new(),
            pid_attached: HashMap::new(),
            failed: HashMap::new(),
            seen: HashMap::new(),
            reported: HashMap::new(),
        }
    }

    /// Number of files with attached uprobes.
    pub fn attached_files(&self) -> usize {
        self.attached.len()
    }

    fn analysis(&mut self, id: FileId, path: &Path) -> Arc<ObjectTls> {
        if let Some(a) = self.analyses.get(&id) {
            return a.clone();
        }
        let a = Arc::new(match analyze(path) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!("TLS analysis skipped: {e}");
                ObjectTls::default()
            }
        });
        self.analyses.insert(id, a.clone());
        a
    }

    /// The hooks of an object this manager places (TLS ones only for a hookable stack).
    fn hooks_of<'a>(&self, a: &'a ObjectTls) -> Vec<&'a HookPoint> {
        let tls = a
            .hooks
            .iter()
            .filter(|_| self.kinds.tls && a.stack.is_some());
        let env = a.env_hooks.iter().filter(|_| self.kinds.getenv);
        tls.chain(env).collect()
    }

    fn is_attached(&self, id: FileId, pid: Option<u32>) -> bool {
        match pid {
            Some(p) if self.per_process => self
                .pid_attached
                .get(&p)
                .is_some_and(|m| m.contains_key(&id)),
            _ => self.attached.contains_key(&id),
        }
    }

    /// Attaches the hooks of `analysis` to the file at `path` once (per file, or per
    /// process `pid` in per-process mode).
    fn ensure_attached(
        &mut self,
        id: FileId,
        path: &Path,
        analysis: &ObjectTls,
        pid: Option<u32>,
    ) -> Result<(), String> {
        let pid = pid.filter(|_| self.per_process);
        if self.is_attached(id, pid) {
            return Ok(());
        }
        if let Some(e) = self.failed.get(&id) {
            return Err(e.clone());
        }
        // Attach through an open fd: the file stays the same inode for every hook even if
        // the process whose root led to it exits meanwhile (then the open fails and
        // nothing is recorded against the file).
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        use std::os::fd::AsRawFd;
        let pinned = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let mut links = Vec::new();
        let mut err = None;
        {
            let mut p = self.probes.lock().expect("probes lock");
            for h in self.hooks_of(analysis) {
                match p.attach_uprobe(h.program, &pinned, h.offset, h.cookie, pid) {
                    Ok(l) => links.push((h.program, l)),
                    Err(e) => {
                        err = Some(format!("{} at {:#x}: {e}", h.function, h.offset));
                        break;
                    }
                }
            }
            if err.is_some() {
                for (prog, l) in links.drain(..) {
                    let _ = p.detach_uprobe(prog, l);
                }
            }
        }
        match err {
            Some(e) => {
                tracing::warn!(path = %path.display(), "attaching uprobes failed: {e}");
                // A per-process attach can fail because that process just exited: only
                // per-file failures stick to the file.
                if pid.is_none() {
                    self.failed.insert(id, e.clone());
                }
                Err(e)
            }
            None => {
                let getenv = links.iter().filter(|(p, _)| *p == "env_get").count();
                tracing::info!(
                    path = %path.display(),
                    stack = analysis.stack.map(|s| s.name()).unwrap_or("-"),
                    uprobes = links.len(),
                    getenv,
                    pid = pid.unwrap_or(0),
                    "uprobes attached"
                );
                match pid {
                    Some(p) => {
                        self.pid_attached
                            .entry(p)
                            .or_default()
                            .insert(id, Attached { links });
                    }
                    None => {
                        self.attached.insert(id, Attached { links });
                    }
                }
                Ok(())
            }
        }
    }

    /// Hooks the host's system TLS libraries and libc (called once at start).
    pub fn attach_system_libraries(&mut self) {
        let mut paths = Vec::new();
        if self.kinds.tls {
            paths.extend(system_tls_libraries());
        }
        if self.kinds.getenv {
            paths.extend(system_libc());
        }
        for path in paths {
            let Ok(md) = std::fs::metadata(&path) else {
                continue;
            };
            use std::os::unix::fs::MetadataExt;
            let id = FileId {
                dev: md.dev(),
                ino: md.ino(),
            };
            let a = self.analysis(id, &path);
            if !self.hooks_of(&a).is_empty() {
                let _ = self.ensure_attached(id, &path, &a, None);
            }
        }
    }

    /// Scans a process's executable mappings, analyses and attaches new objects, and
    /// returns its coverage when it changed (None if unchanged or the process is gone).
    pub fn scan(&mut self, pid: u32) -> Option<Coverage> {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let mut changed = false;
        let mut errors = HashMap::new();
        for m in exec_mappings(&maps) {
            if !self.seen.entry(pid).or_default().insert(m.id) {
                continue;
            }
            changed = true;
            let path = root.join(m.path.trim_start_matches('/'));
            let a = self.analysis(m.id, &path);
            if !self.hooks_of(&a).is_empty() {
                if let Err(e) = self.ensure_attached(m.id, &path, &a, Some(pid)) {
                    if !self.failed.contains_key(&m.id) {
                        // Not attached for a passing reason (the process went away while
                        // we looked): look again at its next scan.
                        if let Some(s) = self.seen.get_mut(&pid) {
                            s.remove(&m.id);
                        }
                    }
                    errors.insert(m.id, e);
                }
            }
        }
        if !changed {
            return None;
        }
        let cov = self.coverage(pid, &maps, &errors);
        if self.reported.get(&pid) == Some(&cov) {
            return None;
        }
        for o in cov.objects.iter().filter(|o| !o.hooked) {
            tracing::warn!(
                pid,
                object = %o.path,
                reason = %o.opaque.join("; "),
                "watched binary has a TLS stack without a hook: its TLS streams are opaque"
            );
        }
        self.reported.insert(pid, cov.clone());
        Some(cov)
    }

    fn coverage(&self, pid: u32, maps: &str, errors: &HashMap<FileId, String>) -> Coverage {
        let mut objects = Vec::new();
        for m in exec_mappings(maps) {
            let Some(a) = self.analyses.get(&m.id) else {
                continue;
            };
            if a.stack.is_none() && a.opaque.is_empty() {
                continue;
            }
            let mut opaque = a.opaque.clone();
            if let Some(e) = self.failed.get(&m.id).or_else(|| errors.get(&m.id)) {
                opaque.push(format!("attach failed: {e}"));
            }
            objects.push(ObjectCoverage {
                path: m.path,
                stack: a.stack,
                hooked: self.is_attached(m.id, Some(pid)),
                opaque,
            });
        }
        Coverage { pid, objects }
    }

    /// Forgets a process (after its exit), detaching its own uprobes.
    pub fn forget(&mut self, pid: u32) {
        self.seen.remove(&pid);
        self.reported.remove(&pid);
        if let Some(m) = self.pid_attached.remove(&pid) {
            let mut p = self.probes.lock().expect("probes lock");
            for (_, a) in m {
                for (prog, l) in a.links {
                    let _ = p.detach_uprobe(prog, l);
                }
            }
        }
    }

    /// Whether uprobes are attached per watched process.
    pub fn per_process(&self) -> bool {
        self.per_process
    }

    /// Detaches every uprobe.
    pub fn detach_all(&mut self) {
        let pids: Vec<u32> = self.pid_attached.keys().copied().collect();
        for pid in pids {
            self.forget(pid);
        }
        let mut p = self.probes.lock().expect("probes lock");
        for (_, a) in self.attached.drain() {
            for (prog, l) in a.links {
                if let Err(e) = p.detach_uprobe(prog, l) {
                    tracing::debug!("detaching a TLS uprobe: {e}");
                }
            }
        }
    }
}

/// The host's system TLS libraries: `libssl.so.*` and `libgnutls.so.*` named by
/// `/etc/ld.so.cache` or present in the standard library directories (regular files,
/// one per inode).
pub fn system_tls_libraries() -> Vec<PathBuf> {
    system_libraries(|name| name.starts_with("libssl.so") || name.starts_with("libgnutls.so"))
}

/// Libraries whose basename `wanted` accepts, from `/etc/ld.so.cache` and the standard
/// library directories (regular files, one per inode).
fn system_libraries(wanted: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(cache) = std::fs::read("/etc/ld.so.cache") {
        // The cache's string table holds the library paths: take them without parsing the
        // (version-dependent) entry format.
        for s in cache.split(|c| *c == 0) {
            if let Ok(s) = std::str::from_utf8(s) {
                let base = s.rsplit('/').next().unwrap_or("");
                if s.starts_with('/') && wanted(base) {
                    candidates.push(PathBuf::from(s));
                }
            }
        }
    }
    for dir in [
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib64",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
        "/usr/local/lib64",
    ] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if wanted(&e.file_name().to_string_lossy()) {
                    candidates.push(e.path());
                }
            }
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for c in candidates {
        use std::os::unix::fs::MetadataExt;
        let Ok(md) = std::fs::metadata(&c) else {
            continue;
        };
        if md.is_file() && seen.insert((md.dev(), md.ino())) {
            out.push(std::fs::canonicalize(&c).unwrap_or(c));
        }
    }
    out
}

/// The host's libc (`libc.so.6`, musl's `libc.musl-*.so.1`) as `/etc/ld.so.cache` and the
/// standard library directories name it (regular files, one per inode).
pub fn system_libc() -> Vec<PathBuf> {
    system_libraries(|name| name == "libc.so.6" || name.starts_with("libc.musl-"))
}

/// Requests to the attachment thread.
#[derive(Debug)]
pub enum TlsRequest {
    /// Look at this process's mappings (it exec'd or mapped an executable object).
    Scan(u32),
    /// A watched process forked this child (same mappings; per-process mode attaches).
    Fork(u32),
    /// The process exited.
    Exit(u32),
}

/// The request a decoded record asks for: a scan after a successful exec or an
/// executable mapping, forgetting after an exit.
pub fn request_for(ev: &super::decode::RawEvent) -> Option<TlsRequest> {
    use sensor_common::Op;
    match ev {
        super::decode::RawEvent::Meta(Op::ExecDone, m) if m.ret == 0 => {
            Some(TlsRequest::Scan(m.hdr.tgid))
        }
        super::decode::RawEvent::Meta(Op::MmapExec, m) => Some(TlsRequest::Scan(m.hdr.tgid)),
        super::decode::RawEvent::Meta(Op::Fork, m) if m.fd2 > 0 => {
            Some(TlsRequest::Fork(m.fd2 as u32))
        }
        super::decode::RawEvent::Meta(Op::Exit, m) => Some(TlsRequest::Exit(m.hdr.tgid)),
        _ => None,
    }
}

/// Hooks the system libraries (before returning), then runs the manager on its own
/// thread: the already watched processes, then requests until the channel closes;
/// coverage changes go to `report`. Returns the thread (which detaches
/// every uprobe before it ends).
pub fn spawn(
    probes: Arc<Mutex<Probes>>,
    per_process: bool,
    kinds: HookKinds,
    initial: Vec<u32>,
    requests: std::sync::mpsc::Receiver<TlsRequest>,
    report: tokio::sync::mpsc::UnboundedSender<Coverage>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    // System libraries first, before the sensor reports ready: a process started after
    // that is covered from its first TLS call.
    let mut hooks = TlsHooks::new(probes, per_process, kinds);
    if !per_process {
        hooks.attach_system_libraries();
    }
    std::thread::Builder::new()
        .name("tls-uprobes".into())
        .spawn(move || {
            for pid in initial {
                if let Some(c) = hooks.scan(pid) {
                    let _ = report.send(c);
                }
            }
            while let Ok(first) = requests.recv() {
                // Coalesce a burst (a process start maps a dozen objects).
                let mut pids: Vec<u32> = Vec::new();
                for r in std::iter::once(first).chain(requests.try_iter()) {
                    match r {
                        TlsRequest::Scan(p) => {
                            if !pids.contains(&p) {
                                pids.push(p);
                            }
                        }
                        TlsRequest::Fork(p) => {
                            if hooks.per_process() && !pids.contains(&p) {
                                pids.push(p);
                            }
                        }
                        TlsRequest::Exit(p) => {
                            pids.retain(|x| *x != p);
                            hooks.forget(p);
                        }
                    }
                }
                for pid in pids {
                    if let Some(c) = hooks.scan(pid) {
                        let _ = report.send(c);
                    }
                }
            }
            hooks.detach_all();
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let maps = "\
55d0c0a00000-55d0c0a28000 r--p 00000000 fe:01 1234 /usr/bin/curl
55d0c0a28000-55d0c0a8f000 r-xp 00028000 fe:01 1234 /usr/bin/curl
7f00-7f10 r-xp 00000000 fe:01 99 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f10-7f20 r-xp 00000000 00:00 0 [vdso]
7f20-7f30 r-xp 00000000 fe:01 77 /tmp/a b (deleted)
7f30-7f40 r-xp 00000000 00:2a 5 /opt/my app/bin
";
        let m = exec_mappings(maps);
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m[0].path, "/usr/bin/curl");
        assert_eq!(
            m[0].id,
            FileId {
                dev: libc::makedev(0xfe, 1),
                ino: 1234
            }
        );
        assert_eq!(m[2].path, "/opt/my app/bin");
    }

    #[test]
    fn system_libssl_is_found_and_analysed() {
        // The test machine has Debian's libssl3 (curl depends on it).
        let libs = system_tls_libraries();
        let ssl = libs
            .iter()
            .find(|p| p.to_string_lossy().contains("libssl.so"))
            .expect("a system libssl");
        let a = analyze(ssl).unwrap();
        assert_eq!(a.stack, Some(Stack::OpenSsl));
        let fns: Vec<&str> = a.hooks.iter().map(|h| h.function.as_str()).collect();
        assert!(
            fns.contains(&"SSL_write") && fns.contains(&"SSL_read"),
            "{fns:?}"
        );
        assert!(a.hooks.iter().all(|h| h.offset > 0));
        assert!(a.env_hooks.is_empty(), "libssl does not define getenv");
    }

    #[test]
    fn system_libc_getenv_is_hooked_once_for_both_functions() {
        let libc = system_libc();
        let path = libc.first().expect("a system libc");
        let a = analyze(path).unwrap();
        assert_eq!(a.stack, None);
        let fns: Vec<(&str, u64)> = a
            .env_hooks
            .iter()
            .map(|h| (h.function.as_str(), h.cookie))
            .collect();
        // glibc's secure_getenv tail-jumps into getenv: one hook covers both.
        assert_eq!(fns, [("getenv", EnvFn::Getenv as u64)]);
        let elf = Elf::open(path).unwrap();
        let (g, s) = (elf.symbol("getenv"), elf.symbol("secure_getenv"));
        assert!(elf::branches_to(&elf, s.unwrap(), 64, g.unwrap()));
        assert!(!elf::branches_to(&elf, g.unwrap(), 64, s.unwrap()));
        assert!(a
            .env_hooks
            .iter()
            .all(|h| h.offset > 0 && h.program == "env_get"));
        // A dynamically linked program only imports getenv: nothing to hook in it.
        let me = std::env::current_exe().unwrap();
        assert!(analyze(&me).unwrap().env_hooks.is_empty());
    }
}
