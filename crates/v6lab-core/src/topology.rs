//! The topology language: what a trainer writes. Pure data, decoded from YAML.
//!
//! Values that later checks must point at are [`Sp`] (they carry line and column). Addresses,
//! prefixes, durations and sizes stay text here and are parsed during validation, so that every
//! bad value is reported in one run.

use crate::sp::Sp;
use schemars::JsonSchema;
use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::marker::PhantomData;

/// A lab topology: segments, nodes and the exercises students do on them.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "v6lab topology")]
pub struct Topology {
    /// Lab name: lowercase letters, digits and `-`, at most 40 characters. Labs started from this
    /// topology are named after it unless `v6lab up --name` says otherwise.
    pub name: Sp<String>,
    /// One line for trainers and students: what this lab teaches.
    #[serde(default)]
    pub description: Option<String>,
    /// How long a lab lives before it is torn down: `90m`, `3h`, `2d`, `1h30m`. Default `3h`.
    #[serde(default)]
    pub lifetime: Option<Sp<String>>,
    /// Address pools that segments without explicit prefixes are allocated from.
    #[serde(default)]
    pub pools: Option<Pools>,
    /// The L2 segments, in order. `NAME: FAMILY` is enough for the common case.
    pub segments: NamedList<SegmentDef>,
    /// The nodes (one container each), in order.
    pub nodes: NamedList<Node>,
    /// NAT64/DNS64: IPv6-only segments reach IPv4 through a translator node.
    #[serde(default)]
    pub nat64: Option<Nat64>,
    /// Tasks for students, with checks that prove the work and a reference solution.
    #[serde(default)]
    pub exercises: Vec<Exercise>,
    /// Per-student values: `prefix` gives each student's lab of a class its own IPv6 prefixes
    /// (a `/40` of the pool each), so answers cannot be copied. Default: identical labs.
    #[serde(default)]
    pub vary: Option<Sp<Vary>>,
}

/// What differs between the labs of a class's students.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Vary {
    /// Each student's IPv6 prefixes (segments, static addresses, the NAT64 prefix, and every
    /// address of the pool written in the topology, exercises included).
    Prefix,
}

/// Address pools. Defaults: IPv6 `2001:db8::/32`; IPv4 `192.0.2.0/24`, `198.51.100.0/24`,
/// `203.0.113.0/24`, then `/24`s of `198.18.0.0/15`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Pools {
    /// IPv6 pool: one `/64` per segment is taken from it (`2001:db8:1::/64`, `2001:db8:2::/64`...
    /// for a pool of `/48` or shorter).
    #[serde(default)]
    pub ipv6: Option<Sp<String>>,
    /// IPv4 pools, each split into `/24`s, used in order.
    #[serde(default)]
    pub ipv4: Vec<Sp<String>>,
}

/// Address family of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// IPv6 only: no IPv4 address on any interface.
    Ipv6Only,
    /// IPv6 and IPv4.
    DualStack,
    /// IPv4 only: IPv6 is disabled on the segment's interfaces.
    Ipv4Only,
}

impl Family {
    pub fn has_v6(self) -> bool {
        self != Family::Ipv4Only
    }
    pub fn has_v4(self) -> bool {
        self != Family::Ipv6Only
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv6Only => "ipv6-only",
            Family::DualStack => "dual-stack",
            Family::Ipv4Only => "ipv4-only",
        }
    }
}

/// How hosts on an IPv6 segment get addresses from the segment's routers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RaMode {
    /// Router Advertisements with the prefix (A flag): hosts autoconfigure (SLAAC).
    Slaac,
    /// RAs with the M flag, addresses from a DHCPv6 server on the router.
    Dhcpv6Stateful,
    /// SLAAC addresses, other configuration (DNS) from DHCPv6 (O flag).
    Dhcpv6Stateless,
    /// No Router Advertisements.
    None,
}

