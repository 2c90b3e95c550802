//! Reading executables and libraries to find where TLS plaintext passes: exported and
//! local symbols (`.dynsym`/`.symtab`), virtual address → file offset (uprobes are placed
//! by file offset: `st_value - p_vaddr + p_offset` of the containing `PT_LOAD`), Go's
//! `.gopclntab` function table (which survives `-s -w` stripping) and `.go.buildinfo`
//! version, the `RET` instructions of a function (decoded, not byte-searched), and a
//! byte-signature search for BoringSSL's `SSL_write`/`SSL_read` in stripped static builds
//! (Bun, and so Claude Code; Electron apps).
//!
//! Files are memory-mapped, so a 100 MB runtime costs page cache, not heap.

use std::path::Path;

use iced_x86::{Decoder, DecoderOptions, FlowControl, Mnemonic, OpKind, Register};
use object::elf::PT_LOAD;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, Object, ObjectSection, ObjectSymbol, SymbolKind};

/// Why a file could not be read as an ELF object.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file could not be opened or mapped.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not a 64-bit ELF object (or a malformed one).
    #[error("{path}: not a 64-bit ELF object: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What the parser said.
        reason: String,
    },
}

/// One `PT_LOAD` segment.
#[derive(Clone, Copy, Debug)]
struct Segment {
    vaddr: u64,
    offset: u64,
    filesz: u64,
}

/// A memory-mapped ELF file with its load segments.
pub struct Elf {
    map: memmap2::Mmap,
    segments: Vec<Segment>,
}

impl Elf {
    /// Maps and parses `path`.
    pub fn open(path: &Path) -> Result<Elf, ElfError> {
        let p = path.display().to_string();
        let f = std::fs::File::open(path).map_err(|source| ElfError::Io {
            path: p.clone(),
            source,
        })?;
        // SAFETY: the mapping is read-only; a file truncated under us would fault, which
        // binaries and libraries in use are not (the loader maps them the same way).
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|source| ElfError::Io {
            path: p.clone(),
            source,
        })?;
        let segments = {
            let file = ElfFile64::<Endianness>::parse(&*map).map_err(|e| ElfError::Format {
                path: p.clone(),
                reason: e.to_string(),
            })?;
            let e = file.endian();
            file.elf_program_headers()
                .iter()
                .filter(|ph| ph.p_type(e) == PT_LOAD)
                .map(|ph| Segment {
                    vaddr: ph.p_vaddr(e),
                    offset: ph.p_offset(e),
                    filesz: ph.p_filesz(e),
                })
                .collect()
        };
        Ok(Elf { map, segments })
    }

    fn file(&self) -> ElfFile64<'_, Endianness> {
        ElfFile64::parse(&*self.map).expect("parsed in open")
    }

    /// The whole file.
    pub fn data(&self) -> &[u8] {
        &self.map
    }

    /// Address of a defined function symbol (dynamic symbols first, then `.symtab`).
    pub fn symbol(&self, name: &str) -> Option<u64> {
        let file = self.file();
        let find = |mut it: object::read::elf::ElfSymbolIterator<'_, '_, _>| {
            it.find(|s| {
                s.is_definition()
                    && s.kind() == SymbolKind::Text
                    && s.address() != 0
                    && s.name_bytes().ok() == Some(name.as_bytes())
            })
            .map(|s| s.address())
        };
        find(file.dynamic_symbols()).or_else(|| find(file.symbols()))
    }

    /// File offset of a virtual address (inside a `PT_LOAD` segment's file image).
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz)
            .map(|s| vaddr - s.vaddr + s.offset)
    }

    /// `len` bytes at a virtual address, if mapped from the file.
    pub fn bytes_at(&self, vaddr: u64, len: usize) -> Option<&[u8]> {
        let off = self.file_offset(vaddr)? as usize;
        self.map.get(off..off.checked_add(len)?)
    }

    /// A section's address and file bytes.
    pub fn section(&self, name: &str) -> Option<(u64, &[u8])> {
        let file = self.file();
        let s = file.section_by_name(name)?;
        let (off, size) = s.file_range()?;
        let data = self.map.get(off as usize..(off + size) as usize)?;
        Some((s.address(), data))
    }
}

