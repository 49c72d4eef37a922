//! Tests of request attributes, the RBAC evaluator (table-driven), impersonation, the
//! Forbidden message and ServiceAccount tokens.

use http::HeaderMap;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde_json::json;

use super::rbac::RbacCache;
use super::tokens::{API_AUDIENCE, Claims, KubernetesClaim, Ref, TokenIssuer};
use super::*;
use crate::controllers::runtime::Event;

fn attrs(method: &str, path: &str) -> Attributes {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    request_attributes(&method.parse().unwrap(), path, Some(query))
}

#[test]
fn request_info_follows_upstream() {
    let a = attrs("GET", "/api/v1/namespaces/default/pods");
    assert_eq!(
        (a.verb.as_str(), a.resource.as_str(), a.namespace.as_str()),
        ("list", "pods", "default")
    );
    assert!(a.resource_request);
    let a = attrs("GET", "/api/v1/namespaces/default/pods?watch=true");
    assert_eq!(a.verb, "watch");
    let a = attrs("GET", "/api/v1/namespaces/ns/pods/p/log");
    assert_eq!(
        (a.verb.as_str(), a.name.as_str(), a.subresource.as_str()),
        ("get", "p", "log")
    );
    let a = attrs("DELETE", "/apis/apps/v1/namespaces/ns/deployments");
    assert_eq!(
        (a.verb.as_str(), a.api_group.as_str()),
        ("deletecollection", "apps")
    );
    let a = attrs("GET", "/api/v1/namespaces/ns");
    assert_eq!(
        (a.resource.as_str(), a.name.as_str(), a.namespace.as_str()),
        ("namespaces", "ns", "ns")
    );
    let a = attrs("PUT", "/api/v1/namespaces/ns/finalize");
    assert_eq!(
        (a.verb.as_str(), a.resource.as_str(), a.subresource.as_str()),
        ("update", "namespaces", "finalize")
    );
    let a = attrs("GET", "/api/v1/namespaces/ns/pods/p/exec?command=ls");
    assert_eq!(a.verb, "create");
    let a = attrs(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    );
    assert_eq!(
        (a.verb.as_str(), a.resource.as_str(), a.namespace.as_str()),
        ("create", "selfsubjectaccessreviews", "")
    );
    for p in [
        "/apis",
        "/apis/apps",
        "/apis/apps/v1",
        "/api",
        "/api/v1",
        "/openapi/v3",
    ] {
        let a = attrs("GET", p);
        assert!(!a.resource_request, "{p}");
        assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", p));
    }
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo::new(name, groups)
}

/// A cache holding these objects (as JSON).
fn cache(objs: serde_json::Value) -> RbacCache {
    let (cache, mut w) = RbacCache::new();
    let of = |kind: &str| -> Vec<serde_json::Value> {
        objs.as_array()
            .unwrap()
            .iter()
            .filter(|o| o["kind"] == kind)
            .cloned()
            .collect()
    };
    let typed = |kind: &str| serde_json::Value::Array(of(kind));
    w.roles.apply(&Event::Restarted(
        serde_json::from_value::<Vec<Role>>(typed("Role")).unwrap(),
    ));
    w.cluster_roles.apply(&Event::Restarted(
        serde_json::from_value::<Vec<ClusterRole>>(typed("ClusterRole")).unwrap(),
    ));
    w.role_bindings.apply(&Event::Restarted(
        serde_json::from_value::<Vec<RoleBinding>>(typed("RoleBinding")).unwrap(),
    ));
    w.cluster_role_bindings.apply(&Event::Restarted(
        serde_json::from_value::<Vec<ClusterRoleBinding>>(typed("ClusterRoleBinding")).unwrap(),
    ));
    cache
}

