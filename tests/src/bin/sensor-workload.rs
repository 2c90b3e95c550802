//! A scriptable child process for the integration tests and benchmarks: it performs real
//! syscalls (open/read, connect/write, pipes, dup2, writev, sendto, fork, floods) so the
//! sensor is exercised through the kernel exactly as an agent or CI job would exercise it.
//!
//! Usage: `sensor-workload STEP...`, steps run in order:
//! - `wait`: block until a line arrives on stdin
//! - `read:PATH`: open PATH and read it into the buffer
//! - `set:TEXT`: put TEXT in the buffer
//! - `tcp:ADDR`: connect to ADDR and write the buffer (socket stays open as "current")
//! - `pipe`: create a pipe, write the buffer into it and read it back
//! - `big:N`: write N pattern bytes to the current socket in one write()
//! - `again`: write the buffer to the current socket once more (`again-n:N`, `again-for:MS`;
//!   `tick:MS:TOTAL` every MS ms for TOTAL ms)
//! - `writev:ADDR`: connect and send the buffer as 3 iovecs in one writev()
//! - `udp:ADDR`: sendto() the buffer as one datagram
//! - `unix:PATH`: connect to a unix stream socket and write the buffer
//! - `dup2:ADDR`: connect, dup2 the socket onto stdout, write the buffer to fd 1
//! - `fork`: fork; the child runs the remaining steps, the parent waits for it
//! - `flood-pipe:N:SIZE`, `flood-tcp:N:SIZE:ADDR`, `flood-null:N:SIZE`: N writes of SIZE bytes
//! - `sleep:MS`
//! - `paced:FILE:RATE:ADDR`: connect to ADDR and write each line of FILE as one write() at
//!   RATE lines per second; prints `sent <line> <unix ns>` for each line containing `ghp_`
//! - `sendfile:PATH:ADDR`: connect to ADDR and sendfile() all of PATH to it
//! - `splice:PATH:ADDR`: connect to ADDR; splice() PATH into a pipe and the pipe to the socket
//! - `tee:ADDR`: write the buffer into a pipe, tee() it into a second pipe, splice() that
//!   to ADDR
//! - `vmsplice:ADDR`: vmsplice() the buffer into a pipe and splice() the pipe to ADDR
//! - `copy-file-range:SRC:DST`: copy_file_range() all of SRC into a new file DST
//! - `mmap-write:PATH:ADDR`: connect to ADDR and write() PATH's bytes straight from an mmap
//! - `uring-write:ADDR`: connect to ADDR and send the buffer with an io_uring WRITE request
//! - `stdout`: write the buffer to fd 1
//! - `file:PATH`: create PATH and write the buffer into it
//! - `loop-getppid:N`: N getppid() calls; prints `ns_per_call <ns>` on stdout
//! - `loop-write:N:SIZE:null|pipe`: N writes of SIZE bytes to /dev/null or into a pipe drained
//!   by a thread; prints `ns_per_call <ns>` on stdout
//! - `env:NAME`: put `NAME: <value of $NAME>` and a newline in the buffer (`std::env::var`,
//!   which calls libc `getenv`)
//! - `loop-getenv:N:NAME`: N libc `getenv(NAME)` calls; prints `ns_per_call <ns>` on stdout
//! - `sh:CMD`: run `sh -c CMD` as a child and require success
//! - `stdin-tcp:ADDR`: read all of stdin, connect to ADDR and write it
//! - `pty`: open a new pseudo-terminal and write the buffer to its slave side
//! - `dns:ADDR:NAME`: send a DNS query for NAME from a UDP socket connected to ADDR
//!   (as glibc does), waiting briefly for an answer

