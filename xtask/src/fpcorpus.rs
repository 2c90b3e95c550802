//! The false-positive corpus: real source code that holds no credentials, collected from
//! the machine (C headers, the crates of the cargo registry, Python's standard library,
//! and — for the benchmark — packages installed from PyPI and npm into a cache). Test code
//! and fixtures are left out: crypto libraries' tests carry real private keys and secret
//! scanners' test suites carry planted tokens, which are true finds, not false ones.
//! Shared by `cargo xtask bench-scan` and the sensor's false-positive test.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Directory names whose contents are tests, fixtures or vendored test data.
const TEST_DIRS: &[&str] = &[
    "test",
    "tests",
    "testdata",
    "test_data",
    "testing",
    "testutil",
    "testutils",
    "fixtures",
    "fixture",
    "__tests__",
    "__mocks__",
    "__snapshots__",
    "spec",
    "specs",
    "e2e",
    "examples",
    "example",
    "benches",
    "docs",
    "doc",
    ".git",
];

/// Source and configuration files worth scanning (what a workspace writes out).
const EXTENSIONS: &[&str] = &[
    "rs",
    "h",
    "hpp",
    "c",
    "cc",
    "cpp",
    "py",
    "pyi",
    "js",
    "mjs",
    "cjs",
    "ts",
    "mts",
    "cts",
    "jsx",
    "tsx",
    "go",
    "java",
    "kt",
    "rb",
    "php",
    "sh",
    "bash",
    "toml",
    "yaml",
    "yml",
    "json",
    "ini",
    "cfg",
    "conf",
    "properties",
    "xml",
    "gradle",
    "tf",
    "sql",
];

/// Test code by its path: a test directory anywhere in it, or a test file name
/// (`x_test.go`, `test_x.py`, `x.test.ts`, `x.spec.js`, `conftest.py`).
pub fn is_test_path(p: &Path) -> bool {
    if p.components().any(|c| {
        let s = c.as_os_str().to_string_lossy().to_ascii_lowercase();
        TEST_DIRS.contains(&s.as_str())
    }) {
        return true;
    }
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let stem = name.split('.').next().unwrap_or("");
    stem.starts_with("test_")
        || stem.ends_with("_test")
        || stem.ends_with("_tests")
        || stem.ends_with("_spec")
        || stem == "test"
        || stem == "tests"
        || stem == "conftest"
        || name.contains(".test.")
        || name.contains(".spec.")
}

fn wanted(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e))
        && !is_test_path(p)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() && !is_test_path(&p) => walk(&p, out),
            Ok(t) if t.is_file() && wanted(&p) => out.push(p),
            _ => {}
        }
    }
}

/// A source file's text without its unit tests: Rust modules put them after
/// `#[cfg(test)]`.
fn without_tests(p: &Path, mut data: Vec<u8>) -> Vec<u8> {
    if p.extension().is_some_and(|e| e == "rs") {
        if let Some(at) = memmem(&data, b"#[cfg(test)]") {
            data.truncate(at);
        }
    }
    data
}

fn memmem(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What [`collect`] gathered from one root.
#[derive(Debug, Default, Clone)]
pub struct Part {
    /// The root.
    pub root: PathBuf,
    /// Files taken.
    pub files: usize,
    /// Bytes taken.
    pub bytes: usize,
}

/// Concatenates up to `limit` bytes of each root's source files (tests left out) into
/// 4 MiB files in `dir` (one newline between files), returning what each root gave.
pub fn collect(roots: &[(PathBuf, usize)], dir: &Path) -> std::io::Result<Vec<Part>> {
    std::fs::create_dir_all(dir)?;
    let mut parts = Vec::new();
    let mut buf = Vec::new();
    let mut n = 0;
    let mut flush = |buf: &mut Vec<u8>, force: bool| -> std::io::Result<()> {
        if buf.len() >= 4 << 20 || (force && !buf.is_empty()) {
            std::fs::File::create(dir.join(format!("part{n:04}.src")))?.write_all(buf)?;
            buf.clear();
            n += 1;
        }
        Ok(())
    };
    for (root, limit) in roots {
        let mut files = Vec::new();
        walk(root, &mut files);
        let mut part = Part {
            root: root.clone(),
            ..Part::default()
        };
        for f in files {
            if part.bytes >= *limit {
                break;
            }
            let Ok(data) = std::fs::read(&f) else {
                continue;
            };
            // Generated or minified blobs over 4 MiB are not what anyone writes.
            if data.len() > 4 << 20 || data.contains(&0) {
                continue;
            }
            let data = without_tests(&f, data);
            part.bytes += data.len() + 1;
            part.files += 1;
            buf.extend_from_slice(&data);
            buf.push(b'\n');
            flush(&mut buf, false)?;
        }
        parts.push(part);
    }
    flush(&mut buf, true)?;
    Ok(parts)
}

/// The roots on this machine: C headers, the cargo registry's crates, and Python's
/// standard library (all present where the project builds and tests).
pub fn system_roots() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from("/usr/include")];
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
    {
        roots.push(home.join("registry/src"));
    }
    if let Ok(rd) = std::fs::read_dir("/usr/lib") {
        let mut py: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("python3"))
            })
            .collect();
        py.sort();
        roots.extend(py);
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_code_is_recognised_by_its_path() {
        for p in [
            "crate/tests/a.rs",
            "pkg/test/x.js",
            "a/b/__tests__/c.tsx",
            "x/foo_test.go",
            "x/test_foo.py",
            "x/foo.test.ts",
            "x/foo.spec.js",
            "x/conftest.py",
            "crypto/dsa/dsa_test.cc",
        ] {
            assert!(is_test_path(Path::new(p)), "{p}");
        }
        for p in [
            "src/lib.rs",
            "pkg/latest/x.py",
            "contest/a.c",
            "x/attestation.rs",
        ] {
            assert!(!is_test_path(Path::new(p)), "{p}");
        }
    }
}
