//! Segments: families, explicit prefixes, the pools, and overlaps between prefixes.

use super::{DEFAULT_IPV4_POOLS, DEFAULT_IPV6_POOL, Planner, SegmentPlan};
use crate::diagnostic::Diagnostic;
use crate::sp::{Loc, Sp};
use crate::topology::{self as t, RaMode};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

impl Planner<'_> {
    pub(super) fn plan_segments(&mut self) -> Vec<SegmentPlan> {
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

    pub(super) fn parse_v6_pool(&mut self, s: &Sp<String>) -> Option<Ipv6Net> {
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

    pub(super) fn check_overlaps(&mut self, claims: &[Claim]) {
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
}

/// Where a prefix came from, for overlap messages.
pub(super) struct Claim {
    net: IpNet,
    loc: Loc,
    what: String,
}
