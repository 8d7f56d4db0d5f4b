//! Services: authoritative DNS (zones, records, reverse zones), recursive resolvers (DNS64,
//! stub zones for the lab's zones), HTTP, and the trainer's own files and commands.

use super::{
    Assign6, AuthDnsPlan, FilePlan, HttpPlan, Nat64Plan, NodePlan, Planner, PtrPlan, RecordPlan,
    ResolverPlan, StubZonePlan, ZonePlan,
};
use crate::sp::Sp;
use crate::topology as t;
use std::net::IpAddr;

impl Planner<'_> {
    /// Resolves every node's services, reporting what cannot be served.
    pub(super) fn plan_services(&mut self, nodes: &mut [NodePlan], nat64: Option<&Nat64Plan>) {
        let topo = self.topo;
        for ni in 0..nodes.len() {
            let (name, def) = &topo.nodes.0[ni];
            let services = def.services.as_ref();
            let dns = match services.and_then(|s| s.dns.as_ref()) {
                Some(dns) => {
                    if services.is_some_and(|s| s.resolver.is_some()) {
                        self.err(
                            name.loc,
                            format!("node `{}` runs both `dns` and `resolver`", name.value),
                            "put the authoritative zones and the resolver on two nodes",
                        );
                    }
                    Some(self.auth_dns(dns, nodes))
                }
                None => None,
            };
            let resolver = match services.and_then(|s| s.resolver.as_ref()) {
                Some(r) => {
                    let dns64_prefix = if r.dns64 {
                        match nat64 {
                            Some(n) => Some(n.prefix),
                            // A `nat64:` section that failed validation was reported already.
                            None if topo.nat64.is_some() => None,
                            None => {
                                self.err(
                                    name.loc,
                                    format!(
                                        "`{}` asks for DNS64 but the lab has no `nat64:` section",
                                        name.value
                                    ),
                                    "add a `nat64:` section naming the translator",
                                );
                                None
                            }
                        }
                    } else {
                        None
                    };
                    Some(ResolverPlan {
                        dns64_prefix,
                        stubs: stub_zones(topo, nodes, &nodes[ni]),
                    })
                }
                None => None,
            };
            let http = services.and_then(|s| s.http.as_ref()).map(|h| HttpPlan {
                port: h.port.as_ref().map(|p| p.value).unwrap_or(80),
                body: h
                    .body
                    .clone()
                    .unwrap_or_else(|| format!("hello from {}", name.value)),
            });
            let files = def.files.iter().map(|f| self.trainer_file(f)).collect();
            let s = &mut nodes[ni].services;
            s.dns = dns;
            s.resolver = resolver;
            s.http = http;
            s.files = files;
            s.exec = def.exec.iter().map(|c| c.value.clone()).collect();
        }
    }

    /// A file the trainer places in a node: an absolute path and an octal mode.
    fn trainer_file(&mut self, f: &t::FileDef) -> FilePlan {
        let mode = match &f.mode {
            Some(m) => match u32::from_str_radix(m.trim_start_matches("0o"), 8) {
                Ok(v) if v <= 0o7777 => v,
                _ => {
                    self.err(
                        m.loc,
                        format!("`{}` is not an octal file mode", m.value),
                        "write e.g. `\"0644\"` or `\"0755\"`",
                    );
                    0o644
                }
            },
            None => 0o644,
        };
        if !f.path.starts_with('/') || f.path.contains("/../") {
            self.err(
                f.path.loc,
                format!("`{}` is not an absolute path", f.path.value),
                "write a path such as `/etc/motd`",
            );
        }
        FilePlan {
            path: f.path.value.clone(),
            mode,
            content: f.content.clone(),
        }
    }

    /// The zones of an authoritative server, each name resolved to the node's addresses.
    fn auth_dns(&mut self, dns: &t::AuthDns, nodes: &[NodePlan]) -> AuthDnsPlan {
        let mut zones = Vec::new();
        let mut ptrs = Vec::new();
        let mut reverse_zones = Vec::new();
        for (zone, records) in dns.zones.iter() {
            let zname = zone.value.trim_end_matches('.').to_owned();
            let mut recs = Vec::new();
            for (rname, def) in records.iter() {
                let fqdn = if rname.value == "@" {
                    zname.clone()
                } else {
                    format!("{}.{zname}", rname.value)
                };
                let mut addrs: Vec<IpAddr> = Vec::new();
                match def {
                    t::RecordDef::Node(n) => self.record_ref(n, None, nodes, &mut addrs),
                    t::RecordDef::Full(r) => {
                        for a in &r.a {
                            self.record_ref(a, Some(false), nodes, &mut addrs);
                        }
                        for a in &r.aaaa {
                            self.record_ref(a, Some(true), nodes, &mut addrs);
                        }
                    }
                }
                for address in addrs {
                    let rtype = if address.is_ipv6() { "AAAA" } else { "A" };
                    recs.push(RecordPlan {
                        fqdn: fqdn.clone(),
                        rtype: rtype.into(),
                        address,
                    });
                    ptrs.push(PtrPlan {
                        address,
                        fqdn: fqdn.clone(),
                    });
                    let rz = reverse_zone(address);
                    if !reverse_zones.contains(&rz) {
                        reverse_zones.push(rz);
                    }
                }
            }
            zones.push(ZonePlan {
                name: zname,
                records: recs,
            });
        }
        AuthDnsPlan {
            zones,
            ptrs,
            reverse_zones,
        }
    }

    /// The addresses a record names: an address as written (of the record's family when it
    /// has one), or a node's static IPv6 and first IPv4 address.
    fn record_ref(
        &mut self,
        r: &Sp<String>,
        want_v6: Option<bool>,
        nodes: &[NodePlan],
        addrs: &mut Vec<IpAddr>,
    ) {
        if let Ok(a) = r.parse::<IpAddr>() {
            if want_v6.is_some_and(|v6| v6 != a.is_ipv6()) {
                self.err(
                    r.loc,
                    format!("{a} is the wrong family for this record"),
                    "A records take IPv4 addresses, AAAA records IPv6",
                );
            }
            addrs.push(a);
            return;
        }
        match nodes.iter().find(|n| n.name == r.value) {
            Some(n) => {
                let v6 = n.interfaces.iter().find_map(|i| match i.ipv6 {
                    Assign6::Static { address } => Some(IpAddr::V6(address.addr())),
                    _ => None,
                });
                let v4 = n.first_v4().map(IpAddr::V4);
                match want_v6 {
                    Some(true) => addrs.extend(v6),
                    Some(false) => addrs.extend(v4),
                    None => addrs.extend(v6.into_iter().chain(v4)),
                }
            }
            None => {
                self.err(
                    r.loc,
                    format!("`{}` is neither an address nor a node", r.value),
                    "write a node name or an address",
                );
            }
        }
    }
}

