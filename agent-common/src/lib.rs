//! Map key and value layouts shared by agent-ebpf (kernel side) and the agent (user side).
#![no_std]
