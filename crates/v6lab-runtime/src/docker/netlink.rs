//! Host links through rtnetlink: one bridge per segment, one veth pair per interface.
//!
//! - A bridge carries no address and the host takes no part in the segment. IPv6 is disabled
//!   on it (`net.ipv6.conf.<br>.disable_ipv6=1`) before it goes up, so it never gets a
//!   link-local address. IPv4 cannot be disabled per interface, and by default Linux answers
//!   ARP for *any* of the host's addresses on *any* interface: a lab node asking for an address
//!   the host owns elsewhere (e.g. the host's own 192.0.2.2 on eth0) would get the bridge's MAC.
//!   So on the bridge `arp_ignore=8` (never answer ARP), `rp_filter=1` (the host has no route
//!   back through the bridge, so no packet from it is accepted or routed) and `forwarding=0`.
//!   Multicast snooping is off, so the segment floods NDP/MLD like a plain switch (a lab has no
//!   MLD querier); STP is off (the default).
//! - A veth pair is created in one netlink request: the host end in the host namespace (down,
//!   already enslaved to the bridge) and the container end directly inside the node's network
//!   namespace (by PID) under its final name (`eth1`), with its MAC and MTU. The container
//!   end therefore never exists in the host namespace: no temporary names, no renames, no
//!   window where a half-moved link is left behind. Then IPv6 is disabled on the host end,
//!   which gets its alias and goes up.
//! - The container end cannot be created *up* (the kernel opens the peer before the pair is
//!   linked and `veth_open` answers `ENOTCONN`), so it is brought up from inside the node
//!   ([`set_up_in_netns`]).
//! - Work *inside* a node ([`set_up_in_netns`], [`netns_interfaces`]) uses a netlink socket
//!   opened by a dedicated thread that has entered the node's namespace (`setns`); the socket
//!   stays bound to that namespace. The thread is never reused, so no pooled thread is ever
//!   left in a foreign namespace.

use futures::TryStreamExt;
use rtnetlink::packet_route::{
    address::{AddressAttribute, AddressFlags, AddressScope},
    link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage},
};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth};
use std::future::Future;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] io::Error),
    #[error("netlink: {op} {name}: {source}")]
    Request {
        op: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("writing {path}: {source}")]
    Sysctl {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("entering the network namespace of PID {pid}: {source}")]
    Netns {
        pid: u32,
        #[source]
        source: io::Error,
    },
    #[error("link {0} not found")]
    NotFound(String),
}

impl NetlinkError {
    /// The errno, when the kernel refused a request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

fn to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

fn req_err(op: &'static str, name: &str) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let name = name.to_string();
    move |e| NetlinkError::Request {
        op,
        name,
        source: to_io(e),
    }
}

/// A link in the host namespace, as far as v6lab cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLink {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    /// `bridge`, `veth`, ... (`None` for links without a kind, e.g. physical NICs).
    pub kind: Option<String>,
    /// Index of the bridge (or other controller) this link is attached to.
    pub controller: Option<u32>,
}

/// The host end and the container end of one veth pair.
#[derive(Debug, Clone)]
pub struct VethSpec<'a> {
    /// Host end name (at most 15 bytes), see [`crate::names::host_veth`].
    pub host: &'a str,
    /// Host end alias: the readable name.
    pub alias: &'a str,
    /// Index of the bridge the host end joins.
    pub bridge_index: u32,
    /// Name of the container end inside the node (`eth1`).
    pub peer: &'a str,
    pub peer_mac: [u8; 6],
    pub mtu: u32,
    /// PID of any process in the node's network namespace (the container's init).
    pub pid: u32,
}

