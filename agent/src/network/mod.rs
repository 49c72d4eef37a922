//! Pod networking: node bridge, per-pod netns and veth, host-local IPAM, local blackhole routes.
