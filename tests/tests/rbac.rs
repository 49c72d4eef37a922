//! Authentication and RBAC end to end with the real kubectl: a client-certificate kubeconfig
//! for `jane` is refused with upstream's Forbidden message until a RoleBinding to `view` lets
//! her read pods in `default` (only there, and only read); `kubectl auth can-i` (also with
//! `--as`, i.e. impersonation, and `--list`) answers accordingly; `kubectl create token` gives a
//! ServiceAccount token that `kubectl auth whoami` recognises, while expired, forged and
//! orphaned tokens get 401; a namespace admin cannot bind a role stronger than her own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{Output, binary, privileged_env, run_with_timeout, wait_for};

const FORBIDDEN_DEFAULT: &str = r#"Error from server (Forbidden): pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default""#;

fn kubectl_as(cluster: &Cluster, kubeconfig: &Path, args: &[&str]) -> Output {
    let mut cmd = cluster.ns.command("/usr/bin/kubectl");
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    run_with_timeout(cmd, Duration::from_secs(60))
}

/// `skiff-control kubeconfig --user jane` into a file.
fn user_kubeconfig(cluster: &Cluster, user: &str) -> PathBuf {
    let mut cmd = Command::new(binary("skiff-control"));
    cmd.arg("kubeconfig")
        .args(["--user", user])
        .arg("--data-dir")
        .arg(cluster.dir.path().join("control"))
        .args(["--server", "https://127.0.0.1:6443"]);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert!(out.ok, "skiff-control kubeconfig: {}", out.stderr);
    assert!(out.stdout.contains("client-certificate-data:"));
    let path = cluster.dir.path().join(format!("{user}.kubeconfig"));
    std::fs::write(&path, out.stdout).unwrap();
    path
}

fn can_i(cluster: &Cluster, kubeconfig: &Path, args: &[&str]) -> String {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let out = kubectl_as(cluster, kubeconfig, &all);
    out.stdout.trim().to_string()
}

fn b64url(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// An ECDSA DER signature (SEQUENCE of two INTEGERs) as JWS's 64-byte `r || s`.
fn der_to_raw(der: &[u8]) -> Vec<u8> {
    assert_eq!(der[0], 0x30, "not a DER sequence");
    let mut i = 2;
    let mut raw = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[i], 0x02);
        let len = der[i + 1] as usize;
        let int = &der[i + 2..i + 2 + len];
        let int = &int[int.len().saturating_sub(32)..];
        raw.extend(std::iter::repeat_n(0u8, 32 - int.len()));
        raw.extend_from_slice(int);
        i += 2 + len;
    }
    raw
}

/// A ServiceAccount token signed with the cluster's real key (by openssl) whose `exp` passed.
fn expired_token(cluster: &Cluster, sa_uid: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let header = b64url(br#"{"alg":"ES256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": "system:serviceaccount:default:default",
        "aud": ["https://kubernetes.default.svc"],
        "exp": now - 60, "iat": now - 4000, "nbf": now - 4000, "jti": "expired",
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "default", "uid": sa_uid}},
    });
    let input = format!("{header}.{}", b64url(claims.to_string().as_bytes()));
    let input_file = cluster.dir.path().join("jwt-input");
    std::fs::write(&input_file, &input).unwrap();
    let mut cmd = Command::new("/usr/bin/openssl");
    cmd.args(["dgst", "-sha256", "-sign"])
        .arg(cluster.dir.path().join("control/pki/sa.key"))
        .arg("-out")
        .arg(cluster.dir.path().join("jwt-sig"))
        .arg(&input_file);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert!(out.ok, "openssl: {}", out.stderr);
    let der = std::fs::read(cluster.dir.path().join("jwt-sig")).unwrap();
    format!("{input}.{}", b64url(&der_to_raw(&der)))
}

