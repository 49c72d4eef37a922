//! Reads container logs (CRI format, one file per attempt) the way `kubectl logs` asks for them:
//! tail, since, timestamps, byte limit, and follow until the container stops. The shim rotates
//! a log by size (`N.log` → `N.log.1` → `N.log.2` …): reads start from the oldest rotated file,
//! and a follower that sees its file rotated away finishes it, reads any newer rotated files,
//! then continues with the new `N.log`, so no line is lost.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;

/// One CRI log line: `<RFC3339Nano> <stdout|stderr> <F|P> <content>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub timestamp: &'a str,
    pub stream: &'a str,
    /// `false` for a partial line (`P`): no newline follows its content.
    pub full: bool,
    pub content: &'a str,
}

/// Parses one CRI line (without its trailing newline).
pub fn parse_line(line: &str) -> Option<LogLine<'_>> {
    let mut parts = line.splitn(4, ' ');
    let timestamp = parts.next()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or("");
    Some(LogLine {
        timestamp,
        stream,
        full: !tag.starts_with('P'),
        content,
    })
}

/// What to return, from the request.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub tail_lines: Option<i64>,
    pub since: Option<jiff::Timestamp>,
    pub timestamps: bool,
    pub limit_bytes: Option<i64>,
    pub follow: bool,
}

