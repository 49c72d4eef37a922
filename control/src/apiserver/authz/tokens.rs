//! ServiceAccount tokens: ES256 JWTs signed with the key pair under DATA_DIR/pki (sa.key,
//! sa.pub), with upstream's claims (iss, aud, exp, nbf, iat, sub and the `kubernetes.io`
//! namespace / serviceaccount / pod binding); minting for TokenRequest and verification for
//! authentication (signature, issuer, audience, expiry, the account and bound object exist).

use std::collections::BTreeMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use serde::{Deserialize, Serialize};

use crate::apiserver::auth::UserInfo;
use crate::apiserver::error::ApiError;
use crate::apiserver::registry::Registry;

/// The issuer and the audience the API server accepts.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc";

/// Errors of minting and verifying tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("service account key: {0}")]
    Key(jsonwebtoken::errors::Error),
    #[error("invalid token: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    #[error("signing token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// A reference in the `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

/// The `kubernetes.io` private claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KubernetesClaim {
    pub namespace: String,
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
}

/// The claims of a ServiceAccount token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

impl Claims {
    /// Claims for `namespace/name` valid for `seconds` from `now`.
    pub fn new(
        kubernetes: KubernetesClaim,
        audiences: Vec<String>,
        now: i64,
        seconds: i64,
    ) -> Self {
        Claims {
            iss: ISSUER.to_string(),
            sub: format!(
                "system:serviceaccount:{}:{}",
                kubernetes.namespace, kubernetes.serviceaccount.name
            ),
            aud: audiences,
            exp: now + seconds,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes,
        }
    }

    /// The identity the token authenticates as.
    pub fn user(&self) -> UserInfo {
        let k = &self.kubernetes;
        let ns_group = format!("system:serviceaccounts:{}", k.namespace);
        let mut u = UserInfo::new(
            self.sub.clone(),
            &["system:serviceaccounts", ns_group.as_str()],
        );
        u.uid = k.serviceaccount.uid.clone();
        let mut extra = BTreeMap::new();
        if let Some(pod) = &k.pod {
            extra.insert(
                "authentication.kubernetes.io/pod-name".into(),
                vec![pod.name.clone()],
            );
            extra.insert(
                "authentication.kubernetes.io/pod-uid".into(),
                vec![pod.uid.clone()],
            );
        }
        extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={}", self.jti)],
        );
        u.extra = extra;
        u
    }
}

/// Signs and verifies ServiceAccount tokens.
#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenIssuer {
    /// From the PKCS#8 private key and the SPKI public key (PEM, P-256).
    pub fn from_pem(private_pem: &str, public_pem: &str) -> Result<Self, TokenError> {
        Ok(TokenIssuer {
            encoding: EncodingKey::from_ec_pem(private_pem.as_bytes()).map_err(TokenError::Key)?,
            decoding: DecodingKey::from_ec_pem(public_pem.as_bytes()).map_err(TokenError::Key)?,
        })
    }

    pub fn mint(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.encoding)
            .map_err(TokenError::Sign)
    }

    /// Checks signature, issuer, the API audience, exp and nbf (no leeway).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[API_AUDIENCE]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        v.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(TokenError::Invalid)
    }
}

fn uid_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.uid.as_deref().unwrap_or_default()
}

/// Authenticates a bearer token as a ServiceAccount: a valid JWT whose account (and bound
/// pod or secret) still exists with the same uid; anything else is 401.
pub async fn authenticate(
    issuer: &TokenIssuer,
    registry: &Registry,
    token: &str,
) -> Result<UserInfo, ApiError> {
    let claims = issuer.verify(token).map_err(|e| {
        tracing::debug!(error = %e, "bearer token refused");
        ApiError::unauthorized()
    })?;
    let k = &claims.kubernetes;
    let ns = k.namespace.as_str();
    let sa = registry
        .get::<ServiceAccount>(Some(ns), &k.serviceaccount.name)
        .await
        .map_err(|_| ApiError::unauthorized())?;
    if uid_of(&sa.metadata) != k.serviceaccount.uid {
        return Err(ApiError::unauthorized());
    }
    if let Some(p) = &k.pod {
        let pod = registry
            .get::<Pod>(Some(ns), &p.name)
            .await
            .map_err(|_| ApiError::unauthorized())?;
        if uid_of(&pod.metadata) != p.uid || pod.metadata.deletion_timestamp.is_some() {
            return Err(ApiError::unauthorized());
        }
    }
    if let Some(s) = &k.secret {
        let secret = registry
            .get::<Secret>(Some(ns), &s.name)
            .await
            .map_err(|_| ApiError::unauthorized())?;
        if uid_of(&secret.metadata) != s.uid {
            return Err(ApiError::unauthorized());
        }
    }
    Ok(claims.user())
}
