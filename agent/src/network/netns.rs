//! Named network namespaces (bind-mounted files, like `ip netns add`) and running work inside
//! one on a dedicated OS thread, never on a tokio worker.

use std::{
    fs::{self, File},
    io,
    path::{Path, PathBuf},
};

use nix::{
    mount::{MntFlags, MsFlags, mount, umount2},
    sched::{CloneFlags, setns, unshare},
    sys::statfs::{NSFS_MAGIC, statfs},
};

use super::NetworkError;

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> NetworkError {
    let path = path.to_owned();
    move |source| NetworkError::Io { what, path, source }
}

/// Whether `path` is a mounted network namespace.
pub fn is_netns(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// Creates the named netns `dir/name` (idempotent) and returns its path.
pub fn create(dir: &Path, name: &str) -> Result<PathBuf, NetworkError> {
    fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let path = dir.join(name);
    if is_netns(&path) {
        return Ok(path);
    }
    File::create(&path).map_err(io_err("creating", &path))?;
    let target = path.clone();
    // unshare() changes the calling thread's namespace: do it on a throwaway thread.
    let made = std::thread::spawn(move || -> Result<(), NetworkError> {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| io_err("unsharing a netns for", &target)(e.into()))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| io_err("bind-mounting netns on", &target)(e.into()))
    })
    .join()
    .unwrap_or(Err(NetworkError::Thread));
    if let Err(e) = made {
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// Unmounts and removes a named netns; a missing one is fine. The namespace itself goes away
/// once no process or mount holds it.
pub fn delete(path: &Path) -> Result<(), NetworkError> {
    if is_netns(path) {
        umount2(path, MntFlags::MNT_DETACH)
            .map_err(|e| io_err("unmounting netns", path)(e.into()))?;
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", path)(e)),
        _ => Ok(()),
    }
}

/// Runs `f` on a new OS thread that has joined the netns at `path`, with a current-thread
/// tokio runtime (so `f` can open its own rtnetlink connection there). Awaits the result
/// without blocking the caller's runtime.
pub async fn run_in<F, Fut, T>(path: &Path, f: F) -> Result<T, NetworkError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetworkError>>,
    T: Send + 'static,
{
    let ns = File::open(path).map_err(io_err("opening netns", path))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let ns_path = path.to_owned();
    std::thread::Builder::new()
        .name("skiff-netns".into())
        .spawn(move || {
            let result = (|| {
                setns(&ns, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| io_err("entering netns", &ns_path)(e.into()))?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(io_err("starting a runtime in netns", &ns_path))?;
                rt.block_on(f())
            })();
            let _ = tx.send(result);
        })
        .map_err(io_err("spawning a thread for netns", path))?;
    rx.await.map_err(|_| NetworkError::Thread)?
}