/// A function found in a Go binary's pclntab: entry and end addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoFunc {
    pub entry: u64,
    pub end: u64,
}

fn u32_le(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_le(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn cstr(b: &[u8], off: usize) -> Option<&[u8]> {
    let s = b.get(off..)?;
    let end = memchr::memchr(0, s)?;
    Some(&s[..end])
}

/// The Go pclntab: `.gopclntab`, or (for builds that fold it into `.data.rel.ro`) found by
/// its header magic.
fn pclntab(elf: &Elf) -> Option<&[u8]> {
    if let Some((_, d)) = elf.section(".gopclntab") {
        return Some(d);
    }
    let (_, ro) = elf
        .section(".data.rel.ro")
        .or_else(|| elf.section(".rodata"))?;
    for magic in [0xffff_fff1u32, 0xffff_fff0, 0xffff_fffa] {
        let m = magic.to_le_bytes();
        for pos in memchr::memmem::find_iter(ro, &m) {
            let h = &ro[pos..];
            // pad 0 0, minLC 1|2|4, ptrSize 8
            if h.len() > 16 && h[4] == 0 && h[5] == 0 && matches!(h[6], 1 | 2 | 4) && h[7] == 8 {
                return Some(h);
            }
        }
    }
    None
}

/// Finds Go functions by full name (`crypto/tls.(*Conn).Write`) in the pclntab. Supports
/// the Go 1.16/1.17 and 1.18+ table layouts.
pub fn go_functions(elf: &Elf, names: &[&str]) -> Vec<(String, GoFunc)> {
    let Some(t) = pclntab(elf) else {
        return Vec::new();
    };
    let text = elf.section(".text").map(|(a, _)| a).unwrap_or(0);
    let magic = u32_le(t, 0).unwrap_or(0);
    if t.len() < 72 || t[7] != 8 {
        return Vec::new();
    }
    let word = |i: usize| u64_le(t, 8 + 8 * i).unwrap_or(0) as usize;
    let nfunc = word(0);
    // (text start, funcname table, functab, entry size, relative entries)
    let (text_start, funcnames, functab, esize, relative) = match magic {
        0xffff_fff0 | 0xffff_fff1 => {
            let ts = word(2) as u64;
            (if ts == 0 { text } else { ts }, word(3), word(7), 8, true)
        }
        0xffff_fffa => (0, word(2), word(6), 16, false),
        _ => return Vec::new(),
    };
    let entry = |i: usize| -> Option<(u64, usize)> {
        let off = functab + i * esize;
        if relative {
            Some((
                text_start + u32_le(t, off)? as u64,
                u32_le(t, off + 4)? as usize,
            ))
        } else {
            Some((u64_le(t, off)?, u64_le(t, off + 8)? as usize))
        }
    };
    let mut out = Vec::new();
    for i in 0..nfunc.min(4_000_000) {
        let Some((pc, funcoff)) = entry(i) else { break };
        let name_field = functab + funcoff + if relative { 4 } else { 8 };
        let Some(nameoff) = u32_le(t, name_field) else {
            continue;
        };
        let Some(name) = cstr(t, funcnames + nameoff as usize) else {
            continue;
        };
        if let Some(n) = names.iter().find(|n| n.as_bytes() == name) {
            let end = entry(i + 1).map(|(e, _)| e).unwrap_or(pc);
            out.push((n.to_string(), GoFunc { entry: pc, end }));
            if out.len() == names.len() {
                break;
            }
        }
    }
    out
}

/// The Go version a binary was built with (`go1.19.8`), from `.go.buildinfo`.
pub fn go_version(elf: &Elf) -> Option<String> {
    let (_, b) = elf.section(".go.buildinfo")?;
    if !b.starts_with(b"\xff Go buildinf:") || b.len() < 32 {
        return None;
    }
    let ptr_size = b[14] as usize;
    let flags = b[15];
    if flags & 2 != 0 {
        // Go 1.18+: varint-prefixed strings inline after the 32-byte header.
        let mut len = 0usize;
        let mut shift = 0;
        let mut i = 32;
        loop {
            let c = *b.get(i)?;
            len |= ((c & 0x7f) as usize) << shift;
            i += 1;
            if c & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 28 {
                return None;
            }
        }
        return Some(String::from_utf8_lossy(b.get(i..i + len)?).into_owned());
    }
    if ptr_size != 8 {
        return None;
    }
    // Older: a pointer to a Go string header (data, len).
    let hdr = u64_le(b, 16)?;
    let h = elf.bytes_at(hdr, 16)?;
    let (data, len) = (u64_le(h, 0)?, u64_le(h, 8)? as usize);
    Some(String::from_utf8_lossy(elf.bytes_at(data, len.min(64))?).into_owned())
}

/// Does a `go1.X[.Y]` version pass arguments in registers (Go ≥ 1.17)?
pub fn go_register_abi(version: &str) -> bool {
    let v = version.trim_start_matches("go");
    let mut it = v.split(|c: char| !c.is_ascii_digit());
    let major: u32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let minor: u32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    major > 1 || (major == 1 && minor >= 17)
}

/// Addresses of the `RET` instructions of the function at `[entry, end)`.
pub fn ret_instructions(elf: &Elf, f: GoFunc) -> Vec<u64> {
    let len = f.end.saturating_sub(f.entry) as usize;
    let Some(code) = elf.bytes_at(f.entry, len.min(1 << 20)) else {
        return Vec::new();
    };
    let mut d = Decoder::with_ip(64, code, f.entry, DecoderOptions::NONE);
    let mut out = Vec::new();
    while d.can_decode() {
        let ins = d.decode();
        if ins.is_invalid() {
            // Go pads between functions with int3; an invalid byte means data: stop.
            break;
        }
        if ins.flow_control() == FlowControl::Return {
            out.push(ins.ip());
        }
    }
    out
}

/// Whether the code at `entry` calls or jumps to `target` directly within its first
/// `len` bytes (a wrapper such as glibc's `secure_getenv`, which tail-jumps to `getenv`).
pub fn branches_to(elf: &Elf, entry: u64, len: usize, target: u64) -> bool {
    let Some(code) = elf.bytes_at(entry, len).or_else(|| elf.bytes_at(entry, 16)) else {
        return false;
    };
    let mut d = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    while d.can_decode() {
        let ins = d.decode();
        if ins.is_invalid() {
            break;
        }
        let direct = matches!(
            ins.flow_control(),
            FlowControl::Call | FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
        ) && matches!(
            ins.op0_kind(),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        );
        if direct && ins.near_branch_target() == target {
            return true;
        }
    }
    false
}

/// BoringSSL entry points located by signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoringSsl {
    pub ssl_write: u64,
    pub ssl_read: u64,
}

/// Why the BoringSSL signature did not give a unique answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `ssl/ssl_lib.cc` error-site string: not BoringSSL.
    #[error("no BoringSSL ssl_lib.cc error sites")]
    NotBoringSsl,
    /// The anchor matched no function or several.
    #[error("{function}: {matches} functions match the signature (exactly one required)")]
    NotUnique {
        /// `SSL_write` or `SSL_read`.
        function: &'static str,
        /// How many matched.
        matches: usize,
    },
}

