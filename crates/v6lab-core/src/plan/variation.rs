//! `vary: prefix` in the planner: a student's segments come from the student's block of the
//! pool ([`crate::vary`]), and what would stay the same in every student's lab is refused.

use super::{DEFAULT_IPV6_POOL, Planner};
use crate::topology::SegmentDef;
use crate::vary::{self, MAX_POOL_LEN, Variation};
use ipnet::Ipv6Net;

impl Planner<'_> {
    /// Plans the lab of the student numbered `v` (`None`: the lab as written). Only a topology
    /// with `vary:` varies.
    pub(crate) fn with_variation(mut self, v: Option<Variation>) -> Self {
        self.variation = v.filter(|_| self.topo.vary.is_some());
        self
    }

    /// The pool segments and the NAT64 prefix are allocated from: the student's block of it.
    pub(super) fn varied_pool6(&self, pool: Ipv6Net) -> Ipv6Net {
        match self.variation {
            Some(v) if pool.prefix_len() <= MAX_POOL_LEN => vary::varied_pool(pool.trunc(), v),
            _ => pool,
        }
    }

    /// With `vary: prefix`: the pool leaves a block to each student, and no segment prefix
    /// written in the topology is the same in every student's lab.
    /// Checked on the lab as written (a student's lab is written from it).
    pub(super) fn check_vary(&mut self) {
        let topo = self.topo;
        let Some(vary) = &topo.vary else { return };
        if self.variation.is_some() {
            return;
        }
        let written = topo.pools.as_ref().and_then(|p| p.ipv6.as_ref());
        let pool: Ipv6Net = match written {
            Some(s) => match s.parse::<Ipv6Net>() {
                Ok(p) => p.trunc(),
                Err(_) => return, // reported with the pools
            },
            None => DEFAULT_IPV6_POOL.parse().expect("default pool"),
        };
        if pool.prefix_len() > MAX_POOL_LEN {
            let loc = written.map(|s| s.loc).unwrap_or(vary.loc);
            self.err(
                loc,
                format!(
                    "`vary: prefix` needs an IPv6 pool of /{MAX_POOL_LEN} or shorter; {pool} is a /{}",
                    pool.prefix_len()
                ),
                "each student gets a /40 of a /32 pool: use e.g. `pools: {ipv6: 3fff:100::/32}`, or remove `vary:`",
            );
            return;
        }
        let block = Ipv6Net::new(pool.network(), pool.prefix_len() + 8).expect("at most /40");
        let example = |len: u8| {
            let base = u128::from(block.network()) | (0xcau128 << 80);
            Ipv6Net::new(std::net::Ipv6Addr::from(base), len).expect("a length of the pool")
        };
        for (name, def) in topo.segments.iter() {
            let SegmentDef::Full(seg) = def else { continue };
            let Some(p) = &seg.ipv6 else { continue };
            let Ok(net) = p.parse::<Ipv6Net>() else {
                continue; // reported with the segments
            };
            if !block.contains(&net) {
                self.err(
                    p.loc,
                    format!(
                        "segment `{}` has the prefix {net} in every student's lab: with `vary: prefix`, only prefixes inside {block} (the lab as written) move to each student's block",
                        name.value
                    ),
                    format!(
                        "write a prefix inside {block}, e.g. `{}`, or remove `ipv6:` to take one from the pool",
                        example(64)
                    ),
                );
            }
        }
        // A NAT64 prefix elsewhere in the pool would fall into some student's block.
        if let Some(p) = topo.nat64.as_ref().and_then(|n| n.prefix.as_ref())
            && let Ok(net) = p.parse::<Ipv6Net>()
            && pool.contains(&net)
            && !block.contains(&net)
        {
            self.err(
                p.loc,
                format!(
                    "the NAT64 prefix {net} lies in another student's block of the pool: with `vary: prefix`, a prefix of the pool must be inside {block} (the lab as written)"
                ),
                format!(
                    "write a prefix inside {block}, e.g. `{}`, one outside the pool, or remove `prefix:`",
                    example(96)
                ),
            );
        }
    }
}
