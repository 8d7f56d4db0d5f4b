//! Rendering a node's plan into files: daemon configs and one script per part, from the tera
//! templates in `templates/node/` (compiled into the binary).
//!
//! Rendering takes a finished plan and validates nothing: every check is the planner's, so
//! rendering a valid plan cannot fail. Each template is rendered from its own context type
//! (below), whose fields are the template's variables (unit-tested against the templates).

use crate::plan::{
    Assign4, Assign6, BgpNeighborPlan, FilePlan, NodePlan, Ospf6InterfacePlan, PartPlan, Plan,
    ProbePlan, PtrPlan, RoutePlan, StubZonePlan, ZonePlan, embed_v4,
};
use crate::topology::{RaMode, Role};
use ipnet::{Ipv4Net, Ipv6Net};
use serde::Serialize;
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
    (
        "clat.conf",
        include_str!("../../../templates/node/clat.conf.tera"),
    ),
    (
        "clat.sh",
        include_str!("../../../templates/node/clat.sh.tera"),
    ),
    (
        "pref64.sh",
        include_str!("../../../templates/node/pref64.sh.tera"),
    ),
    (
        "pref64-send.sh",
        include_str!("../../../templates/node/pref64-send.sh.tera"),
    ),
    (
        "firewall.sh",
        include_str!("../../../templates/node/firewall.sh.tera"),
    ),
    (
        "switch.sh",
        include_str!("../../../templates/node/switch.sh.tera"),
    ),
    (
        "listeners.sh",
        include_str!("../../../templates/node/listeners.sh.tera"),
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

/// Renders a template with its context. Templates ship with the binary and are tested, so a
/// failure here is a bug, not a user error.
pub fn render<T: Serialize>(name: &str, ctx: &T) -> String {
    #[cfg(test)]
    tests::seen(name, ctx);
    let ctx = tera::Context::from_serialize(ctx).expect("context serializes");
    engine()
        .render(name, &ctx)
        .unwrap_or_else(|e| panic!("template {name} failed: {e:?}"))
}

/// A node's rendered parts and files, in the order they are applied and placed.
#[derive(Debug, Default)]
pub struct Rendered {
    pub parts: Vec<PartPlan>,
    pub files: Vec<FilePlan>,
}

impl Rendered {
    fn file(&mut self, path: String, mode: u32, content: String) {
        self.files.push(FilePlan {
            path,
            mode,
            content,
        });
    }

    fn part(&mut self, id: &str, title: String, script: String, probes: Vec<ProbePlan>) {
        let n = self.parts.len() + 1;
        let path = format!("{NODE_DIR}/parts/{n:02}-{id}.sh");
        self.file(path.clone(), 0o755, script);
        self.parts.push(PartPlan {
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

/// Renders a node's parts and files from the plan (its addresses, routes, resolvers and
/// services, and its neighbours').
pub fn node(plan: &Plan, node: &NodePlan) -> Rendered {
    let name = node.name.as_str();
    let mut b = Rendered::default();
    let has_v4 = node.has_ipv4();
    let has_v6 = node.has_ipv6();

    // Addresses, one part per interface and family.
    for i in &node.interfaces {
        let addr = |title: &str, family, mode, address: Option<String>| {
            render(
                "addr.sh",
                &AddrSh {
                    title,
                    family,
                    mode,
                    address,
                    iface: &i.name,
                },
            )
        };
        match &i.ipv6 {
            Assign6::Static { address } => {
                let title = format!("static IPv6 address {address} on {}", i.name);
                let s = addr(
                    &title,
                    AddrFamily::Ipv6,
                    AddrMode::Static,
                    Some(address.to_string()),
                );
                let a = address.addr();
                let pr = probe(
                    format!("{a} usable on {}", i.name),
                    usable6(&i.name, &format!(" {a}/")),
                );
                b.part(&format!("{}.ipv6", i.name), title, s, vec![pr]);
            }
            Assign6::Dhcpv6 { .. } => {
                let title = format!("DHCPv6 client on {}", i.name);
                let s = addr(&title, AddrFamily::Ipv6, AddrMode::Dhcpv6, None);
                b.part(&format!("{}.ipv6", i.name), title, s, vec![]);
            }
            Assign6::Disabled => {
                let title = format!("no IPv6 on {} (IPv4-only segment)", i.name);
                let s = addr(&title, AddrFamily::Ipv6, AddrMode::Disabled, None);
                b.part(&format!("{}.ipv6", i.name), title, s, vec![]);
            }
            Assign6::Slaac { .. } | Assign6::None => {}
        }
        match &i.ipv4 {
            Assign4::Static { address } => {
                let title = format!("static IPv4 address {address} on {}", i.name);
                let s = addr(
                    &title,
                    AddrFamily::Ipv4,
                    AddrMode::Static,
                    Some(address.to_string()),
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
                let s = addr(&title, AddrFamily::Ipv4, AddrMode::Dhcp, None);
                b.part(&format!("{}.ipv4", i.name), title, s, vec![]);
            }
            Assign4::None | Assign4::Disabled => {}
        }
    }

    if !node.routes.is_empty() {
        let s = render(
            "routes.sh",
            &RoutesSh {
                node: name,
                routes: &node.routes,
            },
        );
        let probes = node
            .routes
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

    if !node.resolvers.is_empty() {
        let s = render(
            "resolv.sh",
            &ResolvSh {
                node: name,
                resolvers: &node.resolvers,
            },
        );
        b.part(
            "resolv",
            format!("resolver configuration of {name}"),
            s,
            vec![],
        );
    }

    let services = &node.services;
    // Authoritative DNS.
    if let Some(dns) = &services.dns {
        let title = "authoritative DNS";
        let conf = UnboundConf {
            node: name,
            title,
            v4: has_v4,
            v6: has_v6,
            dns64_prefix: None,
            ipv4only: Vec::new(),
            zones: &dns.zones,
            reverse_zones: &dns.reverse_zones,
            ptrs: &dns.ptrs,
            stubs: &[],
        };
        b.file(
            format!("{NODE_DIR}/unbound.conf"),
            0o644,
            render("unbound.conf", &conf),
        );
        let s = render("unbound.sh", &UnboundSh { node: name, title });
        b.part(
            "dns",
            "authoritative DNS (unbound)".into(),
            s,
            vec![process_probe("unbound"), listen_probe("DNS", 53, "udp")],
        );
    }
    // Recursive resolver, DNS64 when asked.
    if let Some(r) = &services.resolver {
        let title = if r.dns64_prefix.is_some() {
            "DNS64 resolver"
        } else {
            "DNS resolver"
        };
        let conf = UnboundConf {
            node: name,
            title,
            v4: has_v4,
            v6: has_v6,
            dns64_prefix: r.dns64_prefix,
            ipv4only: r
                .dns64_prefix
                .map(|p| IPV4ONLY_ARPA.map(|a| embed_v4(p, a)).to_vec())
                .unwrap_or_default(),
            zones: &[],
            reverse_zones: &[],
            ptrs: &[],
            stubs: &r.stubs,
        };
        b.file(
            format!("{NODE_DIR}/unbound.conf"),
            0o644,
            render("unbound.conf", &conf),
        );
        let s = render("unbound.sh", &UnboundSh { node: name, title });
        b.part(
            "resolver",
            format!("{title} (unbound)"),
            s,
            vec![process_probe("unbound"), listen_probe("DNS", 53, "udp")],
        );
    }
    // NAT64 translator.
    if let Some(n) = plan.nat64.as_ref().filter(|n| n.translator == name) {
        let ctx = Nat64Ctx {
            node: name,
            prefix: n.prefix,
            pool: n.pool,
            tayga_ipv4: n.tayga_ipv4,
            ipv4_interface: &n.ipv4_interface,
        };
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
    // 464XLAT's CLAT.
    if let Some(c) = &services.clat {
        let ctx = ClatCtx {
            node: name,
            interface: &c.interface,
            ipv6: c.ipv6,
            plat_prefix: c.plat_prefix,
            ipv4: c.ipv4,
            tayga_ipv4: c.tayga_ipv4,
            mtu: c.mtu,
        };
        b.file(
            format!("{NODE_DIR}/clat.conf"),
            0o644,
            render("clat.conf", &ctx),
        );
        b.part(
            "clat",
            format!("CLAT (tayga): IPv4 through {} to the PLAT", c.plat_prefix),
            render("clat.sh", &ctx),
            vec![
                process_probe("tayga"),
                probe("clat device up", "ip link show clat | grep -q UP"),
            ],
        );
    }
    if node.role == Role::Router {
        router_services(plan, node, &mut b);
    }
    // HTTP.
    if let Some(h) = &services.http {
        let s = render(
            "http.sh",
            &HttpSh {
                node: name,
                port: h.port,
                body: h.body.replace('\'', "'\\''"),
            },
        );
        b.part(
            "http",
            format!("HTTP server on port {}", h.port),
            s,
            vec![listen_probe("HTTP", h.port, "tcp")],
        );
    }
    // OSPFv3 and BGP (FRR).
    if services.ospf6.is_some() || services.bgp.is_some() {
        frr(node, &mut b);
    }
    // Switch: a bridge of every interface.
    if node.role == Role::Switch {
        let interfaces: Vec<&str> = node.interfaces.iter().map(|i| i.name.as_str()).collect();
        let s = render(
            "switch.sh",
            &SwitchSh {
                node: name,
                interfaces,
            },
        );
        b.part(
            "switch",
            "bridge br0 over every interface".into(),
            s,
            vec![probe("bridge br0 up", "ip link show br0 | grep -q UP")],
        );
    }
    // Firewall (nftables).
    if let Some(rules) = &services.firewall {
        let path = format!("{NODE_DIR}/firewall.nft");
        b.file(path.clone(), 0o644, rules.clone());
        let s = render(
            "firewall.sh",
            &FirewallSh {
                node: name,
                path: &path,
            },
        );
        b.part(
            "firewall",
            "nftables ruleset".into(),
            s,
            vec![probe("ruleset loaded", "nft list ruleset | grep -q table")],
        );
    }
    // Echo listeners for flow checks.
    if !services.flow_listeners.is_empty() {
        let listeners: Vec<ListenerCtx> = services
            .flow_listeners
            .iter()
            .map(|l| ListenerCtx {
                address: match (l.protocol.as_str(), l.ipv6) {
                    ("tcp", true) => format!("TCP6-LISTEN:{},ipv6-v6only=0", l.port),
                    ("tcp", false) => format!("TCP4-LISTEN:{}", l.port),
                    (_, true) => format!("UDP6-RECVFROM:{},ipv6-v6only=0", l.port),
                    (_, false) => format!("UDP4-RECVFROM:{}", l.port),
                },
            })
            .collect();
        let s = render(
            "listeners.sh",
            &ListenersSh {
                node: name,
                listeners,
            },
        );
        let probes = services
            .flow_listeners
            .iter()
            .map(|l| listen_probe("echo", l.port, &l.protocol))
            .collect();
        b.part(
            "listeners",
            "echo listeners for flow checks (socat)".into(),
            s,
            probes,
        );
    }
    // Trainer's files and commands.
    b.files.extend(services.files.iter().cloned());
    if !services.exec.is_empty() {
        let s = render(
            "exec.sh",
            &ExecSh {
                node: name,
                commands: &services.exec,
            },
        );
        b.part("exec", "commands from the topology".into(), s, vec![]);
    }
    b
}

/// FRR with OSPFv3 and/or BGP: one configuration, one part (`ospf6`, `bgp`, or `frr` for both).
fn frr(node: &NodePlan, b: &mut Rendered) {
    let name = node.name.as_str();
    let services = &node.services;
    let ospf6 = services.ospf6.as_ref().map(|o| FrrOspf6 {
        interfaces: &o.interfaces,
        area: &o.area,
        router_id: o.router_id,
    });
    let bgp = services.bgp.as_ref().map(|g| {
        let prefix_lines = g
            .prefix_lists
            .iter()
            .flat_map(|l| {
                l.entries.iter().map(|e| PrefixLine {
                    keyword: if e.prefix.addr().is_ipv6() {
                        "ipv6"
                    } else {
                        "ip"
                    },
                    name: &l.name,
                    seq: e.seq,
                    action: &e.action,
                    prefix: e.prefix,
                    le: e.le,
                })
            })
            .collect();
        let family = |v6: bool| BgpFamily {
            name: if v6 { "ipv6" } else { "ipv4" },
            networks: if v6 {
                g.networks6.iter().map(|n| n.to_string()).collect()
            } else {
                g.networks4.iter().map(|n| n.to_string()).collect()
            },
            neighbors: g
                .neighbors
                .iter()
                .filter(|n| n.address.is_ipv6() == v6)
                .collect(),
        };
        let families = [family(true), family(false)]
            .into_iter()
            .filter(|f| !f.networks.is_empty() || !f.neighbors.is_empty())
            .collect();
        FrrBgp {
            asn: g.asn,
            router_id: g.router_id,
            neighbors: &g.neighbors,
            families,
            prefix_lines,
        }
    });
    let conf = FrrConf {
        node: name,
        ospf6,
        bgp,
    };
    b.file("/etc/frr/frr.conf".into(), 0o640, render("frr.conf", &conf));
    b.file(
        "/etc/frr/daemons".into(),
        0o640,
        render(
            "frr-daemons",
            &FrrDaemons {
                ospf6d: services.ospf6.is_some(),
                bgpd: services.bgp.is_some(),
            },
        ),
    );
    b.file(
        "/etc/frr/vtysh.conf".into(),
        0o640,
        "service integrated-vtysh-config\n".into(),
    );
    let (id, protocols, title, mut probes) = match (&services.ospf6, &services.bgp) {
        (Some(o), None) => (
            "ospf6",
            "OSPFv3",
            format!("OSPFv3 (FRR), router ID {}", o.router_id),
            vec![process_probe("ospf6d")],
        ),
        (None, Some(g)) => (
            "bgp",
            "BGP",
            format!("BGP (FRR), AS {}, router ID {}", g.asn, g.router_id),
            vec![process_probe("bgpd")],
        ),
        (Some(o), Some(g)) => (
            "frr",
            "OSPFv3 and BGP",
            format!(
                "OSPFv3 and BGP (FRR), AS {}, router IDs {} and {}",
                g.asn, o.router_id, g.router_id
            ),
            vec![process_probe("ospf6d"), process_probe("bgpd")],
        ),
        (None, None) => return,
    };
    probes.push(process_probe("zebra"));
    let s = render(
        "frr.sh",
        &FrrSh {
            node: name,
            protocols,
        },
    );
    b.part(id, title, s, probes);
}

/// A router's Router Advertisements, and its DHCP server on the segments where it is the first
/// router.
fn router_services(plan: &Plan, node: &NodePlan, b: &mut Rendered) {
    let name = node.name.as_str();
    let seg_of = |s: &str| plan.segment(s).expect("an interface's segment is planned");
    let ra_ifaces: Vec<RaInterface> = node
        .interfaces
        .iter()
        .filter_map(|i| {
            let seg = seg_of(&i.segment);
            let prefix = seg.ipv6?;
            (seg.ra != RaMode::None).then_some(RaInterface {
                name: &i.name,
                mtu: seg.mtu,
                ra: seg.ra,
                prefix,
                rdnss: &seg.rdnss,
            })
        })
        .collect();
    if !ra_ifaces.is_empty() {
        let names = ra_ifaces.iter().map(|i| i.name).collect();
        b.file(
            format!("{NODE_DIR}/radvd.conf"),
            0o644,
            render(
                "radvd.conf",
                &RadvdConf {
                    node: name,
                    interfaces: ra_ifaces,
                },
            ),
        );
        let s = render(
            "radvd.sh",
            &RadvdSh {
                node: name,
                interfaces: names,
            },
        );
        b.part(
            "radvd",
            "Router Advertisements (radvd)".into(),
            s,
            vec![process_probe("radvd")],
        );
    }
    // PREF64 on the NAT64 segments it advertises on.
    if let Some(n) = plan.nat64.as_ref().filter(|n| n.pref64) {
        let interfaces: Vec<Pref64Interface> = node
            .interfaces
            .iter()
            .filter_map(|i| {
                let seg = seg_of(&i.segment);
                (seg.nat64 && seg.ipv6.is_some() && seg.ra != RaMode::None).then(|| {
                    Pref64Interface {
                        name: &i.name,
                        bytes: octal(&pref64_ra(seg.ra, n.prefix)),
                    }
                })
            })
            .collect();
        if !interfaces.is_empty() {
            let names: Vec<&str> = interfaces.iter().map(|i| i.name).collect();
            let plc = pref64_plc(n.prefix.prefix_len());
            b.file(
                format!("{NODE_DIR}/pref64-send.sh"),
                0o755,
                render(
                    "pref64-send.sh",
                    &Pref64Send {
                        node: name,
                        prefix: n.prefix,
                        router_lifetime: RA_ROUTER_LIFETIME,
                        lifetime: PREF64_LIFETIME,
                        plc,
                        interfaces,
                    },
                ),
            );
            b.part(
                "pref64",
                format!(
                    "NAT64 prefix {} in Router Advertisements (PREF64)",
                    n.prefix
                ),
                render(
                    "pref64.sh",
                    &Pref64Sh {
                        node: name,
                        prefix: n.prefix,
                        interfaces: names,
                    },
                ),
                vec![probe(
                    "PREF64 sender running",
                    "pgrep -f /etc/v6lab/pref64-send.sh >/dev/null",
                )],
            );
        }
    }
    // The first router of each segment serves DHCP there.
    let dhcp_server = |seg: &str| -> Option<&str> {
        plan.nodes
            .iter()
            .find(|n| n.role == Role::Router && n.interfaces.iter().any(|i| i.segment == seg))
            .map(|n| n.name.as_str())
    };
    // The lab's resolvers (else its authoritative servers) that have IPv4.
    let dns4 = {
        let pick = |resolver: bool| -> Vec<Ipv4Addr> {
            plan.nodes
                .iter()
                .filter(|n| {
                    if resolver {
                        n.services.resolver.is_some()
                    } else {
                        n.services.dns.is_some()
                    }
                })
                .filter_map(|n| n.first_v4())
                .collect()
        };
        match pick(true) {
            v if v.is_empty() => pick(false),
            v => v,
        }
    };
    let mut scopes = Vec::new();
    for i in &node.interfaces {
        let seg = seg_of(&i.segment);
        if dhcp_server(&seg.name) != Some(name) {
            continue;
        }
        if let (Some(prefix), true) = (
            seg.ipv6,
            matches!(seg.ra, RaMode::Dhcpv6Stateful | RaMode::Dhcpv6Stateless),
        ) {
            let base = u128::from(prefix.network());
            scopes.push(DhcpScope::Ipv6 {
                iface: &i.name,
                stateful: seg.ra == RaMode::Dhcpv6Stateful,
                first: Ipv6Addr::from(base + 0x1000),
                last: Ipv6Addr::from(base + 0x1fff),
                dns: &seg.rdnss,
            });
        }
        let wants_dhcp4 = plan.nodes.iter().any(|o| {
            o.interfaces
                .iter()
                .any(|oi| oi.segment == seg.name && matches!(oi.ipv4, Assign4::Dhcp { .. }))
        });
        if let (Some(prefix), true, Some(router)) = (seg.ipv4, wants_dhcp4, i.ipv4.address()) {
            let base = u32::from(prefix.network());
            let size = 1u32 << (32 - prefix.prefix_len());
            scopes.push(DhcpScope::Ipv4 {
                iface: &i.name,
                router,
                first: Ipv4Addr::from(base + size / 2),
                last: Ipv4Addr::from(base + size - 2),
                dns: &dns4,
            });
        }
    }
    if !scopes.is_empty() {
        b.file(
            format!("{NODE_DIR}/dnsmasq.conf"),
            0o644,
            render("dnsmasq.conf", &DnsmasqConf { node: name, scopes }),
        );
        let s = render("dnsmasq.sh", &NodeSh { node: name });
        b.part(
            "dhcp",
            "DHCP server (dnsmasq)".into(),
            s,
            vec![process_probe("dnsmasq")],
        );
    }
}

/// radvd's router lifetime (3 x MaxRtrAdvInterval in radvd.conf): RAs carrying PREF64 repeat it,
/// so they neither add nor withdraw a default router.
const RA_ROUTER_LIFETIME: u16 = 30;
/// Lifetime of the PREF64 option, seconds (a multiple of 8, at least 3 x the RA interval).
const PREF64_LIFETIME: u16 = 600;
/// ipv4only.arpa's IPv4 addresses (RFC 7050), embedded in the NAT64 prefix by DNS64.
const IPV4ONLY_ARPA: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 0, 170), Ipv4Addr::new(192, 0, 0, 171)];

/// RFC 8781's prefix length code.
fn pref64_plc(len: u8) -> u8 {
    match len {
        64 => 1,
        56 => 2,
        48 => 3,
        40 => 4,
        32 => 5,
        _ => 0,
    }
}

/// A Router Advertisement (ICMPv6, checksum left to the kernel) with the segment's M and O
/// flags, radvd's router lifetime and one PREF64 option.
pub fn pref64_ra(ra: RaMode, prefix: Ipv6Net) -> Vec<u8> {
    let flags = match ra {
        RaMode::Dhcpv6Stateful => 0xc0,
        RaMode::Dhcpv6Stateless => 0x40,
        _ => 0,
    };
    let mut m = vec![134, 0, 0, 0, 0, flags];
    m.extend(RA_ROUTER_LIFETIME.to_be_bytes());
    m.extend([0; 8]);
    let scaled = (PREF64_LIFETIME / 8) << 3 | u16::from(pref64_plc(prefix.prefix_len()));
    m.extend([38, 2]);
    m.extend(scaled.to_be_bytes());
    m.extend(&prefix.network().octets()[..12]);
    m
}

/// Bytes as octal escapes for the shell's `printf`.
fn octal(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:03o}")).collect()
}

/// `up.sh`: runs the node's parts in order, except those left to the student (listed as
/// comments). Rendered once the exercises have marked them.
pub fn up_script(node: &NodePlan) -> FilePlan {
    FilePlan {
        path: UP_SCRIPT.into(),
        mode: 0o755,
        content: render(
            "up.sh",
            &UpSh {
                node: &node.name,
                parts: &node.parts,
            },
        ),
    }
}

// The context of each template: its fields are the template's variables.

/// `addr.sh`.
#[derive(Serialize)]
struct AddrSh<'a> {
    title: &'a str,
    family: AddrFamily,
    mode: AddrMode,
    /// With its prefix length; for static addresses only.
    address: Option<String>,
    iface: &'a str,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
enum AddrFamily {
    Ipv6,
    Ipv4,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
enum AddrMode {
    Static,
    Dhcpv6,
    Dhcp,
    Disabled,
}

/// `routes.sh`.
#[derive(Serialize)]
struct RoutesSh<'a> {
    node: &'a str,
    routes: &'a [RoutePlan],
}

/// `resolv.sh`.
#[derive(Serialize)]
struct ResolvSh<'a> {
    node: &'a str,
    resolvers: &'a [IpAddr],
}

/// `unbound.conf`: authoritative zones, or a resolver (DNS64 when it has a prefix) with stub
/// zones.
#[derive(Serialize)]
struct UnboundConf<'a> {
    node: &'a str,
    title: &'a str,
    v4: bool,
    v6: bool,
    dns64_prefix: Option<Ipv6Net>,
    /// AAAA records of ipv4only.arpa (with DNS64).
    ipv4only: Vec<Ipv6Addr>,
    zones: &'a [ZonePlan],
    reverse_zones: &'a [String],
    ptrs: &'a [PtrPlan],
    stubs: &'a [StubZonePlan],
}

/// `unbound.sh`.
#[derive(Serialize)]
struct UnboundSh<'a> {
    node: &'a str,
    title: &'a str,
}

/// `tayga.conf` and `nat64.sh`.
#[derive(Serialize)]
struct Nat64Ctx<'a> {
    node: &'a str,
    prefix: Ipv6Net,
    pool: Ipv4Net,
    tayga_ipv4: Ipv4Addr,
    ipv4_interface: &'a str,
}

/// `clat.conf` and `clat.sh`.
#[derive(Serialize)]
struct ClatCtx<'a> {
    node: &'a str,
    interface: &'a str,
    ipv6: Ipv6Addr,
    plat_prefix: Ipv6Net,
    ipv4: Ipv4Addr,
    tayga_ipv4: Ipv4Addr,
    mtu: u32,
}

