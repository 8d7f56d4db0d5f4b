//! BGP: the AS, router ID, sessions (one per peer and family, eBGP or iBGP), announced
//! networks and prefix lists of every router that runs it.

use super::{
    BgpNeighborPlan, BgpPlan, NodePlan, Planner, PrefixListEntryPlan, PrefixListPlan, SegmentPlan,
};
use crate::sp::Sp;
use crate::structure::did_you_mean;
use crate::topology::{IpFamily, PrefixAction};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};

impl Planner<'_> {
    /// Plans BGP on every node that runs it, reporting bad AS numbers, peers, networks and
    /// prefix lists.
    pub(super) fn plan_bgp(&mut self, nodes: &mut [NodePlan], segments: &[SegmentPlan]) {
        let topo = self.topo;
        for ni in 0..nodes.len() {
            let Some(b) = topo.nodes.0[ni].1.bgp.as_ref() else {
                continue;
            };
            if b.asn.value == 0 {
                self.err(
                    b.asn.loc,
                    "AS 0 is reserved",
                    "use a private AS such as 65001",
                );
            }
            let router_id = match &b.router_id {
                Some(r) => r.parse::<Ipv4Addr>().unwrap_or_else(|_| {
                    self.err(
                        r.loc,
                        "the router ID must look like an IPv4 address",
                        "write e.g. `0.0.0.1`",
                    );
                    Ipv4Addr::UNSPECIFIED
                }),
                None => {
                    super::routing::router_id(topo, ni).unwrap_or(Ipv4Addr::from(ni as u32 + 1))
                }
            };
            let mut networks6 = Vec::new();
            let mut networks4 = Vec::new();
            for n in &b.networks {
                match self.prefixes_of(n, segments) {
                    Some(ps) => {
                        for p in ps {
                            match p {
                                IpNet::V6(p) => networks6.push(p),
                                IpNet::V4(p) => networks4.push(p),
                            }
                        }
                    }
                    None => continue,
                }
            }
            let mut prefix_lists = Vec::new();
            for (name, entries) in b.prefix_lists.iter() {
                if let Some(problem) = crate::values::dns_label_problem(name, 40) {
                    self.err(
                        name.loc,
                        format!("prefix list name `{}` is not valid: {problem}", name.value),
                        "use letters, digits and `-`, e.g. `lan-only`",
                    );
                }
                let mut out = Vec::new();
                for (k, e) in entries.iter().enumerate() {
                    let prefix = match e.prefix.parse::<IpNet>() {
                        Ok(p) => p.trunc(),
                        Err(_) => match self.segment_ref(&e.prefix) {
                            Some(si) => match segments[si].ipv6.map(IpNet::V6) {
                                Some(p) => p,
                                None => continue,
                            },
                            None => continue,
                        },
                    };
                    let max = if prefix.addr().is_ipv6() { 128 } else { 32 };
                    if let Some(le) = &e.le
                        && (le.value < prefix.prefix_len() || le.value > max)
                    {
                        self.err(
                            le.loc,
                            format!("`le {}` does not fit {prefix}", le.value),
                            format!("write a length from {} to {max}", prefix.prefix_len()),
                        );
                    }
                    out.push(PrefixListEntryPlan {
                        seq: (k as u32 + 1) * 5,
                        action: match e.action.value {
                            PrefixAction::Permit => "permit".into(),
                            PrefixAction::Deny => "deny".into(),
                        },
                        prefix,
                        le: e.le.as_ref().map(|l| l.value),
                    });
                }
                prefix_lists.push(PrefixListPlan {
                    name: name.value.clone(),
                    entries: out,
                });
            }
            let mut neighbors = Vec::new();
            for n in &b.neighbors {
                for list in [&n.prefix_list_in, &n.prefix_list_out]
                    .into_iter()
                    .flatten()
                {
                    if b.prefix_lists.get(list).is_none() {
                        let known: Vec<&str> =
                            b.prefix_lists.iter().map(|(k, _)| k.as_str()).collect();
                        let hint = match did_you_mean(list, &known) {
                            Some(k) => format!("did you mean `{k}`?"),
                            None => "declare it under `prefix-lists:` of this `bgp:` block".into(),
                        };
                        self.err(
                            list.loc,
                            format!("there is no prefix list `{}`", list.value),
                            hint,
                        );
                    }
                }
                let (addresses, peer_asn) = if let Ok(a) = n.peer.parse::<IpAddr>() {
                    (vec![a], None)
                } else {
                    let Some(pi) = self.node_ref(&n.peer) else {
                        continue;
                    };
                    let asn = topo.nodes.0[pi].1.bgp.as_ref().map(|b| b.asn.value);
                    let addrs: Vec<IpAddr> = [IpFamily::Ipv6, IpFamily::Ipv4]
                        .into_iter()
                        .filter_map(|f| shared_address(&nodes[ni], &nodes[pi], f))
                        .collect();
                    if addrs.is_empty() {
                        self.err(
                            n.peer.loc,
                            format!(
                                "`{}` has no planned address on a segment shared with `{}`",
                                n.peer.value, nodes[ni].name
                            ),
                            "peer with a node on one of this node's segments (static or SLAAC address), or write an address",
                        );
                    }
                    (addrs, asn)
                };
                let asn = match n.asn.as_ref().map(|a| a.value).or(peer_asn) {
                    Some(a) => a,
                    None => {
                        self.err(
                            n.peer.loc,
                            format!("the AS of `{}` is not known", n.peer.value),
                            "add `asn:` to this neighbour",
                        );
                        continue;
                    }
                };
                for address in addresses {
                    neighbors.push(BgpNeighborPlan {
                        name: n.peer.value.clone(),
                        address,
                        asn,
                        ibgp: asn == b.asn.value,
                        prefix_list_in: n.prefix_list_in.as_ref().map(|l| l.value.clone()),
                        prefix_list_out: n.prefix_list_out.as_ref().map(|l| l.value.clone()),
                    });
                }
            }
            nodes[ni].services.bgp = Some(BgpPlan {
                asn: b.asn.value,
                router_id,
                networks6,
                networks4,
                neighbors,
                prefix_lists,
            });
        }
    }

    /// A segment's prefixes (both families), or one written prefix.
    pub(super) fn prefixes_of(
        &mut self,
        n: &Sp<String>,
        segments: &[SegmentPlan],
    ) -> Option<Vec<IpNet>> {
        if let Ok(p) = n.parse::<IpNet>() {
            return Some(vec![p.trunc()]);
        }
        if n.contains('/') {
            self.err(
                n.loc,
                format!("`{}` is not a prefix", n.value),
                "write e.g. `2001:db8:2::/48` or a segment name",
            );
            return None;
        }
        let si = self.segment_ref(n)?;
        let s = &segments[si];
        Some(
            s.ipv6
                .map(IpNet::V6)
                .into_iter()
                .chain(s.ipv4.map(IpNet::V4))
                .collect(),
        )
    }

    /// Where a check's BGP peer is: an address as written, or the peer node's address of the
    /// family on a segment it shares with the checking node (else its first address).
    pub(super) fn bgp_peer(
        &mut self,
        me: Option<usize>,
        peer: &Sp<String>,
        family: IpFamily,
        nodes: &[NodePlan],
    ) -> Option<IpAddr> {
        if let Ok(a) = peer.parse::<IpAddr>() {
            return Some(a);
        }
        let pi = self.node_ref(peer)?;
        if let Some(a) = me.and_then(|mi| shared_address(&nodes[mi], &nodes[pi], family)) {
            return Some(a);
        }
        self.target_address(peer, family, nodes)?.parse().ok()
    }
}