fn render(line: &LogLine<'_>, opts: &LogOptions, out: &mut Vec<u8>) -> bool {
    if let Some(since) = opts.since
        && let Ok(ts) = line.timestamp.parse::<jiff::Timestamp>()
        && ts < since
    {
        return false;
    }
    if opts.timestamps {
        out.extend_from_slice(line.timestamp.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(line.content.as_bytes());
    if line.full {
        out.push(b'\n');
    }
    true
}

/// Renders the complete lines of `text` (tail applied), returning the bytes.
pub fn render_all(text: &str, opts: &LogOptions) -> Vec<u8> {
    let lines: Vec<LogLine<'_>> = text.lines().filter_map(parse_line).collect();
    let skip = match opts.tail_lines {
        Some(n) if n >= 0 => lines.len().saturating_sub(n as usize),
        _ => 0,
    };
    let mut out = Vec::new();
    for line in &lines[skip..] {
        render(line, opts, &mut out);
    }
    out
}

/// The rotated files of `path`, newest first, with their inode numbers.
fn rotations(path: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for n in 1.. {
        let p = crate::runtime::shim::logs::rotated(path, n);
        match std::fs::metadata(&p) {
            Ok(meta) => out.push((p, meta.ino())),
            Err(_) => break,
        }
    }
    out
}

/// The content of the rotated files of `path` written after the file with inode `after` (all
/// of them when it is not among them, or `None`), oldest first.
async fn rotated_content(path: &Path, after: Option<u64>) -> Vec<u8> {
    let mut files = rotations(path);
    if let Some(ino) = after
        && let Some(i) = files.iter().position(|(_, n)| *n == ino)
    {
        files.truncate(i);
    }
    let mut out = Vec::new();
    for (p, ino) in files.into_iter().rev() {
        if Some(ino) != after {
            out.extend(tokio::fs::read(&p).await.unwrap_or_default());
        }
    }
    out
}

async fn inode(file: &tokio::fs::File) -> Option<u64> {
    file.metadata().await.ok().map(|m| m.ino())
}

/// Removes a log file and its rotations.
pub fn remove_all(path: &Path) {
    for (p, _) in rotations(path) {
        let _ = std::fs::remove_file(p);
    }
    let _ = std::fs::remove_file(path);
}

/// Streams a log file: what is there now, then (with `follow`) what is appended, until
/// `still_running` says the writer is gone and the file stopped growing. Honors `limit_bytes`.
pub fn stream(
    path: PathBuf,
    opts: LogOptions,
    still_running: impl Fn() -> bool + Send + 'static,
) -> tokio::sync::mpsc::Receiver<Result<Bytes, String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) => {
                let _ = tx
                    .send(Err(format!(
                        "failed to open log file {}: {e}",
                        path.display()
                    )))
                    .await;
                return;
            }
        };
        let mut sent: i64 = 0;
        let limit = opts.limit_bytes.filter(|l| *l > 0);
        let mut ino = inode(&file).await;
        // Older lines first: the rotated files (except ours, if it was just rotated away).
        let mut buf = rotated_content(&path, ino).await;
        let mut first = true;
        loop {
            let mut chunk = Vec::new();
            if file.read_to_end(&mut chunk).await.is_err() {
                return;
            }
            if chunk.is_empty()
                && opts.follow
                && let Ok(meta) = tokio::fs::metadata(&path).await
                && Some(meta.ino()) != ino
            {
                // Rotated: finish our file, read the rotations after it, switch to the new one.
                let _ = file.read_to_end(&mut chunk).await;
                chunk.extend(rotated_content(&path, ino).await);
                match tokio::fs::File::open(&path).await {
                    Ok(f) => {
                        file = f;
                        ino = inode(&file).await;
                        let _ = file.read_to_end(&mut chunk).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "reopening a rotated log failed"),
                }
            }
            buf.extend_from_slice(&chunk);
            // Only whole lines are rendered; a trailing fragment waits for its newline.
            let cut = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if cut > 0 {
                let text = String::from_utf8_lossy(&buf[..cut]).into_owned();
                buf.drain(..cut);
                // Only the first read applies tailLines; later reads are new lines.
                let mut out = if first {
                    render_all(&text, &opts)
                } else {
                    let mut o = Vec::new();
                    for line in text.lines().filter_map(parse_line) {
                        render(&line, &opts, &mut o);
                    }
                    o
                };
                if let Some(limit) = limit {
                    out.truncate((limit - sent).max(0) as usize);
                }
                sent += out.len() as i64;
                if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                    return;
                }
                if limit.is_some_and(|l| sent >= l) {
                    return;
                }
            }
            first = false;
            if !opts.follow || tx.is_closed() {
                return;
            }
            if chunk.is_empty() && !still_running() {
                // One more read after the writer stopped, so nothing written last is lost.
                let mut tail = Vec::new();
                let _ = file.read_to_end(&mut tail).await;
                if tail.is_empty() {
                    return;
                }
                buf.extend_from_slice(&tail);
                continue;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-01-01T00:00:01.000000000Z stdout F one\n\
                       2026-01-01T00:00:02.000000000Z stderr P tw\n\
                       2026-01-01T00:00:02.100000000Z stderr F o\n\
                       2026-01-01T00:00:03.000000000Z stdout F three\n";

    #[test]
    fn renders_lines_partial_lines_and_timestamps() {
        assert_eq!(
            render_all(LOG, &LogOptions::default()),
            b"one\ntwo\nthree\n"
        );
        let ts = render_all(
            LOG,
            &LogOptions {
                tail_lines: Some(1),
                timestamps: true,
                ..Default::default()
            },
        );
        assert_eq!(
            String::from_utf8(ts).unwrap(),
            "2026-01-01T00:00:03.000000000Z three\n"
        );
        let since = "2026-01-01T00:00:02.050Z".parse().unwrap();
        assert_eq!(
            render_all(
                LOG,
                &LogOptions {
                    since: Some(since),
                    ..Default::default()
                }
            ),
            b"o\nthree\n"
        );
        assert_eq!(
            render_all(
                LOG,
                &LogOptions {
                    tail_lines: Some(0),
                    ..Default::default()
                }
            ),
            b""
        );
    }

    #[tokio::test]
    async fn follow_delivers_appended_lines_then_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, "2026-01-01T00:00:01Z stdout F a\n").unwrap();
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = running.clone();
        let mut rx = stream(
            path.clone(),
            LogOptions {
                follow: true,
                ..Default::default()
            },
            move || flag.load(std::sync::atomic::Ordering::SeqCst),
        );
        assert_eq!(
            rx.recv().await.unwrap().unwrap(),
            Bytes::from_static(b"a\n")
        );
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"2026-01-01T00:00:02Z stdout F b\n").unwrap();
        assert_eq!(
            rx.recv().await.unwrap().unwrap(),
            Bytes::from_static(b"b\n")
        );
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(
            rx.recv().await.is_none(),
            "stream ends once the container stopped"
        );
    }

    #[tokio::test]
    async fn limit_bytes_cuts_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, LOG).unwrap();
        let mut rx = stream(
            path,
            LogOptions {
                limit_bytes: Some(5),
                ..Default::default()
            },
            || false,
        );
        assert_eq!(
            rx.recv().await.unwrap().unwrap(),
            Bytes::from_static(b"one\nt")
        );
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn reads_and_follows_across_rotations() {
        use crate::runtime::shim::logs::rotated;
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let line = |t: &str| format!("2026-01-01T00:00:01Z stdout F {t}\n");
        std::fs::write(rotated(&path, 2), line("a")).unwrap();
        std::fs::write(rotated(&path, 1), line("b")).unwrap();
        std::fs::write(&path, line("c")).unwrap();
        let all = stream(path.clone(), LogOptions::default(), || false);
        let got = collect(all).await;
        assert_eq!(got, "a\nb\nc\n");

        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = running.clone();
        let mut rx = stream(
            path.clone(),
            LogOptions {
                follow: true,
                tail_lines: Some(1),
                ..Default::default()
            },
            move || flag.load(std::sync::atomic::Ordering::SeqCst),
        );
        assert_eq!(
            rx.recv().await.unwrap().unwrap(),
            Bytes::from_static(b"c\n")
        );
        // Two rotations while the follower sleeps: c's file → .1 → .2.
        let append = |p: &Path, t: &str| {
            let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
            f.write_all(line(t).as_bytes()).unwrap();
        };
        append(&path, "d");
        std::fs::rename(rotated(&path, 1), rotated(&path, 2)).unwrap();
        std::fs::rename(&path, rotated(&path, 1)).unwrap();
        std::fs::write(&path, line("e")).unwrap();
        std::fs::rename(rotated(&path, 2), rotated(&path, 3)).unwrap();
        std::fs::rename(rotated(&path, 1), rotated(&path, 2)).unwrap();
        std::fs::rename(&path, rotated(&path, 1)).unwrap();
        std::fs::write(&path, line("f")).unwrap();
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(collect(rx).await, "d\ne\nf\n");
    }

    async fn collect(mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>) -> String {
        let mut out = String::new();
        while let Some(chunk) = rx.recv().await {
            out.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
        out
    }
}