use std::io::{BufRead, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::fd::AsRawFd;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

fn flood(fd: i32, n: u64, size: usize) {
    let buf = pattern(size);
    for _ in 0..n {
        let mut off = 0;
        while off < size {
            let r = unsafe { libc::write(fd, buf[off..].as_ptr().cast(), size - off) };
            if r <= 0 {
                panic!("write failed: {}", std::io::Error::last_os_error());
            }
            off += r as usize;
        }
    }
}

/// CPU time of the calling thread, in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Times `n` calls of `f` in 20 batches and prints the fastest batch's mean CPU time per
/// call in ns (for the benchmark to parse). Thread CPU time, not wall time: on a VM shared
/// with other work, time spent preempted is not the syscall's cost.
fn time_loop(n: u64, mut f: impl FnMut()) {
    let batch = (n / 20).max(1);
    let mut best = f64::INFINITY;
    for _ in 0..20 {
        let t = thread_cpu_ns();
        for _ in 0..batch {
            f();
        }
        best = best.min((thread_cpu_ns() - t) as f64 / batch as f64);
    }
    println!("ns_per_call {best:.1}");
}

/// A DNS query (A record, recursion desired) for `name`.
fn dns_query(name: &str) -> Vec<u8> {
    let mut m = vec![0x4a, 0x11, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

/// Opens a pty pair, writes `data` to the slave (as a program printing to its terminal
/// does) and drains the master.
fn write_pty(data: &[u8]) {
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(master)).to_owned();
        let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
        assert!(slave >= 0, "open {name:?}");
        // Raw mode: the terminal passes the bytes through untouched.
        let mut t: libc::termios = std::mem::zeroed();
        libc::tcgetattr(slave, &mut t);
        libc::cfmakeraw(&mut t);
        libc::tcsetattr(slave, libc::TCSANOW, &t);
        let r = libc::write(slave, data.as_ptr().cast(), data.len());
        assert_eq!(r as usize, data.len(), "pty write");
        let mut sink = vec![0u8; data.len() + 64];
        let mut got = 0;
        while got < data.len() {
            let n = libc::read(master, sink.as_mut_ptr().cast(), sink.len());
            if n <= 0 {
                break;
            }
            got += n as usize;
        }
        libc::close(slave);
        libc::close(master);
    }
}

fn main() {
    let steps: Vec<String> = std::env::args().skip(1).collect();
    let mut buf: Vec<u8> = Vec::new();
    let mut current: Option<TcpStream> = None;
    let mut i = 0;
    while i < steps.len() {
        let step = steps[i].clone();
        i += 1;
        let (cmd, arg) = step.split_once(':').unwrap_or((step.as_str(), ""));
        match cmd {
            "wait" => {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).expect("stdin");
            }
            "read" => {
                let mut f = std::fs::File::open(arg).expect("open");
                buf.clear();
                f.read_to_end(&mut buf).expect("read");
            }
            "set" => buf = arg.as_bytes().to_vec(),
            // repeat:TEXT:N — the buffer is TEXT N times (a flood without a long argv).
            "repeat" => {
                let (text, n) = arg.rsplit_once(':').expect("TEXT:N");
                buf = text.repeat(n.parse().expect("N")).into_bytes();
            }
            "env" => {
                let v = std::env::var(arg).unwrap_or_default();
                buf = format!("{arg}: {v}\n").into_bytes();
            }
            "tcp" => {
                let mut s = TcpStream::connect(arg).expect("connect");
                s.write_all(&buf).expect("write");
                current = Some(s);
            }
            "again" => {
                let s = current.as_mut().expect("no current socket");
                s.write_all(&buf).expect("write");
            }
            // again-for:MS — the buffer again and again on the current socket for MS ms.
            "again-for" => {
                let s = current.as_mut().expect("no current socket");
                let until = std::time::Instant::now()
                    + std::time::Duration::from_millis(arg.parse().expect("MS"));
                while std::time::Instant::now() < until {
                    s.write_all(&buf).expect("write");
                }
            }
            // again-n:N — the buffer N more times on the current socket.
            "again-n" => {
                let s = current.as_mut().expect("no current socket");
                for _ in 0..arg.parse::<u64>().expect("N") {
                    s.write_all(&buf).expect("write");
                }
            }
            // tick:MS:TOTAL — the buffer on the current socket every MS ms for TOTAL ms (a
            // long-lived, mostly idle process).
            "tick" => {
                let (every, total) = arg.split_once(':').expect("MS:TOTAL");
                let every = std::time::Duration::from_millis(every.parse().expect("MS"));
                let until = std::time::Instant::now()
                    + std::time::Duration::from_millis(total.parse().expect("TOTAL"));
                let s = current.as_mut().expect("no current socket");
                while std::time::Instant::now() < until {
                    std::thread::sleep(every);
                    if s.write_all(&buf).is_err() {
                        break;
                    }
                }
            }
            "big" => {
                let n: usize = arg.parse().expect("size");
                let data = pattern(n);
                let s = current.as_ref().expect("no current socket");
                let r = unsafe { libc::write(s.as_raw_fd(), data.as_ptr().cast(), n) };
                assert_eq!(r as usize, n, "short write");
            }
            "pipe" => {
                let mut fds = [0i32; 2];
                assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
                let r = unsafe { libc::write(fds[1], buf.as_ptr().cast(), buf.len()) };
                assert_eq!(r as usize, buf.len());
                let mut back = vec![0u8; buf.len()];
                let r = unsafe { libc::read(fds[0], back.as_mut_ptr().cast(), back.len()) };
                assert_eq!(r as usize, buf.len());
                unsafe {
                    libc::close(fds[0]);
                    libc::close(fds[1]);
                }
            }
            "writev" => {
                let s = TcpStream::connect(arg).expect("connect");
                let third = buf.len() / 3;
                let parts = [&buf[..third], &buf[third..2 * third], &buf[2 * third..]];
                let iov: Vec<libc::iovec> = parts
                    .iter()
                    .map(|p| libc::iovec {
                        iov_base: p.as_ptr() as *mut _,
                        iov_len: p.len(),
                    })
                    .collect();
                let r = unsafe { libc::writev(s.as_raw_fd(), iov.as_ptr(), 3) };
                assert_eq!(r as usize, buf.len());
                current = Some(s);
            }
            "unix" => {
                let mut s = std::os::unix::net::UnixStream::connect(arg).expect("connect unix");
                s.write_all(&buf).expect("write");
            }
            "udp" => {
                let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
                s.send_to(&buf, arg).expect("sendto");
            }
            "dup2" => {
                let s = TcpStream::connect(arg).expect("connect");
                assert_eq!(unsafe { libc::dup2(s.as_raw_fd(), 1) }, 1);
                let r = unsafe { libc::write(1, buf.as_ptr().cast(), buf.len()) };
                assert_eq!(r as usize, buf.len());
                current = Some(s);
            }
            "fork" => {
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0, "fork failed");
                if pid > 0 {
                    let mut status = 0;
                    unsafe { libc::waitpid(pid, &mut status, 0) };
                    std::process::exit(if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        1
                    });
                }
            }
            "flood-pipe" => {
                let (n, size) = arg.split_once(':').expect("N:SIZE");
                let (n, size): (u64, usize) = (n.parse().unwrap(), size.parse().unwrap());
                let mut fds = [0i32; 2];
                assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
                let rfd = fds[0];
                let reader = std::thread::spawn(move || {
                    let mut sink = vec![0u8; 65536];
                    loop {
                        let r = unsafe { libc::read(rfd, sink.as_mut_ptr().cast(), sink.len()) };
                        if r <= 0 {
                            break;
                        }
                    }
                });
                flood(fds[1], n, size);
                unsafe { libc::close(fds[1]) };
                reader.join().unwrap();
            }
            "flood-tcp" => {
                let mut it = arg.splitn(3, ':');
                let n: u64 = it.next().unwrap().parse().unwrap();
                let size: usize = it.next().unwrap().parse().unwrap();
                let s = TcpStream::connect(it.next().unwrap()).expect("connect");
                flood(s.as_raw_fd(), n, size);
            }
            "flood-null" => {
                let (n, size) = arg.split_once(':').expect("N:SIZE");
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/null")
                    .unwrap();
                flood(f.as_raw_fd(), n.parse().unwrap(), size.parse().unwrap());
            }
            "loop-getppid" => {
                let n: u64 = arg.parse().expect("N");
                time_loop(n, || {
                    unsafe { libc::getppid() };
                });
            }
            "loop-getenv" => {
                let (n, name) = arg.split_once(':').expect("N:NAME");
                let n: u64 = n.parse().expect("N");
                let name = std::ffi::CString::new(name).expect("NAME");
                time_loop(n, || {
                    std::hint::black_box(unsafe { libc::getenv(name.as_ptr()) });
                });
            }
            "loop-write" => {
                let mut it = arg.splitn(3, ':');
                let n: u64 = it.next().unwrap().parse().expect("N");
                let size: usize = it.next().unwrap().parse().expect("SIZE");
                let data = pattern(size);
                let (fd, reader) = match it.next() {
                    Some("pipe") => {
                        let mut fds = [0i32; 2];
                        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
                        let rfd = fds[0];
                        let reader = std::thread::spawn(move || {
                            let mut sink = vec![0u8; 1 << 16];
                            while unsafe { libc::read(rfd, sink.as_mut_ptr().cast(), sink.len()) }
                                > 0
                            {}
                        });
                        (fds[1], Some(reader))
                    }
                    _ => {
                        let f = std::fs::OpenOptions::new()
                            .write(true)
                            .open("/dev/null")
                            .unwrap();
                        (std::os::fd::IntoRawFd::into_raw_fd(f), None)
                    }
                };
                time_loop(n, || {
                    let r = unsafe { libc::write(fd, data.as_ptr().cast(), size) };
                    assert_eq!(r as usize, size, "short write");
                });
                unsafe { libc::close(fd) };
                if let Some(r) = reader {
                    r.join().unwrap();
                }
            }
            "paced" => {
                let mut it = arg.splitn(3, ':');
                let file = it.next().expect("FILE");
                let rate: f64 = it.next().expect("RATE").parse().expect("RATE");
                let mut s = TcpStream::connect(it.next().expect("ADDR")).expect("connect");
                let text = std::fs::read(file).expect("read FILE");
                let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
                let mut sent = Vec::new();
                let t0 = std::time::Instant::now();
                for (i, l) in lines.iter().enumerate() {
                    let due = std::time::Duration::from_secs_f64(i as f64 / rate);
                    while let Some(left) = due.checked_sub(t0.elapsed()) {
                        if left > std::time::Duration::from_micros(200) {
                            std::thread::sleep(left - std::time::Duration::from_micros(100));
                        } else if left.is_zero() {
                            break;
                        }
                    }
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_nanos();
                    s.write_all(l).expect("write");
                    if l.windows(4).any(|w| w == b"ghp_") {
                        sent.push((i, now));
                    }
                }
                for (i, t) in sent {
                    println!("sent {i} {t}");
                }
            }
            "sendfile" => {
                let (path, addr) = arg.split_once(':').expect("PATH:ADDR");
                let f = std::fs::File::open(path).expect("open");
                let len = f.metadata().unwrap().len() as usize;
                let s = TcpStream::connect(addr).expect("connect");
                let r = unsafe {
                    libc::sendfile(s.as_raw_fd(), f.as_raw_fd(), std::ptr::null_mut(), len)
                };
                assert_eq!(
                    r as usize,
                    len,
                    "sendfile: {}",
                    std::io::Error::last_os_error()
                );
                current = Some(s);
            }
            "tee" => {
                // The buffer goes into pipe A by write(); tee() copies it to pipe B, whose
                // content splice() sends to ADDR.
                let s = TcpStream::connect(arg).expect("connect");
                let (mut a, mut b) = ([0i32; 2], [0i32; 2]);
                assert_eq!(unsafe { libc::pipe(a.as_mut_ptr()) }, 0);
                assert_eq!(unsafe { libc::pipe(b.as_mut_ptr()) }, 0);
                let n = buf.len();
                assert_eq!(
                    unsafe { libc::write(a[1], buf.as_ptr().cast(), n) } as usize,
                    n
                );
                let t = unsafe { libc::tee(a[0], b[1], n, 0) };
                assert_eq!(t as usize, n, "tee: {}", std::io::Error::last_os_error());
                let null = std::ptr::null_mut();
                let r = unsafe { libc::splice(b[0], null, s.as_raw_fd(), null, n, 0) };
                assert_eq!(r as usize, n, "splice: {}", std::io::Error::last_os_error());
                for fd in a.into_iter().chain(b) {
                    unsafe { libc::close(fd) };
                }
                current = Some(s);
            }
            "vmsplice" => {
                // The buffer goes into a pipe by vmsplice(); splice() sends it to ADDR.
                let s = TcpStream::connect(arg).expect("connect");
                let mut p = [0i32; 2];
                assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
                // vmsplice() maps the pages into the pipe without copying: they must stay
                // untouched until the pipe is drained, so they are never freed.
                let pages: &'static [u8] = Box::leak(buf.clone().into_boxed_slice());
                let iov = libc::iovec {
                    iov_base: pages.as_ptr() as *mut _,
                    iov_len: pages.len(),
                };
                let v = unsafe { libc::vmsplice(p[1], &iov, 1, 0) };
                assert_eq!(
                    v as usize,
                    buf.len(),
                    "vmsplice: {}",
                    std::io::Error::last_os_error()
                );
                let null = std::ptr::null_mut();
                let r = unsafe { libc::splice(p[0], null, s.as_raw_fd(), null, buf.len(), 0) };
                assert_eq!(
                    r as usize,
                    buf.len(),
                    "splice: {}",
                    std::io::Error::last_os_error()
                );
                unsafe {
                    libc::close(p[0]);
                    libc::close(p[1]);
                }
                current = Some(s);
            }
            "splice" => {
                let (path, addr) = arg.split_once(':').expect("PATH:ADDR");
                let f = std::fs::File::open(path).expect("open");
                let len = f.metadata().unwrap().len() as usize;
                let s = TcpStream::connect(addr).expect("connect");
                let mut fds = [0i32; 2];
                assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
                let null = std::ptr::null_mut();
                let a = unsafe { libc::splice(f.as_raw_fd(), null, fds[1], null, len, 0) };
                assert_eq!(
                    a as usize,
                    len,
                    "splice in: {}",
                    std::io::Error::last_os_error()
                );
                let b = unsafe { libc::splice(fds[0], null, s.as_raw_fd(), null, len, 0) };
                assert_eq!(
                    b as usize,
                    len,
                    "splice out: {}",
                    std::io::Error::last_os_error()
                );
                unsafe {
                    libc::close(fds[0]);
                    libc::close(fds[1]);
                }
                current = Some(s);
            }
            "copy-file-range" => {
                let (src, dst) = arg.split_once(':').expect("SRC:DST");
                let f = std::fs::File::open(src).expect("open");
                let len = f.metadata().unwrap().len() as usize;
                let out = std::fs::File::create(dst).expect("create");
                let null = std::ptr::null_mut();
                let r = unsafe {
                    libc::copy_file_range(f.as_raw_fd(), null, out.as_raw_fd(), null, len, 0)
                };
                assert_eq!(
                    r as usize,
                    len,
                    "copy_file_range: {}",
                    std::io::Error::last_os_error()
                );
            }
            "mmap-write" => {
                let (path, addr) = arg.split_once(':').expect("PATH:ADDR");
                let f = std::fs::File::open(path).expect("open");
                let len = f.metadata().unwrap().len() as usize;
                let s = TcpStream::connect(addr).expect("connect");
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ,
                        libc::MAP_PRIVATE,
                        f.as_raw_fd(),
                        0,
                    )
                };
                assert_ne!(p, libc::MAP_FAILED);
                // The mapping is written without touching it first: its pages are not
                // resident when the write starts.
                let r = unsafe { libc::write(s.as_raw_fd(), p, len) };
                assert_eq!(r as usize, len, "write from mmap");
                unsafe { libc::munmap(p, len) };
                current = Some(s);
            }
            "uring-write" => {
                let s = TcpStream::connect(arg).expect("connect");
                let mut ring = io_uring::IoUring::new(4).expect("io_uring_setup");
                let sqe = io_uring::opcode::Write::new(
                    io_uring::types::Fd(s.as_raw_fd()),
                    buf.as_ptr(),
                    buf.len() as u32,
                )
                .build()
                .user_data(7);
                unsafe { ring.submission().push(&sqe).expect("queue") };
                ring.submit_and_wait(1).expect("io_uring_enter");
                let cqe = ring.completion().next().expect("completion");
                assert_eq!(cqe.result() as usize, buf.len(), "io_uring write");
                current = Some(s);
            }
            "stdout" => {
                let r = unsafe { libc::write(1, buf.as_ptr().cast(), buf.len()) };
                assert_eq!(r as usize, buf.len(), "short write to stdout");
            }
            "file" => {
                let mut f = std::fs::File::create(arg).expect("create");
                f.write_all(&buf).expect("write file");
            }
            "sleep" => std::thread::sleep(std::time::Duration::from_millis(arg.parse().unwrap())),
            "sh" => {
                let st = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(arg)
                    .status()
                    .expect("sh");
                assert!(st.success(), "sh -c {arg:?}: {st}");
            }
            "pty" => write_pty(&buf),
            "stdin-tcp" => {
                let mut input = Vec::new();
                std::io::stdin().read_to_end(&mut input).expect("stdin");
                let mut s = TcpStream::connect(arg).expect("connect");
                s.write_all(&input).expect("write");
            }
            "dns" => {
                let (addr, name) = arg.rsplit_once(':').expect("ADDR:NAME");
                let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
                s.connect(addr).expect("connect");
                s.send(&dns_query(name)).expect("send");
                s.set_read_timeout(Some(std::time::Duration::from_millis(300)))
                    .unwrap();
                let mut answer = [0u8; 512];
                let _ = s.recv(&mut answer);
            }
            other => {
                eprintln!("sensor-workload: unknown step {other:?}");
                std::process::exit(2);
            }
        }
    }
    drop(current);
}
