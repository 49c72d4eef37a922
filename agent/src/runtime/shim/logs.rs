//! Copies a container's stdout/stderr into its log file in the CRI format
//! (`<RFC 3339 nano time> <stream> <F|P> <text>`, one log line per output line), rotating it
//! by size: `N.log` is renamed to `N.log.1` (older ones shift to `.2` …) and a fresh `N.log`
//! started, keeping at most `max_files` files in all (the kubelet's containerLogMaxSize /
//! containerLogMaxFiles).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The kubelet's defaults: 10 MiB per file, 5 files.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 20;
pub const DEFAULT_MAX_FILES: u32 = 5;

/// The `n`th rotated file of `path` (1 = newest).
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// A log file that rotates itself when a record would take it past `max_size` (0: never).
pub struct LogFile {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    max_size: u64,
    max_files: u32,
}

impl LogFile {
    /// Opens (appending to) `path`.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> std::io::Result<LogFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            // The current file and at least one rotated one, as the kubelet requires.
            max_files: max_files.max(2),
        })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let _ = std::fs::remove_file(rotated(&self.path, self.max_files - 1));
        for n in (1..self.max_files - 1).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    /// Writes one whole record, rotating first if it would overflow the file.
    pub fn write_record(&mut self, record: &[u8]) -> std::io::Result<()> {
        let len = record.len() as u64;
        if self.max_size > 0
            && self.size > 0
            && self.size + len > self.max_size
            && let Err(e) = self.rotate()
        {
            tracing::warn!(error = %e, "rotating the container log failed");
        }
        self.file.write_all(record)?;
        self.size += len;
        Ok(())
    }
}

/// Longest log line before it is split into partial (`P`) lines, like containerd's 16 KiB.
const MAX_LINE: usize = 16 * 1024;

/// The running copier threads.
pub struct Copiers(Vec<JoinHandle<()>>);

impl Copiers {
    /// Waits until both streams reached EOF (all container processes closed them).
    pub fn join(self) {
        for handle in self.0 {
            let _ = handle.join();
        }
    }
}

/// Starts one thread per stream.
pub fn spawn_copiers(log: LogFile, stdout: OwnedFd, stderr: OwnedFd) -> Copiers {
    let log = Arc::new(Mutex::new(log));
    let mut handles = Vec::new();
    for (fd, stream) in [(stdout, "stdout"), (stderr, "stderr")] {
        let log = Arc::clone(&log);
        let spawned = std::thread::Builder::new()
            .name(format!("log-{stream}"))
            .spawn(move || copy(std::fs::File::from(fd), stream, &log));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => tracing::error!(stream, error = %e, "cannot start the log copier"),
        }
    }
    Copiers(handles)
}

fn copy(mut input: impl Read, stream: &str, log: &Mutex<LogFile>) {
    let mut splitter = LineSplitter::default();
    let mut buf = [0u8; 8192];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(stream, error = %e, "reading container output failed");
                break;
            }
        };
        for (line, full) in splitter.push(&buf[..n]) {
            write_line(log, stream, &line, full);
        }
    }
    if let Some(rest) = splitter.finish() {
        write_line(log, stream, &rest, true);
    }
}

fn write_line(log: &Mutex<LogFile>, stream: &str, line: &[u8], full: bool) {
    let mut record = format_prefix(jiff::Timestamp::now(), stream, full).into_bytes();
    record.extend_from_slice(line);
    record.push(b'\n');
    let mut file = log.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = file.write_record(&record) {
        tracing::warn!(stream, error = %e, "writing the container log failed");
    }
}

/// `2024-01-02T03:04:05.123456789Z stdout F ` (always nine fraction digits).
pub fn format_prefix(at: jiff::Timestamp, stream: &str, full: bool) -> String {
    format!("{at:.9} {stream} {} ", if full { 'F' } else { 'P' })
}

/// Splits a byte stream into lines: complete lines (without `\n`) are full; a line longer
/// than [`MAX_LINE`] is emitted in partial pieces.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; returns the lines they complete, each with whether it is full.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.pending.extend_from_slice(&bytes[..i]);
                    out.push((std::mem::take(&mut self.pending), true));
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.pending.extend_from_slice(bytes);
                    bytes = &[];
                }
            }
            while self.pending.len() >= MAX_LINE {
                let rest = self.pending.split_off(MAX_LINE);
                out.push((std::mem::replace(&mut self.pending, rest), false));
            }
        }
        out
    }

    /// What is left at EOF (a last line without newline), as a full line.
    pub fn finish(self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then_some(self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_cri_format() {
        let at: jiff::Timestamp = "2024-01-02T03:04:05.1Z".parse().unwrap();
        assert_eq!(
            format_prefix(at, "stdout", true),
            "2024-01-02T03:04:05.100000000Z stdout F "
        );
        assert_eq!(
            format_prefix(at, "stderr", false),
            "2024-01-02T03:04:05.100000000Z stderr P "
        );
    }

    #[test]
    fn splits_lines_across_chunks_and_long_lines_into_partials() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"hel"), vec![]);
        assert_eq!(s.push(b"lo\nwor"), vec![(b"hello".to_vec(), true)]);
        assert_eq!(
            s.push(b"ld\n\n"),
            vec![(b"world".to_vec(), true), (Vec::new(), true)]
        );
        let long = vec![b'x'; MAX_LINE + 10];
        let out = s.push(&long);
        assert_eq!(out.len(), 1);
        assert!(!out[0].1);
        assert_eq!(out[0].0.len(), MAX_LINE);
        assert_eq!(s.push(b"\n"), vec![(vec![b'x'; 10], true)]);
        s.push(b"tail");
        assert_eq!(s.finish(), Some(b"tail".to_vec()));
    }

    #[test]
    fn copy_writes_one_record_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = Mutex::new(LogFile::open(&path, 0, 5).unwrap());
        copy(&b"a\nb"[..], "stdout", &log);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" stdout F a"), "{text}");
        assert!(lines[1].ends_with(" stdout F b"), "{text}");
        assert_eq!(
            lines[0].split(' ').next().unwrap().len(),
            "2024-01-02T03:04:05.123456789Z".len()
        );
    }

    #[test]
    fn rotation_keeps_max_files_and_every_recent_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        // Each record is 40 + 3 bytes; 130 bytes hold three of them.
        let log = Mutex::new(LogFile::open(&path, 130, 3).unwrap());
        let input: String = (0..10).map(|i| format!("l{i}\n")).collect();
        copy(input.as_bytes(), "stdout", &log);
        let read = |p: &Path| -> Vec<String> {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(|l| l.rsplit(' ').next().unwrap().to_string())
                .collect()
        };
        assert_eq!(read(&path), vec!["l9"]);
        assert_eq!(read(&rotated(&path, 1)), vec!["l6", "l7", "l8"]);
        assert_eq!(read(&rotated(&path, 2)), vec!["l3", "l4", "l5"]);
        assert!(!rotated(&path, 3).exists(), "at most 3 files in all");
        for p in [path.clone(), rotated(&path, 1)] {
            assert!(std::fs::metadata(&p).unwrap().len() <= 130);
        }
    }
}