/// One `OPENSSL_PUT_ERROR(SSL, reason)` call site: `ERR_put_error(lib, [0,] reason, file,
/// line)` with the file being `ssl_lib.cc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ErrSite {
    func: u64,
    reason: u32,
    line: u32,
}

const ERR_LIB_SSL: u64 = 16;
/// `ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED`: the QUIC guard at the top of `SSL_write` and
/// `SSL_peek` (inlined into `SSL_read`).
const R_SHOULD_NOT_HAVE_BEEN_CALLED: u32 = 66;
const SSL_R_BAD_LENGTH: u32 = 111;
const SSL_R_SSL_HANDSHAKE_FAILURE: u32 = 215;
const SSL_R_UNINITIALIZED: u32 = 226;

/// Finds `SSL_write` and `SSL_read` of a statically linked, stripped BoringSSL.
///
/// The anchor is the library's own error reporting: every `OPENSSL_PUT_ERROR` in
/// `ssl_lib.cc` loads the file name's address, the library code 16, a reason code and a
/// line number into argument registers before calling `ERR_put_error` (two argument
/// layouts exist across BoringSSL versions; both are decoded). `SSL_write` is the one
/// function that reports all of "should not have been called" (QUIC guard),
/// "uninitialized", "handshake failure" and "bad length", within a few source lines;
/// `SSL_read` is the function holding `SSL_peek`'s QUIC guard, the one "should not have
/// been called" site in the source lines just above `SSL_write`'s. Each must be unique.
pub fn boringssl(elf: &Elf) -> Result<BoringSsl, SignatureError> {
    let sites = err_sites(elf);
    if sites.is_empty() {
        return Err(SignatureError::NotBoringSsl);
    }
    let mut funcs: Vec<u64> = sites.iter().map(|s| s.func).collect();
    funcs.sort_unstable();
    funcs.dedup();
    let of = |f: u64| sites.iter().filter(move |s| s.func == f);
    let writes: Vec<u64> = funcs
        .iter()
        .copied()
        .filter(|&f| {
            let has = |r| of(f).any(|s| s.reason == r);
            let lines: Vec<u32> = of(f).map(|s| s.line).collect();
            let span = lines.iter().max().unwrap_or(&0) - lines.iter().min().unwrap_or(&0);
            has(R_SHOULD_NOT_HAVE_BEEN_CALLED)
                && has(SSL_R_UNINITIALIZED)
                && has(SSL_R_SSL_HANDSHAKE_FAILURE)
                && has(SSL_R_BAD_LENGTH)
                && span < 80
        })
        .collect();
    if writes.len() != 1 {
        return Err(SignatureError::NotUnique {
            function: "SSL_write",
            matches: writes.len(),
        });
    }
    let w = writes[0];
    let guard = of(w)
        .find(|s| s.reason == R_SHOULD_NOT_HAVE_BEEN_CALLED)
        .map(|s| s.line)
        .unwrap_or(0);
    let reads: Vec<u64> = funcs
        .iter()
        .copied()
        .filter(|&f| {
            f != w
                && !of(f).any(|s| s.reason == SSL_R_BAD_LENGTH)
                && of(f).any(|s| {
                    s.reason == R_SHOULD_NOT_HAVE_BEEN_CALLED
                        && s.line < guard
                        && s.line + 60 > guard
                })
        })
        .collect();
    if reads.len() != 1 {
        return Err(SignatureError::NotUnique {
            function: "SSL_read",
            matches: reads.len(),
        });
    }
    Ok(BoringSsl {
        ssl_write: w,
        ssl_read: reads[0],
    })
}

