//! skiff's node agent as a library: the binary wires these parts together, tests drive them.

pub mod cgroups;
pub mod daemon;
pub mod dns;
pub mod hollow;
pub mod images;
pub mod lb;
pub mod network;
pub mod node;
pub mod pods;
pub mod runtime;
pub mod services;
pub mod streams;
