//! The node protocol server: the gRPC side of what agents call (registration, leases, pods, streams).
