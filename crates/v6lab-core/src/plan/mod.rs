//! The plan: a topology fully resolved. Every address, route, resolver and rendered file.
//!
//! The `Planner` validates a [`Topology`] and plans it in one pass, collecting every problem
//! as a located [`Diagnostic`]; [`crate::build`] runs it around rendering. The same topology
//! always gives the same plan. This module holds the plan's types and the pass; each concern is
//! a submodule: names, segments, nodes, addresses (both families through `family`), NAT64,
//! routes, resolvers, services, routing protocols, exercises.

use crate::diagnostic::Diagnostic;
use crate::load::Source;
use crate::sp::Loc;
use crate::topology::{Family, IpFamily, Pref64Source, RaMode, Role, Topology};
use crate::values;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod addresses;
mod bgp;
mod clat;
mod exercises;
mod family;
mod firewall;
mod names;
mod nat64;
mod nodes;
mod resolvers;
mod routes;
mod routing;
mod segments;
mod services;
mod variation;

pub use addresses::eui64;
pub use nat64::embed_v4;

/// Default lifetime of a lab: 3 hours.
pub const DEFAULT_LIFETIME_SECS: u64 = 3 * 3600;
pub const DEFAULT_IPV6_POOL: &str = "2001:db8::/32";
pub const DEFAULT_IPV4_POOLS: [&str; 4] = [
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "198.18.0.0/15",
];
pub use crate::policy::{DEFAULT_CPUS, DEFAULT_MEMORY, DEFAULT_PIDS, LimitsPlan};
/// Default timeout of a check.
pub const DEFAULT_CHECK_TIMEOUT_SECS: u64 = 5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub name: String,
    pub description: Option<String>,
    pub lifetime_secs: u64,
    /// First 16 hex digits of the SHA-256 of the topology source.
    pub topology_hash: String,
    pub segments: Vec<SegmentPlan>,
    pub nodes: Vec<NodePlan>,
    pub nat64: Option<Nat64Plan>,
    pub exercises: Vec<ExercisePlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentPlan {
    pub name: String,
    pub family: Family,
    pub ipv6: Option<Ipv6Net>,
    pub ipv4: Option<Ipv4Net>,
    pub ra: RaMode,
    /// DNS servers advertised (RDNSS, DHCPv6 DNS option).
    pub rdnss: Vec<Ipv6Addr>,
    pub mtu: u32,
    /// IPv6-only segment whose hosts reach IPv4 through the lab's NAT64.
    pub nat64: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodePlan {
    pub name: String,
    pub role: Role,
    pub image: Option<String>,
    pub forwarding: bool,
    pub interfaces: Vec<InterfacePlan>,
    pub routes: Vec<RoutePlan>,
    /// Resolvers written to /etc/resolv.conf.
    pub resolvers: Vec<IpAddr>,
    pub limits: LimitsPlan,
    /// Set when the container is created (`/proc/sys` is read-only afterwards).
    pub sysctls: BTreeMap<String, String>,
    /// Set on each interface before it comes up (`IFACE` stands for its name).
    pub link_sysctls: BTreeMap<String, String>,
    /// Needs `/dev/net/tun` (the NAT64 translator).
    pub tun: bool,
    /// Set-up steps in order; those left to a student are not applied at start.
    pub parts: Vec<PartPlan>,
    /// Every file placed in the node: daemon configs and the part scripts.
    pub files: Vec<FilePlan>,
    /// What the node serves and runs, resolved; its rendered files carry it, so the plan's JSON
    /// does not repeat it.
    #[serde(skip_serializing)]
    pub services: ServicesPlan,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterfacePlan {
    pub name: String,
    pub segment: String,
    pub mac: String,
    pub mtu: u32,
    /// EUI-64 link-local address (from the MAC).
    pub link_local: Option<Ipv6Addr>,
    pub ipv6: Assign6,
    pub ipv4: Assign4,
}

/// How an interface gets its IPv6 address.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Assign6 {
    Static {
        address: Ipv6Net,
    },
    /// SLAAC from the segment's RA; `expected` is the EUI-64 address it will form.
    Slaac {
        prefix: Ipv6Net,
        expected: Ipv6Addr,
    },
    Dhcpv6 {
        prefix: Ipv6Net,
    },
    /// Left for the student: no address configured.
    None,
    /// The segment has no IPv6.
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Assign4 {
    Static { address: Ipv4Net },
    Dhcp { prefix: Ipv4Net },
    None,
    Disabled,
}

impl Assign6 {
    pub fn address(&self) -> Option<Ipv6Addr> {
        match self {
            Assign6::Static { address } => Some(address.addr()),
            Assign6::Slaac { expected, .. } => Some(*expected),
            _ => None,
        }
    }
    pub fn label(&self) -> &'static str {
        match self {
            Assign6::Static { .. } => "static",
            Assign6::Slaac { .. } => "slaac",
            Assign6::Dhcpv6 { .. } => "dhcpv6",
            Assign6::None => "none (student)",
            Assign6::Disabled => "-",
        }
    }
}

impl Assign4 {
    pub fn address(&self) -> Option<Ipv4Addr> {
        match self {
            Assign4::Static { address } => Some(address.addr()),
            _ => None,
        }
    }
    pub fn label(&self) -> &'static str {
        match self {
            Assign4::Static { .. } => "static",
            Assign4::Dhcp { .. } => "dhcp",
            Assign4::None => "none (student)",
            Assign4::Disabled => "-",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutePlan {
    pub to: IpNet,
    pub via: IpAddr,
    /// Why the route exists: `static` (written by the trainer), `default`, `nat64`.
    pub origin: String,
}

/// A set-up step of a node: a script plus the readiness probes that show it worked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartPlan {
    /// `radvd`, `eth1.ipv6`, `routes`... referenced as `NODE/ID` by exercises.
    pub id: String,
    pub title: String,
    /// Script that applies this part (a path among the node's files).
    pub script: String,
    /// The exercise that leaves this part to the student, if any.
    pub student: Option<String>,
    /// Shell commands that exit 0 once the part took effect.
    pub probes: Vec<ProbePlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbePlan {
    pub description: String,
    pub command: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilePlan {
    pub path: String,
    pub mode: u32,
    pub content: String,
}

/// A node's services, routing protocol and the trainer's files and commands, with every name
/// resolved and checked: rendering them cannot fail.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServicesPlan {
    pub dns: Option<AuthDnsPlan>,
    pub resolver: Option<ResolverPlan>,
    pub http: Option<HttpPlan>,
    pub ospf6: Option<Ospf6Plan>,
    pub bgp: Option<BgpPlan>,
    /// The node's nftables ruleset (`firewall:`).
    pub firewall: Option<String>,
    /// Echo listeners answering the `flow` checks sent to this node.
    pub flow_listeners: Vec<FlowListenerPlan>,
    /// The trainer's files, placed as written.
    pub files: Vec<FilePlan>,
    /// The trainer's commands, run in order.
    pub exec: Vec<String>,
    /// 464XLAT's customer-side translator on a host.
    pub clat: Option<ClatPlan>,
}

/// A CLAT (RFC 6877) on a host: tayga translates the host's IPv4 (RFC 7335's 192.0.0.0/29) into
/// IPv6 toward the lab's NAT64 translator, the PLAT.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClatPlan {
    /// The host's interface on the NAT64 segment.
    pub interface: String,
    /// The CLAT's own IPv6 address on that segment (answered by proxy neighbour discovery):
    /// translated packets come from it.
    pub ipv6: Ipv6Addr,
    /// The PLAT's prefix: the lab's NAT64 prefix.
    pub plat_prefix: Ipv6Net,
    /// The host's IPv4 address, on the `clat` device.
    pub ipv4: Ipv4Addr,
    /// Tayga's own IPv4 address (the source of its ICMP errors).
    pub tayga_ipv4: Ipv4Addr,
    /// MTU of the `clat` device: the segment's, less the 20 bytes IPv6's header adds.
    pub mtu: u32,
}

/// Authoritative DNS: the zones with their records, and the reverse zones of their addresses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuthDnsPlan {
    pub zones: Vec<ZonePlan>,
    /// One PTR for every address record, in the order of the records.
    pub ptrs: Vec<PtrPlan>,
    /// `ip6.arpa` (/64) and `in-addr.arpa` (/24) zones of the records' addresses.
    pub reverse_zones: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZonePlan {
    /// Without the final dot.
    pub name: String,
    pub records: Vec<RecordPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordPlan {
    pub fqdn: String,
    /// `A` or `AAAA`.
    pub rtype: String,
    pub address: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PtrPlan {
    pub address: IpAddr,
    pub fqdn: String,
}

/// A recursive resolver: DNS64 when it has a prefix; the lab's zones are stub zones.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolverPlan {
    pub dns64_prefix: Option<Ipv6Net>,
    pub stubs: Vec<StubZonePlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StubZonePlan {
    pub name: String,
    /// Addresses of the authoritative server, those on a segment shared with the resolver first.
    pub addrs: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpPlan {
    pub port: u16,
    pub body: String,
}

/// OSPFv3 on a router.
#[derive(Debug, Clone, PartialEq)]
pub struct Ospf6Plan {
    pub area: String,
    pub router_id: Ipv4Addr,
    pub interfaces: Vec<Ospf6InterfacePlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ospf6InterfacePlan {
    pub name: String,
    pub kind: Ospf6LinkKind,
}

/// How OSPFv3 runs on a link: point-to-point with fast timers where exactly two OSPF routers
/// meet, passive where the router is alone (a LAN of hosts), broadcast otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ospf6LinkKind {
    P2p,
    Passive,
    Broadcast,
}

/// BGP on a router.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BgpPlan {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub networks6: Vec<Ipv6Net>,
    pub networks4: Vec<Ipv4Net>,
    /// One session per peer and family.
    pub neighbors: Vec<BgpNeighborPlan>,
    pub prefix_lists: Vec<PrefixListPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BgpNeighborPlan {
    /// The peer node, or the address as written.
    pub name: String,
    pub address: IpAddr,
    pub asn: u32,
    /// Same AS: iBGP (next hop set to self, so routes from eBGP are usable inside the AS).
    pub ibgp: bool,
    pub prefix_list_in: Option<String>,
    pub prefix_list_out: Option<String>,
}

/// A prefix list; IPv6 and IPv4 lines are separate lists in FRR, under the same name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefixListPlan {
    pub name: String,
    pub entries: Vec<PrefixListEntryPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefixListEntryPlan {
    pub seq: u32,
    /// `permit` or `deny`.
    pub action: String,
    pub prefix: IpNet,
    pub le: Option<u8>,
}

/// An echo listener (socat) for `flow` checks: TCP accepts, UDP sends each datagram back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FlowListenerPlan {
    /// `tcp` or `udp`.
    pub protocol: String,
    pub port: u16,
    /// Listen on IPv6 (which takes IPv4 too), else IPv4 only.
    pub ipv6: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Nat64Plan {
    pub translator: String,
    pub resolver: String,
    pub prefix: Ipv6Net,
    /// IPv4 pool for translated flows (tayga's dynamic pool).
    pub pool: Ipv4Net,
    /// Tayga's own IPv4 address (in the pool).
    pub tayga_ipv4: Ipv4Addr,
    /// Tayga's own IPv6 address (in the NAT64 prefix).
    pub tayga_ipv6: Ipv6Addr,
    /// The translator's interface toward IPv4 (MASQUERADE goes out there).
    pub ipv4_interface: String,
    /// The resolver's address clients use.
    pub resolver_address: Ipv6Addr,
    /// The prefix is advertised in Router Advertisements on NAT64 segments (PREF64).
    pub pref64: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExercisePlan {
    pub id: String,
    pub title: String,
    pub instructions: String,
    /// Parts left to the student, `NODE/PART`.
    pub student: Vec<String>,
    pub passes_initially: bool,
    pub checks: Vec<CheckPlan>,
    pub solution: Vec<SolutionPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SolutionPlan {
    pub node: String,
    /// A shell command.
    pub run: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckPlan {
    pub node: String,
    pub title: String,
    pub kind: CheckKind,
    pub expect_fail: bool,
    pub timeout_secs: u64,
    pub pass: Option<String>,
    pub fail: Option<String>,
}

/// A check with every reference resolved to addresses and prefixes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CheckKind {
    Command {
        command: String,
        exit: i32,
        stdout_contains: Option<String>,
        stdout_regex: Option<String>,
        stderr_contains: Option<String>,
        stderr_regex: Option<String>,
        json_query: Option<String>,
        json_equals: Option<serde_json::Value>,
        json_contains: Option<String>,
    },
    Slaac {
        prefix: Ipv6Net,
    },
    Dhcpv6 {
        prefix: Ipv6Net,
    },
    DefaultRoute {
        via: Ipv6Addr,
        router: String,
    },
    /// Every default route goes via one of `router`'s link-local addresses.
    OnlyRouter {
        via: Vec<Ipv6Addr>,
        router: String,
    },
    Ping {
        target: String,
        family: IpFamily,
        count: u32,
        size: Option<u32>,
        dont_fragment: bool,
    },
    Dns {
        name: String,
        rtype: String,
        server: Option<IpAddr>,
        within: Option<IpNet>,
        contains: Option<String>,
    },
    Http {
        url: String,
        family: Option<IpFamily>,
        contains: Option<String>,
    },
    Route {
        prefix: IpNet,
    },
    Daemon {
        process: String,
    },
    Ospf6Neighbor {
        router_id: Ipv4Addr,
        neighbor: String,
    },
    BgpSession {
        peer: IpAddr,
    },
    /// The node learned `prefix` as the NAT64 prefix from `source`.
    Pref64 {
        source: Pref64Source,
        prefix: Ipv6Net,
    },
    /// The node's route toward `target` carries a path MTU of `mtu`.
    PathMtu {
        target: IpAddr,
        mtu: u32,
    },
    BgpReceived {
        peer: IpAddr,
        prefix: IpNet,
    },
    BgpAdvertised {
        peer: IpAddr,
        prefix: IpNet,
    },
    Flow {
        target: IpAddr,
        protocol: crate::topology::FlowProtocol,
        port: Option<u16>,
        expect: crate::topology::FlowExpect,
        size: u32,
        /// The source's interface toward `target` (neighbour discovery).
        iface: Option<String>,
    },
}

impl Plan {
    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }
    pub fn segment(&self, name: &str) -> Option<&SegmentPlan> {
        self.segments.iter().find(|s| s.name == name)
    }
}

impl NodePlan {
    pub fn file(&self, path: &str) -> Option<&FilePlan> {
        self.files.iter().find(|f| f.path == path)
    }
    /// The node's first address of a family, static or expected from SLAAC.
    pub fn first_v6(&self) -> Option<Ipv6Addr> {
        self.interfaces.iter().find_map(|i| i.ipv6.address())
    }
    pub fn first_v4(&self) -> Option<Ipv4Addr> {
        self.interfaces.iter().find_map(|i| i.ipv4.address())
    }
    /// Whether the node is on an IPv6 segment (configured or not).
    pub fn has_ipv6(&self) -> bool {
        self.interfaces
            .iter()
            .any(|i| !matches!(i.ipv6, Assign6::Disabled))
    }
    /// Whether the node is on an IPv4 segment (configured or not).
    pub fn has_ipv4(&self) -> bool {
        self.interfaces
            .iter()
            .any(|i| !matches!(i.ipv4, Assign4::Disabled))
    }
}

/// The planner: validation and planning in one pass. [`crate::build_with`] runs it in two steps
/// around rendering: [`Planner::plan`] gives the plan of every segment and node, the node files are
/// rendered from it, then [`Planner::plan_exercises`] resolves the exercises against the rendered
/// parts. Every problem found on the way is kept; [`Planner::finish`] hands them over.
pub(crate) struct Planner<'t> {
    topo: &'t Topology,
    diags: Vec<Diagnostic>,
    seg_index: HashMap<&'t str, usize>,
    node_index: HashMap<&'t str, usize>,
    /// Limits of nodes that set none: the defaults, within the policy's maxima.
    default_limits: LimitsPlan,
    /// The student whose lab is planned (`vary:`); `None`: the lab as written.
    variation: Option<crate::vary::Variation>,
}

impl<'t> Planner<'t> {
    /// A planner for `topo`; nodes that set no limits get `default_limits`.
    pub(crate) fn new(topo: &'t Topology, default_limits: LimitsPlan) -> Self {
        Planner {
            topo,
            diags: Vec::new(),
            seg_index: HashMap::new(),
            node_index: HashMap::new(),
            default_limits,
            variation: None,
        }
    }

    /// The problems found so far.
    pub(crate) fn finish(self) -> Vec<Diagnostic> {
        self.diags
    }

    fn err(&mut self, loc: Loc, msg: impl Into<String>, hint: impl Into<String>) {
        self.diags.push(Diagnostic::new(loc, msg).hint(hint));
    }

    /// Plans names, segments, nodes, addresses, NAT64, routes, resolvers, services and routing
    /// protocols. The nodes have no parts and no files yet, and the plan has no exercises.
    pub(crate) fn plan(&mut self, src: &Source) -> Plan {
        let topo = self.topo;
        self.check_names();
        self.check_vary();
        let lifetime_secs = match &topo.lifetime {
            Some(l) => match values::parse_duration(l) {
                Ok(0) => {
                    self.err(
                        l.loc,
                        "the lifetime must be longer than zero",
                        "write e.g. `3h`",
                    );
                    DEFAULT_LIFETIME_SECS
                }
                Ok(s) => s,
                Err(e) => {
                    self.err(
                        l.loc,
                        format!("`{}` is not a duration: {e}", l.value),
                        "write e.g. `90m`, `3h` or `1h30m`",
                    );
                    DEFAULT_LIFETIME_SECS
                }
            },
            None => DEFAULT_LIFETIME_SECS,
        };
        let mut segments = self.plan_segments();
        let mut nodes = self.plan_nodes(&segments);
        let nat64 = self.plan_nat64(&mut segments, &nodes);
        if let Some(n) = &nat64 {
            for t in nodes.iter_mut().filter(|t| t.name == n.translator) {
                // tayga needs `/dev/net/tun`.
                t.tun = true;
            }
        }
        self.plan_clat(&mut nodes, &segments, nat64.as_ref());
        self.check_duplicate_addresses(&nodes);
        self.plan_routes(&mut nodes, &segments, nat64.as_ref());
        self.plan_resolvers(&mut nodes, &mut segments, nat64.as_ref());
        self.plan_services(&mut nodes, nat64.as_ref());
        self.plan_routing(&mut nodes);
        self.plan_bgp(&mut nodes, &segments);
        self.plan_firewalls(&mut nodes);
        let hash = {
            use sha2::Digest;
            let d = sha2::Sha256::digest(src.text.as_bytes());
            hex::encode(&d[..8])
        };
        Plan {
            name: topo.name.value.clone(),
            description: topo.description.clone(),
            lifetime_secs,
            topology_hash: hash,
            segments,
            nodes,
            nat64,
            exercises: Vec::new(),
        }
    }
}