/// A netlink connection in the caller's (the host's) network namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens a connection; its I/O task is spawned on the current tokio runtime and ends when
    /// the last clone of the returned value is dropped.
    pub fn connect() -> Result<Self, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// Creates a bridge without any address (IPv6 disabled), with `mtu`, then sets its alias
    /// and brings it up. Returns its index.
    pub async fn create_bridge(
        &self,
        name: &str,
        alias: &str,
        mtu: u32,
    ) -> Result<u32, NetlinkError> {
        let msg = LinkMessageBuilder::<LinkBridge>::new(name)
            .mtu(mtu)
            .mcast_snooping(false)
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(req_err("create bridge", name))?;
        disable_ipv6(name)?;
        isolate_ipv4(name)?;
        let index = self.index_of(name).await?;
        self.up_with_alias(index, name, alias).await?;
        Ok(index)
    }

    /// Creates a veth pair: the host end enslaved to the bridge, the container end straight
    /// inside the namespace of `pid`, named and addressed but down (see
    /// [`set_up_in_netns`]); then disables IPv6 on the host end, sets its alias and brings it
    /// up.
    pub async fn create_veth(&self, v: &VethSpec<'_>) -> Result<(), NetlinkError> {
        let peer = LinkUnspec::new_with_name(v.peer)
            .address(v.peer_mac.to_vec())
            .mtu(v.mtu)
            .setns_by_pid(v.pid)
            .build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(v.host.to_string())
            .mtu(v.mtu)
            .controller(v.bridge_index)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(req_err("create veth", v.host))?;
        disable_ipv6(v.host)?;
        let index = self.index_of(v.host).await?;
        self.up_with_alias(index, v.host, v.alias).await
    }

    async fn up_with_alias(&self, index: u32, name: &str, alias: &str) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(index).alias(alias).up().build();
        self.handle
            .link()
            .change(msg)
            .execute()
            .await
            .map_err(req_err("set up", name))
    }

    /// The index of the link called `name`.
    pub async fn index_of(&self, name: &str) -> Result<u32, NetlinkError> {
        let mut links = self.handle.link().get().match_name(name).execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(msg.header.index),
            Ok(None) => Err(NetlinkError::NotFound(name.to_string())),
            Err(e) => {
                let e = to_io(e);
                if e.raw_os_error() == Some(nix::libc::ENODEV) {
                    Err(NetlinkError::NotFound(name.to_string()))
                } else {
                    Err(NetlinkError::Request {
                        op: "get link",
                        name: name.to_string(),
                        source: e,
                    })
                }
            }
        }
    }

    /// Every link of the host namespace.
    pub async fn links(&self) -> Result<Vec<HostLink>, NetlinkError> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(req_err("list links", ""))?;
        Ok(msgs.iter().map(host_link).collect())
    }

    /// Deletes a link. `Ok(false)` when it was already gone (idempotent); deleting one end of
    /// a veth pair deletes the other.
    pub async fn delete(&self, link: &HostLink) -> Result<bool, NetlinkError> {
        match self.handle.link().del(link.index).execute().await {
            Ok(()) => Ok(true),
            Err(e) => {
                let e = to_io(e);
                if e.raw_os_error() == Some(nix::libc::ENODEV) {
                    Ok(false)
                } else {
                    Err(NetlinkError::Request {
                        op: "delete link",
                        name: link.name.clone(),
                        source: e,
                    })
                }
            }
        }
    }
}

fn host_link(msg: &LinkMessage) -> HostLink {
    let mut link = HostLink {
        index: msg.header.index,
        name: String::new(),
        alias: None,
        kind: None,
        controller: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::IfAlias(a) if !a.is_empty() => link.alias = Some(a.clone()),
            LinkAttribute::Controller(c) if *c != 0 => link.controller = Some(*c),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

/// Writes `net.ipv6.conf.<link>.disable_ipv6 = 1` in the caller's namespace. A host without
/// IPv6 at all (no such file) is fine.
pub fn disable_ipv6(link: &str) -> Result<(), NetlinkError> {
    let path = format!("/proc/sys/net/ipv6/conf/{link}/disable_ipv6");
    match std::fs::write(&path, b"1") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetlinkError::Sysctl { path, source }),
    }
}

/// Makes the host ignore IPv4 on `link` (a lab bridge): no ARP answers, no packet accepted
/// (strict reverse-path filter: the host has no route through the link), none forwarded.
pub fn isolate_ipv4(link: &str) -> Result<(), NetlinkError> {
    for (key, value) in [("arp_ignore", "8"), ("rp_filter", "1"), ("forwarding", "0")] {
        let path = format!("/proc/sys/net/ipv4/conf/{link}/{key}");
        std::fs::write(&path, value).map_err(|source| NetlinkError::Sysctl { path, source })?;
    }
    Ok(())
}