/// `peer`'s planned address of `family` on the first segment it shares with `me`.
fn shared_address(me: &NodePlan, peer: &NodePlan, family: IpFamily) -> Option<IpAddr> {
    shared_link(me, peer, family).map(|(_, a)| a)
}

/// `me`'s interface on the first segment it shares with `peer` where `peer` has a planned
/// address of `family`, and that address.
pub(super) fn shared_link<'n>(
    me: &'n NodePlan,
    peer: &NodePlan,
    family: IpFamily,
) -> Option<(&'n str, IpAddr)> {
    me.interfaces.iter().find_map(|i| {
        peer.interfaces
            .iter()
            .filter(|o| o.segment == i.segment)
            .find_map(|o| match family {
                IpFamily::Ipv6 => o.ipv6.address().map(IpAddr::V6),
                IpFamily::Ipv4 => o.ipv4.address().map(IpAddr::V4),
            })
            .map(|a| (i.name.as_str(), a))
    })
}

#[cfg(test)]
mod tests {
    use crate::plan::{BgpPlan, CheckKind};

    fn plan(yaml: &str) -> crate::plan::Plan {
        match crate::plan_source("t.yaml", yaml.as_bytes()) {
            Ok((_, p)) => p,
            Err((s, d)) => panic!("{}", d.render(&s.text)),
        }
    }

    fn errors(yaml: &str) -> String {
        match crate::plan_source("t.yaml", yaml.as_bytes()) {
            Ok(_) => panic!("valid"),
            Err((s, d)) => d.render(&s.text),
        }
    }

    const TWO_AS: &str = r#"
name: t
segments:
  lan1: ipv6-only
  link: {family: dual-stack, ra: none}
nodes:
  r1:
    role: router
    interfaces: {eth1: lan1, eth2: link}
    bgp:
      asn: 65001
      networks: [lan1]
      neighbors: [{peer: r2, prefix-list-out: mine}]
      prefix-lists:
        mine: [{action: permit, prefix: lan1}]
  r2:
    role: router
    interfaces: {eth1: link}
    bgp: {asn: 65002, neighbors: [{peer: r1}]}
exercises:
  - id: e
    title: t
    passes-initially: true
    checks:
      - {node: r2, bgp-received: {peer: r1, prefix: lan1}}
      - {node: r2, bgp-session: r1}
"#;

