//! Reads container logs (CRI format, one file per attempt) the way `kubectl logs` asks for them:
//! tail, since, timestamps, byte limit, and follow until the container stops.

use std::path::PathBuf;
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
        let mut buf = Vec::new();
        let mut first = true;
        loop {
            let mut chunk = Vec::new();
            if file.read_to_end(&mut chunk).await.is_err() {
                return;
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
}
