//! 464XLAT (RFC 6877): a CLAT on hosts of NAT64 segments, the lab's NAT64 translator as PLAT.

use super::{Assign4, Assign6, ClatPlan, Nat64Plan, NodePlan, Planner, SegmentPlan};
use crate::topology::Role;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The host's IPv4 address behind its CLAT, and tayga's (RFC 7335: 192.0.0.0/29).
pub const CLAT_IPV4: Ipv4Addr = Ipv4Addr::new(192, 0, 0, 1);
pub const CLAT_TAYGA_IPV4: Ipv4Addr = Ipv4Addr::new(192, 0, 0, 2);

impl Planner<'_> {
    /// Plans the CLAT of every host that asks for one: its IPv6 address on the NAT64 segment,
    /// the PLAT prefix, and what the host's kernel needs (forwarding between `clat` and the
    /// segment, proxy neighbour discovery for the CLAT's address, `/dev/net/tun`).
    pub(super) fn plan_clat(
        &mut self,
        nodes: &mut [NodePlan],
        segments: &[SegmentPlan],
        nat64: Option<&Nat64Plan>,
    ) {
        let topo = self.topo;
        for ni in 0..nodes.len() {
            let Some(clat) = topo.nodes.0[ni].1.clat.as_ref() else {
                continue;
            };
            if !clat.value {
                continue;
            }
            let name = nodes[ni].name.clone();
            if nodes[ni].role != Role::Host {
                self.err(
                    clat.loc,
                    format!(
                        "`clat` runs on hosts; `{name}` is a {}",
                        nodes[ni].role.as_str()
                    ),
                    "remove `clat:`, or give it to a node with `role: host`",
                );
                continue;
            }
            let Some(n) = nat64 else {
                // A `nat64:` section that failed validation was reported already.
                if topo.nat64.is_none() {
                    self.err(
                        clat.loc,
                        format!("`{name}` has a CLAT but the lab has no NAT64 to be its PLAT"),
                        "add a `nat64:` section naming the translator",
                    );
                }
                continue;
            };
            if nodes[ni]
                .interfaces
                .iter()
                .any(|i| !matches!(i.ipv4, Assign4::Disabled))
            {
                self.err(
                    clat.loc,
                    format!("`{name}` has IPv4 already; a CLAT is for IPv6-only hosts"),
                    "attach the host to ipv6-only segments only, or remove `clat:`",
                );
                continue;
            }
            let on_nat64 = nodes[ni].interfaces.iter().find_map(|i| {
                let seg = segments.iter().find(|s| s.name == i.segment)?;
                let prefix = seg.ipv6.filter(|_| seg.nat64)?;
                (!matches!(i.ipv6, Assign6::None | Assign6::Disabled)).then_some((i, seg, prefix))
            });
            let Some((iface, seg, prefix)) = on_nat64 else {
                self.err(
                    clat.loc,
                    format!("`{name}` has no IPv6 address on a NAT64 (ipv6-only) segment"),
                    "attach it to an ipv6-only segment, with an address from SLAAC, DHCPv6 or the plan",
                );
                continue;
            };
            let ipv6 = clat_address(prefix.network(), ni);
            let taken = nodes
                .iter()
                .flat_map(|o| &o.interfaces)
                .any(|i| matches!(i.ipv6, Assign6::Static { address } if address.addr() == ipv6));
            if taken {
                self.err(
                    clat.loc,
                    format!("the CLAT address {ipv6} of `{name}` is a node's static address"),
                    "give that node another address",
                );
                continue;
            }
            let plan = ClatPlan {
                interface: iface.name.clone(),
                ipv6,
                plat_prefix: n.prefix,
                ipv4: CLAT_IPV4,
                tayga_ipv4: CLAT_TAYGA_IPV4,
                mtu: seg.mtu.saturating_sub(20),
            };
            let node = &mut nodes[ni];
            // Translated packets leave the `clat` device and are forwarded to the segment: the
            // host forwards IPv6, still takes RAs (accept_ra 2) and answers neighbour
            // solicitations for the CLAT's address (proxy_ndp).
            for k in ["all", "default"] {
                node.sysctls
                    .insert(format!("net.ipv6.conf.{k}.forwarding"), "1".into());
                node.sysctls
                    .insert(format!("net.ipv6.conf.{k}.accept_ra"), "2".into());
                node.sysctls
                    .insert(format!("net.ipv6.conf.{k}.proxy_ndp"), "1".into());
            }
            node.tun = true;
            node.services.clat = Some(plan);
        }
    }
}

/// The CLAT's address on a segment: `PREFIX::464:N`, N the node's position from 1.
pub(super) fn clat_address(prefix: Ipv6Addr, node_index: usize) -> Ipv6Addr {
    let iid = 0x0464_0000u128 + node_index as u128 + 1;
    Ipv6Addr::from(u128::from(prefix) | iid)
}

#[cfg(test)]
mod tests {
    use crate::plan::Plan;

    fn plan(text: &str) -> Result<Plan, String> {
        crate::plan_source("t.yaml", text.as_bytes())
            .map(|(_, p)| p)
            .map_err(|(s, d)| d.render(&s.text))
    }

    const LAB: &str = "name: x
segments: {lan6: ipv6-only, wan4: ipv4-only}
nodes:
  gw: {role: router, interfaces: {eth1: lan6, eth2: wan4}}
  h1: {role: host, interfaces: {eth1: lan6}, clat: true}
  h2: {role: host, interfaces: {eth1: lan6}}
nat64: {translator: gw, prefix: 2001:db8:64::/96}
";

    #[test]
    fn a_clat_host_translates_through_the_labs_nat64() {
        let p = plan(LAB).unwrap();
        let h1 = p.node("h1").unwrap();
        let c = h1.services.clat.as_ref().expect("h1 has a CLAT");
        assert_eq!(c.interface, "eth1");
        assert_eq!(
            c.ipv6,
            "2001:db8:1::464:2".parse::<std::net::Ipv6Addr>().unwrap()
        );
        assert_eq!(c.plat_prefix, p.nat64.as_ref().unwrap().prefix);
        assert_eq!(c.ipv4.to_string(), "192.0.0.1");
        assert_eq!(c.mtu, 1480);
        assert!(h1.tun);
        for k in ["forwarding", "accept_ra", "proxy_ndp"] {
            let want = if k == "accept_ra" { "2" } else { "1" };
            assert_eq!(h1.sysctls[&format!("net.ipv6.conf.default.{k}")], want);
        }
        assert!(h1.parts.iter().any(|x| x.id == "clat"));
        assert!(
            h1.file("/etc/v6lab/clat.conf")
                .unwrap()
                .content
                .contains("map 192.0.0.1 2001:db8:1::464:2")
        );
        // Hosts without `clat` keep a host's kernel settings.
        let h2 = p.node("h2").unwrap();
        assert!(h2.services.clat.is_none() && !h2.tun);
        assert_eq!(h2.sysctls["net.ipv6.conf.default.forwarding"], "0");
    }

    #[test]
    fn a_clat_needs_a_nat64_lab() {
        let text = LAB.replace("nat64: {translator: gw, prefix: 2001:db8:64::/96}\n", "");
        let e = plan(&text).unwrap_err();
        assert!(e.contains("has a CLAT but the lab has no NAT64"), "{e}");
        assert!(
            plan(&LAB.replace("clat: true", "clat: false"))
                .unwrap()
                .node("h1")
                .unwrap()
                .services
                .clat
                .is_none()
        );
    }
}
