//! Lifecycle hooks: postStart (run right after the container starts; a failure kills it with a
//! `FailedPostStartHook` event) and preStop (run before SIGTERM, inside the grace period; a
//! failure is a `FailedPreStopHook` event and termination goes on), each exec, httpGet,
//! tcpSocket or sleep, with the kubelet's messages.

use std::time::Duration;

use k8s_openapi::api::core::v1::{LifecycleHandler, Pod, Probe};

use super::probes::handlers::{self, Target};
use super::security::pod_label;

/// How long a postStart hook may take (the kubelet waits without a bound; a hung hook must
/// not wedge the pod worker forever).
pub const POST_START_TIMEOUT: Duration = Duration::from_secs(120);

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    PostStart,
    PreStop,
}

impl Hook {
    /// The event reason a failure of this hook is reported with.
    pub fn failure_reason(self) -> &'static str {
        match self {
            Hook::PostStart => "FailedPostStartHook",
            Hook::PreStop => "FailedPreStopHook",
        }
    }
}

/// The container's handler for `hook`, if it has one.
pub fn handler(c: &k8s_openapi::api::core::v1::Container, hook: Hook) -> Option<LifecycleHandler> {
    let lifecycle = c.lifecycle.as_ref()?;
    match hook {
        Hook::PostStart => lifecycle.post_start.clone(),
        Hook::PreStop => lifecycle.pre_stop.clone(),
    }
}

/// Runs `handler` against `target` within `timeout`; the error is the kubelet's event message.
pub async fn run(
    pod: &Pod,
    container: &str,
    handler: &LifecycleHandler,
    target: &Target,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(sleep) = &handler.sleep {
        let secs = u64::try_from(sleep.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs).min(timeout)).await;
        return Ok(());
    }
    let probe = Probe {
        exec: handler.exec.clone(),
        http_get: handler.http_get.clone(),
        tcp_socket: handler.tcp_socket.clone(),
        ..Default::default()
    };
    let (kind, what) = if let Some(exec) = &handler.exec {
        // Go's %v of a []string, as in the kubelet's message.
        let command = exec.command.clone().unwrap_or_default();
        ("Exec", format!("[{}]", command.join(" ")))
    } else if let Some(http) = &handler.http_get {
        ("HTTP", http.path.clone().unwrap_or_else(|| "/".into()))
    } else if handler.tcp_socket.is_some() {
        ("TCP", String::new())
    } else {
        return Err("a lifecycle hook needs exec, httpGet, tcpSocket or sleep".into());
    };
    let check = handlers::check_for(&probe, target);
    let result = match tokio::time::timeout(timeout, check(timeout)).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {}s", timeout.as_secs())),
    };
    result.map_err(|message| {
        format!(
            "{kind} lifecycle hook ({what}) for Container {container:?} in Pod {:?} failed - error: {message}",
            pod_label(pod)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u-1"},
            "spec": {"containers": [{"name": "app", "image": "busybox",
                "lifecycle": {"preStop": {"sleep": {"seconds": 1}},
                              "postStart": {"httpGet": {"path": "/hook", "port": 1}}}}]}
        }))
        .unwrap()
    }

    fn target() -> Target {
        Target {
            runtime: crate::runtime::Runtime::new(
                std::env::temp_dir().join("skiff-hooks-test"),
                "/nonexistent".into(),
            )
            .unwrap(),
            container_id: "c".into(),
            host: "127.0.0.1".into(),
            ports: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_failing_http_hook_reads_like_the_kubelet() {
        let pod = pod();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let post = handler(c, Hook::PostStart).unwrap();
        // Port 1 on loopback refuses the connection.
        let err = run(&pod, "app", &post, &target(), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            err.starts_with(
                "HTTP lifecycle hook (/hook) for Container \"app\" in Pod \"web_default(u-1)\" failed - error: "
            ) && err.contains("connection refused"),
            "{err}"
        );
        assert_eq!(Hook::PostStart.failure_reason(), "FailedPostStartHook");
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_hooks_wait_but_not_past_the_timeout() {
        let pod = pod();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let pre = handler(c, Hook::PreStop).unwrap();
        let start = tokio::time::Instant::now();
        run(&pod, "app", &pre, &target(), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        let start = tokio::time::Instant::now();
        run(&pod, "app", &pre, &target(), Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }
}
