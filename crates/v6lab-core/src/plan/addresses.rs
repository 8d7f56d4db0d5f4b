//! Addresses: how each interface gets its IPv6 and IPv4 address, and duplicates between them.

use super::{Assign4, Assign6, NodePlan, Planner, SegmentPlan};
use crate::diagnostic::Diagnostic;
use crate::sp::{Loc, Sp};
use crate::topology::{self as t, RaMode, Role};
use ipnet::{Ipv4Net, Ipv6Net};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

impl Planner<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn assign6(
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

    pub(super) fn assign4(
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

pub(super) fn nth6(p: Ipv6Net, n: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(p.network()) + u128::from(n))
}

pub(super) fn nth4(p: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(p.network()) + n)
}
