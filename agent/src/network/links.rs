//! Small idempotent rtnetlink operations: links by name, addresses, routes.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
    packet_route::{
        link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage},
        route::RouteType,
    },
};

use super::{NetworkError, ipam::Ipv4Cidr};

/// The errno of a netlink error, if it is one.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io().raw_os_error(),
        _ => None,
    }
}

fn nl(what: &'static str, target: &str) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let target = target.to_owned();
    move |source| NetworkError::Netlink {
        what,
        target,
        source,
    }
}

/// Opens an rtnetlink connection in the calling thread's netns (its task runs on the current
/// tokio runtime).
pub fn connect() -> Result<Handle, NetworkError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| NetworkError::Io {
        what: "opening rtnetlink",
        path: Default::default(),
        source,
    })?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The link called `name`, if it exists.
pub async fn get(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, NetworkError> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl("looking up link", name)(e)),
    }
}

/// The index of the link called `name`, if it exists.
pub async fn index(handle: &Handle, name: &str) -> Result<Option<u32>, NetworkError> {
    Ok(get(handle, name).await?.map(|l| l.header.index))
}

/// The controller (bridge) index of a link, if it has one.
pub fn controller(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(i) => Some(*i),
        _ => None,
    })
}

/// Creates the bridge `name` if missing, brings it up and returns its index.
pub async fn ensure_bridge(handle: &Handle, name: &str) -> Result<u32, NetworkError> {
    if index(handle, name).await?.is_none() {
        match handle
            .link()
            .add(LinkBridge::new(name).build())
            .execute()
            .await
        {
            Err(e) if errno(&e) != Some(libc::EEXIST) => {
                return Err(nl("creating bridge", name)(e));
            }
            _ => {}
        }
    }
    let idx = index(handle, name)
        .await?
        .ok_or_else(|| NetworkError::Missing(name.to_owned()))?;
    set_up(handle, idx, name).await?;
    Ok(idx)
}

/// Brings link `index` up.
pub async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<(), NetworkError> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl("bringing up", name))
}

/// Creates a veth pair: `host` in the calling netns, its peer named `peer` directly inside the
/// netns open as `netns_fd`.
pub async fn add_veth(
    handle: &Handle,
    host: &str,
    peer: &str,
    netns_fd: std::os::fd::RawFd,
) -> Result<(), NetworkError> {
    let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer.to_owned())
        .setns_by_fd(netns_fd)
        .build();
    let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host.to_owned())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
        .build();
    handle
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(nl("creating veth", host))
}

/// Attaches link `index` to bridge `bridge` and brings it up.
pub async fn attach(
    handle: &Handle,
    index: u32,
    bridge: u32,
    name: &str,
) -> Result<(), NetworkError> {
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .controller(bridge)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl("attaching to bridge", name))
}

/// Deletes the link called `name`; a missing one is fine.
pub async fn delete(handle: &Handle, name: &str) -> Result<(), NetworkError> {
    let Some(idx) = index(handle, name).await? else {
        return Ok(());
    };
    match handle.link().del(idx).execute().await {
        Err(e) if errno(&e) != Some(libc::ENODEV) => Err(nl("deleting link", name)(e)),
        _ => Ok(()),
    }
}

/// Adds `ip/prefix` to link `index`; an existing identical address is fine.
pub async fn add_address(
    handle: &Handle,
    index: u32,
    ip: Ipv4Addr,
    prefix_len: u8,
    name: &str,
) -> Result<(), NetworkError> {
    match handle
        .address()
        .add(index, IpAddr::V4(ip), prefix_len)
        .execute()
        .await
    {
        Err(e) if errno(&e) != Some(libc::EEXIST) => Err(nl("adding address to", name)(e)),
        _ => Ok(()),
    }
}

fn blackhole(cidr: Ipv4Cidr) -> rtnetlink::packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(cidr.network, cidr.prefix_len)
        .kind(RouteType::BlackHole)
        .build()
}

/// Installs (or keeps) a local blackhole route for `cidr`.
pub async fn add_blackhole(handle: &Handle, cidr: Ipv4Cidr) -> Result<(), NetworkError> {
    let target = format!("{}/{}", cidr.network, cidr.prefix_len);
    handle
        .route()
        .add(blackhole(cidr))
        .replace()
        .execute()
        .await
        .map_err(nl("adding blackhole route", &target))
}

/// Removes the blackhole route for `cidr`; a missing one is fine.
pub async fn del_blackhole(handle: &Handle, cidr: Ipv4Cidr) -> Result<(), NetworkError> {
    let target = format!("{}/{}", cidr.network, cidr.prefix_len);
    match handle.route().del(blackhole(cidr)).execute().await {
        Err(e) if !matches!(errno(&e), Some(libc::ESRCH | libc::ENOENT)) => {
            Err(nl("removing blackhole route", &target)(e))
        }
        _ => Ok(()),
    }
}

/// Sets the default route via `gateway` (replacing any other default route).
pub async fn set_default_route(handle: &Handle, gateway: Ipv4Addr) -> Result<(), NetworkError> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .build();
    handle
        .route()
        .add(route)
        .replace()
        .execute()
        .await
        .map_err(nl("adding default route via", &gateway.to_string()))
}
