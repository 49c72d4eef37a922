//! Registry mirrors: the subset of k3s' `registries.yaml` skiff understands.
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://127.0.0.1:5000"]
//! ```
//! A `"*"` entry applies to every registry without its own entry. Other top-level keys of
//! k3s' file (`configs` for auth/TLS) are accepted and ignored.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// Errors reading `registries.yaml`.
#[derive(Debug, thiserror::Error)]
pub enum RegistryConfigError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("mirror endpoint {0:?} is not an http(s) URL")]
    BadEndpoint(String),
}

/// One mirror's endpoints, tried in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
}

/// Mirrors per registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RegistryConfig {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
}

/// A parsed mirror endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]`.
    pub host: String,
    /// Plain HTTP (`http://` endpoints).
    pub insecure: bool,
}

impl RegistryConfig {
    /// Reads `path`; a missing file means no mirrors.
    pub fn load(path: &Path) -> Result<RegistryConfig, RegistryConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(RegistryConfigError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Self::parse(&text).map_err(|e| match e {
            RegistryConfigError::Parse { source, .. } => RegistryConfigError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    /// Parses the YAML text and checks every endpoint.
    pub fn parse(text: &str) -> Result<RegistryConfig, RegistryConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let config: RegistryConfig =
            serde_yaml::from_str(text).map_err(|source| RegistryConfigError::Parse {
                path: "registries.yaml".into(),
                source,
            })?;
        for mirror in config.mirrors.values() {
            for e in &mirror.endpoint {
                parse_endpoint(e)?;
            }
        }
        Ok(config)
    }

    /// The endpoints to try for registry `host` (its own entry, else `"*"`), in order.
    pub fn endpoints(&self, host: &str) -> Vec<Endpoint> {
        let mirror = self.mirrors.get(host).or_else(|| self.mirrors.get("*"));
        mirror
            .map(|m| {
                m.endpoint
                    .iter()
                    .filter_map(|e| parse_endpoint(e).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every endpoint host reached over plain HTTP.
    pub fn insecure_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .mirrors
            .values()
            .flat_map(|m| m.endpoint.iter().filter_map(|e| parse_endpoint(e).ok()))
            .filter(|e| e.insecure)
            .map(|e| e.host)
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

/// `http://127.0.0.1:5000` → host `127.0.0.1:5000`, insecure; no scheme means https. A path
/// after the host is ignored (registries serve `/v2/` at the root).
fn parse_endpoint(endpoint: &str) -> Result<Endpoint, RegistryConfigError> {
    let (insecure, rest) = if let Some(r) = endpoint.strip_prefix("http://") {
        (true, r)
    } else if let Some(r) = endpoint.strip_prefix("https://") {
        (false, r)
    } else if endpoint.contains("://") {
        return Err(RegistryConfigError::BadEndpoint(endpoint.into()));
    } else {
        (false, endpoint)
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(RegistryConfigError::BadEndpoint(endpoint.into()));
    }
    Ok(Endpoint {
        host: host.to_string(),
        insecure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_k3s_subset() {
        let c = RegistryConfig::parse(
            r#"
mirrors:
  docker.io:
    endpoint:
      - "http://127.0.0.1:5000"
      - "https://mirror.example.com/v2"
  "*":
    endpoint: ["registry.local:443"]
configs:
  "registry.local:443":
    tls:
      insecure_skip_verify: true
"#,
        )
        .unwrap();
        assert_eq!(
            c.endpoints("docker.io"),
            vec![
                Endpoint {
                    host: "127.0.0.1:5000".into(),
                    insecure: true
                },
                Endpoint {
                    host: "mirror.example.com".into(),
                    insecure: false
                },
            ]
        );
        assert_eq!(
            c.endpoints("quay.io"),
            vec![Endpoint {
                host: "registry.local:443".into(),
                insecure: false
            }]
        );
        assert_eq!(c.insecure_hosts(), vec!["127.0.0.1:5000".to_string()]);
    }

    #[test]
    fn empty_or_missing_file_means_no_mirrors() {
        assert_eq!(
            RegistryConfig::parse("").unwrap(),
            RegistryConfig::default()
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            RegistryConfig::load(&dir.path().join("none.yaml")).unwrap(),
            RegistryConfig::default()
        );
        assert!(RegistryConfig::default().endpoints("docker.io").is_empty());
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(RegistryConfig::parse("mirrors: [1, 2]").is_err());
        assert!(matches!(
            RegistryConfig::parse("mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n"),
            Err(RegistryConfigError::BadEndpoint(_))
        ));
    }
}
