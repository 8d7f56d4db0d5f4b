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