/// Runs `f` with a netlink handle bound to the network namespace of `pid`.
///
/// A fresh OS thread enters the namespace (`setns` changes only the calling thread), opens the
/// netlink socket there and drives `f` on its own single-threaded runtime; then the thread
/// ends. Never do this on a tokio worker or blocking-pool thread: they are reused.
pub async fn in_netns<T, F, Fut>(pid: u32, f: F) -> Result<T, NetlinkError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    let ns_err = move |source: io::Error| NetlinkError::Netns { pid, source };
    // Opened here so a vanished PID fails before a thread is spawned.
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(ns_err)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("v6lab-netns-{pid}"))
        .spawn(move || {
            let run = move || -> Result<T, NetlinkError> {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| ns_err(io::Error::from(e)))?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(ns_err)?;
                rt.block_on(async move {
                    let (conn, handle, _) =
                        rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
                    tokio::spawn(conn);
                    f(handle).await
                })
            };
            let _ = tx.send(run());
        })
        .map_err(ns_err)?;
    rx.await
        .map_err(|_| ns_err(io::Error::other("namespace thread panicked")))?
}

/// Brings the links called `names` up inside the network namespace of `pid`, after setting
/// `sysctls` on each (`IFACE` in a key stands for the link's name). The namespace thread opens
/// `/proc/sys/net` from inside the node's namespace, so the writes land there.
pub async fn set_up_in_netns(
    pid: u32,
    names: Vec<String>,
    sysctls: Vec<(String, String)>,
) -> Result<(), NetlinkError> {
    in_netns(pid, move |handle| async move {
        for name in &names {
            for (key, value) in &sysctls {
                let path = format!("/proc/sys/{}", key.replace('.', "/").replace("IFACE", name));
                std::fs::write(&path, value)
                    .map_err(|source| NetlinkError::Netns { pid, source })?;
            }
            let msg = LinkUnspec::new_with_name(name).up().build();
            handle
                .link()
                .change(msg)
                .execute()
                .await
                .map_err(req_err("set up", name))?;
        }
        Ok(())
    })
    .await
}

/// One interface inside a node, read through netlink in its namespace.
pub use crate::runtime::{IfAddress, NetnsInterface};

fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Links and addresses inside the network namespace of `pid` (e.g. a node's container).
pub async fn netns_interfaces(pid: u32) -> Result<Vec<NetnsInterface>, NetlinkError> {
    in_netns(pid, |handle| async move {
        let links: Vec<LinkMessage> = handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(req_err("list links", ""))?;
        let addrs: Vec<_> = handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(req_err("list addresses", ""))?;
        let mut out: Vec<NetnsInterface> = links
            .iter()
            .map(|l| {
                let mut i = NetnsInterface {
                    index: l.header.index,
                    name: String::new(),
                    mac: None,
                    mtu: None,
                    up: l.header.flags.contains(LinkFlags::Up),
                    lower_up: l.header.flags.contains(LinkFlags::LowerUp),
                    addresses: Vec::new(),
                };
                for attr in &l.attributes {
                    match attr {
                        LinkAttribute::IfName(n) => i.name = n.clone(),
                        LinkAttribute::Address(a) if a.len() == 6 => i.mac = Some(format_mac(a)),
                        LinkAttribute::Mtu(m) => i.mtu = Some(*m),
                        _ => {}
                    }
                }
                i
            })
            .collect();
        for a in &addrs {
            let Some(iface) = out.iter_mut().find(|i| i.index == a.header.index) else {
                continue;
            };
            let mut flags = AddressFlags::from_bits_retain(u32::from(a.header.flags.bits()));
            let mut address = None;
            let mut local = None;
            for attr in &a.attributes {
                match attr {
                    AddressAttribute::Address(ip) => address = Some(*ip),
                    AddressAttribute::Local(ip) => local = Some(*ip),
                    AddressAttribute::Flags(f) => flags = *f,
                    _ => {}
                }
            }
            // IPv4: IFA_LOCAL is the interface's address (IFA_ADDRESS is the peer on p2p links).
            let Some(ip) = local.or(address) else {
                continue;
            };
            iface.addresses.push(IfAddress {
                address: ip,
                prefix_len: a.header.prefix_len,
                scope: match a.header.scope {
                    AddressScope::Universe => "global".into(),
                    AddressScope::Site => "site".into(),
                    AddressScope::Link => "link".into(),
                    AddressScope::Host => "host".into(),
                    AddressScope::Nowhere => "nowhere".into(),
                    other => format!("{other:?}").to_lowercase(),
                },
                tentative: flags.contains(AddressFlags::Tentative),
                dad_failed: flags.contains(AddressFlags::Dadfailed),
                deprecated: flags.contains(AddressFlags::Deprecated),
                dynamic: !flags.contains(AddressFlags::Permanent),
            });
        }
        Ok(out)
    })
    .await
}