/// `pref64.sh`.
#[derive(Serialize)]
struct Pref64Sh<'a> {
    node: &'a str,
    prefix: Ipv6Net,
    interfaces: Vec<&'a str>,
}

/// `pref64-send.sh`.
#[derive(Serialize)]
struct Pref64Send<'a> {
    node: &'a str,
    prefix: Ipv6Net,
    router_lifetime: u16,
    lifetime: u16,
    plc: u8,
    interfaces: Vec<Pref64Interface<'a>>,
}

#[derive(Serialize)]
struct Pref64Interface<'a> {
    name: &'a str,
    /// The RA as `printf` octal escapes.
    bytes: String,
}

/// `radvd.conf`.
#[derive(Serialize)]
struct RadvdConf<'a> {
    node: &'a str,
    interfaces: Vec<RaInterface<'a>>,
}

#[derive(Serialize)]
struct RaInterface<'a> {
    name: &'a str,
    mtu: u32,
    ra: RaMode,
    prefix: Ipv6Net,
    rdnss: &'a [Ipv6Addr],
}

/// `radvd.sh`: the advertising interfaces.
#[derive(Serialize)]
struct RadvdSh<'a> {
    node: &'a str,
    interfaces: Vec<&'a str>,
}

/// `dnsmasq.conf`.
#[derive(Serialize)]
struct DnsmasqConf<'a> {
    node: &'a str,
    scopes: Vec<DhcpScope<'a>>,
}

