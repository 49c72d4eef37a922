//! The workload executor: checks the executable like runc (with Docker's messages) before the
//! container is reported started, and restores default signal handling before `execvp`.

use std::path::{Path, PathBuf};

use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};

/// Brackets the user-facing message inside libcontainer's longer error chain.
pub const MARK: char = '\u{1f}';

/// The default executor plus a friendlier executable check.
#[derive(Clone)]
pub struct CheckedExecutor;

impl Executor for CheckedExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        // The shim (a Rust program) ignores SIGPIPE; ignored signals survive execve, and a
        // container expects the default.
        // SAFETY: resetting a signal disposition to its default is always sound.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let Some(process) = spec.process() else {
            return Err(ExecutorValidationError::ArgValidationError(
                "spec has no process".into(),
            ));
        };
        let Some(name) = process.args().as_ref().and_then(|a| a.first()) else {
            return Err(ExecutorValidationError::ArgValidationError(
                "no command to run".into(),
            ));
        };
        let path = process
            .env()
            .as_ref()
            .and_then(|env| env.iter().find_map(|e| e.strip_prefix("PATH=")))
            .unwrap_or("")
            .to_string();
        check_executable(name, &path)
            .map(|_| ())
            .map_err(|m| ExecutorValidationError::ArgValidationError(format!("{MARK}{m}{MARK}")))
    }
}

/// Resolves `name` like execvp and returns Docker's message when it cannot run.
pub fn check_executable(name: &str, path_var: &str) -> Result<PathBuf, String> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return match p.metadata() {
            Ok(_) if is_executable(&p) => Ok(p),
            Ok(_) => Err(format!("exec: \"{name}\": permission denied")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "exec: \"{name}\": stat {name}: no such file or directory"
            )),
            Err(e) => Err(format!("exec: \"{name}\": {e}")),
        };
    }
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(format!(
        "exec: \"{name}\": executable file not found in $PATH"
    ))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_dockers() {
        assert_eq!(
            check_executable("nosuch-skiff-binary", "/bin:/usr/bin").unwrap_err(),
            "exec: \"nosuch-skiff-binary\": executable file not found in $PATH"
        );
        assert_eq!(
            check_executable("/nosuch/x", "/bin").unwrap_err(),
            "exec: \"/nosuch/x\": stat /nosuch/x: no such file or directory"
        );
        assert_eq!(
            check_executable("/etc", "/bin").unwrap_err(),
            "exec: \"/etc\": permission denied"
        );
        assert!(check_executable("sh", "/nonexistent:/bin:/usr/bin").is_ok());
    }
}
