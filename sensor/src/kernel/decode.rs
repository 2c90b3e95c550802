//! Turns ring-buffer records into typed [`RawEvent`]s through one explicit dispatch table
//! keyed by the header opcode. A record that is short, unknown or inconsistent is an error
//! that names the opcode and what was wrong; the caller counts it and carries on.

use sensor_common::{EnvEvent, EventHeader, MetaEvent, Op, ADDR_LEN, DATA_HDR_LEN, ENV_NAME_MAX};

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than an [`EventHeader`].
    #[error("record of {0} bytes is shorter than the event header")]
    Short(usize),
    /// The opcode is not one this daemon knows (probes newer than the daemon?).
    #[error("unknown opcode {0}")]
    UnknownOp(u32),
    /// The record is shorter than its opcode's fixed part or its declared payload.
    #[error("{op:?} record of {got} bytes, expected at least {want}")]
    Truncated {
        /// Opcode of the record.
        op: Op,
        /// Bytes received.
        got: usize,
        /// Bytes required.
        want: usize,
    },
}

/// A record carrying bytes, decoded.
#[derive(Clone, Debug)]
pub struct DataRecord {
    pub hdr: EventHeader,
    pub call_id: u64,
    pub total: u64,
    pub arg: u64,
    pub fd: i32,
    pub syscall: u32,
    pub offset: u32,
    pub index: u32,
    pub flags: u32,
    pub data: Vec<u8>,
}

/// A metadata record, decoded.
#[derive(Clone, Debug)]
pub struct MetaRecord {
    pub hdr: EventHeader,
    pub ret: i64,
    pub arg0: u64,
    pub arg1: u64,
    pub fd: i32,
    pub fd2: i32,
    pub syscall: u32,
    pub addr: Vec<u8>,
}

/// An [`Op::EnvRead`] record, decoded: the variable name a watched process asked for.
#[derive(Clone, Debug)]
pub struct EnvRecord {
    pub hdr: EventHeader,
    /// A [`sensor_common::EnvFn`] value.
    pub func: u32,
    /// The name (cut at [`ENV_NAME_MAX`] bytes).
    pub name: Vec<u8>,
}

/// A decoded record.
#[derive(Clone, Debug)]
pub enum RawEvent {
    /// Op carried by a [`DataEvent`].
    Data(Op, DataRecord),
    /// Op carried by a [`MetaEvent`].
    Meta(Op, MetaRecord),
    /// [`Op::EnvRead`], carried by an [`EnvEvent`].
    Env(EnvRecord),
}

impl RawEvent {
    /// The common header.
    pub fn header(&self) -> &EventHeader {
        match self {
            RawEvent::Data(_, d) => &d.hdr,
            RawEvent::Meta(_, m) => &m.hdr,
            RawEvent::Env(e) => &e.hdr,
        }
    }
}

type Decoder = fn(Op, &[u8]) -> Result<RawEvent, DecodeError>;

/// The one dispatch table: opcode → decoder.
const DISPATCH: &[(Op, Decoder)] = &[
    (Op::Write, decode_data),
    (Op::Read, decode_data),
    (Op::ExecArg, decode_data),
    (Op::Open, decode_data),
    (Op::Harvest, decode_data),
    (Op::ExecDone, decode_meta),
    (Op::Fork, decode_meta),
    (Op::Exit, decode_meta),
    (Op::Close, decode_meta),
    (Op::Dup, decode_meta),
    (Op::Connect, decode_meta),
    (Op::Accept, decode_meta),
    (Op::Socket, decode_meta),
    (Op::Pipe, decode_meta),
    (Op::SendTo, decode_meta),
    (Op::Transfer, decode_meta),
    (Op::IoUring, decode_meta),
    (Op::TlsWrite, decode_data),
    (Op::TlsRead, decode_data),
    (Op::MmapExec, decode_meta),
    (Op::EnvRead, decode_env),
];