/// A DHCP range on one interface.
#[derive(Serialize)]
#[serde(tag = "family", rename_all = "lowercase")]
enum DhcpScope<'a> {
    Ipv6 {
        iface: &'a str,
        /// Addresses from DHCPv6 (else only other configuration, beside SLAAC).
        stateful: bool,
        first: Ipv6Addr,
        last: Ipv6Addr,
        dns: &'a [Ipv6Addr],
    },
    Ipv4 {
        iface: &'a str,
        router: Ipv4Addr,
        first: Ipv4Addr,
        last: Ipv4Addr,
        dns: &'a [Ipv4Addr],
    },
}

/// `http.sh`.
#[derive(Serialize)]
struct HttpSh<'a> {
    node: &'a str,
    port: u16,
    /// Quoted for a single-quoted shell string.
    body: String,
}

/// `frr.conf`: OSPFv3, BGP, or both.
#[derive(Serialize)]
struct FrrConf<'a> {
    node: &'a str,
    ospf6: Option<FrrOspf6<'a>>,
    bgp: Option<FrrBgp<'a>>,
}

#[derive(Serialize)]
struct FrrOspf6<'a> {
    interfaces: &'a [Ospf6InterfacePlan],
    area: &'a str,
    router_id: Ipv4Addr,
}

