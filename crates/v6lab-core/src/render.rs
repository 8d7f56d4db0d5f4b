//! Rendering a node's plan into files: daemon configs and one script per part, from the tera
//! templates in `templates/node/` (compiled into the binary).

use crate::plan::{
    Assign4, Assign6, FilePlan, Nat64Plan, NodePlan, PartPlan, Planner, ProbePlan, SegmentPlan,
};
use crate::topology::{self as t, RaMode, Role};
use ipnet::IpNet;
use serde::Serialize;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

/// Directory inside nodes holding everything v6lab renders.
pub const NODE_DIR: &str = "/etc/v6lab";
/// The script that applies a node's plan at start.
pub const UP_SCRIPT: &str = "/etc/v6lab/up.sh";

const TEMPLATES: &[(&str, &str)] = &[
    ("up.sh", include_str!("../../../templates/node/up.sh.tera")),
    (
        "addr.sh",
        include_str!("../../../templates/node/addr.sh.tera"),
    ),
    (
        "routes.sh",
        include_str!("../../../templates/node/routes.sh.tera"),
    ),
    (
        "resolv.sh",
        include_str!("../../../templates/node/resolv.sh.tera"),
    ),
    (
        "radvd.conf",
        include_str!("../../../templates/node/radvd.conf.tera"),
    ),
    (
        "radvd.sh",
        include_str!("../../../templates/node/radvd.sh.tera"),
    ),
    (
        "dnsmasq.conf",
        include_str!("../../../templates/node/dnsmasq.conf.tera"),
    ),
    (
        "dnsmasq.sh",
        include_str!("../../../templates/node/dnsmasq.sh.tera"),
    ),
    (
        "tayga.conf",
        include_str!("../../../templates/node/tayga.conf.tera"),
    ),
    (
        "nat64.sh",
        include_str!("../../../templates/node/nat64.sh.tera"),
    ),
    (
        "unbound.conf",
        include_str!("../../../templates/node/unbound.conf.tera"),
    ),
    (
        "unbound.sh",
        include_str!("../../../templates/node/unbound.sh.tera"),
    ),
    (
        "http.sh",
        include_str!("../../../templates/node/http.sh.tera"),
    ),
    (
        "frr.conf",
        include_str!("../../../templates/node/frr.conf.tera"),
    ),
    (
        "frr-daemons",
        include_str!("../../../templates/node/frr-daemons.tera"),
    ),
    (
        "frr.sh",
        include_str!("../../../templates/node/frr.sh.tera"),
    ),
    (
        "exec.sh",
        include_str!("../../../templates/node/exec.sh.tera"),
    ),
];

fn engine() -> &'static tera::Tera {
    static ENGINE: OnceLock<tera::Tera> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut t = tera::Tera::default();
        t.autoescape_on(Vec::<&str>::new());
        for (name, body) in TEMPLATES {
            t.add_raw_template(name, body)
                .unwrap_or_else(|e| panic!("template {name} does not parse: {e}"));
        }
        t
    })
}

/// Renders a template with a JSON-like context. Templates ship with the binary and are tested,
/// so a failure here is a bug, not a user error.
pub fn render<T: Serialize>(name: &str, ctx: &T) -> String {
    let ctx = tera::Context::from_serialize(ctx).expect("context serializes");
    engine()
        .render(name, &ctx)
        .unwrap_or_else(|e| panic!("template {name} failed: {e:?}"))
}

struct Builder<'a> {
    node: &'a mut NodePlan,
}

impl Builder<'_> {
    fn file(&mut self, path: String, mode: u32, content: String) {
        self.node.files.push(FilePlan {
            path,
            mode,
            content,
        });
    }

    fn part(&mut self, id: &str, title: String, script: String, probes: Vec<ProbePlan>) {
        let n = self.node.parts.len() + 1;
        let path = format!("{NODE_DIR}/parts/{n:02}-{id}.sh");
        self.file(path.clone(), 0o755, script);
        self.node.parts.push(PartPlan {
            id: id.to_owned(),
            title,
            script: path,
            student: None,
            probes,
        });
    }
}

fn probe(description: impl Into<String>, command: impl Into<String>) -> ProbePlan {
    ProbePlan {
        description: description.into(),
        command: command.into(),
    }
}

