//! skiff's control plane as a library: the binary wires these parts together, tests drive them.

pub mod apiserver;
pub mod controllers;
pub mod leader;
pub mod nodes;
pub mod scheduler;
pub mod store;
