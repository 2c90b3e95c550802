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
//! - `again`: write the buffer to the current socket once more
//! - `writev:ADDR`: connect and send the buffer as 3 iovecs in one writev()
//! - `udp:ADDR`: sendto() the buffer as one datagram
//! - `unix:PATH`: connect to a unix stream socket and write the buffer
//! - `dup2:ADDR`: connect, dup2 the socket onto stdout, write the buffer to fd 1
//! - `fork`: fork; the child runs the remaining steps, the parent waits for it
//! - `flood-pipe:N:SIZE`, `flood-tcp:N:SIZE:ADDR`, `flood-null:N:SIZE`: N writes of SIZE bytes
//! - `sleep:MS`
//! - `env:NAME`: put `NAME: <value of $NAME>` and a newline in the buffer
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
