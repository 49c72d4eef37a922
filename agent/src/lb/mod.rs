//! The eBPF service load balancer: loads, attaches, pins and removes the agent-ebpf programs.
