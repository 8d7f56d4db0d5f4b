//! Segments: families, explicit prefixes, the pools, and overlaps between prefixes.

use super::family::Prefix;
use super::{DEFAULT_IPV4_POOLS, DEFAULT_IPV6_POOL, Planner, SegmentPlan};
use crate::diagnostic::Diagnostic;
use crate::sp::{Loc, Sp};
use crate::topology::{self as t, Family, RaMode};
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
        let pool6 = self.varied_pool6(pool6);
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
            let ra_none = seg.ra.as_ref().is_some_and(|r| r.value == RaMode::None);
            // SLAAC and DHCPv6 need a /64; an IPv4 segment needs room for a few nodes.
            let e6 = self.explicit_prefix(name, fam, seg.ipv6.as_ref(), &mut claims, |text, n| {
                let len = Ipv6Net::prefix_len(&n);
                (len != 64 && !ra_none).then(|| SizeProblem {
                    message: format!("`{text}` is a /{len}; SLAAC and DHCPv6 segments need a /64"),
                    hint: NEED_64,
                    keep: true,
                })
            });
            let e4 = self.explicit_prefix(name, fam, seg.ipv4.as_ref(), &mut claims, |text, n| {
                (Ipv4Net::prefix_len(&n) > 29).then(|| SizeProblem {
                    message: format!("`{text}` is too small for a segment"),
                    hint: "use a /24 or at least a /29",
                    keep: false,
                })
            });
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

    /// A segment's prefix of family `P` as the topology writes it, claimed for the overlap
    /// check. `size` says what is wrong with its length (given as written), if anything.
    fn explicit_prefix<P: Prefix>(
        &mut self,
        name: &Sp<String>,
        family: Family,
        written: Option<&Sp<String>>,
        claims: &mut Vec<Claim>,
        size: impl FnOnce(&str, P) -> Option<SizeProblem>,
    ) -> Option<P> {
        let p = written?;
        if !P::in_family(family) {
            self.err(
                p.loc,
                format!(
                    "segment `{}` is {} but has an {} prefix",
                    name.value,
                    family.as_str(),
                    P::NAME
                ),
                format!("remove `{}:` or make the segment `dual-stack`", P::KEY),
            );
            return None;
        }
        let Ok(n) = p.parse::<P>() else {
            self.err(
                p.loc,
                format!("`{}` is not an {} prefix", p.value, P::NAME),
                format!("write e.g. `{}`", P::EXAMPLE),
            );
            return None;
        };
        if n != n.trunc() {
            self.err(
                p.loc,
                format!("`{}` has host bits set", p.value),
                format!("write the network: `{}`", n.trunc()),
            );
            return None;
        }
        if let Some(problem) = size(&p.value, n) {
            self.err(p.loc, problem.message, problem.hint);
            if !problem.keep {
                return None;
            }
        }
        claims.push(Claim {
            net: n.into(),
            loc: p.loc,
            what: format!("segment `{}`", name.value),
        });
        Some(n)
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

const NEED_64: &str = "use a /64, or set `ra: none` for a segment with static addresses only";

/// What is wrong with the length of a segment's prefix.
struct SizeProblem {
    message: String,
    hint: &'static str,
    /// Whether the segment still uses the prefix (so later checks see it).
    keep: bool,
}

/// Where a prefix came from, for overlap messages.
pub(super) struct Claim {
    net: IpNet,
    loc: Loc,
    what: String,
}