/// The reverse zone of an address: the /24 for IPv4, the /64 for IPv6.
fn reverse_zone(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            format!("{}.{}.{}.in-addr.arpa", o[2], o[1], o[0])
        }
        IpAddr::V6(v) => {
            let hex: String = v.octets()[..8].iter().map(|b| format!("{b:02x}")).collect();
            let mut nibbles: Vec<String> = hex.chars().rev().map(|c| c.to_string()).collect();
            nibbles.push("ip6.arpa".into());
            nibbles.join(".")
        }
    }
}

/// Stub zones for a resolver: every authoritative zone in the lab (and its reverse zones),
/// pointing at the server's address the resolver can reach.
fn stub_zones(topo: &t::Topology, nodes: &[NodePlan], me: &NodePlan) -> Vec<StubZonePlan> {
    let mut out = Vec::new();
    for (ni, (_, def)) in topo.nodes.iter().enumerate() {
        let Some(dns) = def.services.as_ref().and_then(|s| s.dns.as_ref()) else {
            continue;
        };
        let server = &nodes[ni];
        // Prefer an address on a shared segment; else any static address of a family we have.
        let mut addrs: Vec<IpAddr> = Vec::new();
        for i in &me.interfaces {
            for o in server.interfaces.iter().filter(|o| o.segment == i.segment) {
                if let Assign6::Static { address } = o.ipv6 {
                    addrs.push(IpAddr::V6(address.addr()));
                }
                if let Some(a) = o.ipv4.address() {
                    addrs.push(IpAddr::V4(a));
                }
            }
        }
        if addrs.is_empty() {
            addrs.extend(server.first_v6().map(IpAddr::V6));
            addrs.extend(server.first_v4().map(IpAddr::V4));
        }
        let mut names: Vec<String> = dns
            .zones
            .iter()
            .map(|(z, _)| z.value.trim_end_matches('.').to_owned())
            .collect();
        for (_, records) in dns.zones.iter() {
            for (_, r) in records.iter() {
                let refs: Vec<&str> = match r {
                    t::RecordDef::Node(n) => vec![n.as_str()],
                    t::RecordDef::Full(f) => {
                        f.a.iter().chain(&f.aaaa).map(|s| s.as_str()).collect()
                    }
                };
                for rf in refs {
                    let ips: Vec<IpAddr> = match rf.parse::<IpAddr>() {
                        Ok(a) => vec![a],
                        Err(_) => nodes
                            .iter()
                            .filter(|n| n.name == rf)
                            .flat_map(|n| {
                                n.first_v6()
                                    .map(IpAddr::V6)
                                    .into_iter()
                                    .chain(n.first_v4().map(IpAddr::V4))
                            })
                            .collect(),
                    };
                    for a in ips {
                        let rz = reverse_zone(a);
                        if !names.contains(&rz) {
                            names.push(rz);
                        }
                    }
                }
            }
        }
        for name in names {
            out.push(StubZonePlan {
                name,
                addrs: addrs.clone(),
            });
        }
    }
    out
}
