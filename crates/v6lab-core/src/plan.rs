//! The plan: a topology fully resolved. Every address, route, resolver and rendered file.
//!
//! [`build`] validates a [`Topology`] and plans it in one pass, collecting every problem as a
//! located [`Diagnostic`]. The same topology always gives the same plan.

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::load::Source;
use crate::policy::Policy;
use crate::sp::{Loc, Sp};
use crate::structure::did_you_mean;
use crate::topology::{self as t, Family, IpFamily, RaMode, Role, Topology};
use crate::values;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
}

/// Validates and plans a topology against the process's policy ([`crate::policy::current`]).
/// All problems are reported together.
pub fn build(src: &Source, topo: &Topology) -> Result<Plan, Diagnostics> {
    build_with(src, topo, crate::policy::current())
}

/// Validates and plans a topology against `policy`. All problems are reported together.
pub fn build_with(src: &Source, topo: &Topology, policy: &Policy) -> Result<Plan, Diagnostics> {
    let mut p = Planner::new(topo);
    p.default_limits = policy.node_defaults();
    let plan = p.run(src);
    p.diags.extend(crate::policy::check(topo, policy));
    if p.diags.is_empty() {
        Ok(plan)
    } else {
        Err(Diagnostics::new(&src.file, p.diags))
    }
}

/// Parses, validates and plans in one call, against the process's policy.
pub fn plan_source(file: &str, bytes: &[u8]) -> Result<(Source, Plan), (Source, Diagnostics)> {
    plan_source_with(file, bytes, crate::policy::current())
}

/// Parses, validates and plans in one call, against `policy`.
pub fn plan_source_with(
    file: &str,
    bytes: &[u8],
    policy: &Policy,
) -> Result<(Source, Plan), (Source, Diagnostics)> {
    let (src, topo) = crate::load::parse(file, bytes)?;
    match build_with(&src, &topo, policy) {
        Ok(plan) => Ok((src, plan)),
        Err(d) => Err((src, d)),
    }
}

/// Plans again the topology of a lab that already runs (for its checks, solutions, terminals,
/// pages and menus). The lab was admitted by the policy in force when it was made; it is not
/// judged again, so a policy tightened later never breaks a running lab's checks.
pub fn replan(file: &str, bytes: &[u8]) -> Result<(Source, Plan), (Source, Diagnostics)> {
    plan_source_with(file, bytes, &Policy::admit_all())
}

pub(crate) struct Planner<'t> {
    pub(crate) topo: &'t Topology,
    diags: Vec<Diagnostic>,
    seg_index: HashMap<&'t str, usize>,
    node_index: HashMap<&'t str, usize>,
    /// Limits of nodes that set none: the defaults, within the policy's maxima.
    default_limits: LimitsPlan,
}

/// Where a prefix came from, for overlap messages.
struct Claim {
    net: IpNet,
    loc: Loc,
    what: String,
}

impl<'t> Planner<'t> {
    fn new(topo: &'t Topology) -> Self {
        Planner {
            topo,
            diags: Vec::new(),
            seg_index: HashMap::new(),
            node_index: HashMap::new(),
            default_limits: Policy::default().node_defaults(),
        }
    }

    pub(crate) fn err(&mut self, loc: Loc, msg: impl Into<String>, hint: impl Into<String>) {
        self.diags.push(Diagnostic::new(loc, msg).hint(hint));
    }