impl RaMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RaMode::Slaac => "slaac",
            RaMode::Dhcpv6Stateful => "dhcpv6-stateful",
            RaMode::Dhcpv6Stateless => "dhcpv6-stateless",
            RaMode::None => "none",
        }
    }
}

/// A segment: `lan: ipv6-only`, or a mapping for more.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SegmentDef {
    Family(Sp<Family>),
    Full(Segment),
}

/// One L2 broadcast domain.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Segment {
    pub family: Sp<Family>,
    #[serde(default)]
    pub description: Option<String>,
    /// Explicit IPv6 prefix (a `/64`), instead of one from the pool.
    #[serde(default)]
    pub ipv6: Option<Sp<String>>,
    /// Explicit IPv4 prefix, instead of a `/24` from the pool.
    #[serde(default)]
    pub ipv4: Option<Sp<String>>,
    /// Router Advertisement mode of the segment's routers. Default `slaac`.
    #[serde(default)]
    pub ra: Option<Sp<RaMode>>,
    /// DNS servers advertised to hosts (RDNSS in RAs, DNS option in DHCPv6): node names or
    /// IPv6 addresses. Default: the lab's resolvers.
    #[serde(default)]
    pub rdnss: Option<Vec<Sp<String>>>,
    /// Link MTU. Default 1500.
    #[serde(default)]
    pub mtu: Option<Sp<u32>>,
}

/// What a node is for; decides defaults (forwarding, address modes, daemons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Forwards packets, sends Router Advertisements, runs DHCPv6 and routing daemons.
    Router,
    /// A student's machine: addresses from SLAAC/DHCP by default.
    Host,
    /// Offers services on static addresses.
    Server,
    /// NAT64 translator (tayga); forwards.
    Nat64,
    /// DNS resolver or authoritative server on static addresses.
    Dns,
    /// An Ethernet switch: a Linux bridge `br0` with every interface as a port, no addresses;
    /// splits a network into ports where the student filters (nftables `bridge` family).
    Switch,
}

impl Role {
    pub fn forwards(self) -> bool {
        matches!(self, Role::Router | Role::Nat64)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Router => "router",
            Role::Host => "host",
            Role::Server => "server",
            Role::Nat64 => "nat64",
            Role::Dns => "dns",
            Role::Switch => "switch",
        }
    }
}

/// One node: a container.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Node {
    pub role: Sp<Role>,
    #[serde(default)]
    pub description: Option<String>,
    /// Container image instead of the lab image.
    #[serde(default)]
    pub image: Option<Sp<String>>,
    /// Interfaces by Linux name (`eth1`...): `eth1: SEGMENT`, or a mapping with addresses.
    #[serde(default)]
    pub interfaces: NamedList<InterfaceDef>,
    /// Static routes.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Daemons this node runs.
    #[serde(default)]
    pub services: Option<Services>,
    /// OSPFv3 (FRR) on this node.
    #[serde(default)]
    pub ospf6: Option<Ospf6>,
    /// BGP (FRR) on this node: eBGP and iBGP sessions, announced networks, prefix lists.
    #[serde(default)]
    pub bgp: Option<Bgp>,
    /// An nftables ruleset loaded on this node (`nft -f`), e.g. the reference answer of a
    /// firewalling exercise that leaves the `firewall` part to the student.
    #[serde(default)]
    pub firewall: Option<Sp<String>>,
    /// Resource limits. Defaults: 256MiB memory, 256 PIDs, 1 CPU.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// Extra files placed in the node before it starts.
    #[serde(default)]
    pub files: Vec<FileDef>,
    /// Extra shell commands run (in order) after everything else is set up.
    #[serde(default)]
    pub exec: Vec<Sp<String>>,
    /// 464XLAT: a CLAT on this host (tayga), so IPv4-only software works on an IPv6-only
    /// segment; the lab's NAT64 translator is the PLAT. Hosts on NAT64 segments only.
    #[serde(default)]
    pub clat: Option<Sp<bool>>,
}

