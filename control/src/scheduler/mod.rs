//! The scheduler: binds pending pods to Ready nodes that fit them.
