//! `syslog`: RFC 5424 messages — `<PRI>1 TIMESTAMP HOSTNAME token-sensor PROCID MSGID - MSG`
//! with MSGID the alert type and MSG the alert in the output's format (CEF by default, or
//! JSON). Transports: `udp://host:port` (one datagram per alert, RFC 5426),
//! `tcp://host:port` (octet-counted framing, RFC 6587 §3.4.1; reconnects on error) and
//! `unix:///path` (datagram socket such as `/dev/log`). UDP and unix datagrams are
//! acknowledged once sent; TCP once written.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{Item, OutputConfig, SendError, Sink};
use crate::deliver::record::s;

/// Where syslog goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogAddress {
    /// `udp://host:port`.
    Udp(String),
    /// `tcp://host:port`.
    Tcp(String),
    /// `unix:///path`.
    Unix(PathBuf),
}

/// Parses a syslog address.
pub fn parse_address(a: &str) -> Result<SyslogAddress, String> {
    let hostport = |rest: &str| -> Result<String, String> {
        let (h, p) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("`{a}` needs host:port"))?;
        if h.is_empty() || p.parse::<u16>().is_err() {
            return Err(format!("`{a}` needs host:port with a numeric port"));
        }
        Ok(rest.to_string())
    };
    if let Some(r) = a.strip_prefix("udp://") {
        Ok(SyslogAddress::Udp(hostport(r)?))
    } else if let Some(r) = a.strip_prefix("tcp://") {
        Ok(SyslogAddress::Tcp(hostport(r)?))
    } else if let Some(r) = a.strip_prefix("unix://") {
        if !r.starts_with('/') {
            return Err(format!(
                "`{a}`: unix:// needs an absolute path (unix:///dev/log)"
            ));
        }
        Ok(SyslogAddress::Unix(PathBuf::from(r)))
    } else {
        Err(format!("`{a}` must start with udp://, tcp:// or unix://"))
    }
}

/// serde: a checked syslog address.
pub fn de_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let a = String::deserialize(d)?;
    parse_address(&a).map_err(|e| serde::de::Error::custom(format!("`address`: {e}")))?;
    Ok(Some(a))
}

const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// serde: a facility name.
pub fn de_facility<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let f = String::deserialize(d)?;
    if !FACILITIES.iter().any(|(n, _)| *n == f) {
        return Err(serde::de::Error::custom(format!(
            "`facility`: unknown facility `{f}` (kern, user, daemon, auth, authpriv, local0…local7, …)"
        )));
    }
    Ok(Some(f))
}

/// Syslog output settings.
#[derive(Clone, Debug)]
pub struct SyslogConfig {
    pub address: SyslogAddress,
    /// Facility number.
    pub facility: u8,
}

impl SyslogConfig {
    /// From a validated `outputs` entry.
    pub fn from_output(c: &OutputConfig) -> Result<SyslogConfig, String> {
        let name = c.facility.as_deref().unwrap_or("auth");
        Ok(SyslogConfig {
            address: parse_address(c.address.as_deref().unwrap_or(""))?,
            facility: FACILITIES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .unwrap_or(4),
        })
    }
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Unix(UnixDatagram),
}

/// A syslog output.
pub struct SyslogSink {
    cfg: SyslogConfig,
    conn: Option<Conn>,
    pid: u32,
}

/// Syslog severity of an alert: critical 2, high 3, medium 4, low 5, info 6.
fn severity(v: &Value) -> u8 {
    match s(v, "/severity") {
        "critical" => 2,
        "high" => 3,
        "medium" => 4,
        "low" => 5,
        _ => 6,
    }
}

/// RFC 5424 TIMESTAMP (at most 6 fractional digits) of an RFC 3339 time.
fn timestamp(t: &str) -> String {
    let t = t.trim_end_matches('Z');
    match t.split_once('.') {
        Some((sec, frac)) => format!("{sec}.{}Z", &frac[..frac.len().min(6)]),
        None if t.is_empty() => "-".into(),
        None => format!("{t}Z"),
    }
}

/// PRINTUSASCII without spaces, at most `max` characters; `-` when empty.
fn field(x: &str, max: usize) -> String {
    let f: String = x
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if f.is_empty() {
        "-".into()
    } else {
        f
    }
}

/// The RFC 5424 message of one rendered alert.
pub fn message(facility: u8, pid: u32, it: &Item) -> Vec<u8> {
    let v = &it.alert;
    let pri = facility as u32 * 8 + severity(v) as u32;
    let mut m = format!(
        "<{pri}>1 {} {} token-sensor {pid} {} - ",
        timestamp(s(v, "/time")),
        field(s(v, "/host/hostname"), 255),
        field(s(v, "/type"), 32),
    )
    .into_bytes();
    m.extend_from_slice(&it.line);
    m
}

impl SyslogSink {
    /// A sink for `cfg` (connects on first send).
    pub fn new(cfg: SyslogConfig) -> SyslogSink {
        SyslogSink {
            cfg,
            conn: None,
            pid: std::process::id(),
        }
    }