/// Addresses of the `…/ssl/ssl_lib.cc` file-name string (its start, and the suffix
/// itself for tail-merged references).
fn ssl_lib_strings(elf: &Elf) -> Vec<u64> {
    let Some((addr, ro)) = elf.section(".rodata") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for pos in memchr::memmem::find_iter(ro, b"ssl/ssl_lib.cc\0") {
        let start = memchr::memrchr(0, &ro[..pos]).map(|p| p + 1).unwrap_or(0);
        out.push(addr + start as u64);
        out.push(addr + pos as u64);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Every `ERR_put_error(ERR_LIB_SSL, …, "ssl_lib.cc", line)` site, with its function.
fn err_sites(elf: &Elf) -> Vec<ErrSite> {
    let strings = ssl_lib_strings(elf);
    let Some((text_addr, text)) = elf.section(".text") else {
        return Vec::new();
    };
    if strings.is_empty() {
        return Vec::new();
    }
    // (position of the instruction loading the file name, register it loads)
    let mut refs: Vec<(usize, Register)> = Vec::new();
    for &s in &strings {
        // mov r32, imm32 (non-PIE): B8+r imm32, optionally with REX.B.
        if let Ok(imm) = u32::try_from(s) {
            for pos in memchr::memmem::find_iter(text, &imm.to_le_bytes()) {
                if pos == 0 {
                    continue;
                }
                let op = text[pos - 1];
                if (0xb8..=0xbf).contains(&op) {
                    let rex_b = pos >= 2 && text[pos - 2] == 0x41;
                    let at = if rex_b { pos - 2 } else { pos - 1 };
                    refs.push((at, reg32(op - 0xb8, rex_b)));
                }
            }
        }
    }
    // lea r64, [rip + disp32] (PIE): 48/4C 8D modrm(mod 00, rm 101) disp32. Only looked
    // for when no absolute loads were found (a non-PIE build uses those).
    let absolute = !refs.is_empty();
    for pos in memchr::memchr_iter(0x8d, text).filter(|_| !absolute) {
        if pos == 0 || pos + 6 > text.len() {
            continue;
        }
        let rex = text[pos - 1];
        let modrm = text[pos + 1];
        if (rex != 0x48 && rex != 0x4c) || modrm & 0xc7 != 0x05 {
            continue;
        }
        let disp = i32::from_le_bytes(text[pos + 2..pos + 6].try_into().expect("4 bytes"));
        let next = text_addr + pos as u64 + 6;
        let target = next.wrapping_add(disp as i64 as u64);
        if strings.binary_search(&target).is_ok() {
            refs.push((pos - 1, reg32((modrm >> 3) & 7, rex == 0x4c)));
        }
    }
    refs.into_iter()
        .filter_map(|(pos, reg)| {
            let (reason, line) = decode_err_call(text, text_addr, pos, reg)?;
            let func = function_start(text, pos)?;
            Some(ErrSite {
                func: text_addr + func as u64,
                reason,
                line,
            })
        })
        .collect()
}

fn reg32(n: u8, ext: bool) -> Register {
    const R: [Register; 16] = [
        Register::EAX,
        Register::ECX,
        Register::EDX,
        Register::EBX,
        Register::ESP,
        Register::EBP,
        Register::ESI,
        Register::EDI,
        Register::R8D,
        Register::R9D,
        Register::R10D,
        Register::R11D,
        Register::R12D,
        Register::R13D,
        Register::R14D,
        Register::R15D,
    ];
    R[(n as usize & 7) + if ext { 8 } else { 0 }]
}

/// Immediate loads into 32-bit registers among `ins`, the last one winning.
fn imm_loads(ins: &[iced_x86::Instruction], regs: &mut [(Register, Option<u64>)]) {
    for i in ins {
        let target = i.op0_register().full_register32();
        let value = match i.mnemonic() {
            Mnemonic::Mov if i.op_count() == 2 => match i.op1_kind() {
                OpKind::Immediate32 => Some(i.immediate32() as u64),
                OpKind::Immediate32to64 => Some(i.immediate32to64() as u64),
                _ => None,
            },
            Mnemonic::Xor if i.op0_register() == i.op1_register() => Some(0),
            _ => None,
        };
        for (r, v) in regs.iter_mut() {
            if target == *r && target != Register::None {
                if value.is_some() {
                    *v = value;
                } else {
                    *v = None;
                }
            }
        }
    }
}

/// Decodes the argument set-up around a file-name load at `pos` and returns (reason,
/// line) if it is an `ERR_put_error(ERR_LIB_SSL, …)` call.
fn decode_err_call(text: &[u8], base: u64, pos: usize, file_reg: Register) -> Option<(u32, u32)> {
    // Argument layouts: (lib, reason, file, line) or (lib, unused, reason, file, line).
    let (reason_reg, line_reg) = match file_reg {
        Register::EDX => (Register::ESI, Register::ECX),
        Register::ECX => (Register::EDX, Register::R8D),
        _ => return None,
    };
    // Instructions before `pos`: decode from the furthest start that lands exactly on it.
    let mut before = Vec::new();
    for k in (1..=40usize).rev() {
        if k > pos {
            continue;
        }
        let mut d = Decoder::with_ip(64, &text[pos - k..pos], base, DecoderOptions::NONE);
        let mut v = Vec::new();
        let mut ok = true;
        while d.can_decode() {
            let i = d.decode();
            if i.is_invalid() {
                ok = false;
                break;
            }
            v.push(i);
        }
        if ok && d.position() == k {
            // Only the straight-line tail: stop at any branch or call.
            let cut = v
                .iter()
                .rposition(|i| i.flow_control() != FlowControl::Next)
                .map(|p| p + 1)
                .unwrap_or(0);
            before = v.split_off(cut);
            break;
        }
    }
    let end = (pos + 48).min(text.len());
    let mut d = Decoder::with_ip(64, &text[pos..end], base, DecoderOptions::NONE);
    let mut after = Vec::new();
    let mut ends_in_branch = false;
    while d.can_decode() && after.len() < 10 {
        let i = d.decode();
        if i.is_invalid() {
            break;
        }
        if matches!(
            i.flow_control(),
            FlowControl::Call | FlowControl::UnconditionalBranch
        ) {
            ends_in_branch = true;
            break;
        }
        after.push(i);
    }
    if !ends_in_branch {
        return None;
    }
    let mut regs = [(Register::EDI, None), (reason_reg, None), (line_reg, None)];
    imm_loads(&before, &mut regs);
    imm_loads(&after, &mut regs);
    if regs[0].1 != Some(ERR_LIB_SSL) {
        return None;
    }
    Some((regs[1].1? as u32, regs[2].1? as u32))
}

/// Start of the function containing `pos`: the nearest 16-byte-aligned address before it
/// that follows `int3` padding and begins with a prologue.
fn function_start(text: &[u8], pos: usize) -> Option<usize> {
    let mut q = pos - pos % 16;
    let floor = pos.saturating_sub(64 * 1024);
    while q > floor {
        if text[q - 1] == 0xcc && is_prologue(&text[q..]) {
            return Some(q);
        }
        q -= 16;
    }
    None
}

fn is_prologue(b: &[u8]) -> bool {
    b.starts_with(&[0x55]) // push rbp
        || b.starts_with(&[0xf3, 0x0f, 0x1e, 0xfa]) // endbr64
        || (b.len() > 1 && b[0] == 0x41 && (0x54..=0x57).contains(&b[1])) // push r12..r15
        || b.starts_with(&[0x53]) // push rbx
        || b.starts_with(&[0x48, 0x83, 0xec]) // sub rsp, imm8
        || b.starts_with(&[0x48, 0x81, 0xec]) // sub rsp, imm32
}

/// Names of TLS implementations whose presence in an object is visible from its strings
/// but that have no hook here (statically linked and stripped), for `tls: opaque`
/// reporting.
pub fn unhookable_tls_evidence(elf: &Elf) -> Vec<&'static str> {
    const MARKS: &[(&str, &[u8])] = &[
        ("rustls", b"rustls"),
        ("boringssl", b"ssl/ssl_lib.cc"),
        ("openssl-static", b"ssl/ssl_lib.c\0"),
        ("mbedtls", b"mbedtls"),
        ("wolfssl", b"wolfSSL"),
        ("nss", b"libnss3"),
    ];
    let data = match elf.section(".rodata") {
        Some((_, d)) => d,
        None => elf.data(),
    };
    MARKS
        .iter()
        .filter(|(_, m)| memchr::memmem::find(data, m).is_some())
        .map(|(n, _)| *n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_versions() {
        assert!(go_register_abi("go1.19.8"));
        assert!(go_register_abi("go1.17"));
        assert!(go_register_abi("go1.22rc1"));
        assert!(!go_register_abi("go1.16.15"));
        assert!(!go_register_abi("devel"));
    }

    #[test]
    fn own_binary_symbols_and_offsets() {
        // The test binary itself: a real ELF with a .text and (unstripped) symbols.
        let exe = std::env::current_exe().unwrap();
        let elf = Elf::open(&exe).unwrap();
        let (addr, text) = elf.section(".text").unwrap();
        assert!(!text.is_empty());
        let off = elf.file_offset(addr).unwrap();
        assert_eq!(&elf.data()[off as usize..off as usize + 16], &text[..16]);
        assert!(elf.symbol("main").is_some());
        assert!(elf.symbol("no_such_symbol_anywhere").is_none());
        assert!(matches!(boringssl(&elf), Err(SignatureError::NotBoringSsl)));
        assert!(go_functions(&elf, &["crypto/tls.(*Conn).Write"]).is_empty());
    }

    #[test]
    fn prologues() {
        assert!(is_prologue(&[0x55, 0x48, 0x89, 0xe5]));
        assert!(is_prologue(&[0x41, 0x57]));
        assert!(!is_prologue(&[0xc3]));
        let mut text = vec![0xccu8; 64];
        text[32] = 0x55;
        assert_eq!(function_start(&text, 40), Some(32));
    }

    #[test]
    fn err_call_both_layouts() {
        // mov ecx, FILE; mov edi, 16; xor esi, esi; mov edx, 0x42; mov r8d, 0x3b9; call
        let mut a = vec![0xb9, 0x9d, 0xe5, 0x29, 0x00];
        a.extend([0xbf, 0x10, 0, 0, 0, 0x31, 0xf6, 0xba, 0x42, 0, 0, 0]);
        a.extend([0x41, 0xb8, 0xb9, 0x03, 0, 0, 0xe8, 0, 0, 0, 0]);
        assert_eq!(
            decode_err_call(&a, 0x1000, 0, Register::ECX),
            Some((66, 0x3b9))
        );
        // mov edx, FILE; mov edi, 16; mov esi, 0xd7; mov ecx, 0x3d8; call
        let mut b = vec![0xba, 0x24, 0x5d, 0x39, 0x00];
        b.extend([
            0xbf, 0x10, 0, 0, 0, 0xbe, 0xd7, 0, 0, 0, 0xb9, 0xd8, 0x03, 0, 0,
        ]);
        b.extend([0xe8, 0, 0, 0, 0]);
        assert_eq!(
            decode_err_call(&b, 0x1000, 0, Register::EDX),
            Some((215, 0x3d8))
        );
        // Arguments set before the file-name load, then a jump to a shared call.
        let mut c = vec![0xbf, 0x10, 0, 0, 0, 0xbe, 0x6f, 0, 0, 0];
        c.extend([
            0xba, 0x24, 0x5d, 0x39, 0x00, 0xb9, 0x10, 0, 0, 0, 0xeb, 0x10,
        ]);
        assert_eq!(
            decode_err_call(&c, 0x1000, 10, Register::EDX),
            Some((111, 16))
        );
        // Not library 16.
        let mut d = vec![0xba, 0x24, 0x5d, 0x39, 0x00];
        d.extend([
            0xbf, 0x0e, 0, 0, 0, 0xbe, 0xd7, 0, 0, 0, 0xb9, 0xd8, 0x03, 0, 0,
        ]);
        d.extend([0xe8, 0, 0, 0, 0]);
        assert_eq!(decode_err_call(&d, 0x1000, 0, Register::EDX), None);
    }
}