fn fixture() -> RbacCache {
    let mut objs: Vec<serde_json::Value> = bootstrap::cluster_roles();
    objs.extend(bootstrap::cluster_role_bindings());
    objs.extend([
        json!({"kind": "RoleBinding", "metadata": {"name": "jane-view", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}]}),
        json!({"kind": "Role", "metadata": {"name": "one-secret", "namespace": "team"},
               "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"], "verbs": ["get"]},
                         {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]}]}),
        json!({"kind": "RoleBinding", "metadata": {"name": "devs", "namespace": "team"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "one-secret"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"},
                            {"kind": "ServiceAccount", "name": "builder"}]}),
        json!({"kind": "ClusterRoleBinding", "metadata": {"name": "ops-edit"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
               "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}]}),
        json!({"kind": "RoleBinding", "metadata": {"name": "lead-admin", "namespace": "team"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "lead"}]}),
        json!({"kind": "ClusterRole", "metadata": {"name": "healthz-only"},
               "rules": [{"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]}]}),
        json!({"kind": "ClusterRoleBinding", "metadata": {"name": "mon"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "healthz-only"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mon"}]}),
    ]);
    cache(serde_json::Value::Array(objs))
}

#[tokio::test]
async fn rbac_table() {
    let authz = Authorizer::Rbac(fixture());
    let jane = user("jane", &[]);
    let dev = user("dan", &["devs"]);
    let builder = user("system:serviceaccount:team:builder", &[]);
    let other_sa = user("system:serviceaccount:other:builder", &[]);
    let deployer = user("system:serviceaccount:ci:deployer", &[]);
    let mon = user("mon", &[]);
    let admin = UserInfo::admin();
    let cases: &[(&UserInfo, &str, &str, bool)] = &[
        (&jane, "GET", "/api/v1/namespaces/default/pods", true),
        (
            &jane,
            "GET",
            "/api/v1/namespaces/default/pods?watch=1",
            true,
        ),
        (&jane, "GET", "/api/v1/namespaces/default/pods/p/log", true),
        (&jane, "GET", "/api/v1/namespaces/kube-system/pods", false),
        (&jane, "GET", "/api/v1/pods", false),
        (&jane, "DELETE", "/api/v1/namespaces/default/pods/p", false),
        (&jane, "GET", "/api/v1/namespaces/default/secrets", false),
        (
            &jane,
            "GET",
            "/api/v1/namespaces/default/pods/p/exec",
            false,
        ),
        (&jane, "GET", "/apis", true),
        (&jane, "GET", "/apis/apps/v1", true),
        (&jane, "GET", "/version", true),
        (&jane, "GET", "/metrics", false),
        (
            &jane,
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            true,
        ),
        (&dev, "GET", "/api/v1/namespaces/team/secrets/s1", true),
        (&dev, "GET", "/api/v1/namespaces/team/secrets/s2", false),
        (&dev, "GET", "/api/v1/namespaces/team/secrets", false),
        (
            &dev,
            "PUT",
            "/apis/apps/v1/namespaces/team/deployments/d/scale",
            true,
        ),
        (
            &dev,
            "PUT",
            "/apis/apps/v1/namespaces/team/deployments/d",
            false,
        ),
        (
            &dev,
            "PUT",
            "/apis/apps/v1/namespaces/other/deployments/d/scale",
            false,
        ),
        (&builder, "GET", "/api/v1/namespaces/team/secrets/s1", true),
        (
            &other_sa,
            "GET",
            "/api/v1/namespaces/team/secrets/s1",
            false,
        ),
        (
            &deployer,
            "POST",
            "/apis/apps/v1/namespaces/anywhere/deployments",
            true,
        ),
        (&deployer, "GET", "/api/v1/namespaces/x/pods/p/exec", true),
        (
            &deployer,
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/x/roles",
            false,
        ),
        (&mon, "GET", "/metrics", true),
        (&mon, "GET", "/logs/kubelet", true),
        (&mon, "POST", "/metrics", false),
        (&admin, "DELETE", "/api/v1/nodes/n1", true),
    ];
    for (u, method, path, want) in cases {
        let a = attrs(method, path);
        assert_eq!(
            authz.allowed(u, &a).await,
            *want,
            "{} {method} {path} ({a:?})",
            u.name
        );
    }
}

#[tokio::test]
async fn forbidden_reads_like_upstream() {
    let authz = Authorizer::Rbac(fixture());
    let jane = user("jane", &[]);
    let status = |e: ApiError| (e.code(), e.status());
    let (code, s) = status(
        authz
            .authorize(&jane, &attrs("GET", "/api/v1/namespaces/kube-system/pods"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert_eq!(
        s.message.as_deref(),
        Some(
            r#"pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "kube-system""#
        )
    );
    assert_eq!(s.reason.as_deref(), Some("Forbidden"));
    assert_eq!(s.details.unwrap().kind.as_deref(), Some("pods"));
    let (_, s) = status(
        authz
            .authorize(
                &jane,
                &attrs("DELETE", "/apis/apps/v1/namespaces/default/deployments/web"),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        s.message.as_deref(),
        Some(
            r#"deployments.apps "web" is forbidden: User "jane" cannot delete resource "deployments" in API group "apps" in the namespace "default""#
        )
    );
    let (_, s) = status(
        authz
            .authorize(&jane, &attrs("GET", "/api/v1/nodes"))
            .await
            .unwrap_err(),
    );
    assert!(s.message.unwrap().ends_with("at the cluster scope"));
    let (_, s) = status(
        authz
            .authorize(&jane, &attrs("GET", "/metrics"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        s.message.as_deref(),
        Some(r#"forbidden: User "jane" cannot get path "/metrics""#)
    );
}

#[tokio::test]
async fn impersonation_needs_the_verb() {
    let authz = Authorizer::Rbac(fixture());
    let mut h = HeaderMap::new();
    h.insert("impersonate-user", "jane".parse().unwrap());
    h.append("impersonate-group", "devs".parse().unwrap());
    let as_jane = impersonate::apply(&authz, UserInfo::admin(), &h)
        .await
        .unwrap();
    assert_eq!(as_jane.name, "jane");
    assert_eq!(as_jane.groups, ["devs", "system:authenticated"]);
    // jane may not impersonate anyone.
    let e = impersonate::apply(&authz, user("jane", &[]), &h)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"users "jane" is forbidden: User "jane" cannot impersonate resource "users" in API group "" at the cluster scope"#
    );
    // The edit role lets a deployer impersonate ServiceAccounts of any namespace.
    let mut h = HeaderMap::new();
    h.insert(
        "impersonate-user",
        "system:serviceaccount:x:app".parse().unwrap(),
    );
    let deployer = user("system:serviceaccount:ci:deployer", &[]);
    let sa = impersonate::apply(&authz, deployer, &h).await.unwrap();
    assert!(sa.in_group("system:serviceaccounts:x"));
    let none = impersonate::apply(&authz, user("jane", &[]), &HeaderMap::new())
        .await
        .unwrap();
    assert_eq!(none.name, "jane");
}

fn issuer() -> TokenIssuer {
    let key = rcgen::KeyPair::generate().unwrap();
    TokenIssuer::from_pem(&key.serialize_pem(), &key.public_key_pem()).unwrap()
}

fn claim() -> KubernetesClaim {
    KubernetesClaim {
        namespace: "default".into(),
        serviceaccount: Ref {
            name: "default".into(),
            uid: "u1".into(),
        },
        ..Default::default()
    }
}

#[test]
fn tokens_mint_verify_and_expire() {
    let iss = issuer();
    let now = jiff::Timestamp::now().as_second();
    let c = Claims::new(claim(), vec![API_AUDIENCE.into()], now, 600);
    let t = iss.mint(&c).unwrap();
    let back = iss.verify(&t).unwrap();
    assert_eq!(back, c);
    let u = back.user();
    assert_eq!(u.name, "system:serviceaccount:default:default");
    assert_eq!(
        u.groups,
        [
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ]
    );
    assert_eq!(u.uid, "u1");
    // Expired, not yet valid, another audience, another key, tampered: all refused.
    let expired = iss
        .mint(&Claims::new(
            claim(),
            vec![API_AUDIENCE.into()],
            now - 1000,
            600,
        ))
        .unwrap();
    assert!(iss.verify(&expired).is_err());
    let future = iss
        .mint(&Claims::new(
            claim(),
            vec![API_AUDIENCE.into()],
            now + 1000,
            600,
        ))
        .unwrap();
    assert!(iss.verify(&future).is_err());
    let vault = iss
        .mint(&Claims::new(claim(), vec!["vault".into()], now, 600))
        .unwrap();
    assert!(iss.verify(&vault).is_err());
    assert!(issuer().verify(&t).is_err());
    let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
    let mut forged = c.clone();
    forged.sub = "system:admin".into();
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&forged).unwrap(),
    );
    assert!(iss.verify(&parts.join(".")).is_err());
}

#[tokio::test]
async fn allow_all_and_masters() {
    let a = attrs("DELETE", "/api/v1/nodes/n");
    assert!(Authorizer::AllowAll.allowed(&user("x", &[]), &a).await);
    let empty = Authorizer::Rbac(cache(json!([])));
    assert!(!empty.allowed(&user("x", &[]), &a).await);
    assert!(empty.allowed(&UserInfo::admin(), &a).await);
}

#[tokio::test]
async fn no_escalation_through_roles_or_bindings() {
    let authz = Authorizer::Rbac(fixture());
    let lead = user("lead", &[]);
    let post = |path: &str| (http::Method::POST, path.to_string());
    let role = |rules: serde_json::Value| json!({"metadata": {"name": "r"}, "rules": rules});
    let pods =
        json!([{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]);
    let nodes = json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]);
    let (m, p) = post("/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles");
    escalation::check(&authz, &lead, &m, &p, &role(pods.clone()))
        .await
        .unwrap();
    let e = escalation::check(&authz, &lead, &m, &p, &role(nodes.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), 403);
    assert!(
        e.to_string()
            .starts_with(r#"roles.rbac.authorization.k8s.io "r" is forbidden: user "lead""#),
        "{e}"
    );
    // Not in another namespace, and not cluster-wide.
    let (m, p) = post("/apis/rbac.authorization.k8s.io/v1/namespaces/other/roles");
    assert!(
        escalation::check(&authz, &lead, &m, &p, &role(pods.clone()))
            .await
            .is_err()
    );
    let (m, p) = post("/apis/rbac.authorization.k8s.io/v1/clusterroles");
    assert!(
        escalation::check(&authz, &lead, &m, &p, &role(pods))
            .await
            .is_err()
    );
    // Bindings: `edit` is within `admin`; `cluster-admin` is not.
    let binding = |name: &str| json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}});
    let (m, p) = post("/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings");
    escalation::check(&authz, &lead, &m, &p, &binding("edit"))
        .await
        .unwrap();
    assert!(
        escalation::check(&authz, &lead, &m, &p, &binding("cluster-admin"))
            .await
            .is_err()
    );
    // The administrator and other kinds are not checked.
    escalation::check(
        &authz,
        &UserInfo::admin(),
        &m,
        &p,
        &binding("cluster-admin"),
    )
    .await
    .unwrap();
    let (m, p) = post("/api/v1/namespaces/team/pods");
    escalation::check(&authz, &lead, &m, &p, &json!({}))
        .await
        .unwrap();
}