#[derive(Serialize)]
struct FrrBgp<'a> {
    asn: u32,
    router_id: Ipv4Addr,
    neighbors: &'a [BgpNeighborPlan],
    /// The address families with networks or sessions.
    families: Vec<BgpFamily<'a>>,
    prefix_lines: Vec<PrefixLine<'a>>,
}

#[derive(Serialize)]
struct BgpFamily<'a> {
    /// `ipv6` or `ipv4`.
    name: &'static str,
    networks: Vec<String>,
    neighbors: Vec<&'a BgpNeighborPlan>,
}

/// One line of a prefix list (`ipv6 prefix-list` or `ip prefix-list`).
#[derive(Serialize)]
struct PrefixLine<'a> {
    keyword: &'static str,
    name: &'a str,
    seq: u32,
    action: &'a str,
    prefix: ipnet::IpNet,
    le: Option<u8>,
}

/// `frr-daemons`: the daemons that run.
#[derive(Serialize)]
struct FrrDaemons {
    ospf6d: bool,
    bgpd: bool,
}

/// `frr.sh`.
#[derive(Serialize)]
struct FrrSh<'a> {
    node: &'a str,
    /// For people: `OSPFv3`, `BGP`.
    protocols: &'a str,
}

/// `firewall.sh`.
#[derive(Serialize)]
struct FirewallSh<'a> {
    node: &'a str,
    path: &'a str,
}

