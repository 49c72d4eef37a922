//! The node/QoS/pod cgroup levels the agent owns (cgroups-rs); the container leaf is libcontainer's.