    #[test]
    fn a_dual_stack_peer_gives_a_session_per_family() {
        let p = plan(TWO_AS);
        let b: &BgpPlan = p.node("r1").unwrap().services.bgp.as_ref().unwrap();
        assert_eq!(b.asn, 65001);
        assert_eq!(b.neighbors.len(), 2);
        assert!(b.neighbors[0].address.is_ipv6() && b.neighbors[1].address.is_ipv4());
        assert!(b.neighbors.iter().all(|n| n.asn == 65002 && !n.ibgp));
        assert_eq!(b.networks6, [p.segment("lan1").unwrap().ipv6.unwrap()]);
        assert_eq!(
            b.prefix_lists[0].entries[0].prefix.to_string(),
            "2001:db8:1::/64"
        );
        let conf = &p
            .node("r1")
            .unwrap()
            .file("/etc/frr/frr.conf")
            .unwrap()
            .content;
        assert!(conf.contains("router bgp 65001"), "{conf}");
        assert!(
            conf.contains("ipv6 prefix-list mine seq 5 permit 2001:db8:1::/64"),
            "{conf}"
        );
        assert!(conf.contains("prefix-list mine out"), "{conf}");
        // The check's peer is r1's address on the segment r2 shares with it.
        let r1_link = p.node("r1").unwrap().interfaces[1].ipv6.address().unwrap();
        match &p.exercises[0].checks[0].kind {
            CheckKind::BgpReceived { peer, prefix } => {
                assert_eq!(*peer, std::net::IpAddr::V6(r1_link));
                assert_eq!(prefix.to_string(), "2001:db8:1::/64");
            }
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn neighbour_discovery_goes_out_of_the_interface_toward_the_target() {
        let flows = TWO_AS.replace(
            "      - {node: r2, bgp-session: r1}",
            "      - {node: r2, bgp-session: r1}\n      - {node: r2, flow: {to: r1, protocol: nd, expect: allowed}}\n      - {node: r1, flow: {to: \"2001:db8:1::99\", protocol: nd, expect: allowed}}",
        );
        let p = plan(&flows);
        let ifaces: Vec<(String, Option<String>)> = p.exercises[0].checks[2..]
            .iter()
            .map(|c| match &c.kind {
                CheckKind::Flow { target, iface, .. } => (target.to_string(), iface.clone()),
                k => panic!("{k:?}"),
            })
            .collect();
        assert_eq!(
            ifaces,
            [
                ("2001:db8:2::1".to_string(), Some("eth1".to_string())),
                ("2001:db8:1::99".to_string(), Some("eth1".to_string())),
            ]
        );
    }

    #[test]
    fn ospf6_and_bgp_share_one_frr() {
        let both = TWO_AS.replace(
            "    bgp:\n      asn: 65001",
            "    ospf6: {}\n    bgp:\n      asn: 65001",
        );
        let p = plan(&both);
        let r1 = p.node("r1").unwrap();
        let frr: Vec<&str> = r1
            .parts
            .iter()
            .map(|x| x.id.as_str())
            .filter(|id| ["frr", "ospf6", "bgp"].contains(id))
            .collect();
        assert_eq!(frr, ["frr"]);
        let daemons = &r1.file("/etc/frr/daemons").unwrap().content;
        assert!(daemons.contains("ospf6d=yes") && daemons.contains("bgpd=yes"));
        let conf = &r1.file("/etc/frr/frr.conf").unwrap().content;
        assert!(conf.contains("router ospf6") && conf.contains("router bgp 65001"));
        let r2 = p.node("r2").unwrap();
        assert!(r2.parts.iter().any(|x| x.id == "bgp"));
        let daemons = &r2.file("/etc/frr/daemons").unwrap().content;
        assert!(daemons.contains("ospf6d=no") && daemons.contains("bgpd=yes"));
    }

    #[test]
    fn bad_bgp_blocks_are_located() {
        let bad = TWO_AS
            .replace("prefix-list-out: mine", "prefix-list-out: mien")
            .replace(
                "{asn: 65002, neighbors: [{peer: r1}]}",
                "{asn: 0, neighbors: [{peer: r3}]}",
            );
        let e = errors(&bad);
        assert!(e.contains("there is no prefix list `mien`"), "{e}");
        assert!(e.contains("did you mean `mine`?"), "{e}");
        assert!(e.contains("AS 0 is reserved"), "{e}");
        assert!(e.contains("there is no node `r3`"), "{e}");
    }
}
