//! Nodes: interfaces (with their MACs and addresses), sysctls and resource limits.

use super::addresses::{eui64, fe80};
use super::family::Numbering;
use super::names::iface_segment;
use super::{
    Assign4, Assign6, InterfacePlan, LimitsPlan, NodePlan, Planner, SegmentPlan, ServicesPlan,
};
use crate::diagnostic::Diagnostic;
use crate::sp::Loc;
use crate::topology::{self as t, Role};
use crate::values;
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};

impl Planner<'_> {
    pub(super) fn plan_nodes(&mut self, segments: &[SegmentPlan]) -> Vec<NodePlan> {
        let topo = self.topo;
        // First router on each segment serves DHCP; numbering for auto static addresses.
        let mut numbering6: Vec<Numbering<Ipv6Addr>> =
            segments.iter().map(|_| Numbering::new()).collect();
        let mut numbering4: Vec<Numbering<Ipv4Addr>> =
            segments.iter().map(|_| Numbering::new()).collect();
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
                        numbering6[s].take(a);
                    }
                    if let Some(a) = i
                        .ipv4
                        .as_ref()
                        .and_then(|a| a.split('/').next()?.parse().ok())
                    {
                        numbering4[s].take(a);
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
                // A switch's ports carry frames, not addresses.
                let switch = role == Role::Switch;
                let link_local = (seg.family.has_v6() && !switch).then(|| eui64(fe80(), &mac));
                let (ipv6, ipv4) = if switch {
                    if let Some(w) = want6.or(want4) {
                        self.err(
                            w.loc,
                            format!(
                                "`{}` is a switch: its interfaces have no addresses",
                                name.value
                            ),
                            "write the port as `ethN: SEGMENT`, or make the node a router or host",
                        );
                    }
                    (Assign6::None, Assign4::None)
                } else {
                    (
                        self.assign6(role, seg, want6, has_router[si], &mac, &mut numbering6[si]),
                        self.assign4(seg, want4, &mut numbering4[si]),
                    )
                };
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
            if role == Role::Switch {
                let layer3 = [
                    ("routes", !node.routes.is_empty()),
                    ("services", node.services.is_some()),
                    ("ospf6", node.ospf6.is_some()),
                    ("bgp", node.bgp.is_some()),
                    ("clat", node.clat.is_some()),
                ];
                for (key, _) in layer3.iter().filter(|(_, set)| *set) {
                    self.err(
                        node.role.loc,
                        format!("`{}` is a switch and cannot have `{key}`", name.value),
                        "a switch only bridges its ports; put the service on a router or host",
                    );
                }
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
            // A switch has no IPv6 of its own: its bridge (created later) takes no address from
            // the RAs it forwards.
            if role == Role::Switch {
                sysctls.insert("net.ipv6.conf.default.disable_ipv6".into(), "1".into());
                sysctls.insert("net.ipv6.conf.default.accept_ra".into(), "0".into());
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
                services: ServicesPlan::default(),
            });
        }
        out
    }

    pub(super) fn limits(&mut self, l: Option<&t::Limits>) -> LimitsPlan {
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
}
