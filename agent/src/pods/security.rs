//! A container's securityContext (merged over the pod's) as the runtime's [`SecuritySpec`]:
//! user and groups, runAsNonRoot with the kubelet's refusals, capabilities, privileged,
//! readOnlyRootFilesystem, allowPrivilegeEscalation, seccompProfile and procMount.

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};

use super::containers::ContainerConfigError;
use crate::images::Image;
use crate::runtime::security::{UnknownCapability, capability_set};
use crate::runtime::{SeccompMode, SecuritySpec};

/// Who the container runs as, and with what rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub uid: u32,
    pub gid: u32,
    pub security: SecuritySpec,
}

/// The pod's name as the kubelet prints it in messages: `name_namespace(uid)`.
pub fn pod_label(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn pod_context(pod: &Pod) -> PodSecurityContext {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default()
}

/// The group owning the pod's writable volumes, if the pod sets one.
pub fn fs_group(pod: &Pod) -> Option<u32> {
    pod_context(pod)
        .fs_group
        .and_then(|g| u32::try_from(g).ok())
}

fn seccomp_mode(
    container: &SecurityContext,
    pod: &PodSecurityContext,
) -> Result<SeccompMode, ContainerConfigError> {
    let profile = container
        .seccomp_profile
        .as_ref()
        .or(pod.seccomp_profile.as_ref());
    match profile.map(|p| p.type_.as_str()) {
        None | Some("Unconfined") => Ok(SeccompMode::Unconfined),
        Some("RuntimeDefault") => Ok(SeccompMode::RuntimeDefault),
        Some(other) => Err(ContainerConfigError::Security(format!(
            "seccomp profile type {other:?} is not supported"
        ))),
    }
}

/// Resolves the container's effective security settings; refuses (as the kubelet's
/// `CreateContainerConfigError`) what would break `runAsNonRoot` or names unknown capabilities.
pub fn resolve(
    pod: &Pod,
    container: &Container,
    image: &Image,
) -> Result<Resolved, ContainerConfigError> {
    let sc = container.security_context.clone().unwrap_or_default();
    let psc = pod_context(pod);
    let mut image_user = image.config.user.splitn(2, ':');
    let user_part = image_user.next().unwrap_or("");
    let group_part = image_user.next().unwrap_or("");
    let image_uid = match user_part {
        "" => Some(0),
        u => u.parse::<u32>().ok(),
    };
    let run_as_user = sc.run_as_user.or(psc.run_as_user);
    let label = || pod_label(pod);
    if sc.run_as_non_root.or(psc.run_as_non_root) == Some(true) {
        match (run_as_user, image_uid) {
            (Some(0), _) => {
                return Err(ContainerConfigError::Security(format!(
                    "container's runAsUser breaks non-root policy (pod: {:?}, container: {})",
                    label(),
                    container.name
                )));
            }
            (Some(_), _) => {}
            (None, None) => {
                return Err(ContainerConfigError::Security(format!(
                    "container has runAsNonRoot and image has non-numeric user ({user_part}), cannot verify user is non-root (pod: {:?}, container: {})",
                    label(),
                    container.name
                )));
            }
            (None, Some(0)) => {
                return Err(ContainerConfigError::Security(format!(
                    "container has runAsNonRoot and image will run as root (pod: {:?}, container: {})",
                    label(),
                    container.name
                )));
            }
            (None, Some(_)) => {}
        }
    }
    let uid = match run_as_user {
        Some(u) => u32::try_from(u)
            .map_err(|_| ContainerConfigError::Security(format!("invalid runAsUser {u}")))?,
        None => image_uid.ok_or_else(|| ContainerConfigError::NamedUser(user_part.into()))?,
    };
    let gid = match sc.run_as_group.or(psc.run_as_group) {
        Some(g) => u32::try_from(g)
            .map_err(|_| ContainerConfigError::Security(format!("invalid runAsGroup {g}")))?,
        None => group_part.parse::<u32>().unwrap_or(0),
    };
    let mut additional_gids: Vec<u32> = psc
        .supplemental_groups
        .iter()
        .flatten()
        .filter_map(|g| u32::try_from(*g).ok())
        .chain(fs_group(pod))
        .filter(|g| *g != gid)
        .collect();
    additional_gids.sort_unstable();
    additional_gids.dedup();
    let caps = sc.capabilities.clone().unwrap_or_default();
    let security = SecuritySpec {
        privileged: sc.privileged == Some(true),
        cap_add: caps.add.unwrap_or_default(),
        cap_drop: caps.drop.unwrap_or_default(),
        read_only_root: sc.read_only_root_filesystem == Some(true),
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        seccomp: seccomp_mode(&sc, &psc)?,
        unmasked_proc: sc.proc_mount.as_deref() == Some("Unmasked"),
        additional_gids,
    };
    capability_set(&security).map_err(|UnknownCapability(name)| {
        ContainerConfigError::Security(format!("unknown capability {name:?}"))
    })?;
    Ok(Resolved { uid, gid, security })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::ImageConfig;

    fn pod(pod_sc: serde_json::Value, sc: serde_json::Value) -> (Pod, Container) {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u-1"},
            "spec": {"securityContext": pod_sc,
                     "containers": [{"name": "app", "image": "busybox", "securityContext": sc}]}
        }))
        .unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        (pod, c)
    }

    fn image(user: &str) -> Image {
        Image {
            name: "busybox".into(),
            digest: "sha256:0".into(),
            layers: Vec::new(),
            config: ImageConfig {
                user: user.into(),
                ..Default::default()
            },
            size: 0,
        }
    }

    #[test]
    fn run_as_non_root_refuses_a_root_image_like_the_kubelet() {
        let (p, c) = pod(
            serde_json::json!({"runAsNonRoot": true}),
            serde_json::json!({}),
        );
        let err = resolve(&p, &c, &image("")).unwrap_err().to_string();
        assert_eq!(
            err,
            "container has runAsNonRoot and image will run as root (pod: \"web_default(u-1)\", container: app)"
        );
        let err = resolve(&p, &c, &image("nobody")).unwrap_err().to_string();
        assert!(err.contains("non-numeric user (nobody)"), "{err}");
        // A numeric non-root image user, or runAsUser, satisfies it.
        assert_eq!(resolve(&p, &c, &image("65534")).unwrap().uid, 65534);
        let (p, c) = pod(
            serde_json::json!({"runAsNonRoot": true}),
            serde_json::json!({"runAsUser": 0}),
        );
        let err = resolve(&p, &c, &image("1000")).unwrap_err().to_string();
        assert!(
            err.starts_with("container's runAsUser breaks non-root policy"),
            "{err}"
        );
    }

    #[test]
    fn users_groups_and_context_merge() {
        let (p, c) = pod(
            serde_json::json!({"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                               "supplementalGroups": [4000, 2000],
                               "seccompProfile": {"type": "RuntimeDefault"}}),
            serde_json::json!({"runAsUser": 1001, "readOnlyRootFilesystem": true,
                               "allowPrivilegeEscalation": false,
                               "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}),
        );
        let r = resolve(&p, &c, &image("5:6")).unwrap();
        assert_eq!((r.uid, r.gid), (1001, 3000));
        assert_eq!(r.security.additional_gids, vec![2000, 4000]);
        assert!(r.security.read_only_root && r.security.no_new_privs);
        assert!(!r.security.privileged);
        assert_eq!(r.security.seccomp, SeccompMode::RuntimeDefault);
        assert_eq!(r.security.cap_drop, vec!["ALL".to_string()]);
        // The image's user:group apply when the pod sets none.
        let (p, c) = pod(serde_json::json!({}), serde_json::json!({}));
        let r = resolve(&p, &c, &image("5:6")).unwrap();
        assert_eq!((r.uid, r.gid), (5, 6));
        assert_eq!(r.security, SecuritySpec::default());
    }

    #[test]
    fn bad_capabilities_and_profiles_are_config_errors() {
        let (p, c) = pod(
            serde_json::json!({}),
            serde_json::json!({"capabilities": {"add": ["WARP_DRIVE"]}}),
        );
        let err = resolve(&p, &c, &image("")).unwrap_err().to_string();
        assert!(err.contains("WARP_DRIVE"), "{err}");
        let (p, c) = pod(
            serde_json::json!({}),
            serde_json::json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}}),
        );
        assert!(resolve(&p, &c, &image("")).is_err());
    }
}
