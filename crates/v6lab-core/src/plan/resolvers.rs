//! Resolvers: each node's /etc/resolv.conf and the DNS servers each segment advertises.

use super::{Assign6, Nat64Plan, NodePlan, Planner, SegmentPlan};
use crate::topology::{self as t};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

impl Planner<'_> {
    pub(super) fn plan_resolvers(
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
            let has_v6 = node.has_ipv6();
            let has_v4 = node.has_ipv4();
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
            let has_v6 = node.has_ipv6();
            let has_v4 = node.has_ipv4();
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
}
