//! NAT64 and DNS64: the translator, the resolver, the prefix (RFC 6052) and the pool.

use super::{Assign6, DEFAULT_IPV6_POOL, Nat64Plan, NodePlan, Planner, SegmentPlan};
use crate::topology::Family;
use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

impl Planner<'_> {
    pub(super) fn plan_nat64(
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
                let pool = self.varied_pool6(pool);
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
            pref64: n.pref64,
        })
    }
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
pub(super) fn is_global_v4(n: Ipv4Net) -> bool {
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
