//! The two address families behind one trait, so that what both do alike (reading a prefix or
//! an address the topology writes, numbering addresses in a prefix) is written once.

use super::SegmentPlan;
use crate::topology::Family;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::fmt::Display;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A prefix type of one address family (`Ipv6Net`, `Ipv4Net`) and what the planner needs to
/// know of its family.
pub(super) trait Prefix: Copy + PartialEq + Display + FromStr + Into<IpNet> {
    type Addr: Copy + PartialEq + Display + FromStr;
    /// `IPv6`, `IPv4`: in messages.
    const NAME: &'static str;
    /// `ipv6`, `ipv4`: the key of this family in a topology.
    const KEY: &'static str;
    /// The other family's `NAME` and `KEY`.
    const OTHER_NAME: &'static str;
    const OTHER_KEY: &'static str;
    /// Longest prefix length.
    const MAX_LEN: u8;
    /// A segment prefix, for hints.
    const EXAMPLE: &'static str;
    /// The ways an interface can get an address of this family besides `auto`, `none` and an
    /// address written out.
    const MODES: &'static [&'static str];
    /// The hint for a word that is neither a mode nor an address.
    const MODES_HINT: &'static str;

    fn with_len(a: Self::Addr, len: u8) -> Self;
    fn len(&self) -> u8;
    fn trunc(&self) -> Self;
    fn contains_addr(&self, a: &Self::Addr) -> bool;
    /// The address `n` after the network address.
    fn nth(&self, n: u32) -> Self::Addr;
    /// Whether a segment of `family` has addresses of this family.
    fn in_family(family: Family) -> bool;
    /// Whether `text` is written in the other family.
    fn looks_like_other(text: &str) -> bool;
    /// The segment's prefix of this family.
    fn of(seg: &SegmentPlan) -> Option<Self>;
}

impl Prefix for Ipv6Net {
    type Addr = Ipv6Addr;
    const NAME: &'static str = "IPv6";
    const KEY: &'static str = "ipv6";
    const OTHER_NAME: &'static str = "IPv4";
    const OTHER_KEY: &'static str = "ipv4";
    const MAX_LEN: u8 = 128;
    const EXAMPLE: &'static str = "2001:db8:1::/64";
    const MODES: &'static [&'static str] = &["slaac", "dhcpv6"];
    const MODES_HINT: &'static str =
        "use `auto`, `slaac`, `dhcpv6`, `none`, or an address such as `2001:db8:1::10`";

    fn with_len(a: Ipv6Addr, len: u8) -> Self {
        Ipv6Net::new(a, len).expect("length checked")
    }
    fn len(&self) -> u8 {
        self.prefix_len()
    }
    fn trunc(&self) -> Self {
        Ipv6Net::trunc(self)
    }
    fn contains_addr(&self, a: &Ipv6Addr) -> bool {
        self.contains(a)
    }
    fn nth(&self, n: u32) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network()) + u128::from(n))
    }
    fn in_family(family: Family) -> bool {
        family.has_v6()
    }
    fn looks_like_other(text: &str) -> bool {
        text.contains('.')
    }
    fn of(seg: &SegmentPlan) -> Option<Self> {
        seg.ipv6
    }
}

impl Prefix for Ipv4Net {
    type Addr = Ipv4Addr;
    const NAME: &'static str = "IPv4";
    const KEY: &'static str = "ipv4";
    const OTHER_NAME: &'static str = "IPv6";
    const OTHER_KEY: &'static str = "ipv6";
    const MAX_LEN: u8 = 32;
    const EXAMPLE: &'static str = "198.51.100.0/24";
    const MODES: &'static [&'static str] = &["dhcp"];
    const MODES_HINT: &'static str =
        "use `auto`, `dhcp`, `none`, or an address such as `192.0.2.10/24`";

    fn with_len(a: Ipv4Addr, len: u8) -> Self {
        Ipv4Net::new(a, len).expect("length checked")
    }
    fn len(&self) -> u8 {
        self.prefix_len()
    }
    fn trunc(&self) -> Self {
        Ipv4Net::trunc(self)
    }
    fn contains_addr(&self, a: &Ipv4Addr) -> bool {
        self.contains(a)
    }
    fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + n)
    }
    fn in_family(family: Family) -> bool {
        family.has_v4()
    }
    fn looks_like_other(text: &str) -> bool {
        text.contains(':')
    }
    fn of(seg: &SegmentPlan) -> Option<Self> {
        seg.ipv4
    }
}

/// Automatic static addresses of one family on one segment: numbered from 1, skipping the
/// addresses the topology writes out.
pub(super) struct Numbering<A> {
    next: u32,
    taken: Vec<A>,
}

impl<A: Copy + PartialEq> Numbering<A> {
    pub(super) fn new() -> Self {
        Numbering {
            next: 1,
            taken: Vec::new(),
        }
    }

    /// An address the topology writes out: never given automatically.
    pub(super) fn take(&mut self, a: A) {
        self.taken.push(a);
    }

    /// The next free address in `prefix`, with the prefix's length.
    pub(super) fn next_in<P: Prefix<Addr = A>>(&mut self, prefix: P) -> P {
        loop {
            let a = prefix.nth(self.next);
            self.next += 1;
            if !self.taken.contains(&a) {
                return P::with_len(a, prefix.len());
            }
        }
    }
}
