//! The agent side of the node protocol: registration, lease, node status, the pod stream.
