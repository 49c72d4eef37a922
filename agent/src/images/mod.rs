//! Images: pulls from OCI registries (with mirrors), a content-addressed layer store, overlay roots.