/// `switch.sh`.
#[derive(Serialize)]
struct SwitchSh<'a> {
    node: &'a str,
    interfaces: Vec<&'a str>,
}

/// `listeners.sh`.
#[derive(Serialize)]
struct ListenersSh<'a> {
    node: &'a str,
    listeners: Vec<ListenerCtx>,
}

#[derive(Serialize)]
struct ListenerCtx {
    /// socat's listening address, e.g. `TCP6-LISTEN:22,ipv6-v6only=0`.
    address: String,
}

/// Scripts that name only their node: `dnsmasq.sh`.
#[derive(Serialize)]
struct NodeSh<'a> {
    node: &'a str,
}

/// `exec.sh`.
#[derive(Serialize)]
struct ExecSh<'a> {
    node: &'a str,
    commands: &'a [String],
}

/// `up.sh`: each part's `id`, `script` and `student`.
#[derive(Serialize)]
struct UpSh<'a> {
    node: &'a str,
    parts: &'a [PartPlan],
}

#[cfg(test)]
mod tests {
    //! Every variable a template uses is a field of the context it is rendered with: a field
    //! renamed in Rust (or a variable renamed in a template) fails here. The contexts are those
    //! rendered for topologies that use every template and every list in them.

    use regex::Regex;
    use serde::Serialize;
    use serde_json::Value;
    use std::cell::RefCell;
    use std::collections::HashMap;

