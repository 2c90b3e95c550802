//! tracefs: where it is mounted, mounting it when it is not, and reading tracepoint format
//! files (field offsets the probes need that differ between kernel versions).

use std::path::{Path, PathBuf};

/// Errors of reading tracefs.
#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    /// A tracepoint format file could not be read or lacks a field.
    #[error("tracepoint format {path}: {reason}")]
    Format {
        /// The format file.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

/// Mount point of tracefs, if mounted.
pub fn tracefs_root() -> Option<PathBuf> {
    for p in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        let p = Path::new(p);
        if p.join("events").is_dir() {
            return Some(p.to_path_buf());
        }
    }
    None
}

/// Mounts tracefs at /sys/kernel/tracing when it is not mounted (needs root).
pub fn ensure_tracefs() -> Result<PathBuf, String> {
    if let Some(p) = tracefs_root() {
        return Ok(p);
    }
    let target = c"/sys/kernel/tracing";
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "tracefs is not mounted and mounting it at /sys/kernel/tracing failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    tracefs_root().ok_or_else(|| "tracefs mounted but has no events directory".to_string())
}

/// Offset of `field` in a tracepoint's format file.
pub fn tracepoint_field_offset(
    category: &str,
    name: &str,
    field: &str,
) -> Result<u32, TracefsError> {
    let path = tracefs_root()
        .map(|r| r.join("events").join(category).join(name).join("format"))
        .ok_or_else(|| TracefsError::Format {
            path: "tracefs".into(),
            reason: "tracefs is not mounted".into(),
        })?;
    let text = std::fs::read_to_string(&path).map_err(|e| TracefsError::Format {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse_format_offset(&text, field).ok_or_else(|| TracefsError::Format {
        path: path.display().to_string(),
        reason: format!("no field `{field}`"),
    })
}

/// Parses `field:<type> <field>;\toffset:<n>;` lines of a tracepoint format file.
pub fn parse_format_offset(text: &str, field: &str) -> Option<u32> {
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = rest.split(';');
        let decl = parts.next()?.trim();
        let fname = decl
            .rsplit(|c: char| c.is_whitespace() || c == '*')
            .next()?;
        let fname = fname.split('[').next()?;
        if fname != field {
            continue;
        }
        for p in parts {
            if let Some(off) = p.trim().strip_prefix("offset:") {
                return off.trim().parse().ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_offsets_parse_both_layouts() {
        let new = "\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;\n\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";
        assert_eq!(parse_format_offset(new, "child_pid"), Some(20));
        assert_eq!(parse_format_offset(new, "parent_pid"), Some(12));
        let old = "\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;\n\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;\n";
        assert_eq!(parse_format_offset(old, "child_pid"), Some(44));
        assert_eq!(parse_format_offset(old, "child_comm"), Some(28));
        assert_eq!(parse_format_offset(old, "nope"), None);
    }
}
