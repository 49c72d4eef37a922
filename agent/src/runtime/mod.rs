//! The container runtime: libcontainer driven from a single-threaded shim process per container.