/// A shell test that an IPv6 address (a line of `ip -o addr` matching `needle`) is usable: DAD
/// done, or still running optimistically (RFC 4429), and not failed.
pub fn usable6(dev: &str, needle: &str) -> String {
    format!(
        "a=$(ip -6 -o addr show dev {dev} | grep -F -- '{needle}'); [ -n \"$a\" ] && ! echo \"$a\" | grep -q dadfailed && {{ ! echo \"$a\" | grep -q tentative || echo \"$a\" | grep -q optimistic; }}"
    )
}

fn process_probe(name: &str) -> ProbePlan {
    probe(
        format!("{name} running"),
        format!("pidof {name} >/dev/null"),
    )
}

fn listen_probe(what: &str, port: u16, proto: &str) -> ProbePlan {
    let flag = if proto == "udp" { "u" } else { "t" };
    probe(
        format!("{what} listening on {port}/{proto}"),
        format!("ss -Hln{flag} 'sport = :{port}' | grep -q ."),
    )
}

/// Renders every node's parts and files. Called once the plan's addresses and routes exist.
pub(crate) fn render_nodes(
    p: &mut Planner<'_>,
    nodes: &mut [NodePlan],
    segments: &[SegmentPlan],
    nat64: Option<&Nat64Plan>,
) {
    let topo = p.topo;
    let snapshot: Vec<NodePlan> = nodes.to_vec();
    // First router of each segment serves DHCP there.
    let dhcp_server = |seg: &str| -> Option<&str> {
        snapshot
            .iter()
            .find(|n| n.role == Role::Router && n.interfaces.iter().any(|i| i.segment == seg))
            .map(|n| n.name.as_str())
    };
    for (ni, node) in nodes.iter_mut().enumerate() {
        let def = &topo.nodes.0[ni].1;
        let name = node.name.clone();
        let seg_of = |s: &str| segments.iter().find(|x| x.name == s).expect("segment");
        let ifaces = node.interfaces.clone();
        let routes = node.routes.clone();
        let resolvers = node.resolvers.clone();
        let mut b = Builder { node };

        // Addresses, one part per interface and family.
        for i in &ifaces {
            match &i.ipv6 {
                Assign6::Static { address } => {
                    let title = format!("static IPv6 address {address} on {}", i.name);
                    let s = render(
                        "addr.sh",
                        &json!({"title": title, "family": "ipv6", "mode": "static", "address": address.to_string(), "iface": i.name}),
                    );
                    let a = address.addr();
                    let pr = probe(
                        format!("{a} usable on {}", i.name),
                        usable6(&i.name, &format!(" {a}/")),
                    );
                    b.part(&format!("{}.ipv6", i.name), title, s, vec![pr]);
                }
                Assign6::Dhcpv6 { prefix } => {
                    let title = format!("DHCPv6 client on {}", i.name);
                    let s = render(
                        "addr.sh",
                        &json!({"title": title, "family": "ipv6", "mode": "dhcpv6", "iface": i.name}),
                    );
                    let _ = prefix;
                    b.part(&format!("{}.ipv6", i.name), title, s, vec![]);
                }
                Assign6::Disabled => {
                    let title = format!("no IPv6 on {} (IPv4-only segment)", i.name);
                    let s = render(
                        "addr.sh",
                        &json!({"title": title, "family": "ipv6", "mode": "disabled", "iface": i.name}),
                    );
                    b.part(&format!("{}.ipv6", i.name), title, s, vec![]);
                }
                Assign6::Slaac { .. } | Assign6::None => {}
            }
            match &i.ipv4 {
                Assign4::Static { address } => {
                    let title = format!("static IPv4 address {address} on {}", i.name);
                    let s = render(
                        "addr.sh",
                        &json!({"title": title, "family": "ipv4", "mode": "static", "address": address.to_string(), "iface": i.name}),
                    );
                    let pr = probe(
                        format!("{} configured on {}", address.addr(), i.name),
                        format!(
                            "ip -4 -o addr show dev {} | grep -q ' {}/'",
                            i.name,
                            address.addr()
                        ),
                    );
                    b.part(&format!("{}.ipv4", i.name), title, s, vec![pr]);
                }
                Assign4::Dhcp { .. } => {
                    let title = format!("DHCPv4 client on {}", i.name);
                    let s = render(
                        "addr.sh",
                        &json!({"title": title, "family": "ipv4", "mode": "dhcp", "iface": i.name}),
                    );
                    b.part(&format!("{}.ipv4", i.name), title, s, vec![]);
                }
                Assign4::None | Assign4::Disabled => {}
            }
        }

        if !routes.is_empty() {
            let s = render(
                "routes.sh",
                &json!({"node": name, "routes": routes.iter().map(|r| json!({"to": r.to.to_string(), "via": r.via.to_string(), "origin": r.origin})).collect::<Vec<_>>()}),
            );
            let probes = routes
                .iter()
                .map(|r| {
                    let fam = if r.to.addr().is_ipv6() { "-6" } else { "-4" };
                    let to = if r.to.prefix_len() == 0 {
                        "default".to_string()
                    } else {
                        r.to.to_string()
                    };
                    probe(
                        format!("route to {to} present"),
                        format!("ip {fam} route show {to} | grep -q via"),
                    )
                })
                .collect();
            b.part("routes", format!("routes of {name}"), s, probes);
        }

        if !resolvers.is_empty() {
            let s = render("resolv.sh", &json!({"node": name, "resolvers": resolvers}));
            b.part(
                "resolv",
                format!("resolver configuration of {name}"),
                s,
                vec![],
            );
        }

        let services = def.services.as_ref();
        // Authoritative DNS.
        if let Some(dns) = services.and_then(|s| s.dns.as_ref()) {
            if services.is_some_and(|s| s.resolver.is_some()) {
                p.err(
                    topo.nodes.0[ni].0.loc,
                    format!("node `{name}` runs both `dns` and `resolver`"),
                    "put the authoritative zones and the resolver on two nodes",
                );
            }
            let conf = auth_config(p, &name, dns, &snapshot);
            let has_v4 = ifaces.iter().any(|i| !matches!(i.ipv4, Assign4::Disabled));
            let has_v6 = ifaces.iter().any(|i| !matches!(i.ipv6, Assign6::Disabled));
            let mut ctx = conf;
            ctx["node"] = json!(name);
            ctx["title"] = json!("authoritative DNS");
            ctx["v4"] = json!(has_v4);
            ctx["v6"] = json!(has_v6);
            b.file(
                format!("{NODE_DIR}/unbound.conf"),
                0o644,
                render("unbound.conf", &ctx),
            );
            let s = render(
                "unbound.sh",
                &json!({"node": name, "title": "authoritative DNS"}),
            );
            b.part(
                "dns",
                "authoritative DNS (unbound)".into(),
                s,
                vec![process_probe("unbound"), listen_probe("DNS", 53, "udp")],
            );
        }
        // Recursive resolver, DNS64 when asked.
        if let Some(r) = services.and_then(|s| s.resolver.as_ref()) {
            let dns64_prefix = if r.dns64 {
                match nat64 {
                    Some(n) => Some(n.prefix.to_string()),
                    // A `nat64:` section that failed validation was reported already.
                    None if topo.nat64.is_some() => None,
                    None => {
                        p.err(
                            topo.nodes.0[ni].0.loc,
                            format!("`{name}` asks for DNS64 but the lab has no `nat64:` section"),
                            "add a `nat64:` section naming the translator",
                        );
                        None
                    }
                }
            } else {
                None
            };
            let stubs = stub_zones(topo, &snapshot, &snapshot[ni]);
            let has_v4 = ifaces.iter().any(|i| !matches!(i.ipv4, Assign4::Disabled));
            let has_v6 = ifaces.iter().any(|i| !matches!(i.ipv6, Assign6::Disabled));
            let title = if dns64_prefix.is_some() {
                "DNS64 resolver"
            } else {
                "DNS resolver"
            };
            let ctx = json!({"node": name, "title": title, "v4": has_v4, "v6": has_v6, "dns64_prefix": dns64_prefix, "zones": [], "reverse_zones": [], "ptrs": [], "stubs": stubs});
            b.file(
                format!("{NODE_DIR}/unbound.conf"),
                0o644,
                render("unbound.conf", &ctx),
            );
            let s = render("unbound.sh", &json!({"node": name, "title": title}));
            b.part(
                "resolver",
                format!("{title} (unbound)"),
                s,
                vec![process_probe("unbound"), listen_probe("DNS", 53, "udp")],
            );
        }
        // NAT64 translator.
        if let Some(n) = nat64.filter(|n| n.translator == name) {
            b.node.tun = true;
            let ctx = json!({"node": name, "prefix": n.prefix.to_string(), "pool": n.pool.to_string(), "tayga_ipv4": n.tayga_ipv4.to_string(), "ipv4_interface": n.ipv4_interface});
            b.file(
                format!("{NODE_DIR}/tayga.conf"),
                0o644,
                render("tayga.conf", &ctx),
            );
            let s = render("nat64.sh", &ctx);
            b.part(
                "nat64",
                format!("NAT64 translator (tayga) for {}", n.prefix),
                s,
                vec![
                    process_probe("tayga"),
                    probe("nat64 device up", "ip link show nat64 | grep -q UP"),
                ],
            );
        }
        // Router Advertisements.
        if b.node.role == Role::Router {
            let ra_ifaces: Vec<_> = ifaces
                .iter()
                .filter_map(|i| {
                    let seg = seg_of(&i.segment);
                    let prefix = seg.ipv6?;
                    (seg.ra != RaMode::None).then(|| json!({"name": i.name, "mtu": seg.mtu, "ra": seg.ra.as_str(), "prefix": prefix.to_string(), "rdnss": seg.rdnss.iter().map(|a| a.to_string()).collect::<Vec<_>>()}))
                })
                .collect();
            if !ra_ifaces.is_empty() {
                b.file(
                    format!("{NODE_DIR}/radvd.conf"),
                    0o644,
                    render(
                        "radvd.conf",
                        &json!({"node": name, "interfaces": ra_ifaces}),
                    ),
                );
                let names: Vec<&serde_json::Value> = ra_ifaces.iter().map(|i| &i["name"]).collect();
                let s = render("radvd.sh", &json!({"node": name, "interfaces": names}));
                b.part(
                    "radvd",
                    "Router Advertisements (radvd)".into(),
                    s,
                    vec![process_probe("radvd")],
                );
            }
            // DHCP server for segments where this router is the first router.
            let mut scopes = Vec::new();
            for i in &ifaces {
                let seg = seg_of(&i.segment);
                if dhcp_server(&seg.name) != Some(name.as_str()) {
                    continue;
                }
                if let (Some(prefix), true) = (
                    seg.ipv6,
                    matches!(seg.ra, RaMode::Dhcpv6Stateful | RaMode::Dhcpv6Stateless),
                ) {
                    let base = u128::from(prefix.network());
                    scopes.push(json!({
                        "iface": i.name, "family": "ipv6", "stateful": seg.ra == RaMode::Dhcpv6Stateful,
                        "network": prefix.network().to_string(),
                        "first": Ipv6Addr::from(base + 0x1000).to_string(), "last": Ipv6Addr::from(base + 0x1fff).to_string(),
                        "dns": seg.rdnss.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    }));
                }
                let wants_dhcp4 = snapshot.iter().any(|o| {
                    o.interfaces
                        .iter()
                        .any(|oi| oi.segment == seg.name && matches!(oi.ipv4, Assign4::Dhcp { .. }))
                });
                if let (Some(prefix), true, Some(router)) =
                    (seg.ipv4, wants_dhcp4, i.ipv4.address())
                {
                    let base = u32::from(prefix.network());
                    let size = 1u32 << (32 - prefix.prefix_len());
                    // The lab's resolvers (else its authoritative servers) that have IPv4.
                    let has = |d: &t::Node, resolver: bool| {
                        d.services.as_ref().is_some_and(|sv| {
                            if resolver {
                                sv.resolver.is_some()
                            } else {
                                sv.dns.is_some()
                            }
                        })
                    };
                    let pick = |resolver: bool| -> Vec<String> {
                        topo.nodes
                            .iter()
                            .enumerate()
                            .filter(|(_, (_, d))| has(d, resolver))
                            .filter_map(|(oi, _)| snapshot[oi].first_v4().map(|a| a.to_string()))
                            .collect()
                    };
                    let dns = match pick(true) {
                        v if v.is_empty() => pick(false),
                        v => v,
                    };
                    scopes.push(json!({
                        "iface": i.name, "family": "ipv4", "router": router.to_string(),
                        "first": Ipv4Addr::from(base + size / 2).to_string(), "last": Ipv4Addr::from(base + size - 2).to_string(),
                        "dns": dns,
                    }));
                }
            }
            if !scopes.is_empty() {
                b.file(
                    format!("{NODE_DIR}/dnsmasq.conf"),
                    0o644,
                    render("dnsmasq.conf", &json!({"node": name, "scopes": scopes})),
                );
                let s = render("dnsmasq.sh", &json!({"node": name}));
                b.part(
                    "dhcp",
                    "DHCP server (dnsmasq)".into(),
                    s,
                    vec![process_probe("dnsmasq")],
                );
            }
        }
        // HTTP.
        if let Some(h) = services.and_then(|s| s.http.as_ref()) {
            let port = h.port.as_ref().map(|p| p.value).unwrap_or(80);
            let body = h
                .body
                .clone()
                .unwrap_or_else(|| format!("hello from {name}"));
            let s = render(
                "http.sh",
                &json!({"node": name, "port": port, "body": body.replace('\'', "'\\''")}),
            );
            b.part(
                "http",
                format!("HTTP server on port {port}"),
                s,
                vec![listen_probe("HTTP", port, "tcp")],
            );
        }
        // OSPFv3.
        if let Some(o) = def.ospf6.as_ref() {
            let area = o
                .area
                .as_ref()
                .map(|a| a.value.clone())
                .unwrap_or_else(|| "0.0.0.0".into());
            if area.parse::<Ipv4Addr>().is_err() && area.parse::<u32>().is_err() {
                let loc = o.area.as_ref().map(|a| a.loc).unwrap_or_default();
                p.err(
                    loc,
                    format!("`{area}` is not an OSPF area"),
                    "write e.g. `0.0.0.0` or `0`",
                );
            }
            let list: Vec<String> = match &o.interfaces {
                Some(l) => l
                    .iter()
                    .filter_map(|i| {
                        if ifaces
                            .iter()
                            .any(|x| x.name == i.value && !matches!(x.ipv6, Assign6::Disabled))
                        {
                            Some(i.value.clone())
                        } else {
                            p.err(
                                i.loc,
                                format!("`{name}` has no IPv6 interface `{}`", i.value),
                                format!(
                                    "interfaces of `{name}`: {}",
                                    ifaces
                                        .iter()
                                        .map(|x| x.name.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            );
                            None
                        }
                    })
                    .collect(),
                None => ifaces
                    .iter()
                    .filter(|i| !matches!(i.ipv6, Assign6::Disabled))
                    .map(|i| i.name.clone())
                    .collect(),
            };
            // Point-to-point with fast timers where exactly two OSPF routers meet; passive where
            // this router is alone (a LAN of hosts); broadcast otherwise.
            let ospf_routers_on = |seg: &str| {
                topo.nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, d))| d.ospf6.is_some())
                    .filter(|(oi, _)| snapshot[*oi].interfaces.iter().any(|x| x.segment == seg))
                    .count()
            };
            let list: Vec<serde_json::Value> = list
                .iter()
                .map(|name| {
                    let seg = &ifaces
                        .iter()
                        .find(|x| &x.name == name)
                        .expect("checked")
                        .segment;
                    let kind = match ospf_routers_on(seg) {
                        0 | 1 => "passive",
                        2 => "p2p",
                        _ => "broadcast",
                    };
                    json!({"name": name, "kind": kind})
                })
                .collect();
            let rid = crate::plan::router_id(topo, ni);
            if rid.is_none() {
                let loc = o.router_id.as_ref().map(|r| r.loc).unwrap_or_default();
                p.err(
                    loc,
                    "the router ID must look like an IPv4 address",
                    "write e.g. `0.0.0.1`",
                );
            }
            let rid = rid.unwrap_or(Ipv4Addr::UNSPECIFIED);
            b.file("/etc/frr/frr.conf".into(), 0o640, render("frr.conf", &json!({"node": name, "interfaces": list, "area": area, "router_id": rid.to_string()})));
            b.file(
                "/etc/frr/daemons".into(),
                0o640,
                render("frr-daemons", &json!({})),
            );
            b.file(
                "/etc/frr/vtysh.conf".into(),
                0o640,
                "service integrated-vtysh-config\n".into(),
            );
            let s = render("frr.sh", &json!({"node": name}));
            b.part(
                "ospf6",
                format!("OSPFv3 (FRR), router ID {rid}"),
                s,
                vec![process_probe("ospf6d"), process_probe("zebra")],
            );
        }
        // Trainer's files and commands.
        for f in &def.files {
            let mode = match &f.mode {
                Some(m) => match u32::from_str_radix(m.trim_start_matches("0o"), 8) {
                    Ok(v) if v <= 0o7777 => v,
                    _ => {
                        p.err(
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
                p.err(
                    f.path.loc,
                    format!("`{}` is not an absolute path", f.path.value),
                    "write a path such as `/etc/motd`",
                );
            }
            b.file(f.path.value.clone(), mode, f.content.clone());
        }
        if !def.exec.is_empty() {
            let commands: Vec<&str> = def.exec.iter().map(|c| c.as_str()).collect();
            let s = render("exec.sh", &json!({"node": name, "commands": commands}));
            b.part("exec", "commands from the topology".into(), s, vec![]);
        }
    }
}

/// Writes `up.sh` (and the node's readiness probes) once student parts are known.
pub(crate) fn render_up_script(node: &mut NodePlan) {
    let parts: Vec<_> = node
        .parts
        .iter()
        .map(|p| json!({"id": p.id, "script": p.script, "student": p.student}))
        .collect();
    let s = render("up.sh", &json!({"node": node.name, "parts": parts}));
    node.files.retain(|f| f.path != UP_SCRIPT);
    node.files.push(FilePlan {
        path: UP_SCRIPT.into(),
        mode: 0o755,
        content: s,
    });
}

fn auth_config(
    p: &mut Planner<'_>,
    node: &str,
    dns: &t::AuthDns,
    nodes: &[NodePlan],
) -> serde_json::Value {
    let mut zones = Vec::new();
    let mut ptrs = Vec::new();
    let mut reverse = Vec::new();
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
            let mut add_ref =
                |p: &mut Planner<'_>, r: &crate::sp::Sp<String>, want_v6: Option<bool>| {
                    if let Ok(a) = r.parse::<IpAddr>() {
                        if want_v6.is_some_and(|v6| v6 != a.is_ipv6()) {
                            p.err(
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
                            p.err(
                                r.loc,
                                format!("`{}` is neither an address nor a node", r.value),
                                "write a node name or an address",
                            );
                        }
                    }
                };
            match def {
                t::RecordDef::Node(n) => add_ref(p, n, None),
                t::RecordDef::Full(r) => {
                    for a in &r.a {
                        add_ref(p, a, Some(false));
                    }
                    for a in &r.aaaa {
                        add_ref(p, a, Some(true));
                    }
                }
            }
            for a in addrs {
                let rtype = if a.is_ipv6() { "AAAA" } else { "A" };
                recs.push(json!({"fqdn": fqdn, "rtype": rtype, "address": a.to_string()}));
                ptrs.push(json!({"address": a.to_string(), "fqdn": fqdn}));
                let rz = reverse_zone(a);
                if !reverse.contains(&rz) {
                    reverse.push(rz);
                }
            }
        }
        zones.push(json!({"name": zname, "records": recs}));
    }
    let _ = node;
    json!({"zones": zones, "ptrs": ptrs, "reverse_zones": reverse, "stubs": [], "dns64_prefix": null})
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
fn stub_zones(topo: &t::Topology, nodes: &[NodePlan], me: &NodePlan) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for (ni, (_, def)) in topo.nodes.iter().enumerate() {
        let Some(dns) = def.services.as_ref().and_then(|s| s.dns.as_ref()) else {
            continue;
        };
        let server = &nodes[ni];
        // Prefer an address on a shared segment; else any static address of a family we have.
        let mut addrs: Vec<String> = Vec::new();
        for i in &me.interfaces {
            for o in server.interfaces.iter().filter(|o| o.segment == i.segment) {
                if let Assign6::Static { address } = o.ipv6 {
                    addrs.push(address.addr().to_string());
                }
                if let Some(a) = o.ipv4.address() {
                    addrs.push(a.to_string());
                }
            }
        }
        if addrs.is_empty() {
            addrs.extend(server.first_v6().map(|a| a.to_string()));
            addrs.extend(server.first_v4().map(|a| a.to_string()));
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
        for n in names {
            out.push(json!({"name": n, "addrs": addrs}));
        }
    }
    let _ = IpNet::V4;
    out
}