    fn connect(&mut self) -> std::io::Result<&mut Conn> {
        if self.conn.is_none() {
            let c = match &self.cfg.address {
                SyslogAddress::Udp(hp) => {
                    let addr = hp
                        .to_socket_addrs()?
                        .next()
                        .ok_or_else(|| std::io::Error::other(format!("{hp}: no address")))?;
                    let bind = if addr.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    let s = UdpSocket::bind(bind)?;
                    s.connect(addr)?;
                    Conn::Udp(s)
                }
                SyslogAddress::Tcp(hp) => {
                    let addr = hp
                        .to_socket_addrs()?
                        .next()
                        .ok_or_else(|| std::io::Error::other(format!("{hp}: no address")))?;
                    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                    s.set_write_timeout(Some(Duration::from_secs(10)))?;
                    s.set_nodelay(true)?;
                    Conn::Tcp(s)
                }
                SyslogAddress::Unix(p) => {
                    let s = UnixDatagram::unbound()?;
                    s.connect(p)?;
                    Conn::Unix(s)
                }
            };
            self.conn = Some(c);
        }
        Ok(self.conn.as_mut().expect("connected"))
    }
}

impl Sink for SyslogSink {
    fn batch_max(&self) -> usize {
        100
    }

    fn send(&mut self, items: &[Item]) -> Result<(), SendError> {
        let (facility, pid) = (self.cfg.facility, self.pid);
        let mut tcp_buf = Vec::new();
        let conn = self
            .connect()
            .map_err(|e| SendError::transient(format!("syslog connect: {e}")))?;
        let res = match conn {
            Conn::Udp(s) => items.iter().try_for_each(|it| {
                s.send(&message(facility, pid, it))
                    .map(|_| ())
                    .map_err(|e| {
                        if e.raw_os_error() == Some(libc::EMSGSIZE) {
                            SendError::Permanent {
                                error: format!(
                                    "syslog: message of alert {} too large for a datagram",
                                    it.id
                                ),
                            }
                        } else {
                            SendError::transient(format!("syslog send: {e}"))
                        }
                    })
            }),
            Conn::Unix(s) => items.iter().try_for_each(|it| {
                s.send(&message(facility, pid, it))
                    .map(|_| ())
                    .map_err(|e| SendError::transient(format!("syslog send: {e}")))
            }),
            Conn::Tcp(s) => {
                for it in items {
                    let m = message(facility, pid, it);
                    tcp_buf.extend_from_slice(format!("{} ", m.len()).as_bytes());
                    tcp_buf.extend_from_slice(&m);
                }
                s.write_all(&tcp_buf)
                    .and_then(|_| s.flush())
                    .map_err(|e| SendError::transient(format!("syslog write: {e}")))
            }
        };
        if let Err(SendError::Transient { .. }) = &res {
            self.conn = None;
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_header() {
        assert_eq!(
            parse_address("udp://127.0.0.1:514").unwrap(),
            SyslogAddress::Udp("127.0.0.1:514".into())
        );
        assert_eq!(
            parse_address("tcp://[::1]:6514").unwrap(),
            SyslogAddress::Tcp("[::1]:6514".into())
        );
        assert_eq!(
            parse_address("unix:///dev/log").unwrap(),
            SyslogAddress::Unix("/dev/log".into())
        );
        for bad in [
            "127.0.0.1:514",
            "udp://host",
            "tcp://:1",
            "unix://dev/log",
            "udp://h:99999",
        ] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
        assert_eq!(
            timestamp("2026-12-07T12:00:00.123456789Z"),
            "2026-12-07T12:00:00.123456Z"
        );
        let raw = crate::deliver::formats::samples::finding_raw();
        let alert: Value = serde_json::from_slice(&raw).unwrap();
        let it = Item {
            id: "x".into(),
            line: b"CEF:0|a".to_vec(),
            alert,
        };
        let m = String::from_utf8(message(4, 7, &it)).unwrap();
        assert_eq!(
            m,
            "<35>1 2026-12-07T12:00:00.123456Z build-7 token-sensor 7 finding - CEF:0|a"
        );
    }

    #[test]
    fn unix_datagram_transport() {
        let path = std::env::temp_dir().join(format!("syslog-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        let mut sink = SyslogSink::new(SyslogConfig {
            address: SyslogAddress::Unix(path.clone()),
            facility: 10,
        });
        let alert: Value =
            serde_json::from_slice(&crate::deliver::formats::samples::error_raw()).unwrap();
        sink.send(&[Item {
            id: "x".into(),
            line: b"{}".to_vec(),
            alert,
        }])
        .unwrap();
        let mut buf = [0u8; 4096];
        let n = rx.recv(&mut buf).unwrap();
        let m = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(m.starts_with("<83>1 "), "authpriv(10)*8+err(3): {m}");
        assert!(m.ends_with(" error - {}"), "{m}");
        std::fs::remove_file(&path).unwrap();
    }
}
