//! Routes: the trainer's static routes, default routes, and routes to the NAT64 prefix.

use super::{Assign4, Assign6, Nat64Plan, NodePlan, Planner, RoutePlan, SegmentPlan};
use crate::structure::did_you_mean;
use crate::topology::{RaMode, Role};
use ipnet::IpNet;
use std::net::IpAddr;

impl Planner<'_> {
    pub(super) fn plan_routes(
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
}

/// `me`'s neighbour `other`'s static address on a segment they share (of the family).
pub(super) fn shared_address(me: &NodePlan, other: &NodePlan, v6: bool) -> Option<IpAddr> {
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
