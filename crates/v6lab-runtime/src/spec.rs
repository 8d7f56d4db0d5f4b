//! What a runtime realizes: one lab, as pure data. Built from a plan by [`crate::from_plan`].
//!
//! The spec says *what* exists (segments, nodes, interfaces, files, start scripts, readiness
//! probes); runtimes decide *how* (Docker containers and host bridges, or Kubernetes pods).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One lab instance: a running copy of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    /// DNS-safe lab name, unique on the host (`[a-z0-9-]`, at most 40 bytes).
    pub lab: String,
    /// The topology's name (for listings).
    pub topology: String,
    /// Hash of the topology source (label `dev.v6lab.topology-hash`).
    pub topology_hash: String,
    /// Unix seconds at which the lab expires (label `dev.v6lab.expires`), if any.
    pub expires_at: Option<u64>,
    /// Who manages the lab (label `dev.v6lab.owner`): `cli` for `v6lab up`, `controller` for labs
    /// the controller creates. A controller adopts `cli` labs (to enforce their lifetime) and
    /// removes `controller` labs it no longer wants.
    pub owner: String,
    /// Number of nodes (label `dev.v6lab.nodes`), so a half-made lab can be told from a whole one.
    pub node_count: usize,
    /// Image used by nodes without their own.
    pub image: String,
    pub segments: Vec<SegmentSpec>,
    pub nodes: Vec<NodeSpec>,
}

/// One L2 segment: a bridge on the host (Docker) or a VXLAN mesh (Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentSpec {
    pub name: String,
    pub mtu: u32,
}

/// One node: a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub name: String,
    pub image: Option<String>,
    /// Set at create time (`/proc/sys` is read-only inside containers).
    pub sysctls: BTreeMap<String, String>,
    /// Set on each interface before it comes up, `IFACE` standing for its name
    /// (`net.ipv6.neigh.IFACE.retrans_time_ms`): settings that exist only once the link does.
    #[serde(default)]
    pub link_sysctls: BTreeMap<String, String>,
    pub limits: Limits,
    /// Needs `/dev/net/tun` (NAT64 translators only).
    pub tun: bool,
    pub interfaces: Vec<InterfaceSpec>,
    /// Files copied into the node before any start script runs.
    pub files: Vec<FileSpec>,
    /// Commands run in order after the files are in place; each is an argv.
    pub start: Vec<Vec<String>>,
    /// Readiness: every probe must exit 0 (polled with a deadline) before the node is ready.
    pub probes: Vec<Probe>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: u64,
    pub pids: u32,
    /// CPU limit in billionths of a CPU (Docker's `NanoCpus`).
    pub nano_cpus: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSpec {
    /// Linux name inside the node (`eth1`), at most 15 bytes.
    pub name: String,
    /// Name of the segment, one of [`LabSpec::segments`].
    pub segment: String,
    /// Deterministic MAC, `02:..` (locally administered).
    pub mac: String,
    pub mtu: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    /// Absolute path inside the node.
    pub path: String,
    pub mode: u32,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// What is awaited, for people: "radvd running", "unbound listening on 53/udp".
    pub description: String,
    pub argv: Vec<String>,
}

/// The capabilities a node keeps; every other one is dropped (`cap_drop: ALL`). Students are root
/// in their nodes: this list is what that root can do. Each was found necessary by running the
/// sample topologies' daemons, exercises and a student's tools without it (see docs/security.md,
/// "Node confinement"). Not needed: NET_BIND_SERVICE (nodes set
/// `net.ipv4.ip_unprivileged_port_start=0` in their own network namespace, so servers bind
/// ports below 1024 without it), FOWNER (nothing in the lab changes the mode of a file it does
/// not own).
pub const NODE_CAPABILITIES: &[(&str, &str)] = &[
    (
        "NET_ADMIN",
        "addresses, routes, links, sysctls of the node's own network namespace; FRR's zebra, \
         radvd, tayga, iptables/nftables",
    ),
    (
        "NET_RAW",
        "raw and packet sockets: ping, tcpdump, radvd, dnsmasq's DHCPv6/RA, OSPFv3",
    ),
    (
        "SETUID",
        "daemons that drop to their own user (FRR, dnsmasq, unbound, tcpdump) and `su`",
    ),
    ("SETGID", "the same daemons set their groups"),
    (
        "CHOWN",
        "daemons and package scripts hand their run and state directories to their users",
    ),
    (
        "DAC_OVERRIDE",
        "root reads and writes files owned by daemon users (`/etc/frr/*.conf` is frr:frr 0640)",
    ),
    (
        "KILL",
        "root signals daemons running as other users (`kill`, reloads, FRR's watchfrr)",
    ),
];

/// Size of each of the in-memory file systems mounted over the writable paths students use most
/// ([`v6lab_core::policy::SCRATCH_DIRS`]: `/tmp`, `/var/tmp`, `/root`, `/home`), so that a node
/// that fills one stops at this size; their pages also count against the node's memory limit.
/// The rest of the root file system stays writable: daemons and students edit `/etc`, and the
/// engine copies the node's files into it before the node starts.
pub const SCRATCH_SIZE: u64 = 64 << 20;

/// Largest file a process in a node may write (`RLIMIT_FSIZE`, hard: raising it needs
/// CAP_SYS_RESOURCE, which nodes do not have). Bounds what one runaway write can put in the
/// node's writable layer wherever it writes.
pub const FILE_SIZE_MAX: u64 = 64 << 20;

/// Quota of a node's writable layer, where the engine's storage driver has one (overlay2 on xfs
/// mounted with `pquota`, btrfs, zfs, devicemapper): everything a node writes outside its
/// scratch file systems. Elsewhere (overlay2 on ext4) the engine refuses quotas, and a node's
/// writes are bounded per file ([`FILE_SIZE_MAX`]) and per scratch path ([`SCRATCH_SIZE`]).
pub const LAYER_QUOTA: u64 = 1 << 30;
