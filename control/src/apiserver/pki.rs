//! The cluster PKI under DATA_DIR/pki: a CA, a server certificate (localhost, 127.0.0.1 and any
//! extra names), the ServiceAccount token signing key pair, the admin and node-join bearer
//! tokens, client certificates (CN = user, O = group) and the kubeconfig writers. Created on
//! first start, reused afterwards; secret files are 0600.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Errors of the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating certificates: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("reading PEM {path}: {message}")]
    Pem { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The loaded PKI.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
    admin_token: String,
    node_token: String,
    sa_key_pem: String,
    sa_pub_pem: String,
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), PkiError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(contents.as_bytes()).map_err(io_err(path))?;
    if secret {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    }
    f.sync_all().map_err(io_err(path))
}

fn read(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The CA's parameters; deterministic so a stored CA key can sign again after a restart.
fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, "skiff-ca");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(p)
}

/// Every SAN the server certificate carries, sorted and de-duplicated.
fn all_sans(extra: &[String]) -> Vec<String> {
    let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    sans.extend(extra.iter().filter(|s| !s.is_empty()).cloned());
    sans.sort();
    sans.dedup();
    sans
}

impl Pki {
    /// Loads the PKI from `data_dir/pki`, creating whatever is missing. The server certificate
    /// is re-issued (by the same CA) when the set of names changed.
    pub fn load_or_create(data_dir: &Path, extra_sans: &[String]) -> Result<Pki, PkiError> {
        let dir = data_dir.join("pki");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_err(&dir))?;
        let (ca_crt, ca_key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        let (ca_pem, ca_key_pem) = match (read(&ca_crt)?, read(&ca_key_path)?) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let key = KeyPair::generate()?;
                let cert = ca_params()?.self_signed(&key)?;
                let (c, k) = (cert.pem(), key.serialize_pem());
                write_file(&ca_key_path, &k, true)?;
                write_file(&ca_crt, &c, false)?;
                (c, k)
            }
        };
        let sans = all_sans(extra_sans);
        let sans_path = dir.join("server.sans");
        let (srv_crt, srv_key) = (dir.join("server.crt"), dir.join("server.key"));
        let stored_sans = read(&sans_path)?;
        let (server_cert_pem, server_key_pem) = match (read(&srv_crt)?, read(&srv_key)?) {
            (Some(c), Some(k)) if stored_sans.as_deref() == Some(sans.join("\n").as_str()) => {
                (c, k)
            }
            _ => {
                let ca_key = KeyPair::from_pem(&ca_key_pem)?;
                let issuer = Issuer::new(ca_params()?, ca_key);
                let key = KeyPair::generate()?;
                let mut p = CertificateParams::new(Vec::<String>::new())?;
                p.distinguished_name
                    .push(DnType::CommonName, "skiff-apiserver");
                p.subject_alt_names = sans
                    .iter()
                    .map(|s| match s.parse::<IpAddr>() {
                        Ok(ip) => Ok(SanType::IpAddress(ip)),
                        Err(_) => s.clone().try_into().map(SanType::DnsName),
                    })
                    .collect::<Result<_, _>>()?;
                p.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyEncipherment,
                ];
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                p.not_before = rcgen::date_time_ymd(2024, 1, 1);
                p.not_after = rcgen::date_time_ymd(2124, 1, 1);
                let cert = p.signed_by(&key, &issuer)?;
                let (c, k) = (cert.pem(), key.serialize_pem());
                write_file(&srv_key, &k, true)?;
                write_file(&srv_crt, &c, false)?;
                write_file(&sans_path, &sans.join("\n"), false)?;
                (c, k)
            }
        };
        let token = |name: &str| -> Result<String, PkiError> {
            let path = dir.join(name);
            match read(&path)? {
                Some(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
                _ => {
                    let t = random_token();
                    write_file(&path, &t, true)?;
                    Ok(t)
                }
            }
        };
        let (sa_key, sa_pub) = (dir.join("sa.key"), dir.join("sa.pub"));
        let (sa_key_pem, sa_pub_pem) = match (read(&sa_key)?, read(&sa_pub)?) {
            (Some(k), Some(p)) => (k, p),
            _ => {
                let key = KeyPair::generate()?;
                let (k, p) = (key.serialize_pem(), key.public_key_pem());
                write_file(&sa_key, &k, true)?;
                write_file(&sa_pub, &p, false)?;
                (k, p)
            }
        };
        Ok(Pki {
            sa_key_pem,
            sa_pub_pem,
            admin_token: token("admin-token")?,
            node_token: token("node-token")?,
            dir,
            ca_pem,
            server_cert_pem,
            server_key_pem,
        })
    }

    /// Loads the PKI of an initialized data directory without changing anything (the
    /// server certificate's names are the stored ones).
    pub fn load_existing(data_dir: &Path) -> Result<Pki, PkiError> {
        let sans_path = data_dir.join("pki/server.sans");
        let sans: Vec<String> = read(&sans_path)?
            .ok_or_else(|| PkiError::Pem {
                path: sans_path,
                message: "missing: the server has not initialized this data directory".into(),
            })?
            .lines()
            .map(str::to_string)
            .collect();
        Pki::load_or_create(data_dir, &sans)
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn server_cert_pem(&self) -> &str {
        &self.server_cert_pem
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    pub fn node_token(&self) -> &str {
        &self.node_token
    }

    /// The ServiceAccount token signing key (PKCS#8 PEM, P-256).
    pub fn service_account_key_pem(&self) -> &str {
        &self.sa_key_pem
    }

    /// The ServiceAccount token verification key (SPKI PEM).
    pub fn service_account_public_pem(&self) -> &str {
        &self.sa_pub_pem
    }

    fn ca_issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let path = self.dir.join("ca.key");
        let pem = read(&path)?.ok_or_else(|| PkiError::Pem {
            path,
            message: "missing".into(),
        })?;
        Ok(Issuer::new(ca_params()?, KeyPair::from_pem(&pem)?))
    }

    /// A client certificate signed by the CA: `(certificate PEM, key PEM)` with CN = `user`
    /// and O = `group` (one organization per certificate), valid for a year.
    pub fn client_certificate(
        &self,
        user: &str,
        group: Option<&str>,
    ) -> Result<(String, String), PkiError> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, user);
        if let Some(g) = group {
            p.distinguished_name.push(DnType::OrganizationName, g);
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = std::time::SystemTime::now();
        p.not_before = (now - std::time::Duration::from_secs(300)).into();
        p.not_after = (now + std::time::Duration::from_secs(365 * 24 * 3600)).into();
        let cert = p.signed_by(&key, &self.ca_issuer()?)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A kubeconfig for `user` authenticating with a fresh client certificate.
    pub fn client_kubeconfig(
        &self,
        server_url: &str,
        user: &str,
        group: Option<&str>,
    ) -> Result<String, PkiError> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let (cert, key) = self.client_certificate(user, group)?;
        Ok(format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {ca}\nusers:\n- name: {user:?}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: {user:?}\ncurrent-context: skiff\npreferences: {{}}\n",
            ca = b64(&self.ca_pem),
            cert = b64(&cert),
            key = b64(&key),
        ))
    }

    /// A rustls server config with the server certificate (chain: server, CA), ALPN h2 and
    /// http/1.1. Shared by the API server and the node-protocol server.
    pub fn server_tls_config(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        let pem_err = |what: &str, e: rustls::pki_types::pem::Error| PkiError::Pem {
            path: self.dir.join(what),
            message: e.to_string(),
        };
        let mut chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| pem_err("server.crt", e))?;
        chain.extend(
            CertificateDer::pem_slice_iter(self.ca_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_err("ca.crt", e))?,
        );
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes())
            .map_err(|e| pem_err("server.key", e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Client certificates signed by the CA are verified when offered, never required.
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(ca.map_err(|e| pem_err("ca.crt", e))?)?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| PkiError::Pem {
            path: self.dir.join("ca.crt"),
            message: e.to_string(),
        })?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// The kubeconfig text (cluster, user and context all named `skiff`).
    pub fn kubeconfig(&self, server_url: &str) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {ca}\nusers:\n- name: skiff\n  user:\n    token: {token}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: skiff\ncurrent-context: skiff\npreferences: {{}}\n",
            token = self.admin_token
        )
    }

    /// Writes the kubeconfig (0600) to `path`, creating its directory.
    pub fn write_kubeconfig(&self, path: &Path, server_url: &str) -> Result<(), PkiError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        write_file(path, &self.kubeconfig(server_url), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused_with_private_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let a =
            Pki::load_or_create(dir.path(), &["10.0.0.7".into(), "skiff.local".into()]).unwrap();
        let b =
            Pki::load_or_create(dir.path(), &["skiff.local".into(), "10.0.0.7".into()]).unwrap();
        assert_eq!(a.ca_pem(), b.ca_pem());
        assert_eq!(a.server_cert_pem(), b.server_cert_pem());
        assert_eq!(a.admin_token(), b.admin_token());
        assert_eq!(a.node_token(), b.node_token());
        assert_ne!(a.admin_token(), a.node_token());
        for f in ["ca.key", "server.key", "admin-token", "node-token"] {
            let mode = fs::metadata(dir.path().join("pki").join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        // New names: new server certificate, same CA.
        let c = Pki::load_or_create(dir.path(), &["other.local".into()]).unwrap();
        assert_eq!(a.ca_pem(), c.ca_pem());
        assert_ne!(a.server_cert_pem(), c.server_cert_pem());
        c.server_tls_config().unwrap();
        let kc = dir.path().join("kube/config");
        c.write_kubeconfig(&kc, "https://127.0.0.1:6443").unwrap();
        let text = fs::read_to_string(&kc).unwrap();
        assert!(text.contains("server: https://127.0.0.1:6443"));
        assert!(text.contains(c.admin_token()));
        assert!(text.contains("current-context: skiff"));
        assert_eq!(
            fs::metadata(&kc).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn client_certificates_name_the_user_and_reuse_the_pki() {
        let dir = tempfile::tempdir().unwrap();
        let a = Pki::load_or_create(dir.path(), &["10.0.0.7".into()]).unwrap();
        let b = Pki::load_existing(dir.path()).unwrap();
        assert_eq!(a.server_cert_pem(), b.server_cert_pem());
        assert_eq!(a.service_account_key_pem(), b.service_account_key_pem());
        let (cert, _key) = b.client_certificate("jane", Some("devs")).unwrap();
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let u = crate::apiserver::auth::user_from_client_cert(&der).unwrap();
        assert_eq!((u.name.as_str(), u.groups[0].as_str()), ("jane", "devs"));
        let kc = b
            .client_kubeconfig("https://127.0.0.1:6443", "jane", None)
            .unwrap();
        assert!(kc.contains("client-certificate-data: ") && kc.contains("client-key-data: "));
        assert!(Pki::load_existing(&dir.path().join("nowhere")).is_err());
    }
}
