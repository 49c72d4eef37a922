//! The terminal half of the exec child (`kubectl exec -t`): libcontainer opens the pty inside
//! the container and sends its master over a console socket this process listens on; a relay
//! thread (started after libcontainer is done, so the clone happens single-threaded) then moves
//! bytes between the master and the agent's pipes, and applies resize lines (`"<cols> <rows>\n"`
//! on [`RESIZE_FD`]) with TIOCSWINSZ.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcontainer::oci_spec::runtime::Process;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// The fd the agent writes terminal sizes to (tty mode only).
pub const RESIZE_FD: i32 = 7;

/// A console socket: where libcontainer sends the pty master. Removed on drop.
pub struct Console {
    listener: UnixListener,
    path: PathBuf,
}

impl Console {
    /// Listens on a short path (socket paths are limited to 108 bytes).
    pub fn listen() -> Result<Console, String> {
        let path = std::env::temp_dir().join(format!("skiff-tty-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| format!("listen on console socket {}: {e}", path.display()))?;
        Ok(Console { listener, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master libcontainer sent (it does so before the command starts).
    pub fn receive_master(&self, timeout: Duration) -> Result<OwnedFd, String> {
        self.listener
            .set_nonblocking(true)
            .map_err(|e| format!("console socket: {e}"))?;
        let deadline = Instant::now() + timeout;
        let (conn, _) = loop {
            match self.listener.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err("no pty master on the console socket".into());
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(format!("console socket: {e}")),
            }
        };
        conn.set_nonblocking(false)
            .map_err(|e| format!("console socket: {e}"))?;
        let mut name = [0u8; 64];
        let mut iov = [IoSliceMut::new(&mut name)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| format!("receive the pty master: {e}"))?;
        for cmsg in msg
            .cmsgs()
            .map_err(|e| format!("pty master message: {e}"))?
        {
            if let ControlMessageOwned::ScmRights(fds) = cmsg
                && let Some(&fd) = fds.first()
            {
                // SAFETY: SCM_RIGHTS just gave this process a new fd that nothing else owns.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        Err("the console socket message carried no fd".into())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes the process for the tenant builder: the container's own (user, env, cwd,
/// capabilities) with `argv` and a terminal. Returns its path (the caller removes it).
pub fn write_process(dir: &Path, process: &Process, argv: Vec<String>) -> Result<PathBuf, String> {
    let mut p = process.clone();
    p.set_args(Some(argv));
    p.set_terminal(Some(true));
    p.set_console_size(None);
    let path = dir.join(format!("exec-process-{}.json", std::process::id()));
    let json = serde_json::to_vec(&p).map_err(|e| format!("encode the exec process: {e}"))?;
    std::fs::write(&path, json).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(path)
}

/// Parses one resize line, `"<cols> <rows>"`.
pub fn parse_size(line: &str) -> Option<(u16, u16)> {
    let mut it = line.split_whitespace().map(|n| n.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

fn set_size(master: &OwnedFd, cols: u16, rows: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which is valid for the call.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

fn read_fd(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    match nix::unistd::read(fd.as_raw_fd(), buf) {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Relays until the pty closes (the command and everything holding the terminal ended):
/// `input` → master, master → `output`, size lines on `resize` → TIOCSWINSZ.
pub fn relay(master: OwnedFd, input: OwnedFd, output: OwnedFd, resize: Option<OwnedFd>) {
    let mut input = Some(input);
    let mut resize = resize;
    let mut pending = String::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if let Some(i) = &input {
            fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
        }
        let input_slot = input.as_ref().map(|_| 1);
        if let Some(r) = &resize {
            fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
        }
        let resize_slot = resize.as_ref().map(|_| fds.len() - 1);
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            // EIO once the last slave holder is gone: the session is over.
            let Some(n) = read_fd(&master, &mut buf) else {
                return;
            };
            if !write_all(&output, &buf[..n]) {
                return;
            }
        }
        if let Some(slot) = input_slot
            && ready[slot]
        {
            let fd = input.as_ref().expect("input is polled only when present");
            match read_fd(fd, &mut buf) {
                Some(n) => {
                    let _ = write_all(&master, &buf[..n]);
                }
                None => {
                    // stdin closed: end-of-file for the terminal's reader (^D).
                    let _ = write_all(&master, &[4]);
                    input = None;
                }
            }
        }
        if let Some(slot) = resize_slot
            && ready[slot]
        {
            let fd = resize.as_ref().expect("resize is polled only when present");
            match read_fd(fd, &mut buf) {
                Some(n) => {
                    pending.push_str(&String::from_utf8_lossy(&buf[..n]));
                    while let Some(end) = pending.find('\n') {
                        if let Some((cols, rows)) = parse_size(&pending[..end]) {
                            set_size(&master, cols, rows);
                        }
                        pending.drain(..=end);
                    }
                }
                None => resize = None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_lines_parse() {
        assert_eq!(parse_size("80 24"), Some((80, 24)));
        assert_eq!(parse_size(" 120  40 "), Some((120, 40)));
        assert_eq!(parse_size("80"), None);
        assert_eq!(parse_size("x 24"), None);
    }

    #[test]
    fn the_relay_moves_bytes_through_a_pty_and_applies_sizes() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let (in_r, in_w) = nix::unistd::pipe().unwrap();
        let (out_r, out_w) = nix::unistd::pipe().unwrap();
        let (rs_r, rs_w) = nix::unistd::pipe().unwrap();
        let slave = pty.slave;
        let relay = std::thread::spawn(move || relay(pty.master, in_r, out_w, Some(rs_r)));
        // What the "command" (the slave side) writes comes out of the output pipe.
        assert!(write_all(&slave, b"hello"));
        let mut got = vec![0u8; 5];
        let mut filled = 0;
        while filled < 5 {
            filled += read_fd(&out_r, &mut got[filled..]).unwrap();
        }
        assert_eq!(&got, b"hello");
        // A size line reaches the terminal.
        assert!(write_all(&rs_w, b"100 30\n"));
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // SAFETY: TIOCGWINSZ writes a winsize into the valid pointer.
            unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
            if (ws.ws_col, ws.ws_row) == (100, 30) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!((ws.ws_col, ws.ws_row), (100, 30));
        // Input reaches the command's side of the terminal.
        assert!(write_all(&in_w, b"typed\n"));
        let mut line = vec![0u8; 64];
        let n = read_fd(&slave, &mut line).unwrap();
        assert_eq!(&line[..n], b"typed\n");
        // Closing the slave ends the relay.
        drop(slave);
        relay.join().unwrap();
        drop((in_w, rs_w));
    }
}
