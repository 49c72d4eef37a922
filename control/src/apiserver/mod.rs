//! The Kubernetes-compatible REST API server (HTTPS, discovery, resources, watch, Status errors).
