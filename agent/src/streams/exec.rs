//! `kubectl exec` on the node: runs the command through [`Runtime::spawn_exec`] and relays
//! stdin (channel 0) from the control plane, stdout (1) and stderr (2) to it, then the exit
//! code. The command is killed when the control plane goes away.

use skiff_proto::node::{ExecRequest, SessionFrame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use super::{CLOSE_GRACE, DRAIN_GRACE, Outbound, fail, open_session};
use crate::pods::PodManager;
use crate::runtime::Runtime;

/// Answers an exec request with a `Session`.
pub fn serve_exec(
    manager: &PodManager,
    mut client: crate::node::Client,
    stream_id: String,
    req: ExecRequest,
) {
    let target = manager
        .log_target(&req.uid, &req.container, false)
        .and_then(|(_, id)| id);
    let deps = manager.deps().clone();
    tokio::spawn(async move {
        let Some((out, inbound)) = open_session(&mut client, stream_id).await else {
            return;
        };
        let Some(id) = target else {
            let msg = format!(
                "container {} in pod {} is not running",
                req.container, req.pod
            );
            return fail(out, inbound, msg).await;
        };
        run(&deps.runtime, &id, req, out, inbound).await;
    });
}

async fn run(
    runtime: &Runtime,
    id: &str,
    req: ExecRequest,
    out: Outbound,
    mut inbound: tonic::Streaming<SessionFrame>,
) {
    let spawned = runtime.spawn_exec_with(id, &req.command, None, req.stdin, req.tty);
    let mut session = match spawned {
        Ok(s) => s,
        Err(e) => return fail(out, inbound, e.to_string()).await,
    };
    // Both pipes are always drained (a command writing to a closed pipe would die of SIGPIPE);
    // the API server drops the channels the client did not ask for.
    let (stdout, stderr) = (session.stdout.take(), session.stderr.take());
    // With a tty requested, stderr joins stdout as a terminal would show it.
    let stderr_channel = if req.tty { 1 } else { 2 };
    let pump_out = tokio::spawn(pump(stdout, 1, out.clone()));
    let pump_err = tokio::spawn(pump(stderr, stderr_channel, out.clone()));
    let mut stdin = session.stdin.take();
    let mut resize = session.resize.take();
    let mut input = tokio::spawn(async move {
        // Ends when the control plane closes the session (the client went away).
        while let Ok(Some(frame)) = inbound.message().await {
            if frame.width > 0 && frame.height > 0 {
                if let Some(w) = resize.as_mut() {
                    let line = format!("{} {}\n", frame.width, frame.height);
                    if w.write_all(line.as_bytes()).await.is_err() {
                        resize = None;
                    }
                }
                continue;
            }
            if frame.channel != 0 {
                continue;
            }
            if frame.close {
                stdin = None;
            } else if let Some(w) = stdin.as_mut()
                && !frame.data.is_empty()
                && w.write_all(&frame.data).await.is_err()
            {
                stdin = None;
            }
        }
    });
    let exit = tokio::select! {
        r = session.wait() => r,
        _ = &mut input => {
            // Dropping the session (inside the wait future) kills the command.
            tracing::debug!(container = %id, "exec client went away");
            pump_out.abort();
            pump_err.abort();
            return;
        }
    };
    for pump in [pump_out, pump_err] {
        let _ = tokio::time::timeout(DRAIN_GRACE, pump).await;
    }
    match exit {
        Ok(code) => out.end(Some(code), None).await,
        Err(e) => out.end(None, Some(e.to_string())).await,
    }
    // The control plane closes the session once it has the last frame.
    if tokio::time::timeout(CLOSE_GRACE, &mut input).await.is_err() {
        input.abort();
    }
}

/// Relays one output pipe to `channel` until EOF.
async fn pump(stream: Option<pipe::Receiver>, channel: u32, out: Outbound) {
    let Some(mut stream) = stream else { return };
    relay_reader(&mut stream, channel, &out).await;
}

/// Sends what `r` yields on `channel` until EOF, an error, or the control plane is gone.
pub(super) async fn relay_reader<R: AsyncRead + Unpin>(r: &mut R, channel: u32, out: &Outbound) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(n) if n > 0 => {
                if !out.data(channel, &buf[..n]).await {
                    return;
                }
            }
            _ => return,
        }
    }
}