/// An interface: `eth1: SEGMENT`, or a mapping.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum InterfaceDef {
    Segment(Sp<String>),
    Full(Interface),
}

/// A node's port on a segment, with how each family gets its address.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Interface {
    pub segment: Sp<String>,
    /// `auto` (default: from the plan), `slaac`, `dhcpv6`, `none` (left for the student), or a
    /// static address such as `2001:db8:1::10` or `2001:db8:1::10/64`.
    #[serde(default)]
    pub ipv6: Option<Sp<String>>,
    /// `auto` (default), `dhcp`, `none`, or a static address such as `192.0.2.10/24`.
    #[serde(default)]
    pub ipv4: Option<Sp<String>>,
}

/// A static route.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Route {
    /// Destination prefix, a segment name (its prefix), or `default` / `default4`.
    pub to: Sp<String>,
    /// Next hop: an address, or a node sharing a segment with this one.
    pub via: Sp<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Services {
    /// An HTTP server answering on all of the node's addresses.
    #[serde(default)]
    pub http: Option<Http>,
    /// Authoritative DNS for zones (unbound), with A/AAAA records and their PTRs.
    #[serde(default)]
    pub dns: Option<AuthDns>,
    /// A recursive DNS resolver (unbound); with `dns64: true` it synthesizes AAAA records.
    #[serde(default)]
    pub resolver: Option<Resolver>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Http {
    /// Body of every page. Default: `hello from NODE`.
    #[serde(default)]
    pub body: Option<String>,
    /// TCP port. Default 80.
    #[serde(default)]
    pub port: Option<Sp<u16>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuthDns {
    /// Zones by name (`example.net`), each a mapping of record names (`www`, `@`) to records.
    pub zones: NamedList<NamedList<RecordDef>>,
}

/// A record: a node name (its addresses give A and AAAA), or explicit addresses.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RecordDef {
    Node(Sp<String>),
    Full(Record),
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Record {
    /// IPv4 addresses or node names.
    #[serde(default)]
    pub a: Vec<Sp<String>>,
    /// IPv6 addresses or node names.
    #[serde(default)]
    pub aaaa: Vec<Sp<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Resolver {
    /// Synthesize AAAA records inside the lab's NAT64 prefix (DNS64).
    #[serde(default)]
    pub dns64: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Ospf6 {
    /// OSPF area. Default `0.0.0.0`.
    #[serde(default)]
    pub area: Option<Sp<String>>,
    /// Interfaces taking part. Default: all IPv6 interfaces of the node.
    #[serde(default)]
    pub interfaces: Option<Vec<Sp<String>>>,
    /// Router ID. Default: `0.0.0.N` with N the node's position in the topology.
    #[serde(default)]
    pub router_id: Option<Sp<String>>,
}

/// BGP on a router (FRR bgpd).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Bgp {
    /// Autonomous system number (1 to 4294967295; private: 64512-65534, 4200000000-4294967294).
    pub asn: Sp<u32>,
    /// Router ID. Default: `0.0.0.N` with N the node's position in the topology.
    #[serde(default)]
    pub router_id: Option<Sp<String>>,
    /// Networks announced: segment names (their IPv6 and IPv4 prefixes) or prefixes. A prefix
    /// is announced once it is in the node's routing table.
    #[serde(default)]
    pub networks: Vec<Sp<String>>,
    /// Sessions. A node on a shared segment peers over IPv6 (IPv6 unicast) and, where the
    /// segment has IPv4, over IPv4 too (IPv4 unicast); the same AS makes it iBGP.
    #[serde(default)]
    pub neighbors: Vec<BgpNeighbor>,
    /// Prefix lists by name, used by `prefix-list-in` and `prefix-list-out` of neighbours.
    #[serde(default)]
    pub prefix_lists: NamedList<Vec<PrefixListEntry>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BgpNeighbor {
    /// A node sharing a segment with this one, or an address.
    pub peer: Sp<String>,
    /// The peer's AS. Default: the `asn` of the peer node's `bgp:` block.
    #[serde(default)]
    pub asn: Option<Sp<u32>>,
    /// Prefix list applied to routes received from the peer.
    #[serde(default)]
    pub prefix_list_in: Option<Sp<String>>,
    /// Prefix list applied to routes advertised to the peer.
    #[serde(default)]
    pub prefix_list_out: Option<Sp<String>>,
}

/// One line of a prefix list, tried in order; what no line matches is denied.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PrefixListEntry {
    /// `permit` or `deny`.
    pub action: Sp<PrefixAction>,
    /// A prefix (`2001:db8:2::/48`) or a segment name (its IPv6 prefix).
    pub prefix: Sp<String>,
    /// Also match longer prefixes, up to this length.
    #[serde(default)]
    pub le: Option<Sp<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PrefixAction {
    Permit,
    Deny,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Memory limit: `128MiB`, `1GiB`.
    #[serde(default)]
    pub memory: Option<Sp<String>>,
    /// Maximum number of processes.
    #[serde(default)]
    pub pids: Option<Sp<u32>>,
    /// CPUs (fractions allowed: `0.5`).
    #[serde(default)]
    pub cpus: Option<Sp<f64>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileDef {
    /// Absolute path inside the node.
    pub path: Sp<String>,
    pub content: String,
    /// Octal mode such as `"0755"`. Default `0644`.
    #[serde(default)]
    pub mode: Option<Sp<String>>,
}

/// NAT64/DNS64 for the lab.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Nat64 {
    /// The translator node (tayga). It needs an interface on an IPv6 segment and one on an IPv4
    /// segment.
    pub translator: Sp<String>,
    /// The DNS64 resolver node. Default: the translator.
    #[serde(default)]
    pub resolver: Option<Sp<String>>,
    /// NAT64 prefix (RFC 6052 lengths: /32 /40 /48 /56 /64 /96). Default: a network-specific
    /// `/96` from the lab's IPv6 pool.
    #[serde(default)]
    pub prefix: Option<Sp<String>>,
    /// IPv4 pool for translated flows inside the translator. Default: a `/24` of `198.18.0.0/15`.
    #[serde(default)]
    pub pool: Option<Sp<String>>,
    /// Advertise the NAT64 prefix in Router Advertisements on NAT64 segments (PREF64, RFC 8781).
    #[serde(default)]
    pub pref64: bool,
}

/// A task for the student.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Exercise {
    /// Short identifier: lowercase letters, digits, `-`.
    pub id: Sp<String>,
    pub title: String,
    /// What the student does, in Markdown.
    #[serde(default)]
    pub instructions: Option<String>,
    /// Parts of the plan left to the student (not applied when the lab starts), as `NODE/PART`:
    /// `r1/radvd`, `r1/dhcpv6`, `gw/nat64`, `gw/resolver`, `web/dns`, `web/http`, `r1/ospf6`,
    /// `r1/routes`, `h1/resolv`, `h1/eth1.ipv6`, `h1/eth1.ipv4`.
    #[serde(default)]
    pub student: Vec<Sp<String>>,
    /// Whether the checks pass on a fresh lab. Default `false`: a check that passes before the
    /// student did anything proves nothing, so a passing start must be declared.
    #[serde(default)]
    pub passes_initially: bool,
    /// What proves the exercise is done.
    pub checks: Vec<Check>,
    /// Reference solution. Default: apply the parts listed in `student`.
    #[serde(default)]
    pub solution: Vec<SolutionStep>,
}

/// One step of a reference solution: a shell command run in a node.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SolutionStep {
    pub node: Sp<String>,
    pub run: Sp<String>,
}

/// A check run inside a node. Exactly one kind key (`command`, `slaac`, `dhcpv6`,
/// `default-route`, `only-router`, `ping`, `dns`, `http`, `route`, `daemon`, `ospf6-neighbor`, `bgp-session`,
/// `pref64`, `path-mtu`, `bgp-received`, `bgp-advertised`, `flow`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Check {
    /// Node the check runs in.
    pub node: Sp<String>,
    /// What is checked, for people. Default: derived from the kind.
    #[serde(default)]
    pub title: Option<String>,
    /// A shell command; passes when it exits with `exit` and its output matches.
    #[serde(default)]
    pub command: Option<Sp<String>>,
    /// Expected exit code of `command`. Default 0.
    #[serde(default)]
    pub exit: Option<i32>,
    /// `command`'s standard output must match.
    #[serde(default)]
    pub stdout: Option<TextMatch>,
    /// `command`'s standard error must match.
    #[serde(default)]
    pub stderr: Option<TextMatch>,
    /// `command` prints JSON (e.g. `ip -j addr`); a query over it must match.
    #[serde(default)]
    pub json: Option<JsonMatch>,
    /// Has a global address from SLAAC inside this segment's prefix (segment name or prefix).
    #[serde(default)]
    pub slaac: Option<Sp<String>>,
    /// Has an address from DHCPv6 inside this segment's prefix (segment name or prefix).
    #[serde(default)]
    pub dhcpv6: Option<Sp<String>>,
    /// Default IPv6 route via this router's link-local address (node name).
    #[serde(default)]
    pub default_route: Option<Sp<String>>,
    /// Every IPv6 default route goes via this router (node name), and no other: a Router
    /// Advertisement from anyone else (a rogue router) fails it.
    #[serde(default)]
    pub only_router: Option<Sp<String>>,
    /// Ping a node, address or name.
    #[serde(default)]
    pub ping: Option<PingDef>,
    /// A DNS answer.
    #[serde(default)]
    pub dns: Option<DnsCheck>,
    /// An HTTP request returns a body.
    #[serde(default)]
    pub http: Option<HttpCheck>,
    /// A route to this prefix (or segment) is present.
    #[serde(default)]
    pub route: Option<Sp<String>>,
    /// A process with this name runs.
    #[serde(default)]
    pub daemon: Option<Sp<String>>,
    /// FRR's OSPFv3 adjacency with this node is Full.
    #[serde(default)]
    pub ospf6_neighbor: Option<Sp<String>>,
    /// FRR's BGP session with this peer (node or address) is Established: `bgp-session: r2`,
    /// or `{peer: r2, family: ipv4}` for the session over IPv4.
    #[serde(default)]
    pub bgp_session: Option<BgpSessionDef>,
    /// FRR received (and accepted) this prefix from this BGP peer.
    #[serde(default)]
    pub bgp_received: Option<BgpPrefixCheck>,
    /// FRR advertises this prefix to this BGP peer.
    #[serde(default)]
    pub bgp_advertised: Option<BgpPrefixCheck>,
    /// Real traffic from this node to a node or address: allowed or blocked (firewalls).
    #[serde(default)]
    pub flow: Option<Flow>,
    /// The node learned the lab's NAT64 prefix: from a Router Advertisement's PREF64 option
    /// (`ra`, RFC 8781) or from `ipv4only.arpa` (`dns`, RFC 7050).
    #[serde(default)]
    pub pref64: Option<Sp<Pref64Source>>,
    /// The node's path MTU toward a node or address is this (learned from Packet Too Big).
    #[serde(default)]
    pub path_mtu: Option<PathMtuCheck>,
    /// The check must fail (e.g. "an IPv6-only host cannot reach IPv4").
    #[serde(default)]
    pub expect_fail: bool,
    /// Keep retrying until this much time passed (for convergence): `10s`. Default `5s`.
    #[serde(default)]
    pub timeout: Option<Sp<String>>,
    /// Message for the student when the check passes.
    #[serde(default)]
    pub pass: Option<String>,
    /// Message for the student when the check fails: what to look at.
    #[serde(default)]
    pub fail: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TextMatch {
    #[serde(default)]
    pub contains: Option<String>,
    #[serde(default)]
    pub regex: Option<Sp<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JsonMatch {
    /// Path into the JSON: `[].addr_info[].local` (`[]` means any element).
    pub query: Sp<String>,
    /// Some value at the path equals this.
    #[serde(default)]
    pub equals: Option<serde_json::Value>,
    /// Some value at the path, as text, contains this.
    #[serde(default)]
    pub contains: Option<String>,
}

/// `bgp-session: PEER`, or a mapping.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum BgpSessionDef {
    Peer(Sp<String>),
    Full(BgpSessionCheck),
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BgpSessionCheck {
    /// A node (its address on a segment shared with the checking node) or an address.
    pub peer: Sp<String>,
    /// The session over `ipv6` (default) or over `ipv4`.
    #[serde(default)]
    pub family: Option<Sp<IpFamily>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BgpPrefixCheck {
    /// The BGP peer: a node (its address on a segment shared with the checking node) or an
    /// address.
    pub peer: Sp<String>,
    /// A prefix, or a segment name (its IPv6 prefix; its IPv4 prefix with `family: ipv4`).
    pub prefix: Sp<String>,
    /// Family of the session and of a segment's prefix: `ipv6` (default) or `ipv4`.
    #[serde(default)]
    pub family: Option<Sp<IpFamily>>,
}

/// Traffic sent from the check's node (the source) to `to`, done for real.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Flow {
    /// A node (its first address of the family; for `tcp` and `udp` the node answers on `port`
    /// from the start of the lab) or an address.
    pub to: Sp<String>,
    /// `tcp`, `udp`, `icmpv6` (echo), or the ICMPv6 messages that must never be blocked
    /// (RFC 4890): `nd` (neighbour discovery with `to`, on a shared segment) and
    /// `packet-too-big` (a packet too big for a link on the way to `to` brings a Packet Too
    /// Big back, and the path MTU drops).
    pub protocol: Sp<FlowProtocol>,
    /// Destination port of `tcp` and `udp`.
    #[serde(default)]
    pub port: Option<Sp<u16>>,
    /// `ipv6` (default) or `ipv4` (for `tcp` and `udp`).
    #[serde(default)]
    pub family: Option<Sp<IpFamily>>,
    /// `allowed` or `blocked`.
    pub expect: Sp<FlowExpect>,
    /// Size of the `packet-too-big` probe's payload. Default 1400.
    #[serde(default)]
    pub size: Option<Sp<u32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FlowProtocol {
    Tcp,
    Udp,
    Icmpv6,
    Nd,
    PacketTooBig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FlowExpect {
    Allowed,
    Blocked,
}

/// `ping: TARGET`, or a mapping.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PingDef {
    Target(Sp<String>),
    Full(Ping),
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Ping {
    /// A node, an address or a DNS name.
    pub to: Sp<String>,
    /// `ipv6` (default) or `ipv4`.
    #[serde(default)]
    pub family: Option<Sp<IpFamily>>,
    #[serde(default)]
    pub count: Option<u32>,
    /// Payload size in bytes (for path MTU exercises).
    #[serde(default)]
    pub size: Option<u32>,
    /// Forbid fragmentation (path MTU exercises).
    #[serde(default)]
    pub dont_fragment: bool,
}

/// `path-mtu: {to: client, mtu: 1280}`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PathMtuCheck {
    /// A node (its first address of the family) or an address.
    pub to: Sp<String>,
    /// The path MTU the node must have learned.
    pub mtu: Sp<u32>,
}

/// Where a host learns the NAT64 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Pref64Source {
    /// The PREF64 option of the Router Advertisements the node receives (RFC 8781).
    Ra,
    /// The synthesized AAAA records of `ipv4only.arpa` from its resolver (RFC 7050).
    Dns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IpFamily {
    Ipv6,
    Ipv4,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DnsCheck {
    pub name: Sp<String>,
    /// `A`, `AAAA` (default) or `PTR`.
    #[serde(default, rename = "type")]
    pub rtype: Option<Sp<String>>,
    /// Server asked: a node or an address. Default: the node's configured resolver.
    #[serde(default)]
    pub server: Option<Sp<String>>,
    /// The answer must lie in this prefix (`nat64` means the lab's NAT64 prefix).
    #[serde(default)]
    pub within: Option<Sp<String>>,
    /// The answer must contain this text.
    #[serde(default)]
    pub contains: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpCheck {
    /// `http://www.example.net/`, or a node name (its HTTP service).
    pub url: Sp<String>,
    /// Force `ipv6` or `ipv4`.
    #[serde(default)]
    pub family: Option<Sp<IpFamily>>,
    /// The body must contain this.
    #[serde(default)]
    pub contains: Option<String>,
}

/// A YAML mapping whose order matters (declaration order decides address allocation).
#[derive(Debug, Clone)]
pub struct NamedList<V>(pub Vec<(Sp<String>, V)>);

impl<V> Default for NamedList<V> {
    fn default() -> Self {
        NamedList(Vec::new())
    }
}

impl<V> NamedList<V> {
    pub fn iter(&self) -> impl Iterator<Item = (&Sp<String>, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
    pub fn get(&self, name: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k.value == name).map(|(_, v)| v)
    }
    pub fn position(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|(k, _)| k.value == name)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for NamedList<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = NamedList<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(NamedList::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<Sp<String>>()? {
                    out.push((k, m.next_value()?));
                }
                Ok(NamedList(out))
            }
        }
        d.deserialize_map(V_(PhantomData))
    }
}

impl<V: Serialize> Serialize for NamedList<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(&k.value, v)?;
        }
        m.end()
    }
}

impl<V: JsonSchema> JsonSchema for NamedList<V> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let inner = g.subschema_for::<V>();
        schemars::json_schema!({ "type": "object", "additionalProperties": inner })
    }
}