    fn run(&mut self, src: &Source) -> Plan {
        let topo = self.topo;
        self.check_names();
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
        self.check_duplicate_addresses(&nodes);
        self.plan_routes(&mut nodes, &segments, nat64.as_ref());
        self.plan_resolvers(&mut nodes, &mut segments, nat64.as_ref());
        crate::render::render_nodes(self, &mut nodes, &segments, nat64.as_ref());
        let exercises = self.plan_exercises(&mut nodes, &segments, nat64.as_ref());
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
            exercises,
        }
    }

    fn check_names(&mut self) {
        let topo = self.topo;
        if let Some(problem) = values::dns_label_problem(&topo.name, 40) {
            self.err(
                topo.name.loc,
                format!(
                    "the lab name `{}` is not DNS-safe: {problem}",
                    topo.name.value
                ),
                format!("use e.g. `{}`", values::dns_safe(&topo.name)),
            );
        }
        for (i, (name, _)) in topo.segments.iter().enumerate() {
            if let Some(problem) = values::dns_label_problem(name, 32) {
                self.err(
                    name.loc,
                    format!(
                        "the segment name `{}` is not DNS-safe: {problem}",
                        name.value
                    ),
                    format!("use e.g. `{}`", values::dns_safe(name)),
                );
            }
            if let Some(first) = self.seg_index.insert(name.as_str(), i) {
                let loc = topo.segments.0[first].0.loc;
                self.diags.push(
                    Diagnostic::new(
                        name.loc,
                        format!("segment `{}` is declared twice", name.value),
                    )
                    .related(loc, "first declared here")
                    .hint("rename one of the segments"),
                );
            }
        }
        for (i, (name, node)) in topo.nodes.iter().enumerate() {
            if let Some(problem) = values::dns_label_problem(name, 32) {
                self.err(
                    name.loc,
                    format!("the node name `{}` is not DNS-safe: {problem}", name.value),
                    format!("use e.g. `{}`", values::dns_safe(name)),
                );
            }
            self.node_index.insert(name.as_str(), i);
            for (ifname, _) in node.interfaces.iter() {
                if let Some(problem) = values::ifname_problem(ifname) {
                    self.err(
                        ifname.loc,
                        format!(
                            "`{}` is not a valid interface name: {problem}",
                            ifname.value
                        ),
                        "use short Linux names such as `eth1`, `eth2`",
                    );
                }
            }
        }
    }

    /// Resolves a segment name, reporting an unknown one with a suggestion.
    fn segment_ref(&mut self, name: &Sp<String>) -> Option<usize> {
        if let Some(&i) = self.seg_index.get(name.as_str()) {
            return Some(i);
        }
        let known: Vec<&str> = self.topo.segments.iter().map(|(k, _)| k.as_str()).collect();
        let hint = match did_you_mean(name, &known) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("declared segments: {}", known.join(", ")),
        };
        self.err(
            name.loc,
            format!("there is no segment `{}`", name.value),
            hint,
        );
        None
    }

    fn node_ref(&mut self, name: &Sp<String>) -> Option<usize> {
        if let Some(&i) = self.node_index.get(name.as_str()) {
            return Some(i);
        }
        let known: Vec<&str> = self.topo.nodes.iter().map(|(k, _)| k.as_str()).collect();
        let hint = match did_you_mean(name, &known) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("declared nodes: {}", known.join(", ")),
        };
        self.err(name.loc, format!("there is no node `{}`", name.value), hint);
        None
    }

    fn plan_segments(&mut self) -> Vec<SegmentPlan> {
        let topo = self.topo;
        let pool6 = topo
            .pools
            .as_ref()
            .and_then(|p| p.ipv6.as_ref())
            .and_then(|s| self.parse_v6_pool(s))
            .unwrap_or_else(|| DEFAULT_IPV6_POOL.parse().expect("default pool"));
        let pools4: Vec<Ipv4Net> = match topo.pools.as_ref().map(|p| &p.ipv4) {
            Some(list) if !list.is_empty() => list
                .iter()
                .filter_map(|s| match s.parse::<Ipv4Net>() {
                    Ok(n) if n.prefix_len() <= 24 => Some(n.trunc()),
                    Ok(_) => {
                        self.err(
                            s.loc,
                            "an IPv4 pool must be /24 or larger",
                            "e.g. `198.18.0.0/15`",
                        );
                        None
                    }
                    Err(_) => {
                        self.err(
                            s.loc,
                            format!("`{}` is not an IPv4 prefix", s.value),
                            "write e.g. `198.51.100.0/24`",
                        );
                        None
                    }
                })
                .collect(),
            _ => DEFAULT_IPV4_POOLS
                .iter()
                .map(|s| s.parse().expect("default"))
                .collect(),
        };

        // Explicit prefixes first: they always win, and the pool skips them.
        let mut claims: Vec<Claim> = Vec::new();
        let mut explicit6: Vec<Option<Ipv6Net>> = Vec::new();
        let mut explicit4: Vec<Option<Ipv4Net>> = Vec::new();
        let mut defs = Vec::new();
        for (name, def) in topo.segments.iter() {
            let seg = match def {
                t::SegmentDef::Family(f) => t::Segment {
                    family: f.clone(),
                    description: None,
                    ipv6: None,
                    ipv4: None,
                    ra: None,
                    rdnss: None,
                    mtu: None,
                },
                t::SegmentDef::Full(s) => s.clone(),
            };
            let fam = seg.family.value;
            let mut e6 = None;
            if let Some(p) = &seg.ipv6 {
                if !fam.has_v6() {
                    self.err(
                        p.loc,
                        format!(
                            "segment `{}` is ipv4-only but has an IPv6 prefix",
                            name.value
                        ),
                        "remove `ipv6:` or make the segment `dual-stack`",
                    );
                } else {
                    match p.parse::<Ipv6Net>() {
                        Ok(n) if n != n.trunc() => self.err(
                            p.loc,
                            format!("`{}` has host bits set", p.value),
                            format!("write the network: `{}`", n.trunc()),
                        ),
                        Ok(n) => {
                            if n.prefix_len() != 64
                                && seg.ra.as_ref().is_none_or(|r| r.value != RaMode::None)
                            {
                                self.err(
                                    p.loc,
                                    format!(
                                        "`{}` is a /{}; SLAAC and DHCPv6 segments need a /64",
                                        p.value,
                                        n.prefix_len()
                                    ),
                                    "use a /64, or set `ra: none` for a segment with static addresses only",
                                );
                            }
                            claims.push(Claim {
                                net: IpNet::V6(n),
                                loc: p.loc,
                                what: format!("segment `{}`", name.value),
                            });
                            e6 = Some(n);
                        }
                        Err(_) => self.err(
                            p.loc,
                            format!("`{}` is not an IPv6 prefix", p.value),
                            "write e.g. `2001:db8:1::/64`",
                        ),
                    }
                }
            }
            let mut e4 = None;
            if let Some(p) = &seg.ipv4 {
                if !fam.has_v4() {
                    self.err(
                        p.loc,
                        format!(
                            "segment `{}` is ipv6-only but has an IPv4 prefix",
                            name.value
                        ),
                        "remove `ipv4:` or make the segment `dual-stack`",
                    );
                } else {
                    match p.parse::<Ipv4Net>() {
                        Ok(n) if n != n.trunc() => self.err(
                            p.loc,
                            format!("`{}` has host bits set", p.value),
                            format!("write the network: `{}`", n.trunc()),
                        ),
                        Ok(n) if n.prefix_len() > 29 => self.err(
                            p.loc,
                            format!("`{}` is too small for a segment", p.value),
                            "use a /24 or at least a /29",
                        ),
                        Ok(n) => {
                            claims.push(Claim {
                                net: IpNet::V4(n),
                                loc: p.loc,
                                what: format!("segment `{}`", name.value),
                            });
                            e4 = Some(n);
                        }
                        Err(_) => self.err(
                            p.loc,
                            format!("`{}` is not an IPv4 prefix", p.value),
                            "write e.g. `198.51.100.0/24`",
                        ),
                    }
                }
            }
            if let Some(r) = &seg.ra
                && !fam.has_v6()
                && r.value != RaMode::None
            {
                self.err(
                    r.loc,
                    format!(
                        "segment `{}` is ipv4-only; Router Advertisements are IPv6",
                        name.value
                    ),
                    "remove `ra:`",
                );
            }
            if let Some(m) = &seg.mtu
                && !(1280..=9000).contains(&m.value)
                && fam.has_v6()
            {
                self.err(
                    m.loc,
                    format!("MTU {} is outside 1280..9000", m.value),
                    "IPv6 needs at least 1280; use e.g. `1500` or `1400`",
                );
            }
            explicit6.push(e6);
            explicit4.push(e4);
            defs.push((name.clone(), seg));
        }
        self.check_overlaps(&claims);
        if let Some(n) = self.topo.nat64.as_ref().and_then(|n| n.prefix.as_ref())
            && let Ok(net) = n.parse::<Ipv6Net>()
        {
            claims.push(Claim {
                net: IpNet::V6(net),
                loc: n.loc,
                what: "the NAT64 prefix".into(),
            });
        }

        // Pool allocation in declaration order, skipping what explicit prefixes claim.
        let stride = if pool6.prefix_len() <= 48 { 48 } else { 64 };
        let mut v6_candidates = pool6.subnets(stride).into_iter().flatten().skip(1);
        let mut v4_candidates = pools4
            .iter()
            .flat_map(|p| p.subnets(24.max(p.prefix_len())).into_iter().flatten());
        let overlaps = |claims: &[Claim], n: IpNet| {
            claims
                .iter()
                .any(|c| c.net.contains(&n) || n.contains(&c.net))
        };
        let mut out = Vec::new();
        for (i, (name, seg)) in defs.into_iter().enumerate() {
            let fam = seg.family.value;
            let ipv6 = match explicit6[i] {
                Some(n) => Some(n),
                None if fam.has_v6() => loop {
                    match v6_candidates.next() {
                        Some(c) => {
                            let n = Ipv6Net::new(c.network(), 64).expect("64");
                            if !overlaps(&claims, IpNet::V6(n)) {
                                break Some(n);
                            }
                        }
                        None => {
                            self.err(
                                name.loc,
                                "the IPv6 pool is exhausted",
                                "use a larger `pools.ipv6`",
                            );
                            break None;
                        }
                    }
                },
                None => None,
            };
            let ipv4 = match explicit4[i] {
                Some(n) => Some(n),
                None if fam.has_v4() => loop {
                    match v4_candidates.next() {
                        Some(c) => {
                            if !overlaps(&claims, IpNet::V4(c)) {
                                break Some(c);
                            }
                        }
                        None => {
                            self.err(
                                name.loc,
                                "the IPv4 pools are exhausted",
                                "add a pool to `pools.ipv4`",
                            );
                            break None;
                        }
                    }
                },
                None => None,
            };
            let ra = match (&seg.ra, fam.has_v6()) {
                (_, false) => RaMode::None,
                (Some(r), true) => r.value,
                (None, true) => RaMode::Slaac,
            };
            out.push(SegmentPlan {
                name: name.value.clone(),
                family: fam,
                ipv6,
                ipv4,
                ra,
                rdnss: Vec::new(),
                mtu: seg.mtu.map(|m| m.value).unwrap_or(1500),
                nat64: false,
            });
        }
        out
    }

    fn parse_v6_pool(&mut self, s: &Sp<String>) -> Option<Ipv6Net> {
        match s.parse::<Ipv6Net>() {
            Ok(n) if n.prefix_len() <= 56 => Some(n.trunc()),
            Ok(_) => {
                self.err(
                    s.loc,
                    "the IPv6 pool must be a /56 or larger",
                    "e.g. `2001:db8:100::/48`",
                );
                None
            }
            Err(_) => {
                self.err(
                    s.loc,
                    format!("`{}` is not an IPv6 prefix", s.value),
                    "write e.g. `2001:db8::/32`",
                );
                None
            }
        }
    }

    fn check_overlaps(&mut self, claims: &[Claim]) {
        for (i, a) in claims.iter().enumerate() {
            for b in &claims[..i] {
                if a.net.contains(&b.net) || b.net.contains(&a.net) {
                    self.diags.push(
                        Diagnostic::new(
                            a.loc,
                            format!(
                                "{} `{}` of {} overlaps {} `{}` of {}",
                                "prefix", a.net, a.what, "prefix", b.net, b.what
                            ),
                        )
                        .related(b.loc, format!("{} is declared here", b.what))
                        .hint("give each segment its own prefix"),
                    );
                }
            }
        }
    }

    fn plan_nodes(&mut self, segments: &[SegmentPlan]) -> Vec<NodePlan> {
        let topo = self.topo;
        // First router on each segment serves DHCP; numbering for auto static addresses.
        let mut next6: Vec<u32> = vec![1; segments.len()];
        let mut next4: Vec<u32> = vec![1; segments.len()];
        let mut taken6: Vec<Vec<Ipv6Addr>> = vec![Vec::new(); segments.len()];
        let mut taken4: Vec<Vec<Ipv4Addr>> = vec![Vec::new(); segments.len()];
        // Collect explicit static addresses first so auto numbering skips them.
        for (_, node) in topo.nodes.iter() {
            for (_, def) in node.interfaces.iter() {
                if let t::InterfaceDef::Full(i) = def
                    && let Some(&s) = self.seg_index.get(i.segment.as_str())
                {
                    if let Some(a) = i
                        .ipv6
                        .as_ref()
                        .and_then(|a| a.split('/').next()?.parse().ok())
                    {
                        taken6[s].push(a);
                    }
                    if let Some(a) = i
                        .ipv4
                        .as_ref()
                        .and_then(|a| a.split('/').next()?.parse().ok())
                    {
                        taken4[s].push(a);
                    }
                }
            }
        }
        let has_router: Vec<bool> = (0..segments.len())
            .map(|s| {
                topo.nodes.iter().any(|(_, n)| {
                    n.role.value == Role::Router
                        && n.interfaces
                            .iter()
                            .any(|(_, d)| self.seg_index.get(iface_segment(d).as_str()) == Some(&s))
                })
            })
            .collect();

        let mut out = Vec::new();
        for (ni, (name, node)) in topo.nodes.iter().enumerate() {
            let role = node.role.value;
            let mut interfaces = Vec::new();
            let mut seen_ifaces: HashMap<&str, Loc> = HashMap::new();
            for (ii, (ifname, def)) in node.interfaces.iter().enumerate() {
                if let Some(prev) = seen_ifaces.insert(ifname.as_str(), ifname.loc) {
                    self.diags.push(
                        Diagnostic::new(
                            ifname.loc,
                            format!("interface `{}` is declared twice", ifname.value),
                        )
                        .related(prev, "first declared here")
                        .hint("give each interface its own name"),
                    );
                }
                let (seg_name, want6, want4) = match def {
                    t::InterfaceDef::Segment(s) => (s, None, None),
                    t::InterfaceDef::Full(i) => (&i.segment, i.ipv6.as_ref(), i.ipv4.as_ref()),
                };
                let Some(si) = self.segment_ref(seg_name) else {
                    continue;
                };
                let seg = &segments[si];
                let mac = format!(
                    "02:76:36:{:02x}:{:02x}:{:02x}",
                    (ni >> 8) & 0xff,
                    ni & 0xff,
                    ii + 1
                );
                let link_local = seg.family.has_v6().then(|| eui64(fe80(), &mac));
                let ipv6 = self.assign6(
                    name,
                    role,
                    seg,
                    want6,
                    has_router[si],
                    &mac,
                    &mut next6[si],
                    &taken6[si],
                );
                let ipv4 = self.assign4(role, seg, want4, &mut next4[si], &taken4[si]);
                interfaces.push(InterfacePlan {
                    name: ifname.value.clone(),
                    segment: seg.name.clone(),
                    mac,
                    mtu: seg.mtu,
                    link_local,
                    ipv6,
                    ipv4,
                });
            }
            let limits = self.limits(node.limits.as_ref());
            let forwarding = role.forwards();
            let mut sysctls = BTreeMap::new();
            for k in ["all", "default"] {
                sysctls.insert(format!("net.ipv6.conf.{k}.disable_ipv6"), "0".into());
                sysctls.insert(
                    format!("net.ipv6.conf.{k}.forwarding"),
                    if forwarding { "1" } else { "0" }.into(),
                );
                sysctls.insert(format!("net.ipv6.conf.{k}.use_tempaddr"), "0".into());
                // DAD's first probe goes out at once (no random delay up to 1 s).
                sysctls.insert(
                    format!("net.ipv6.conf.{k}.router_solicitation_delay"),
                    "0".into(),
                );
            }
            sysctls.insert("net.ipv6.conf.default.addr_gen_mode".into(), "0".into());
            // Routers and servers use the addresses the plan made unique: they skip duplicate
            // address detection (and still answer others' DAD probes), so a lab is ready sooner
            // and radvd's first advertisements are not lost. Hosts keep full DAD (with the short lab timers).
            if role != Role::Host {
                for k in ["all", "default"] {
                    sysctls.insert(format!("net.ipv6.conf.{k}.accept_dad"), "0".into());
                }
            }
            // Servers keep the addresses the plan gives them: RAs give them routes, not addresses.
            if matches!(role, Role::Server | Role::Dns) {
                for k in ["all", "default"] {
                    sysctls.insert(format!("net.ipv6.conf.{k}.autoconf"), "0".into());
                }
            }
            sysctls.insert(
                "net.ipv4.ip_forward".into(),
                if forwarding { "1" } else { "0" }.into(),
            );
            out.push(NodePlan {
                name: name.value.clone(),
                role,
                image: node.image.as_ref().map(|i| i.value.clone()),
                forwarding,
                interfaces,
                routes: Vec::new(),
                resolvers: Vec::new(),
                limits,
                sysctls,
                // Lab timers, not lab protocols: neighbour discovery retransmits, and so DAD
                // completes, after 250 ms instead of 1 s. Set per link: the neighbour table of a
                // new namespace has no defaults to set at create.
                link_sysctls: BTreeMap::from([(
                    "net.ipv6.neigh.IFACE.retrans_time_ms".to_string(),
                    "250".to_string(),
                )]),
                tun: false,
                parts: Vec::new(),
                files: Vec::new(),
            });
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn assign6(
        &mut self,
        node: &Sp<String>,
        role: Role,
        seg: &SegmentPlan,
        want: Option<&Sp<String>>,
        seg_has_router: bool,
        mac: &str,
        next: &mut u32,
        taken: &[Ipv6Addr],
    ) -> Assign6 {
        let Some(prefix) = seg.ipv6 else {
            if let Some(w) = want
                && w.value != "none"
            {
                self.err(
                    w.loc,
                    format!(
                        "segment `{}` is {}; it has no IPv6",
                        seg.name,
                        seg.family.as_str()
                    ),
                    "remove `ipv6:` here, or make the segment `dual-stack`",
                );
            }
            return Assign6::Disabled;
        };
        let mode = want.map(|w| w.value.as_str()).unwrap_or("auto");
        match mode {
            "none" => Assign6::None,
            "slaac" | "dhcpv6" if !seg_has_router || seg.ra == RaMode::None => {
                let w = want.expect("explicit");
                self.err(
                    w.loc,
                    format!(
                        "`{mode}` needs a router sending Router Advertisements on segment `{}`",
                        seg.name
                    ),
                    "add a router to the segment, set its `ra:`, or give a static address",
                );
                Assign6::None
            }
            "slaac" => Assign6::Slaac {
                prefix,
                expected: eui64(prefix.network(), mac),
            },
            "dhcpv6" => Assign6::Dhcpv6 { prefix },
            "auto" => {
                let dynamic = role == Role::Host && seg_has_router;
                match (dynamic, seg.ra) {
                    (true, RaMode::Slaac | RaMode::Dhcpv6Stateless) => Assign6::Slaac {
                        prefix,
                        expected: eui64(prefix.network(), mac),
                    },
                    (true, RaMode::Dhcpv6Stateful) => Assign6::Dhcpv6 { prefix },
                    _ => loop {
                        let a = nth6(prefix, *next);
                        *next += 1;
                        if !taken.contains(&a) {
                            break Assign6::Static {
                                address: Ipv6Net::new(a, prefix.prefix_len()).expect("len"),
                            };
                        }
                    },
                }
            }
            text => {
                let w = want.expect("explicit");
                let (addr, len) = match text.split_once('/') {
                    Some((a, l)) => (a, l.parse::<u8>().ok()),
                    None => (text, Some(prefix.prefix_len())),
                };
                match (addr.parse::<Ipv6Addr>(), len) {
                    (Ok(a), Some(l)) if l <= 128 => {
                        if !prefix.contains(&a) {
                            self.err(
                                w.loc,
                                format!("{a} is outside segment `{}`'s prefix {prefix}", seg.name),
                                format!("use an address inside {prefix}"),
                            );
                        }
                        let _ = node;
                        Assign6::Static {
                            address: Ipv6Net::new(a, l).expect("len"),
                        }
                    }
                    _ => {
                        if text.parse::<Ipv4Addr>().is_ok() || text.contains('.') {
                            self.err(
                                w.loc,
                                format!("`{text}` is an IPv4 address given as `ipv6:`"),
                                "write it under `ipv4:`",
                            );
                        } else {
                            self.err(
                                w.loc,
                                format!("`{text}` is not an IPv6 address mode"),
                                "use `auto`, `slaac`, `dhcpv6`, `none`, or an address such as `2001:db8:1::10`",
                            );
                        }
                        Assign6::None
                    }
                }
            }
        }
    }

    fn assign4(
        &mut self,
        role: Role,
        seg: &SegmentPlan,
        want: Option<&Sp<String>>,
        next: &mut u32,
        taken: &[Ipv4Addr],
    ) -> Assign4 {
        let Some(prefix) = seg.ipv4 else {
            if let Some(w) = want
                && w.value != "none"
            {
                self.err(
                    w.loc,
                    format!(
                        "segment `{}` is {}; it has no IPv4",
                        seg.name,
                        seg.family.as_str()
                    ),
                    "remove `ipv4:` here, or make the segment `dual-stack`",
                );
            }
            return Assign4::Disabled;
        };
        let _ = role;
        let mode = want.map(|w| w.value.as_str()).unwrap_or("auto");
        match mode {
            "none" => Assign4::None,
            "dhcp" => Assign4::Dhcp { prefix },
            "auto" => loop {
                let a = nth4(prefix, *next);
                *next += 1;
                if !taken.contains(&a) {
                    break Assign4::Static {
                        address: Ipv4Net::new(a, prefix.prefix_len()).expect("len"),
                    };
                }
            },
            text => {
                let w = want.expect("explicit");
                let (addr, len) = match text.split_once('/') {
                    Some((a, l)) => (a, l.parse::<u8>().ok()),
                    None => (text, Some(prefix.prefix_len())),
                };
                match (addr.parse::<Ipv4Addr>(), len) {
                    (Ok(a), Some(l)) if l <= 32 => {
                        if !prefix.contains(&a) {
                            self.err(
                                w.loc,
                                format!("{a} is outside segment `{}`'s prefix {prefix}", seg.name),
                                format!("use an address inside {prefix}"),
                            );
                        }
                        Assign4::Static {
                            address: Ipv4Net::new(a, l).expect("len"),
                        }
                    }
                    _ => {
                        if text.contains(':') {
                            self.err(
                                w.loc,
                                format!("`{text}` is an IPv6 address given as `ipv4:`"),
                                "write it under `ipv6:`",
                            );
                        } else {
                            self.err(
                                w.loc,
                                format!("`{text}` is not an IPv4 address mode"),
                                "use `auto`, `dhcp`, `none`, or an address such as `192.0.2.10/24`",
                            );
                        }
                        Assign4::None
                    }
                }
            }
        }
    }

    fn limits(&mut self, l: Option<&t::Limits>) -> LimitsPlan {
        let mut out = self.default_limits;
        let Some(l) = l else { return out };
        if let Some(m) = &l.memory {
            match values::parse_size(m) {
                Ok(b) if b >= 16 << 20 => out.memory_bytes = b,
                Ok(_) => self.err(
                    m.loc,
                    "a node needs at least 16MiB of memory",
                    "write e.g. `128MiB`",
                ),
                Err(e) => self.err(
                    m.loc,
                    format!("`{}` is not a size: {e}", m.value),
                    "write e.g. `256MiB` or `1GiB`",
                ),
            }
        }
        if let Some(p) = &l.pids {
            if p.value < 16 {
                self.err(
                    p.loc,
                    "a node needs at least 16 processes",
                    "write e.g. `256`",
                );
            } else {
                out.pids = p.value;
            }
        }
        if let Some(c) = &l.cpus {
            if !(c.value > 0.0 && c.value <= 64.0) {
                self.err(c.loc, "cpus must be between 0 and 64", "write e.g. `0.5`");
            } else {
                out.cpus = c.value;
            }
        }
        out
    }

    fn check_duplicate_addresses(&mut self, nodes: &[NodePlan]) {
        let mut seen: HashMap<IpAddr, (String, Loc)> = HashMap::new();
        for (ni, n) in nodes.iter().enumerate() {
            for i in &n.interfaces {
                let loc = self.iface_loc(ni, &i.name);
                let addrs = [
                    match &i.ipv6 {
                        Assign6::Static { address } => Some(IpAddr::V6(address.addr())),
                        _ => None,
                    },
                    i.ipv4.address().map(IpAddr::V4),
                ];
                for a in addrs.into_iter().flatten() {
                    let here = format!("{}/{}", n.name, i.name);
                    if let Some((other, oloc)) = seen.get(&a) {
                        self.diags.push(
                            Diagnostic::new(
                                loc,
                                format!("address {a} of {here} is also used by {other}"),
                            )
                            .related(*oloc, format!("{other} has it here"))
                            .hint("give each interface its own address"),
                        );
                    } else {
                        seen.insert(a, (here, loc));
                    }
                }
            }
        }
    }

    /// Location of an interface's address (or name) in the source.
    fn iface_loc(&self, node: usize, ifname: &str) -> Loc {
        let (_, n) = &self.topo.nodes.0[node];
        for (k, d) in n.interfaces.iter() {
            if k.value == ifname {
                return match d {
                    t::InterfaceDef::Full(i) => i
                        .ipv6
                        .as_ref()
                        .or(i.ipv4.as_ref())
                        .map(|a| a.loc)
                        .unwrap_or(k.loc),
                    t::InterfaceDef::Segment(_) => k.loc,
                };
            }
        }
        Loc::NONE
    }

    fn plan_nat64(
        &mut self,
        segments: &mut [SegmentPlan],
        nodes: &[NodePlan],
    ) -> Option<Nat64Plan> {
        let n = self.topo.nat64.as_ref()?;
        let ti = self.node_ref(&n.translator)?;
        let translator = &nodes[ti];
        let ri = match &n.resolver {
            Some(r) => self.node_ref(r)?,
            None => ti,
        };
        let v6_if = translator
            .interfaces
            .iter()
            .find(|i| matches!(i.ipv6, Assign6::Static { .. }));
        let v4_if = translator
            .interfaces
            .iter()
            .find(|i| i.ipv4.address().is_some());
        let (Some(v6_if), Some(v4_if)) = (v6_if, v4_if) else {
            self.err(
                n.translator.loc,
                format!("the NAT64 translator `{}` needs a static IPv6 address on one segment and an IPv4 address on another", translator.name),
                "attach it to an ipv6-only (or dual-stack) segment and to an ipv4-only (or dual-stack) segment",
            );
            return None;
        };
        let v4_seg = segments.iter().find(|s| s.name == v4_if.segment)?.clone();
        let resolver_address = match nodes[ri].interfaces.iter().find_map(|i| match i.ipv6 {
            Assign6::Static { address } => Some(address.addr()),
            _ => None,
        }) {
            Some(a) => a,
            None => {
                let loc = n
                    .resolver
                    .as_ref()
                    .map(|r| r.loc)
                    .unwrap_or(n.translator.loc);
                self.err(
                    loc,
                    format!(
                        "the DNS64 resolver `{}` needs a static IPv6 address",
                        nodes[ri].name
                    ),
                    "give it an interface on an IPv6 segment",
                );
                return None;
            }
        };
        let prefix = match &n.prefix {
            Some(p) => match p.parse::<Ipv6Net>() {
                Ok(net) => {
                    if ![32, 40, 48, 56, 64, 96].contains(&net.prefix_len()) {
                        self.err(
                            p.loc,
                            format!(
                                "/{} is not an RFC 6052 NAT64 prefix length",
                                net.prefix_len()
                            ),
                            "use /32, /40, /48, /56, /64 or /96 (a /96 is the usual choice)",
                        );
                    }
                    let wkp: Ipv6Net = "64:ff9b::/96".parse().expect("wkp");
                    if net.trunc() == wkp {
                        let v4net = v4_seg.ipv4.expect("v4");
                        if !is_global_v4(v4net) {
                            self.err(
                                p.loc,
                                format!("the well-known prefix 64:ff9b::/96 cannot translate to {v4net}, which is not globally routable"),
                                "RFC 6052 section 3.1 forbids the well-known prefix for non-global IPv4 (tayga refuses it too); \
                                 remove `prefix:` to get a network-specific prefix from the lab's plan, or write one such as `2001:db8:64::/96`",
                            );
                        }
                    }
                    net.trunc()
                }
                Err(_) => {
                    self.err(
                        p.loc,
                        format!("`{}` is not an IPv6 prefix", p.value),
                        "write e.g. `2001:db8:64::/96`",
                    );
                    return None;
                }
            },
            None => {
                // Network-specific prefix: 2001:db8:64::/96 under the default pool, else the
                // pool's subnet number 0x64.
                let pool: Ipv6Net = self
                    .topo
                    .pools
                    .as_ref()
                    .and_then(|p| p.ipv6.as_ref())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| DEFAULT_IPV6_POOL.parse().expect("pool"));
                let stride = if pool.prefix_len() <= 48 { 48 } else { 64 };
                let base = u128::from(pool.network()) | (0x64u128 << (128 - stride));
                Ipv6Net::new(Ipv6Addr::from(base), 96).expect("96")
            }
        };
        for s in segments.iter() {
            if let Some(p6) = s.ipv6
                && (p6.contains(&prefix) || prefix.contains(&p6))
            {
                let loc = n.prefix.as_ref().map(|p| p.loc).unwrap_or(n.translator.loc);
                self.err(
                    loc,
                    format!(
                        "the NAT64 prefix {prefix} overlaps segment `{}` ({p6})",
                        s.name
                    ),
                    "choose a NAT64 prefix outside every segment",
                );
            }
        }
        let pool = match &n.pool {
            Some(p) => match p.parse::<Ipv4Net>() {
                Ok(net) => net.trunc(),
                Err(_) => {
                    self.err(
                        p.loc,
                        format!("`{}` is not an IPv4 prefix", p.value),
                        "write e.g. `198.19.255.0/24`",
                    );
                    return None;
                }
            },
            None => {
                let bench: Ipv4Net = "198.18.0.0/15".parse().expect("bench");
                let mut subnets: Vec<Ipv4Net> = bench.subnets(24).expect("24").collect();
                subnets.reverse();
                let free = subnets.into_iter().find(|c| {
                    !segments
                        .iter()
                        .any(|s| s.ipv4.is_some_and(|p| p.contains(c) || c.contains(&p)))
                });
                free?
            }
        };
        for s in segments.iter() {
            if let Some(p4) = s.ipv4
                && (p4.contains(&pool) || pool.contains(&p4))
            {
                let loc = n.pool.as_ref().map(|p| p.loc).unwrap_or(n.translator.loc);
                self.err(
                    loc,
                    format!("the NAT64 pool {pool} overlaps segment `{}` ({p4})", s.name),
                    "choose a pool outside every segment",
                );
            }
        }
        let tayga_ipv4 = pool.hosts().next().unwrap_or(pool.network());
        let tayga_ipv6 = embed_v4(prefix, tayga_ipv4);
        // IPv6-only segments that share the translator's IPv6 side are NAT64 segments.
        for s in segments.iter_mut() {
            if s.family == Family::Ipv6Only {
                s.nat64 = true;
            }
        }
        let _ = v6_if;
        Some(Nat64Plan {
            translator: translator.name.clone(),
            resolver: nodes[ri].name.clone(),
            prefix,
            pool,
            tayga_ipv4,
            tayga_ipv6,
            ipv4_interface: v4_if.name.clone(),
            resolver_address,
        })
    }

    fn plan_routes(
        &mut self,
        nodes: &mut [NodePlan],
        segments: &[SegmentPlan],
        nat64: Option<&Nat64Plan>,
    ) {
        let topo = self.topo;
        for ni in 0..nodes.len() {
            let (_, def) = &topo.nodes.0[ni];
            let mut routes = Vec::new();
            for r in &def.routes {
                let to: Option<IpNet> = match r.to.as_str() {
                    "default" => Some("::/0".parse().expect("default")),
                    "default4" => Some("0.0.0.0/0".parse().expect("default4")),
                    s => match s.parse::<IpNet>() {
                        Ok(n) => Some(n.trunc()),
                        Err(_) => match self.seg_index.get(s) {
                            Some(&si) => segments[si]
                                .ipv6
                                .map(IpNet::V6)
                                .or(segments[si].ipv4.map(IpNet::V4)),
                            None => {
                                let known: Vec<&str> = self.seg_index.keys().copied().collect();
                                let hint = did_you_mean(s, &known)
                                    .map(|k| format!("did you mean segment `{k}`?"))
                                    .unwrap_or_else(|| "write a prefix such as `2001:db8:3::/64`, a segment name, or `default`".into());
                                self.err(
                                    r.to.loc,
                                    format!("`{s}` is neither a prefix nor a segment"),
                                    hint,
                                );
                                None
                            }
                        },
                    },
                };
                let Some(to) = to else { continue };
                let v6 = matches!(to, IpNet::V6(_));
                let via = match r.via.parse::<IpAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => match self.node_index.get(r.via.as_str()).copied() {
                        Some(vi) => {
                            let found = shared_address(&nodes[ni], &nodes[vi], v6);
                            if found.is_none() {
                                self.err(
                                    r.via.loc,
                                    format!(
                                        "`{}` shares no {} segment with `{}` where it has a static address",
                                        r.via.value,
                                        if v6 { "IPv6" } else { "IPv4" },
                                        nodes[ni].name
                                    ),
                                    "route via a neighbour on a common segment, or write its address",
                                );
                            }
                            found
                        }
                        None => {
                            self.node_ref(&r.via);
                            None
                        }
                    },
                };
                let Some(via) = via else { continue };
                if via.is_ipv6() != v6 {
                    self.err(
                        r.via.loc,
                        format!("next hop {via} and destination {to} are of different families"),
                        "use a next hop of the destination's family",
                    );
                    continue;
                }
                routes.push(RoutePlan {
                    to,
                    via,
                    origin: "static".into(),
                });
            }
            let node = &nodes[ni];
            // Non-forwarding nodes: IPv4 default route via the first router on their segment.
            if !node.forwarding
                && !routes
                    .iter()
                    .any(|r| r.to.prefix_len() == 0 && r.to.addr().is_ipv4())
            {
                let gw = node
                    .interfaces
                    .iter()
                    .filter(|i| matches!(i.ipv4, Assign4::Static { .. }))
                    .find_map(|i| {
                        nodes
                            .iter()
                            .filter(|o| o.role == Role::Router || o.role == Role::Nat64)
                            .find_map(|o| {
                                o.interfaces
                                    .iter()
                                    .find(|oi| oi.segment == i.segment)
                                    .and_then(|oi| oi.ipv4.address())
                            })
                    });
                if let Some(gw) = gw {
                    routes.push(RoutePlan {
                        to: "0.0.0.0/0".parse().expect("d"),
                        via: IpAddr::V4(gw),
                        origin: "default".into(),
                    });
                }
            }
            // IPv6 default for non-forwarding nodes on segments without RA.
            if !node.forwarding
                && !routes
                    .iter()
                    .any(|r| r.to.prefix_len() == 0 && r.to.addr().is_ipv6())
            {
                let gw = node
                    .interfaces
                    .iter()
                    .filter(|i| matches!(i.ipv6, Assign6::Static { .. }))
                    .find_map(|i| {
                        let seg = segments.iter().find(|s| s.name == i.segment)?;
                        if seg.ra != RaMode::None {
                            return None;
                        }
                        nodes
                            .iter()
                            .filter(|o| o.role == Role::Router)
                            .find_map(|o| {
                                o.interfaces
                                    .iter()
                                    .find(|oi| oi.segment == i.segment)
                                    .and_then(|oi| match oi.ipv6 {
                                        Assign6::Static { address } => Some(address.addr()),
                                        _ => None,
                                    })
                            })
                    });
                if let Some(gw) = gw {
                    routes.push(RoutePlan {
                        to: "::/0".parse().expect("d"),
                        via: IpAddr::V6(gw),
                        origin: "default".into(),
                    });
                }
            }
            // Routers next to the translator route the NAT64 prefix to it.
            if let Some(n) = nat64
                && node.forwarding
                && node.name != n.translator
                && let Some(t) = nodes.iter().find(|o| o.name == n.translator)
                && let Some(via) = shared_address(node, t, true)
            {
                routes.push(RoutePlan {
                    to: IpNet::V6(n.prefix),
                    via,
                    origin: "nat64".into(),
                });
            }
            nodes[ni].routes = routes;
        }
    }

    fn plan_resolvers(
        &mut self,
        nodes: &mut [NodePlan],
        segments: &mut [SegmentPlan],
        nat64: Option<&Nat64Plan>,
    ) {
        let topo = self.topo;
        // Resolver nodes, then authoritative servers as a fallback.
        let resolvers: Vec<usize> = topo
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, (_, n))| n.services.as_ref().is_some_and(|s| s.resolver.is_some()))
            .map(|(i, _)| i)
            .collect();
        let auths: Vec<usize> = topo
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, (_, n))| n.services.as_ref().is_some_and(|s| s.dns.is_some()))
            .map(|(i, _)| i)
            .collect();
        let servers = if resolvers.is_empty() {
            auths
        } else {
            resolvers
        };
        for (ni, node) in nodes.iter_mut().enumerate() {
            if servers.contains(&ni) {
                continue;
            }
            let has_v6 = node
                .interfaces
                .iter()
                .any(|i| !matches!(i.ipv6, Assign6::Disabled));
            let has_v4 = node
                .interfaces
                .iter()
                .any(|i| !matches!(i.ipv4, Assign4::Disabled));
            let mut list = Vec::new();
            if let Some(n) = nat64
                && has_v6
                && !has_v4
            {
                list.push(IpAddr::V6(n.resolver_address));
            }
            node.resolvers = list;
        }
        // Second pass with immutable access to all nodes.
        let addrs: Vec<(Option<Ipv6Addr>, Option<Ipv4Addr>)> = nodes
            .iter()
            .map(|n| {
                (
                    n.interfaces.iter().find_map(|i| match i.ipv6 {
                        Assign6::Static { address } => Some(address.addr()),
                        _ => None,
                    }),
                    n.first_v4(),
                )
            })
            .collect();
        for (ni, node) in nodes.iter_mut().enumerate() {
            if servers.contains(&ni) || !node.resolvers.is_empty() {
                continue;
            }
            let has_v6 = node
                .interfaces
                .iter()
                .any(|i| !matches!(i.ipv6, Assign6::Disabled));
            let has_v4 = node
                .interfaces
                .iter()
                .any(|i| !matches!(i.ipv4, Assign4::Disabled));
            for &si in &servers {
                if has_v6 && let Some(a) = addrs[si].0 {
                    node.resolvers.push(IpAddr::V6(a));
                } else if has_v4 && let Some(a) = addrs[si].1 {
                    node.resolvers.push(IpAddr::V4(a));
                }
            }
        }
        // RDNSS per segment: explicit, else the NAT64 resolver on NAT64 segments, else the lab's servers.
        for (si, (name, def)) in topo.segments.iter().enumerate() {
            let seg = &mut segments[si];
            if !seg.family.has_v6() {
                continue;
            }
            let explicit = match def {
                t::SegmentDef::Full(s) => s.rdnss.clone(),
                _ => None,
            };
            let _ = name;
            seg.rdnss = match explicit {
                Some(list) => list
                    .iter()
                    .filter_map(|r| match r.parse::<Ipv6Addr>() {
                        Ok(a) => Some(a),
                        Err(_) => match self.node_index.get(r.as_str()).copied() {
                            Some(i) => match addrs[i].0 {
                                Some(a) => Some(a),
                                None => {
                                    self.err(r.loc, format!("node `{}` has no static IPv6 address to advertise", r.value), "advertise a node with a static IPv6 address, or write an address");
                                    None
                                }
                            },
                            None => {
                                self.node_ref(r);
                                None
                            }
                        },
                    })
                    .collect(),
                None => match nat64 {
                    Some(n) if seg.nat64 => vec![n.resolver_address],
                    _ => servers.iter().filter_map(|&i| addrs[i].0).collect(),
                },
            };
        }
    }

    fn plan_exercises(
        &mut self,
        nodes: &mut [NodePlan],
        segments: &[SegmentPlan],
        nat64: Option<&Nat64Plan>,
    ) -> Vec<ExercisePlan> {
        let topo = self.topo;
        let mut out = Vec::new();
        let mut ids: HashMap<&str, Loc> = HashMap::new();
        for ex in &topo.exercises {
            if let Some(problem) = values::dns_label_problem(&ex.id, 40) {
                self.err(
                    ex.id.loc,
                    format!("exercise id `{}` is not valid: {problem}", ex.id.value),
                    format!("use e.g. `{}`", values::dns_safe(&ex.id)),
                );
            }
            if let Some(prev) = ids.insert(ex.id.as_str(), ex.id.loc) {
                self.diags.push(
                    Diagnostic::new(
                        ex.id.loc,
                        format!("exercise `{}` is declared twice", ex.id.value),
                    )
                    .related(prev, "first declared here")
                    .hint("give each exercise its own id"),
                );
            }
            let mut student = Vec::new();
            for s in &ex.student {
                let Some((node, part)) = s.split_once('/') else {
                    self.err(
                        s.loc,
                        format!("`{}` is not a part reference", s.value),
                        "write `NODE/PART`, e.g. `r1/radvd` or `h1/eth1.ipv6`",
                    );
                    continue;
                };
                let Some(ni) = self.node_ref(&Sp::new(node.to_owned(), s.loc)) else {
                    continue;
                };
                let n = &mut nodes[ni];
                match n.parts.iter_mut().find(|p| p.id == part) {
                    Some(p) => {
                        if let Some(other) = &p.student
                            && other != &ex.id.value
                        {
                            self.err(
                                s.loc,
                                format!(
                                    "`{}` is already left to the student by exercise `{other}`",
                                    s.value
                                ),
                                "leave each part to one exercise",
                            );
                            continue;
                        }
                        p.student = Some(ex.id.value.clone());
                        student.push(s.value.clone());
                    }
                    None => {
                        let known: Vec<&str> = n.parts.iter().map(|p| p.id.as_str()).collect();
                        let hint = match did_you_mean(part, &known) {
                            Some(k) => format!("did you mean `{node}/{k}`?"),
                            None => format!("parts of `{node}`: {}", known.join(", ")),
                        };
                        self.err(s.loc, format!("node `{node}` has no part `{part}`"), hint);
                    }
                }
            }
            if ex.checks.is_empty() {
                self.err(
                    ex.id.loc,
                    format!("exercise `{}` has no checks", ex.id.value),
                    "add at least one check that proves the student's work",
                );
            }
            let mut checks = Vec::new();
            for c in &ex.checks {
                if let Some(cp) = self.plan_check(c, nodes, segments, nat64) {
                    checks.push(cp);
                }
            }
            let mut solution = Vec::new();
            for st in &ex.solution {
                if self.node_ref(&st.node).is_some() {
                    solution.push(SolutionPlan {
                        node: st.node.value.clone(),
                        run: st.run.value.clone(),
                    });
                }
            }
            if ex.solution.is_empty() && ex.student.is_empty() && !ex.passes_initially {
                self.err(
                    ex.id.loc,
                    format!("exercise `{}` has no solution and leaves nothing to the student", ex.id.value),
                    "list the parts left to the student under `student:`, write a `solution:`, or set `passes-initially: true`",
                );
            }
            out.push(ExercisePlan {
                id: ex.id.value.clone(),
                title: ex.title.clone(),
                instructions: ex.instructions.clone().unwrap_or_default(),
                student,
                passes_initially: ex.passes_initially,
                checks,
                solution,
            });
        }
        // Regenerate up.sh now that student parts are known.
        for n in nodes.iter_mut() {
            crate::render::render_up_script(n);
        }
        out
    }

    fn plan_check(
        &mut self,
        c: &t::Check,
        nodes: &[NodePlan],
        segments: &[SegmentPlan],
        nat64: Option<&Nat64Plan>,
    ) -> Option<CheckPlan> {
        let ni = self.node_ref(&c.node);
        let kinds: Vec<(&str, bool)> = vec![
            ("command", c.command.is_some()),
            ("slaac", c.slaac.is_some()),
            ("dhcpv6", c.dhcpv6.is_some()),
            ("default-route", c.default_route.is_some()),
            ("ping", c.ping.is_some()),
            ("dns", c.dns.is_some()),
            ("http", c.http.is_some()),
            ("route", c.route.is_some()),
            ("daemon", c.daemon.is_some()),
            ("ospf6-neighbor", c.ospf6_neighbor.is_some()),
            ("bgp-session", c.bgp_session.is_some()),
        ];
        let present: Vec<&str> = kinds.iter().filter(|(_, p)| *p).map(|(k, _)| *k).collect();
        let all: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
        if present.len() != 1 {
            let msg = if present.is_empty() {
                "this check says nothing to check".to_string()
            } else {
                format!(
                    "this check has {} kinds ({}); a check has exactly one",
                    present.len(),
                    present.join(", ")
                )
            };
            self.err(
                c.node.loc,
                msg,
                format!(
                    "use one of: {}; split it into several checks",
                    all.join(", ")
                ),
            );
            return None;
        }
        if present[0] != "command"
            && (c.exit.is_some() || c.stdout.is_some() || c.stderr.is_some() || c.json.is_some())
        {
            self.err(
                c.node.loc,
                format!(
                    "`exit`, `stdout`, `stderr` and `json` belong to `command` checks, not `{}`",
                    present[0]
                ),
                "remove them, or write a `command` check",
            );
        }
        let timeout_secs = match &c.timeout {
            Some(tmo) => match values::parse_duration(tmo) {
                Ok(s) => s,
                Err(e) => {
                    self.err(
                        tmo.loc,
                        format!("`{}` is not a duration: {e}", tmo.value),
                        "write e.g. `10s`",
                    );
                    DEFAULT_CHECK_TIMEOUT_SECS
                }
            },
            None => DEFAULT_CHECK_TIMEOUT_SECS,
        };
        let prefix6 = |me: &mut Self, s: &Sp<String>| -> Option<Ipv6Net> {
            if let Ok(n) = s.parse::<Ipv6Net>() {
                return Some(n.trunc());
            }
            let si = me.segment_ref(s)?;
            match segments[si].ipv6 {
                Some(p) => Some(p),
                None => {
                    me.err(
                        s.loc,
                        format!("segment `{}` has no IPv6 prefix", s.value),
                        "check an IPv6 segment",
                    );
                    None
                }
            }
        };
        let (kind, title) = if let Some(cmd) = &c.command {
            let exit = c.exit.unwrap_or(0);
            if let Some(r) = c
                .stdout
                .as_ref()
                .and_then(|m| m.regex.as_ref())
                .or(c.stderr.as_ref().and_then(|m| m.regex.as_ref()))
            {
                let _ = r;
            }
            (
                CheckKind::Command {
                    command: cmd.value.clone(),
                    exit,
                    stdout_contains: c.stdout.as_ref().and_then(|m| m.contains.clone()),
                    stdout_regex: c
                        .stdout
                        .as_ref()
                        .and_then(|m| m.regex.as_ref().map(|r| r.value.clone())),
                    stderr_contains: c.stderr.as_ref().and_then(|m| m.contains.clone()),
                    stderr_regex: c
                        .stderr
                        .as_ref()
                        .and_then(|m| m.regex.as_ref().map(|r| r.value.clone())),
                    json_query: c.json.as_ref().map(|j| j.query.value.clone()),
                    json_equals: c.json.as_ref().and_then(|j| j.equals.clone()),
                    json_contains: c.json.as_ref().and_then(|j| j.contains.clone()),
                },
                format!("`{}` succeeds", cmd.value),
            )
        } else if let Some(s) = &c.slaac {
            let p = prefix6(self, s)?;
            (
                CheckKind::Slaac { prefix: p },
                format!("has a SLAAC address in {p}"),
            )
        } else if let Some(s) = &c.dhcpv6 {
            let p = prefix6(self, s)?;
            (
                CheckKind::Dhcpv6 { prefix: p },
                format!("has a DHCPv6 address in {p}"),
            )
        } else if let Some(r) = &c.default_route {
            let ri = self.node_ref(r)?;
            let me = &nodes[ni?];
            let ll = me.interfaces.iter().find_map(|i| {
                nodes[ri]
                    .interfaces
                    .iter()
                    .find(|o| o.segment == i.segment)
                    .and_then(|o| o.link_local)
            });
            match ll {
                Some(via) => (
                    CheckKind::DefaultRoute {
                        via,
                        router: r.value.clone(),
                    },
                    format!("default route via {} ({via})", r.value),
                ),
                None => {
                    self.err(
                        r.loc,
                        format!("`{}` shares no IPv6 segment with `{}`", r.value, me.name),
                        "name a router on one of this node's segments",
                    );
                    return None;
                }
            }
        } else if let Some(p) = &c.ping {
            let (to, fam, count, size, df) = match p {
                t::PingDef::Target(to) => (to, None, None, None, false),
                t::PingDef::Full(p) => (
                    &p.to,
                    p.family.as_ref().map(|f| f.value),
                    p.count,
                    p.size,
                    p.dont_fragment,
                ),
            };
            let family = fam.unwrap_or(if to.parse::<Ipv4Addr>().is_ok() {
                IpFamily::Ipv4
            } else {
                IpFamily::Ipv6
            });
            let target = self.target_address(to, family, nodes)?;
            (
                CheckKind::Ping {
                    target: target.clone(),
                    family,
                    count: count.unwrap_or(1),
                    size,
                    dont_fragment: df,
                },
                format!(
                    "ping {} reaches {target}",
                    if family == IpFamily::Ipv6 { "-6" } else { "-4" }
                ),
            )
        } else if let Some(d) = &c.dns {
            let rtype = d
                .rtype
                .as_ref()
                .map(|r| r.value.to_ascii_uppercase())
                .unwrap_or_else(|| "AAAA".into());
            if !["A", "AAAA", "PTR"].contains(&rtype.as_str()) {
                let loc = d.rtype.as_ref().map(|r| r.loc).unwrap_or(d.name.loc);
                self.err(
                    loc,
                    format!("`{rtype}` is not a record type checks know"),
                    "use A, AAAA or PTR",
                );
            }
            let server = match &d.server {
                Some(s) => match s.parse::<IpAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        let si = self.node_ref(s)?;
                        nodes[si]
                            .interfaces
                            .iter()
                            .find_map(|i| match i.ipv6 {
                                Assign6::Static { address } => Some(IpAddr::V6(address.addr())),
                                _ => None,
                            })
                            .or(nodes[si].first_v4().map(IpAddr::V4))
                    }
                },
                None => None,
            };
            let within = match &d.within {
                Some(w) if w.value == "nat64" => match nat64 {
                    Some(n) => Some(IpNet::V6(n.prefix)),
                    None => {
                        self.err(
                            w.loc,
                            "this lab has no NAT64",
                            "remove `within: nat64` or add a `nat64:` section",
                        );
                        None
                    }
                },
                Some(w) => match w.parse::<IpNet>() {
                    Ok(n) => Some(n.trunc()),
                    Err(_) => match self.seg_index.get(w.as_str()) {
                        Some(&si) => segments[si]
                            .ipv6
                            .map(IpNet::V6)
                            .or(segments[si].ipv4.map(IpNet::V4)),
                        None => {
                            self.err(
                                w.loc,
                                format!("`{}` is not a prefix, segment or `nat64`", w.value),
                                "write e.g. `2001:db8:64::/96` or `nat64`",
                            );
                            None
                        }
                    },
                },
                None => None,
            };
            (
                CheckKind::Dns {
                    name: d.name.value.clone(),
                    rtype: rtype.clone(),
                    server,
                    within,
                    contains: d.contains.clone(),
                },
                format!("DNS {rtype} of {} answers", d.name.value),
            )
        } else if let Some(h) = &c.http {
            let url = if h.url.contains("://") {
                h.url.value.clone()
            } else {
                let ti = self.node_ref(&h.url)?;
                let fam = h.family.as_ref().map(|f| f.value).unwrap_or(IpFamily::Ipv6);
                let port = self.topo.nodes.0[ti]
                    .1
                    .services
                    .as_ref()
                    .and_then(|s| s.http.as_ref())
                    .and_then(|h| h.port.as_ref())
                    .map(|p| p.value)
                    .unwrap_or(80);
                let a = self.target_address(&h.url, fam, nodes)?;
                match fam {
                    IpFamily::Ipv6 => format!("http://[{a}]:{port}/"),
                    IpFamily::Ipv4 => format!("http://{a}:{port}/"),
                }
            };
            (
                CheckKind::Http {
                    url: url.clone(),
                    family: h.family.as_ref().map(|f| f.value),
                    contains: h.contains.clone(),
                },
                format!("HTTP GET {url} answers"),
            )
        } else if let Some(r) = &c.route {
            let prefix = match r.parse::<IpNet>() {
                Ok(n) => n.trunc(),
                Err(_) => {
                    let si = self.segment_ref(r)?;
                    segments[si]
                        .ipv6
                        .map(IpNet::V6)
                        .or(segments[si].ipv4.map(IpNet::V4))?
                }
            };
            (
                CheckKind::Route { prefix },
                format!("route to {prefix} present"),
            )
        } else if let Some(d) = &c.daemon {
            (
                CheckKind::Daemon {
                    process: d.value.clone(),
                },
                format!("{} is running", d.value),
            )
        } else if let Some(n) = &c.ospf6_neighbor {
            let oi = self.node_ref(n)?;
            let rid = router_id(self.topo, oi);
            match rid {
                Some(router_id) => (
                    CheckKind::Ospf6Neighbor {
                        router_id,
                        neighbor: n.value.clone(),
                    },
                    format!("OSPFv3 neighbour {} is Full", n.value),
                ),
                None => {
                    self.err(
                        n.loc,
                        format!("node `{}` does not run OSPFv3", n.value),
                        "add `ospf6:` to that node",
                    );
                    return None;
                }
            }
        } else if let Some(b) = &c.bgp_session {
            let peer = self.target_address(b, IpFamily::Ipv6, nodes)?;
            let peer: IpAddr = peer.parse().ok()?;
            (
                CheckKind::BgpSession { peer },
                format!("BGP session with {} is Established", b.value),
            )
        } else {
            return None;
        };
        Some(CheckPlan {
            node: c.node.value.clone(),
            title: c.title.clone().unwrap_or(title),
            kind,
            expect_fail: c.expect_fail,
            timeout_secs,
            pass: c.pass.clone(),
            fail: c.fail.clone(),
        })
    }

    /// A node name becomes one of its addresses of the family; addresses and DNS names stay.
    fn target_address(
        &mut self,
        to: &Sp<String>,
        family: IpFamily,
        nodes: &[NodePlan],
    ) -> Option<String> {
        if to.parse::<IpAddr>().is_ok() || to.contains('.') {
            return Some(to.value.clone());
        }
        let ti = self.node_ref(to)?;
        let n = &nodes[ti];
        let a = match family {
            IpFamily::Ipv6 => n.first_v6().map(|a| a.to_string()),
            IpFamily::Ipv4 => n.first_v4().map(|a| a.to_string()),
        };
        if a.is_none() {
            self.err(
                to.loc,
                format!(
                    "node `{}` has no planned {} address",
                    to.value,
                    if family == IpFamily::Ipv6 {
                        "IPv6"
                    } else {
                        "IPv4"
                    }
                ),
                "target a node with a static or SLAAC address, or write an address",
            );
        }
        a
    }
}

