//! Routing protocols: OSPFv3 (area, router ID, the interfaces taking part and how each link runs).

use super::{Assign6, NodePlan, Ospf6InterfacePlan, Ospf6LinkKind, Ospf6Plan, Planner};
use crate::topology::Topology;
use std::net::Ipv4Addr;

impl Planner<'_> {
    /// Plans OSPFv3 on every node that runs it, reporting bad areas, router IDs and interfaces.
    pub(super) fn plan_routing(&mut self, nodes: &mut [NodePlan]) {
        let topo = self.topo;
        for ni in 0..nodes.len() {
            let Some(o) = topo.nodes.0[ni].1.ospf6.as_ref() else {
                continue;
            };
            let name = nodes[ni].name.clone();
            let area = o
                .area
                .as_ref()
                .map(|a| a.value.clone())
                .unwrap_or_else(|| "0.0.0.0".into());
            if area.parse::<Ipv4Addr>().is_err() && area.parse::<u32>().is_err() {
                let loc = o.area.as_ref().map(|a| a.loc).unwrap_or_default();
                self.err(
                    loc,
                    format!("`{area}` is not an OSPF area"),
                    "write e.g. `0.0.0.0` or `0`",
                );
            }
            let ifaces = &nodes[ni].interfaces;
            let list: Vec<String> = match &o.interfaces {
                Some(l) => l
                    .iter()
                    .filter_map(|i| {
                        if ifaces
                            .iter()
                            .any(|x| x.name == i.value && !matches!(x.ipv6, Assign6::Disabled))
                        {
                            Some(i.value.clone())
                        } else {
                            self.err(
                                i.loc,
                                format!("`{name}` has no IPv6 interface `{}`", i.value),
                                format!(
                                    "interfaces of `{name}`: {}",
                                    ifaces
                                        .iter()
                                        .map(|x| x.name.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            );
                            None
                        }
                    })
                    .collect(),
                None => ifaces
                    .iter()
                    .filter(|i| !matches!(i.ipv6, Assign6::Disabled))
                    .map(|i| i.name.clone())
                    .collect(),
            };
            let ospf_routers_on = |seg: &str| {
                topo.nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, d))| d.ospf6.is_some())
                    .filter(|(oi, _)| nodes[*oi].interfaces.iter().any(|x| x.segment == seg))
                    .count()
            };
            let interfaces = list
                .into_iter()
                .filter_map(|name| {
                    let seg = &ifaces.iter().find(|x| x.name == name)?.segment;
                    let kind = match ospf_routers_on(seg) {
                        0 | 1 => Ospf6LinkKind::Passive,
                        2 => Ospf6LinkKind::P2p,
                        _ => Ospf6LinkKind::Broadcast,
                    };
                    Some(Ospf6InterfacePlan { name, kind })
                })
                .collect();
            let rid = router_id(topo, ni);
            if rid.is_none() {
                let loc = o.router_id.as_ref().map(|r| r.loc).unwrap_or_default();
                self.err(
                    loc,
                    "the router ID must look like an IPv4 address",
                    "write e.g. `0.0.0.1`",
                );
            }
            nodes[ni].services.ospf6 = Some(Ospf6Plan {
                area,
                router_id: rid.unwrap_or(Ipv4Addr::UNSPECIFIED),
                interfaces,
            });
        }
    }
}

/// OSPFv3 router ID of node `i`: explicit, else `0.0.0.(i+1)`.
pub(super) fn router_id(topo: &Topology, i: usize) -> Option<Ipv4Addr> {
    let o = topo.nodes.0.get(i)?.1.ospf6.as_ref()?;
    match &o.router_id {
        Some(r) => r.parse().ok(),
        None => Some(Ipv4Addr::from(i as u32 + 1)),
    }
}
