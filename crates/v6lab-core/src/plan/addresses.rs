//! Addresses: how each interface gets its IPv6 and IPv4 address, and duplicates between them.

use super::family::{Numbering, Prefix};
use super::{Assign4, Assign6, NodePlan, Planner, SegmentPlan};
use crate::diagnostic::Diagnostic;
use crate::sp::{Loc, Sp};
use crate::topology::{self as t, RaMode, Role};
use ipnet::{Ipv4Net, Ipv6Net};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How the topology asks an interface to get an address of one family, once read.
pub(super) enum Wanted<'w, P> {
    /// The segment has no prefix of this family.
    Disabled,
    /// `none`, or a request reported as an error.
    None,
    /// `auto` (or nothing written), in the segment's prefix.
    Auto(P),
    /// One of the family's own modes (`slaac`, `dhcpv6`, `dhcp`), in the segment's prefix.
    Mode(&'w Sp<String>, P),
    /// An address written out, with its prefix length.
    Static(P),
}

impl Planner<'_> {
    /// Reads what an interface asks of family `P` on `seg`, reporting what cannot be.
    fn wanted<'w, P: Prefix>(
        &mut self,
        seg: &SegmentPlan,
        want: Option<&'w Sp<String>>,
    ) -> Wanted<'w, P> {
        let Some(prefix) = P::of(seg) else {
            if let Some(w) = want
                && w.value != "none"
            {
                self.err(
                    w.loc,
                    format!(
                        "segment `{}` is {}; it has no {}",
                        seg.name,
                        seg.family.as_str(),
                        P::NAME
                    ),
                    format!(
                        "remove `{}:` here, or make the segment `dual-stack`",
                        P::KEY
                    ),
                );
            }
            return Wanted::Disabled;
        };
        let Some(w) = want else {
            return Wanted::Auto(prefix);
        };
        let text = w.as_str();
        match text {
            "none" => return Wanted::None,
            "auto" => return Wanted::Auto(prefix),
            m if P::MODES.contains(&m) => return Wanted::Mode(w, prefix),
            _ => {}
        }
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().ok()),
            None => (text, Some(prefix.len())),
        };
        match (addr.parse::<P::Addr>(), len) {
            (Ok(a), Some(l)) if l <= P::MAX_LEN => {
                if !prefix.contains_addr(&a) {
                    self.err(
                        w.loc,
                        format!("{a} is outside segment `{}`'s prefix {prefix}", seg.name),
                        format!("use an address inside {prefix}"),
                    );
                }
                Wanted::Static(P::with_len(a, l))
            }
            _ => {
                if P::looks_like_other(text) {
                    self.err(
                        w.loc,
                        format!(
                            "`{text}` is an {} address given as `{}:`",
                            P::OTHER_NAME,
                            P::KEY
                        ),
                        format!("write it under `{}:`", P::OTHER_KEY),
                    );
                } else {
                    self.err(
                        w.loc,
                        format!("`{text}` is not an {} address mode", P::NAME),
                        P::MODES_HINT,
                    );
                }
                Wanted::None
            }
        }
    }

    /// An interface's IPv6 address: hosts on a segment with a router take it from RAs (SLAAC
    /// or DHCPv6, as the segment's `ra:` says), other nodes get static addresses.
    pub(super) fn assign6(
        &mut self,
        role: Role,
        seg: &SegmentPlan,
        want: Option<&Sp<String>>,
        seg_has_router: bool,
        mac: &str,
        numbering: &mut Numbering<Ipv6Addr>,
    ) -> Assign6 {
        match self.wanted::<Ipv6Net>(seg, want) {
            Wanted::Disabled => Assign6::Disabled,
            Wanted::None => Assign6::None,
            Wanted::Static(address) => Assign6::Static { address },
            Wanted::Mode(w, _) if !seg_has_router || seg.ra == RaMode::None => {
                self.err(
                    w.loc,
                    format!(
                        "`{}` needs a router sending Router Advertisements on segment `{}`",
                        w.value, seg.name
                    ),
                    "add a router to the segment, set its `ra:`, or give a static address",
                );
                Assign6::None
            }
            Wanted::Mode(w, prefix) if w.value == "slaac" => Assign6::Slaac {
                prefix,
                expected: eui64(prefix.network(), mac),
            },
            Wanted::Mode(_, prefix) => Assign6::Dhcpv6 { prefix },
            Wanted::Auto(prefix) => {
                let dynamic = role == Role::Host && seg_has_router;
                match (dynamic, seg.ra) {
                    (true, RaMode::Slaac | RaMode::Dhcpv6Stateless) => Assign6::Slaac {
                        prefix,
                        expected: eui64(prefix.network(), mac),
                    },
                    (true, RaMode::Dhcpv6Stateful) => Assign6::Dhcpv6 { prefix },
                    _ => Assign6::Static {
                        address: numbering.next_in(prefix),
                    },
                }
            }
        }
    }

    /// An interface's IPv4 address: static unless the topology asks for DHCP.
    pub(super) fn assign4(
        &mut self,
        seg: &SegmentPlan,
        want: Option<&Sp<String>>,
        numbering: &mut Numbering<Ipv4Addr>,
    ) -> Assign4 {
        match self.wanted::<Ipv4Net>(seg, want) {
            Wanted::Disabled => Assign4::Disabled,
            Wanted::None => Assign4::None,
            Wanted::Static(address) => Assign4::Static { address },
            Wanted::Mode(_, prefix) => Assign4::Dhcp { prefix },
            Wanted::Auto(prefix) => Assign4::Static {
                address: numbering.next_in(prefix),
            },
        }
    }

    pub(super) fn check_duplicate_addresses(&mut self, nodes: &[NodePlan]) {
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
    pub(super) fn iface_loc(&self, node: usize, ifname: &str) -> Loc {
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
}

pub(super) fn fe80() -> Ipv6Addr {
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
