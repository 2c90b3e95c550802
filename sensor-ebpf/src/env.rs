//! Environment access: a uprobe on libc `getenv` and `secure_getenv` tells which variables a
//! watched process asked for by name (`GITHUB_TOKEN` read, then sent: evidence for the
//! alert's chain). Names only; the value is never touched.
//!
//! The daemon attaches the program to the libc files (system libc at start, the libcs that
//! watched processes map, container ones included), per file or per watched process like
//! the TLS hooks. Per file, every process of the host that calls `getenv` traps here, so
//! the scope check comes first. `getenv` is hot (`TZ` on every `localtime`, `LANG`, …):
//! a watched process reports each name once per process image (an LRU of (tgid, name
//! hash) → `mm`, so a new image or a reused pid reports again).

use crate::common::*;
use aya_ebpf::{
    helpers::{bpf_get_attach_cookie, bpf_get_current_pid_tgid},
    macros::{map, uprobe},
    maps::LruHashMap,
    programs::ProbeContext,
    EbpfContext,
};
use sensor_common::*;

/// Names already reported, by (tgid, FNV-1a of the name): the `mm_struct` address of the
/// image that asked.
#[map]
pub static ENV_SEEN: LruHashMap<EnvSeenKey, u64> = LruHashMap::with_max_entries(16384, 0);

/// Entry of `getenv(name)` / `secure_getenv(name)`; the attach cookie is the [`EnvFn`].
#[uprobe]
pub fn env_get(ctx: ProbeContext) -> u32 {
    let _ = try_env_get(&ctx);
    0
}

fn try_env_get(ctx: &ProbeContext) -> Result<(), i64> {
    let cfg = config();
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if !in_scope(tgid, cfg) {
        return Ok(());
    }
    let regs = unsafe { &*(ctx.as_ptr() as *const aya_ebpf::bindings::pt_regs) };
    let src = regs.rdi;
    if src == 0 {
        return Ok(());
    }
    let mut name = [0u8; ENV_NAME_MAX];
    // Length with the NUL; a name longer than the buffer is cut (and NUL-terminated).
    let n = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user_str(
            name.as_mut_ptr() as *mut core::ffi::c_void,
            ENV_NAME_MAX as u32,
            src as *const core::ffi::c_void,
        )
    };
    if n <= 1 {
        return Ok(());
    }
    let len = (n - 1) as usize;
    let mut h = FNV_OFFSET;
    for i in 0..ENV_NAME_MAX {
        if i >= len {
            break;
        }
        h = fnv_step(h, name[i]);
    }
    let key = EnvSeenKey {
        tgid,
        _pad: 0,
        hash: h,
    };
    let mm = if cfg.off.task_mm != 0 {
        kread_u64(current_task(), cfg.off.task_mm)
    } else {
        0
    };
    if let Some(seen) = unsafe { ENV_SEEN.get(&key) } {
        if *seen == mm {
            return Ok(());
        }
    }
    let _ = ENV_SEEN.insert(&key, &mm, 0);
    let ev = EnvEvent {
        hdr: header(Op::EnvRead),
        func: unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32,
        len: len as u32,
        name,
    };
    let flags = wake_flag(cfg, core::mem::size_of::<EnvEvent>() as u64, ev.hdr.ts_ns);
    if EVENTS.output::<EnvEvent>(&ev, flags).is_err() {
        count(counter::RINGBUF_FULL);
    }
    Ok(())
}