fn read_pod<T: Copy>(buf: &[u8]) -> T {
    assert!(buf.len() >= std::mem::size_of::<T>());
    // SAFETY: length checked; T is a plain #[repr(C)] struct of integers.
    unsafe { std::ptr::read_unaligned(buf.as_ptr() as *const T) }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

fn decode_data(op: Op, buf: &[u8]) -> Result<RawEvent, DecodeError> {
    if buf.len() < DATA_HDR_LEN {
        return Err(DecodeError::Truncated {
            op,
            got: buf.len(),
            want: DATA_HDR_LEN,
        });
    }
    // Field offsets of DataEvent after its 32-byte header (checked by the layout test).
    let h = &buf[..DATA_HDR_LEN];
    let len = u32_at(h, 68) as usize;
    if len > sensor_common::CHUNK || DATA_HDR_LEN + len > buf.len() {
        return Err(DecodeError::Truncated {
            op,
            got: buf.len(),
            want: DATA_HDR_LEN + len,
        });
    }
    Ok(RawEvent::Data(
        op,
        DataRecord {
            hdr: read_pod(h),
            call_id: u64_at(h, 32),
            total: u64_at(h, 40),
            arg: u64_at(h, 48),
            fd: u32_at(h, 56) as i32,
            syscall: u32_at(h, 60),
            offset: u32_at(h, 64),
            index: u32_at(h, 72),
            flags: u32_at(h, 76),
            data: buf[DATA_HDR_LEN..DATA_HDR_LEN + len].to_vec(),
        },
    ))
}

fn decode_meta(op: Op, buf: &[u8]) -> Result<RawEvent, DecodeError> {
    let want = std::mem::size_of::<MetaEvent>();
    if buf.len() < want {
        return Err(DecodeError::Truncated {
            op,
            got: buf.len(),
            want,
        });
    }
    let ev: MetaEvent = read_pod(buf);
    let alen = (ev.addr_len as usize).min(ADDR_LEN);
    Ok(RawEvent::Meta(
        op,
        MetaRecord {
            hdr: ev.hdr,
            ret: ev.ret,
            arg0: ev.arg0,
            arg1: ev.arg1,
            fd: ev.fd,
            fd2: ev.fd2,
            syscall: ev.syscall,
            addr: ev.addr[..alen].to_vec(),
        },
    ))
}

fn decode_env(op: Op, buf: &[u8]) -> Result<RawEvent, DecodeError> {
    let want = std::mem::size_of::<EnvEvent>();
    if buf.len() < want {
        return Err(DecodeError::Truncated {
            op,
            got: buf.len(),
            want,
        });
    }
    let ev: EnvEvent = read_pod(buf);
    let len = (ev.len as usize).min(ENV_NAME_MAX);
    Ok(RawEvent::Env(EnvRecord {
        hdr: ev.hdr,
        func: ev.func,
        name: ev.name[..len].to_vec(),
    }))
}

/// Decodes one ring-buffer record.
pub fn decode(buf: &[u8]) -> Result<RawEvent, DecodeError> {
    if buf.len() < std::mem::size_of::<EventHeader>() {
        return Err(DecodeError::Short(buf.len()));
    }
    let hdr: EventHeader = read_pod(buf);
    let op = Op::from_u32(hdr.op).ok_or(DecodeError::UnknownOp(hdr.op))?;
    let (_, decoder) = DISPATCH
        .iter()
        .find(|(o, _)| *o == op)
        .ok_or(DecodeError::UnknownOp(hdr.op))?;
    decoder(op, buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensor_common::DataEvent;

    fn header(op: u32) -> EventHeader {
        EventHeader {
            op,
            tgid: 7,
            pid: 8,
            uid: 0,
            ts_ns: 1,
            cgroup_id: 2,
        }
    }

    fn as_bytes<T>(v: &T) -> Vec<u8> {
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
            .to_vec()
    }

    #[test]
    fn data_event_field_offsets_match_the_decoder() {
        use core::mem::offset_of;
        assert_eq!(offset_of!(DataEvent, call_id), 32);
        assert_eq!(offset_of!(DataEvent, total), 40);
        assert_eq!(offset_of!(DataEvent, arg), 48);
        assert_eq!(offset_of!(DataEvent, fd), 56);
        assert_eq!(offset_of!(DataEvent, syscall), 60);
        assert_eq!(offset_of!(DataEvent, offset), 64);
        assert_eq!(offset_of!(DataEvent, len), 68);
        assert_eq!(offset_of!(DataEvent, index), 72);
        assert_eq!(offset_of!(DataEvent, flags), 76);
        assert_eq!(offset_of!(DataEvent, data), DATA_HDR_LEN);
    }

    #[test]
    fn every_op_has_exactly_one_decoder() {
        for v in 0..64 {
            if let Some(op) = Op::from_u32(v) {
                assert_eq!(
                    DISPATCH.iter().filter(|(o, _)| *o == op).count(),
                    1,
                    "{op:?}"
                );
            }
        }
    }

    #[test]
    fn data_record_round_trip_and_truncation() {
        let mut ev: DataEvent = unsafe { std::mem::zeroed() };
        ev.hdr = header(Op::Write as u32);
        ev.len = 5;
        ev.fd = 3;
        ev.syscall = 1;
        ev.offset = 9;
        ev.flags = 1;
        ev.call_id = 77;
        ev.data[..5].copy_from_slice(b"hello");
        let bytes = as_bytes(&ev);
        let rec = &bytes[..DATA_HDR_LEN + 5];
        match decode(rec).unwrap() {
            RawEvent::Data(Op::Write, d) => {
                assert_eq!(d.data, b"hello");
                assert_eq!(d.fd, 3);
                assert_eq!((d.syscall, d.offset, d.flags, d.call_id), (1, 9, 1, 77));
                assert_eq!(d.hdr.tgid, 7);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(&bytes[..DATA_HDR_LEN + 2]),
            Err(DecodeError::Truncated { .. })
        ));
        assert_eq!(decode(&bytes[..10]).unwrap_err(), DecodeError::Short(10));
    }

    #[test]
    fn env_record_round_trip_and_truncation() {
        let mut ev: EnvEvent = unsafe { std::mem::zeroed() };
        ev.hdr = header(Op::EnvRead as u32);
        ev.func = sensor_common::EnvFn::SecureGetenv as u32;
        ev.len = 12;
        ev.name[..12].copy_from_slice(b"GITHUB_TOKEN");
        let bytes = as_bytes(&ev);
        match decode(&bytes).unwrap() {
            RawEvent::Env(e) => {
                assert_eq!(e.name, b"GITHUB_TOKEN");
                assert_eq!(e.func, 2);
                assert_eq!(e.hdr.tgid, 7);
            }
            other => panic!("{other:?}"),
        }
        // A length beyond the buffer is clamped, a short record is an error.
        ev.len = 9999;
        match decode(&as_bytes(&ev)).unwrap() {
            RawEvent::Env(e) => assert_eq!(e.name.len(), ENV_NAME_MAX),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(&bytes[..40]),
            Err(DecodeError::Truncated {
                op: Op::EnvRead,
                ..
            })
        ));
    }

    #[test]
    fn unknown_and_short_meta_are_errors() {
        let h = header(999);
        assert_eq!(
            decode(&as_bytes(&h)).unwrap_err(),
            DecodeError::UnknownOp(999)
        );
        let h = header(Op::Connect as u32);
        assert!(matches!(
            decode(&as_bytes(&h)),
            Err(DecodeError::Truncated {
                op: Op::Connect,
                ..
            })
        ));
    }
}
