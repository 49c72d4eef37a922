//! Talking to the started API server over TLS with the cluster CA and the kubeconfig's bearer
//! token: `/readyz`, whether the node is Ready, and the plain GET/POST/watch the benches use.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

pub const API_ADDR: &str = "127.0.0.1:6443";

/// An HTTPS client that trusts only the cluster CA.
pub struct Api {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Api {
    /// Reads the CA (`pki/ca.crt`) and, if present, the token of the kubeconfig's current user.
    pub fn new(ca_file: &Path, kubeconfig: &Path) -> Result<Self> {
        Self::with_timeout(ca_file, kubeconfig, Some(Duration::from_secs(10)))
    }

    /// Like [`Api::new`], with `timeout` for whole requests (`None` for watches).
    pub fn with_timeout(
        ca_file: &Path,
        kubeconfig: &Path,
        timeout: Option<Duration>,
    ) -> Result<Self> {
        let pem =
            std::fs::read(ca_file).with_context(|| format!("reading {}", ca_file.display()))?;
        let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        anyhow::ensure!(!certs.is_empty(), "no certificate in {}", ca_file.display());
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(certs)))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(timeout)
            .build()
            .new_agent();
        let token = std::fs::read_to_string(kubeconfig)
            .ok()
            .and_then(|text| token_from_kubeconfig(&text));
        Ok(Self {
            agent,
            base: format!("https://{API_ADDR}"),
            token,
        })
    }

    fn get(&self, path: &str) -> Result<(u16, String)> {
        let req = self.authorized(self.agent.get(format!("{}{path}", self.base)));
        let mut resp = req.call().with_context(|| format!("GET {path}"))?;
        let status = resp.status().as_u16();
        Ok((status, resp.body_mut().read_to_string().unwrap_or_default()))
    }

    fn authorized<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => req.header("Authorization", format!("Bearer {token}")),
            None => req,
        }
    }

    /// GETs `path`; returns the status and body.
    pub fn get_body(&self, path: &str) -> Result<(u16, String)> {
        self.get(path)
    }

    /// POSTs a JSON body to `path`; returns the status and body.
    pub fn post_json(&self, path: &str, body: &[u8]) -> Result<(u16, String)> {
        let req = self.authorized(self.agent.post(format!("{}{path}", self.base)));
        let mut resp = req
            .content_type("application/json")
            .send(body)
            .with_context(|| format!("POST {path}"))?;
        let status = resp.status().as_u16();
        Ok((status, resp.body_mut().read_to_string().unwrap_or_default()))
    }

    /// GETs `path` and hands back the body as a line reader (for watches).
    pub fn stream(&self, path: &str) -> Result<impl std::io::BufRead + use<>> {
        let req = self.authorized(self.agent.get(format!("{}{path}", self.base)));
        let resp = req.call().with_context(|| format!("GET {path}"))?;
        anyhow::ensure!(resp.status() == 200, "GET {path}: {}", resp.status());
        Ok(std::io::BufReader::new(resp.into_body().into_reader()))
    }

    /// Whether `/readyz` answers 200. Connection errors (not listening yet) count as not ready.
    pub fn ready(&self) -> bool {
        matches!(self.get("/readyz"), Ok((200, _)))
    }

    /// Whether node `name` exists and its `Ready` condition is `True`.
    pub fn node_ready(&self, name: &str) -> bool {
        let Ok((200, body)) = self.get(&format!("/api/v1/nodes/{name}")) else {
            return false;
        };
        let Ok(node) = serde_json::from_str::<serde_json::Value>(&body) else {
            return false;
        };
        node["status"]["conditions"]
            .as_array()
            .is_some_and(|conds| {
                conds
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
    }
}

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(rename = "current-context", default)]
    current_context: String,
    #[serde(default)]
    contexts: Vec<Named<ContextRef>>,
    #[serde(default)]
    users: Vec<Named<User>>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "context", alias = "user")]
    value: T,
}

#[derive(Deserialize)]
struct ContextRef {
    user: String,
}

#[derive(Deserialize)]
struct User {
    token: Option<String>,
}

/// The bearer token of the current context's user.
fn token_from_kubeconfig(text: &str) -> Option<String> {
    let kc: Kubeconfig = serde_yaml::from_str(text).ok()?;
    let user = kc
        .contexts
        .iter()
        .find(|c| c.name == kc.current_context)
        .map(|c| c.value.user.clone())
        .or_else(|| kc.users.first().map(|u| u.name.clone()))?;
    kc.users.into_iter().find(|u| u.name == user)?.value.token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_current_users_token() {
        let text = r#"
apiVersion: v1
kind: Config
current-context: skiff
clusters:
- name: skiff
  cluster: {server: "https://127.0.0.1:6443", certificate-authority: pki/ca.crt}
contexts:
- name: other
  context: {cluster: skiff, user: someone}
- name: skiff
  context: {cluster: skiff, user: admin}
users:
- name: someone
  user: {token: wrong}
- name: admin
  user: {token: s3cret}
"#;
        assert_eq!(token_from_kubeconfig(text).as_deref(), Some("s3cret"));
        assert_eq!(token_from_kubeconfig("users: []"), None);
    }
}
