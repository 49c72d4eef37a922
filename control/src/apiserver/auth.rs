//! Authentication: who a request comes from. Bearer tokens (the admin token, ServiceAccount
//! JWTs), x509 client certificates signed by the cluster CA (CN = user, O = groups) and
//! impersonation headers; the result is a `UserInfo` in the request's extensions. Anonymous
//! requests reach only the health and version endpoints; everything else without valid
//! credentials is 401 Unauthorized (a Status).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;
use serde_json::Value;

use super::authz::tokens::{TokenError, TokenIssuer};
use super::authz::{self, Authorizer};
use super::error::ApiError;
use super::http::error_response;
use super::pki::Pki;
use super::registry::Registry;

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group that bypasses authorization.
pub const MASTERS: &str = "system:masters";

/// An authenticated identity (Kubernetes' `user.Info`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with these groups plus `system:authenticated`.
    pub fn new(name: impl Into<String>, groups: &[&str]) -> Self {
        let mut u = UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        };
        u.add_group(AUTHENTICATED);
        u
    }

    /// The cluster administrator (the admin token).
    pub fn admin() -> Self {
        UserInfo::new("system:admin", &[MASTERS])
    }

    fn add_group(&mut self, g: &str) {
        if !self.groups.iter().any(|x| x == g) {
            self.groups.push(g.to_string());
        }
    }

    pub fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }

    /// The `userInfo` of a SelfSubjectReview / TokenReview.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = Value::from(self.uid.clone());
        }
        if !self.extra.is_empty() {
            v["extra"] = serde_json::to_value(&self.extra).unwrap_or_default();
        }
        v
    }
}

/// The identity of a verified TLS client certificate; the TLS server puts it in every
/// request of the connection.
#[derive(Debug, Clone)]
pub struct ClientCertUser(pub UserInfo);

/// CN = user, every O = a group (the chain was already verified against the cluster CA).
pub fn user_from_client_cert(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    if name.is_empty() {
        return None;
    }
    let groups: Vec<&str> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .collect();
    Some(UserInfo::new(name, &groups))
}

/// Authentication plus the authorizer the request path consults.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    /// Static bearer tokens and who they are.
    tokens: Vec<(String, UserInfo)>,
    /// ServiceAccount token issuer and the registry to check the accounts against.
    service_accounts: Option<(TokenIssuer, Registry)>,
    authorizer: Authorizer,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Auth({} static tokens)", self.inner.tokens.len())
    }
}

/// Paths anyone may read.
fn is_public(path: &str) -> bool {
    ["/version", "/healthz", "/livez", "/readyz"]
        .iter()
        .any(|p| {
            path == *p
                || path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
}

impl Auth {
    /// Accepts exactly these tokens, each as the cluster administrator, and authorizes
    /// everything (for tests of other layers).
    pub fn bearer_tokens(tokens: Vec<String>) -> Self {
        Auth {
            inner: Arc::new(Inner {
                tokens: tokens
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .map(|t| (t, UserInfo::admin()))
                    .collect(),
                service_accounts: None,
                authorizer: Authorizer::AllowAll,
            }),
        }
    }

    /// The real thing: the admin token, ServiceAccount tokens signed by `issuer`, client
    /// certificates, and RBAC from a cache that watches `registry` (spawns the watchers).
    pub fn cluster(admin_token: &str, issuer: TokenIssuer, registry: Registry) -> Self {
        Auth {
            inner: Arc::new(Inner {
                tokens: vec![(admin_token.to_string(), UserInfo::admin())],
                service_accounts: Some((issuer, registry.clone())),
                authorizer: Authorizer::rbac(registry),
            }),
        }
    }

    /// [`Auth::cluster`] with the admin token and ServiceAccount key pair of `pki`.
    pub fn for_cluster(pki: &Pki, registry: Registry) -> Result<Self, TokenError> {
        let issuer = TokenIssuer::from_pem(
            pki.service_account_key_pem(),
            pki.service_account_public_pem(),
        )?;
        Ok(Auth::cluster(pki.admin_token(), issuer, registry))
    }

    pub fn authorizer(&self) -> &Authorizer {
        &self.inner.authorizer
    }

    /// The ServiceAccount token issuer, when this server mints tokens.
    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.inner.service_accounts.as_ref().map(|(i, _)| i)
    }

    /// True when `header` carries one of the static tokens.
    pub fn check(&self, header: Option<&str>) -> bool {
        let Some(token) = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return false;
        };
        self.static_user(token).is_some()
    }

    fn static_user(&self, token: &str) -> Option<&UserInfo> {
        self.inner
            .tokens
            .iter()
            .find(|(t, _)| constant_time_eq(t.as_bytes(), token.as_bytes()))
            .map(|(_, u)| u)
    }

    /// Who sent the request: a bearer token wins over a client certificate.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        cert: Option<&ClientCertUser>,
    ) -> Result<UserInfo, ApiError> {
        if let Some(token) = bearer(headers) {
            if let Some(u) = self.static_user(token) {
                return Ok(u.clone());
            }
            if let Some((issuer, registry)) = &self.inner.service_accounts {
                return authz::tokens::authenticate(issuer, registry, token).await;
            }
            return Err(ApiError::unauthorized());
        }
        cert.map(|c| c.0.clone()).ok_or_else(ApiError::unauthorized)
    }
}

/// The axum middleware: authenticates, applies impersonation, and leaves the `UserInfo` in
/// the request's extensions for the authorization hook.
pub async fn require_token(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    if is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let cert = req.extensions().get::<ClientCertUser>().cloned();
    let user = match auth.authenticate(req.headers(), cert.as_ref()).await {
        Ok(u) => u,
        Err(e) => return error_response(&e),
    };
    let user = match authz::impersonate::apply(auth.authorizer(), user, req.headers()).await {
        Ok(u) => u,
        Err(e) => return error_response(&e),
    };
    req.extensions_mut().insert(user);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_and_public_paths() {
        let a = Auth::bearer_tokens(vec!["s3cret".into()]);
        assert!(a.check(Some("Bearer s3cret")));
        assert!(!a.check(Some("Bearer s3cre")));
        assert!(!a.check(Some("Basic s3cret")));
        assert!(!a.check(None));
        assert!(is_public("/version") && is_public("/version/") && is_public("/readyz/ping"));
        assert!(!is_public("/versionx") && !is_public("/api"));
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            "Bearer s3cret".parse().unwrap(),
        );
        let u = a.authenticate(&h, None).await.unwrap();
        assert_eq!(u.name, "system:admin");
        assert!(u.in_group(MASTERS) && u.in_group(AUTHENTICATED));
        // A bad token is refused even with a certificate on the connection.
        h.insert(http::header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        let jane = ClientCertUser(UserInfo::new("jane", &[]));
        assert_eq!(
            a.authenticate(&h, Some(&jane)).await.unwrap_err().code(),
            401
        );
        let u = a
            .authenticate(&HeaderMap::new(), Some(&jane))
            .await
            .unwrap();
        assert_eq!(u.name, "jane");
        let e = a.authenticate(&HeaderMap::new(), None).await.unwrap_err();
        assert_eq!(e.code(), 401);
    }

    #[test]
    fn client_certificate_names_user_and_groups() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "jane");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "devs");
        let cert = p.self_signed(&key).unwrap();
        let u = user_from_client_cert(cert.der()).unwrap();
        assert_eq!(u.name, "jane");
        assert_eq!(u.groups, ["devs", AUTHENTICATED]);
        assert!(user_from_client_cert(b"not a certificate").is_none());
    }
}
