//! `file`: alerts as lines appended to a file (mode 0600), fsync'd before they are
//! acknowledged, rotated by size: when the next line would take the file past `max_bytes`
//! it becomes `path.1` (older ones shift up to `path.<keep>`, the oldest is deleted).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Item, OutputConfig, SendError, Sink};

/// File output settings.
#[derive(Clone, Debug)]
pub struct FileConfig {
    pub path: PathBuf,
    /// Rotation threshold (default 100 MiB).
    pub max_bytes: u64,
    /// Rotated files kept (default 5; 0 = truncate instead).
    pub keep: u32,
}

impl FileConfig {
    /// From a validated `outputs` entry.
    pub fn from_output(c: &OutputConfig) -> FileConfig {
        FileConfig {
            path: c.path.clone().unwrap_or_default(),
            max_bytes: c.max_bytes.unwrap_or(100 << 20),
            keep: c.keep.unwrap_or(5),
        }
    }
}

/// A rotating file.
pub struct FileSink {
    cfg: FileConfig,
    file: Option<(std::fs::File, u64)>,
}

fn rotated(p: &Path, n: u32) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl FileSink {
    /// A sink writing to `cfg.path` (opened on first send).
    pub fn new(cfg: FileConfig) -> FileSink {
        FileSink { cfg, file: None }
    }

    fn open(&mut self) -> std::io::Result<&mut (std::fs::File, u64)> {
        if self.file.is_none() {
            if let Some(dir) = self.cfg.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&self.cfg.path)?;
            let len = f.metadata()?.len();
            self.file = Some((f, len));
        }
        Ok(self.file.as_mut().expect("opened"))
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some((f, _)) = self.file.take() {
            f.sync_all()?;
        }
        let p = &self.cfg.path;
        if self.cfg.keep == 0 {
            return std::fs::remove_file(p);
        }
        for n in (1..self.cfg.keep).rev() {
            let from = rotated(p, n);
            if from.exists() {
                std::fs::rename(&from, rotated(p, n + 1))?;
            }
        }
        std::fs::rename(p, rotated(p, 1))
    }

    fn write(&mut self, items: &[Item]) -> std::io::Result<()> {
        for it in items {
            let need = it.line.len() as u64 + 1;
            let size = self.open()?.1;
            if size > 0 && size + need > self.cfg.max_bytes {
                self.rotate()?;
            }
            let (f, size) = self.open()?;
            let mut line = Vec::with_capacity(it.line.len() + 1);
            line.extend_from_slice(&it.line);
            line.push(b'\n');
            f.write_all(&line)?;
            *size += need;
        }
        self.open()?.0.sync_data()
    }
}

impl Sink for FileSink {
    fn batch_max(&self) -> usize {
        500
    }

    fn send(&mut self, items: &[Item]) -> Result<(), SendError> {
        self.write(items).map_err(|e| {
            // Reopen next time (the file may have been moved or the disk remounted).
            self.file = None;
            SendError::transient(format!("{}: {e}", self.cfg.path.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_keeping_n_files() {
        let dir = std::env::temp_dir().join(format!("filesink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/alerts.jsonl");
        let mut s = FileSink::new(FileConfig {
            path: path.clone(),
            max_bytes: 100,
            keep: 2,
        });
        let item = |i: usize| Item {
            id: format!("{i}"),
            alert: serde_json::Value::Null,
            line: format!("{{\"n\":{i:04},\"pad\":\"{}\"}}", "x".repeat(20)).into_bytes(),
        };
        for i in 0..10 {
            s.send(&[item(i)]).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        // 40-byte lines, 100-byte files: two lines per file, newest in `path`.
        assert_eq!(read(&path).lines().count(), 2);
        assert!(read(&path).contains("0009"));
        assert!(read(&rotated(&path, 1)).contains("0007"));
        assert!(read(&rotated(&path, 2)).contains("0005"));
        assert!(!rotated(&path, 3).exists());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
