//! A minimal reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`) that finds struct member
//! offsets, so the probes can read `task_struct` fields (the parent's tgid) without CO-RE
//! relocations and without hard-coding a layout that changes between kernel builds.

use std::collections::HashMap;

/// Errors of reading BTF.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The BTF file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not a little-endian BTF blob, or truncated.
    #[error("malformed BTF: {0}")]
    Malformed(String),
    /// The struct or member does not exist.
    #[error("BTF has no {0}")]
    NotFound(String),
}

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
}

struct Type {
    name_off: u32,
    kind: u32,
    members: Vec<Member>,
}

/// Parsed BTF: just enough for struct member lookups.
pub struct Btf {
    strings: Vec<u8>,
    types: Vec<Type>,
    by_name: HashMap<String, Vec<u32>>,
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, BtfError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| BtfError::Malformed(format!("truncated at byte {off}")))
}

impl Btf {
    /// Reads the running kernel's BTF.
    pub fn from_sys_fs() -> Result<Btf, BtfError> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.into(),
            source,
        })?;
        Btf::parse(&data)
    }

    /// Parses a BTF blob.
    pub fn parse(b: &[u8]) -> Result<Btf, BtfError> {
        if b.len() < 24 || u16::from_le_bytes([b[0], b[1]]) != 0xeb9f {
            return Err(BtfError::Malformed(
                "bad magic (not little-endian BTF)".into(),
            ));
        }
        let hdr_len = u32_at(b, 4)? as usize;
        let type_off = u32_at(b, 8)? as usize;
        let type_len = u32_at(b, 12)? as usize;
        let str_off = u32_at(b, 16)? as usize;
        let str_len = u32_at(b, 20)? as usize;
        let strings = b
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or_else(|| BtfError::Malformed("string section out of bounds".into()))?
            .to_vec();
        let tb = b
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or_else(|| BtfError::Malformed("type section out of bounds".into()))?;
        let mut types = vec![Type {
            name_off: 0,
            kind: 0,
            members: Vec::new(),
        }]; // id 0 = void
        let mut off = 0;
        while off < tb.len() {
            let name_off = u32_at(tb, off)?;
            let info = u32_at(tb, off + 4)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31;
            off += 12;
            let mut members = Vec::new();
            let extra = match kind {
                1 => 4,
                3 => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = off + i * 12;
                        let raw = u32_at(tb, m + 8)?;
                        members.push(Member {
                            name_off: u32_at(tb, m)?,
                            type_id: u32_at(tb, m + 4)?,
                            bit_offset: if kind_flag == 1 { raw & 0xff_ffff } else { raw },
                        });
                    }
                    vlen * 12
                }
                6 => vlen * 8,
                13 => vlen * 8,
                14 => 4,
                15 => vlen * 12,
                17 => 4,
                19 => vlen * 12,
                2 | 7 | 8 | 9 | 10 | 11 | 12 | 16 | 18 => 0,
                k => return Err(BtfError::Malformed(format!("unknown type kind {k}"))),
            };
            off += extra;
            types.push(Type {
                name_off,
                kind,
                members,
            });
        }
        let mut btf = Btf {
            strings,
            types,
            by_name: HashMap::new(),
        };
        for (id, t) in btf.types.iter().enumerate() {
            if (t.kind == KIND_STRUCT || t.kind == KIND_UNION) && t.name_off != 0 {
                let n = btf.name(t.name_off).to_string();
                btf.by_name.entry(n).or_default().push(id as u32);
            }
        }
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        let s = &self.strings[(off as usize).min(self.strings.len())..];
        let end = s.iter().position(|c| *c == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or("")
    }

    fn find_in(&self, id: u32, member: &str, depth: u32) -> Option<u32> {
        let t = self.types.get(id as usize)?;
        for m in &t.members {
            if m.name_off != 0 && self.name(m.name_off) == member {
                return Some(m.bit_offset / 8);
            }
        }
        if depth > 4 {
            return None;
        }
        // Anonymous struct/union members are flattened into their parent.
        for m in &t.members {
            if m.name_off == 0 {
                let tid = m.type_id;
                if let Some(o) = self.find_in(tid, member, depth + 1) {
                    return Some(m.bit_offset / 8 + o);
                }
            }
        }
        None
    }

    /// Byte offset of `member` in `struct name` (searching anonymous sub-aggregates).
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u32, BtfError> {
        let ids = self
            .by_name
            .get(name)
            .ok_or_else(|| BtfError::NotFound(format!("struct {name}")))?;
        ids.iter()
            .find_map(|&id| self.find_in(id, member, 0))
            .ok_or_else(|| BtfError::NotFound(format!("member {name}.{member}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_struct_offsets_from_running_kernel() {
        let btf = Btf::from_sys_fs().expect("kernel BTF");
        let parent = btf.member_offset("task_struct", "real_parent").unwrap();
        let tgid = btf.member_offset("task_struct", "tgid").unwrap();
        let pid = btf.member_offset("task_struct", "pid").unwrap();
        assert!(parent > 0 && tgid > 0);
        assert_eq!(tgid, pid + 4, "tgid follows pid in task_struct");
        assert!(btf.member_offset("task_struct", "no_such_member").is_err());
        assert!(btf.member_offset("no_such_struct", "x").is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Btf::parse(b"not btf at all, definitely").is_err());
        assert!(Btf::parse(&[0x9f, 0xeb, 1, 0]).is_err());
    }
}