#[test]
fn rbac_with_client_certificates_and_service_account_tokens() {
    if let Err(why) = privileged_env() {
        panic!("the end-to-end test {why}");
    }
    let cluster = Cluster::control_plane_only("rbac");
    let admin = cluster.kubeconfig.clone();
    let jane = user_kubeconfig(&cluster, "jane");

    // Authenticated by her certificate, allowed nothing yet but discovery and reviews.
    let out = kubectl_as(&cluster, &jane, &["get", "pods"]);
    assert!(!out.ok);
    assert!(
        out.stderr.contains(FORBIDDEN_DEFAULT),
        "stderr: {}",
        out.stderr
    );
    let whoami = kubectl_as(&cluster, &jane, &["auth", "whoami"]);
    assert!(whoami.ok, "{}", whoami.stderr);
    assert!(whoami.stdout.contains("jane"), "{}", whoami.stdout);
    assert_eq!(can_i(&cluster, &jane, &["list", "pods"]), "no");

    // A RoleBinding to `view` in default.
    cluster.kubectl_ok(&[
        "create",
        "rolebinding",
        "jane-view",
        "--clusterrole=view",
        "--user=jane",
        "-n",
        "default",
    ]);
    wait_for("jane to list pods", Duration::from_secs(20), || {
        kubectl_as(&cluster, &jane, &["get", "pods", "-n", "default"])
            .ok
            .then_some(())
    });
    let out = kubectl_as(&cluster, &jane, &["get", "pods", "-n", "kube-system"]);
    assert!(
        out.stderr.contains(
            r#"pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "kube-system""#
        ),
        "{}",
        out.stderr
    );
    let out = kubectl_as(&cluster, &jane, &["delete", "pod", "x", "-n", "default"]);
    assert!(
        out.stderr.contains(
            r#"pods "x" is forbidden: User "jane" cannot delete resource "pods" in API group "" in the namespace "default""#
        ),
        "{}",
        out.stderr
    );
    assert_eq!(can_i(&cluster, &jane, &["list", "pods"]), "yes");
    assert_eq!(
        can_i(&cluster, &jane, &["list", "pods", "-n", "kube-system"]),
        "no"
    );
    assert_eq!(can_i(&cluster, &jane, &["delete", "pods"]), "no");
    assert_eq!(can_i(&cluster, &jane, &["get", "secrets"]), "no");
    // The admin asks on her behalf (impersonation), and reads with her rights.
    assert_eq!(
        can_i(&cluster, &admin, &["list", "pods", "--as", "jane"]),
        "yes"
    );
    assert_eq!(
        can_i(&cluster, &admin, &["create", "deployments", "--as", "jane"]),
        "no"
    );
    assert_eq!(can_i(&cluster, &admin, &["delete", "nodes"]), "yes");
    let out = cluster.kubectl(&["get", "pods", "-n", "kube-system", "--as", "jane"]);
    assert!(out.stderr.contains("forbidden"), "{}", out.stderr);
    // jane may not impersonate.
    let out = kubectl_as(&cluster, &jane, &["get", "pods", "--as", "bob"]);
    assert!(
        out.stderr
            .contains(r#"cannot impersonate resource "users""#),
        "{}",
        out.stderr
    );
    let list = kubectl_as(
        &cluster,
        &jane,
        &["auth", "can-i", "--list", "-n", "default"],
    );
    assert!(list.ok, "{}", list.stderr);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
        "{}",
        list.stdout
    );

    // As admin of a namespace she may hand out what she holds, but not more.
    cluster.kubectl_ok(&["create", "namespace", "team"]);
    cluster.kubectl_ok(&[
        "create",
        "rolebinding",
        "jane-admin",
        "--clusterrole=admin",
        "--user=jane",
        "-n",
        "team",
    ]);
    wait_for("jane to administer team", Duration::from_secs(20), || {
        (can_i(&cluster, &jane, &["create", "rolebindings", "-n", "team"]) == "yes").then_some(())
    });
    let bind = |name: &str, role: &str| {
        let role = format!("--clusterrole={role}");
        kubectl_as(
            &cluster,
            &jane,
            &[
                "create",
                "rolebinding",
                name,
                &role,
                "--user=bob",
                "-n",
                "team",
            ],
        )
    };
    let out = bind("bob-edit", "edit");
    assert!(out.ok, "{}", out.stderr);
    let out = bind("bob-root", "cluster-admin");
    assert!(
        out.stderr
            .contains("is attempting to grant RBAC permissions not currently held"),
        "{}",
        out.stderr
    );

    // ServiceAccount tokens.
    let sa_uid = wait_for(
        "the default ServiceAccount",
        Duration::from_secs(20),
        || {
            let out = cluster.kubectl(&["get", "sa", "default", "-o", "jsonpath={.metadata.uid}"]);
            (out.ok && !out.stdout.trim().is_empty()).then(|| out.stdout.trim().to_string())
        },
    );
    let token = cluster
        .kubectl_ok(&["create", "token", "default"])
        .trim()
        .to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let who = kubectl_as(&cluster, &admin, &["auth", "whoami", "--token", &token]);
    assert!(who.ok, "{}", who.stderr);
    assert!(
        who.stdout.contains("system:serviceaccount:default:default")
            && who.stdout.contains("system:serviceaccounts:default"),
        "{}",
        who.stdout
    );
    assert!(who.stdout.contains(&sa_uid), "{}", who.stdout);
    // The ServiceAccount has no rights of its own.
    let out = kubectl_as(&cluster, &admin, &["get", "pods", "--token", &token]);
    assert!(
        out.stderr
            .contains(r#"User "system:serviceaccount:default:default" cannot list"#),
        "{}",
        out.stderr
    );
    let unauthorized = |t: &str| {
        let out = kubectl_as(&cluster, &admin, &["get", "pods", "--token", t]);
        !out.ok && out.stderr.contains("Unauthorized")
    };
    assert!(unauthorized(&expired_token(&cluster, &sa_uid)), "expired");
    let mut forged: Vec<&str> = token.split('.').collect();
    let admin_claims = b64url(br#"{"sub":"system:admin"}"#);
    forged[1] = &admin_claims;
    assert!(unauthorized(&forged.join(".")), "forged");
    assert!(unauthorized("not-a-token"), "garbage");
    // Deleting the account (it is recreated with a new uid) revokes its old tokens.
    cluster.kubectl_ok(&["delete", "sa", "default"]);
    wait_for(
        "the old token to stop working",
        Duration::from_secs(20),
        || unauthorized(&token).then_some(()),
    );
}

/// Older kubectl clients (picked by the reported minor) read the same answers.
#[test]
fn older_kubectl_clients_see_the_same_decisions() {
    if let Err(why) = privileged_env() {
        panic!("the end-to-end test {why}");
    }
    for minor in ["27", "30"] {
        let cluster =
            Cluster::control_plane_with(&format!("rbac{minor}"), &["--version-minor", minor]);
        let jane = user_kubeconfig(&cluster, "jane");
        let out = kubectl_as(&cluster, &jane, &["get", "pods"]);
        assert!(
            out.stderr.contains(FORBIDDEN_DEFAULT),
            "1.{minor}: {}",
            out.stderr
        );
        assert_eq!(can_i(&cluster, &jane, &["list", "pods"]), "no", "1.{minor}");
        assert_eq!(
            can_i(
                &cluster,
                &cluster.kubeconfig,
                &["list", "pods", "--as", "jane"]
            ),
            "no",
            "1.{minor}"
        );
        let token = wait_for("a token", Duration::from_secs(20), || {
            let out = cluster.kubectl(&["create", "token", "default"]);
            out.ok.then(|| out.stdout.trim().to_string())
        });
        let out = kubectl_as(
            &cluster,
            &cluster.kubeconfig,
            &["get", "pods", "--token", &token],
        );
        assert!(
            out.stderr
                .contains(r#"User "system:serviceaccount:default:default" cannot list"#),
            "1.{minor}: {}",
            out.stderr
        );
    }
}
