//! Registry credentials from `kubernetes.io/dockerconfigjson` (and legacy `dockercfg`) pull
//! secrets: each entry's registry host with a user and password, matched to an image's
//! registry the way the kubelet's credential keyring matches (host, then longest path prefix).

use base64::Engine;
use oci_client::secrets::RegistryAuth;

/// One credential: the registry (host, optionally with a path) it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// `registry.example.com:5000` or `registry.example.com/team`.
    pub registry: String,
    pub username: String,
    pub password: String,
}

/// The credentials one pull may use (empty: anonymous).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials(pub Vec<Credential>);

/// A pull secret that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pull secret: {0}")]
pub struct BadPullSecret(pub String);

/// `https://index.docker.io/v1/` → `index.docker.io`; `reg:5000/path/` → `reg:5000/path`.
fn normalize(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key = key.trim_end_matches('/');
    match key {
        "index.docker.io/v1" | "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        k => k.to_string(),
    }
}

impl Credentials {
    /// Adds the entries of a `.dockerconfigjson` (`{"auths": {…}}`) or `.dockercfg` (the map
    /// itself) document.
    pub fn add_docker_config(&mut self, bytes: &[u8]) -> Result<(), BadPullSecret> {
        let doc: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| BadPullSecret(e.to_string()))?;
        let auths = doc.get("auths").unwrap_or(&doc);
        let map = auths
            .as_object()
            .ok_or_else(|| BadPullSecret("\"auths\" is not an object".into()))?;
        for (registry, entry) in map {
            let field = |k: &str| entry.get(k).and_then(|v| v.as_str()).unwrap_or("");
            let (mut username, mut password) =
                (field("username").to_string(), field("password").to_string());
            if !field("auth").is_empty() {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(field("auth"))
                    .map_err(|e| BadPullSecret(format!("auth of {registry}: {e}")))?;
                let text = String::from_utf8_lossy(&decoded);
                let (u, p) = text.split_once(':').ok_or_else(|| {
                    BadPullSecret(format!("auth of {registry} is not user:password"))
                })?;
                (username, password) = (u.to_string(), p.to_string());
            }
            if username.is_empty() && password.is_empty() {
                continue;
            }
            self.0.push(Credential {
                registry: normalize(registry),
                username,
                password,
            });
        }
        Ok(())
    }

    /// The auth for `repository` (`host[:port]/path/name`): the matching credential with the
    /// longest registry prefix, else anonymous.
    pub fn auth_for(&self, repository: &str) -> RegistryAuth {
        let best = self
            .0
            .iter()
            .filter(|c| {
                repository == c.registry
                    || repository
                        .strip_prefix(&c.registry)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|c| c.registry.len());
        match best {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// A key that tells pulls with different credentials apart (never the secrets themselves).
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for c in &self.0 {
            h.update(format!("{}\0{}\0{}\0", c.registry, c.username, c.password));
        }
        hex::encode(&h.finalize()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_json_with_auth_and_plain_fields() {
        let mut creds = Credentials::default();
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:pw1");
        let doc = serde_json::json!({"auths": {
            "127.0.0.1:5001": {"auth": auth},
            "https://reg.example.com/team/": {"username": "ann", "password": "pw2"},
            "reg.example.com": {"username": "root", "password": "pw3"},
            "https://index.docker.io/v1/": {"username": "d", "password": "h"}
        }});
        creds.add_docker_config(doc.to_string().as_bytes()).unwrap();
        assert_eq!(
            creds.auth_for("127.0.0.1:5001/library/busybox"),
            RegistryAuth::Basic("bob".into(), "pw1".into())
        );
        // The longest matching prefix wins; a path must match at a '/' boundary.
        assert_eq!(
            creds.auth_for("reg.example.com/team/app"),
            RegistryAuth::Basic("ann".into(), "pw2".into())
        );
        assert_eq!(
            creds.auth_for("reg.example.com/teamx/app"),
            RegistryAuth::Basic("root".into(), "pw3".into())
        );
        assert_eq!(
            creds.auth_for("docker.io/library/busybox"),
            RegistryAuth::Basic("d".into(), "h".into())
        );
        assert_eq!(creds.auth_for("other.io/x"), RegistryAuth::Anonymous);
        assert_ne!(creds.fingerprint(), Credentials::default().fingerprint());
    }

    #[test]
    fn legacy_dockercfg_and_garbage() {
        let mut creds = Credentials::default();
        creds
            .add_docker_config(br#"{"reg.io": {"username": "u", "password": "p"}}"#)
            .unwrap();
        assert_eq!(
            creds.auth_for("reg.io/a"),
            RegistryAuth::Basic("u".into(), "p".into())
        );
        assert!(creds.add_docker_config(b"not json").is_err());
        assert!(
            creds
                .add_docker_config(br#"{"auths": {"r": {"auth": "bm9jb2xvbg=="}}}"#)
                .is_err()
        );
    }
}