fn iface_segment(d: &t::InterfaceDef) -> &Sp<String> {
    match d {
        t::InterfaceDef::Segment(s) => s,
        t::InterfaceDef::Full(i) => &i.segment,
    }
}

/// OSPFv3 router ID of node `i`: explicit, else `0.0.0.(i+1)`.
pub(crate) fn router_id(topo: &Topology, i: usize) -> Option<Ipv4Addr> {
    let o = topo.nodes.0.get(i)?.1.ospf6.as_ref()?;
    match &o.router_id {
        Some(r) => r.parse().ok(),
        None => Some(Ipv4Addr::from(i as u32 + 1)),
    }
}

/// `me`'s neighbour `other`'s static address on a segment they share (of the family).
fn shared_address(me: &NodePlan, other: &NodePlan, v6: bool) -> Option<IpAddr> {
    me.interfaces.iter().find_map(|i| {
        other
            .interfaces
            .iter()
            .filter(|o| o.segment == i.segment)
            .find_map(|o| {
                if v6 {
                    match o.ipv6 {
                        Assign6::Static { address } => Some(IpAddr::V6(address.addr())),
                        _ => None,
                    }
                } else {
                    o.ipv4.address().map(IpAddr::V4)
                }
            })
    })
}

fn fe80() -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)
}