/// Deserializes a "short form or mapping" value: a scalar goes to `short`, a mapping to the
/// long form, keeping the YAML deserializer (and so the locations) for the mapping's fields.
fn short_or_long<'de, D, S, L, T>(
    d: D,
    what: &'static str,
    short: fn(Sp<S>) -> T,
    long: fn(L) -> T,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    S: DeserializeOwned,
    L: Deserialize<'de>,
{
    // Locations of the short form come from wrapping the whole value.
    let v: Sp<Either<S, L>> = Sp::deserialize(d)?;
    let _ = what;
    Ok(match v.value {
        Either::Short(s) => short(Sp::new(s, v.loc)),
        Either::Long(l) => long(l),
    })
}

enum Either<S, L> {
    Short(S),
    Long(L),
}

impl<'de, S: DeserializeOwned, L: Deserialize<'de>> Deserialize<'de> for Either<S, L> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<S, L>(PhantomData<(S, L)>);
        impl<'de, S: DeserializeOwned, L: Deserialize<'de>> Visitor<'de> for V_<S, L> {
            type Value = Either<S, L>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a mapping")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                S::deserialize(de::value::StrDeserializer::<E>::new(v)).map(Either::Short)
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
                L::deserialize(de::value::MapAccessDeserializer::new(m)).map(Either::Long)
            }
        }
        d.deserialize_any(V_(PhantomData))
    }
}

macro_rules! short_or_long {
    ($ty:ident, $what:literal, $short:ident, $s:ty, $long:ident) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                short_or_long::<D, $s, _, _>(d, $what, $ty::$short, $ty::$long)
            }
        }
    };
}

short_or_long!(SegmentDef, "segment", Family, Family, Full);
short_or_long!(InterfaceDef, "interface", Segment, String, Full);
short_or_long!(RecordDef, "record", Node, String, Full);
short_or_long!(PingDef, "ping", Target, String, Full);
short_or_long!(BgpSessionDef, "bgp-session", Peer, String, Full);