    thread_local! {
        static SEEN: RefCell<Vec<(String, Value)>> = const { RefCell::new(Vec::new()) };
    }

    /// Keeps each context rendered on this thread, by template.
    pub(super) fn seen<T: Serialize>(name: &str, ctx: &T) {
        let v = serde_json::to_value(ctx).expect("context serializes");
        SEEN.with(|s| s.borrow_mut().push((name.to_owned(), v)));
    }

    /// The variable paths a template reads (`scopes`, `s.dns`, ...), and what each loop variable
    /// iterates over.
    fn variables(template: &str) -> (Vec<Vec<String>>, HashMap<String, Vec<String>>) {
        let tag = Regex::new(r"(?s)\{\{(.*?)\}\}|\{%-?(.*?)-?%\}").unwrap();
        let string = Regex::new(r#""[^"]*""#).unwrap();
        let word = Regex::new(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*").unwrap();
        let for_loop = Regex::new(r"^\s*for\s+(\w+)\s+in\s+([\w.]+)").unwrap();
        const KEYWORDS: [&str; 12] = [
            "if", "elif", "else", "endif", "for", "endfor", "in", "and", "or", "not", "is", "loop",
        ];
        let mut used = Vec::new();
        let mut loops = HashMap::new();
        for c in tag.captures_iter(template) {
            let body = c.get(1).or(c.get(2)).unwrap().as_str();
            // Filters and their arguments are not variables.
            let body = body.split('|').next().unwrap();
            let body = string.replace_all(body, "");
            if let Some(l) = for_loop.captures(&body) {
                let path = l[2].split('.').map(str::to_owned).collect();
                loops.insert(l[1].to_owned(), path);
            }
            for w in word.find_iter(&body) {
                let path: Vec<String> = w.as_str().split('.').map(str::to_owned).collect();
                if !KEYWORDS.contains(&path[0].as_str()) {
                    used.push(path);
                }
            }
        }
        // A loop variable's own binding is not a use.
        used.retain(|p| !(p.len() == 1 && loops.contains_key(&p[0])));
        (used, loops)
    }

    /// The values `path` reaches in `ctx`, through loop variables.
    fn reach(ctx: &Value, path: &[String], loops: &HashMap<String, Vec<String>>) -> Vec<Value> {
        let mut now: Vec<Value> = match loops.get(&path[0]) {
            Some(over) => reach(ctx, over, loops)
                .into_iter()
                .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                .collect(),
            None => ctx.get(&path[0]).cloned().into_iter().collect(),
        };
        for field in &path[1..] {
            now = now.iter().filter_map(|v| v.get(field).cloned()).collect();
        }
        now
    }

    #[test]
    fn every_template_variable_is_a_field_of_its_context() {
        for (file, text) in [
            (
                "every-feature.yaml",
                include_str!("../tests/every-feature.yaml"),
            ),
            (
                "nat64-dns64.yaml",
                include_str!("../../../topologies/nat64-dns64.yaml"),
            ),
            (
                "ipv6-only-464xlat.yaml",
                include_str!("../../../topologies/ipv6-only-464xlat.yaml"),
            ),
            ("bgp.yaml", include_str!("../../../topologies/bgp.yaml")),
            (
                "firewall.yaml",
                include_str!("../../../topologies/firewall.yaml"),
            ),
            (
                "ra-guard.yaml",
                include_str!("../../../topologies/ra-guard.yaml"),
            ),
        ] {
            if let Err((s, d)) = crate::plan_source(file, text.as_bytes()) {
                panic!("{}", d.render(&s.text));
            }
        }
        let seen = SEEN.with(|s| s.take());
        let mut problems = Vec::new();
        for (name, body) in super::TEMPLATES {
            let contexts: Vec<&Value> = seen
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v)
                .collect();
            if contexts.is_empty() {
                problems.push(format!("{name}: never rendered by the sample topologies"));
                continue;
            }
            let (used, loops) = variables(body);
            for path in used {
                if !contexts.iter().any(|c| !reach(c, &path, &loops).is_empty()) {
                    problems.push(format!(
                        "{name}: `{}` is not a field of its context (or no sample has it)",
                        path.join(".")
                    ));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn a_missing_field_is_found() {
        let (used, loops) = variables(
            "{% for s in scopes -%}{{ s.iface }}{% if s.dns %}{{ s.dns | join(sep=\",\") }}{% endif %}{% endfor %}{{ title }}",
        );
        let ctx = serde_json::json!({"scopes": [{"iface": "eth1"}], "title": "t"});
        let missing: Vec<String> = used
            .iter()
            .filter(|p| reach(&ctx, p, &loops).is_empty())
            .map(|p| p.join("."))
            .collect();
        assert_eq!(missing, ["s.dns", "s.dns"]);
    }
}