/// EUI-64 interface identifier from a MAC, under a /64.
pub fn eui64(prefix: Ipv6Addr, mac: &str) -> Ipv6Addr {
    let b: Vec<u8> = mac
        .split(':')
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect();
    let b: [u8; 6] = b.try_into().unwrap_or([0; 6]);
    let iid = [b[0] ^ 0x02, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]];
    let mut o = prefix.octets();
    o[8..].copy_from_slice(&iid);
    Ipv6Addr::from(o)
}

fn nth6(p: Ipv6Net, n: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(p.network()) + u128::from(n))
}

fn nth4(p: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(p.network()) + n)
}

/// RFC 6052 embedding of an IPv4 address in a NAT64 prefix.
pub fn embed_v4(prefix: Ipv6Net, v4: Ipv4Addr) -> Ipv6Addr {
    let mut o = prefix.network().octets();
    let v = v4.octets();
    let pos: &[usize] = match prefix.prefix_len() {
        32 => &[4, 5, 6, 7],
        40 => &[5, 6, 7, 9],
        48 => &[6, 7, 9, 10],
        56 => &[7, 9, 10, 11],
        64 => &[9, 10, 11, 12],
        _ => &[12, 13, 14, 15],
    };
    for (i, &p) in pos.iter().enumerate() {
        o[p] = v[i];
    }
    Ipv6Addr::from(o)
}

/// Whether an IPv4 prefix is globally routable (not in an IANA special-purpose range).
fn is_global_v4(n: Ipv4Net) -> bool {
    const SPECIAL: [&str; 10] = [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
    ];
    let extra: Ipv4Net = "203.0.113.0/24".parse().expect("doc");
    !SPECIAL
        .iter()
        .map(|s| s.parse::<Ipv4Net>().expect("special"))
        .chain([extra])
        .any(|s| s.contains(&n) || n.contains(&s))
}
