//! Exercises and their checks, with every reference resolved to addresses and prefixes.

use super::routing::router_id;
use super::{
    Assign6, CheckKind, CheckPlan, DEFAULT_CHECK_TIMEOUT_SECS, ExercisePlan, Nat64Plan, NodePlan,
    Plan, Planner, SegmentPlan, SolutionPlan,
};
use crate::diagnostic::Diagnostic;
use crate::sp::{Loc, Sp};
use crate::structure::did_you_mean;
use crate::topology::{self as t, IpFamily};
use crate::values;
use ipnet::{IpNet, Ipv6Net};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

impl Planner<'_> {
    /// Plans the exercises of a plan whose nodes have their parts: marks the parts each leaves
    /// to the student and resolves its checks.
    pub(crate) fn plan_exercises(&mut self, plan: &mut Plan) {
        plan.exercises = self.exercises(&mut plan.nodes, &plan.segments, plan.nat64.as_ref());
    }

    fn exercises(
        &mut self,
        nodes: &mut [NodePlan],
        segments: &[SegmentPlan],
        nat64: Option<&Nat64Plan>,
    ) -> Vec<ExercisePlan> {
        let topo = self.topo;
        let mut out = Vec::new();
        let mut ids: HashMap<&str, Loc> = HashMap::new();
        for ex in &topo.exercises {
            if let Some(problem) = values::dns_label_problem(&ex.id, 40) {
                self.err(
                    ex.id.loc,
                    format!("exercise id `{}` is not valid: {problem}", ex.id.value),
                    format!("use e.g. `{}`", values::dns_safe(&ex.id)),
                );
            }
            if let Some(prev) = ids.insert(ex.id.as_str(), ex.id.loc) {
                self.diags.push(
                    Diagnostic::new(
                        ex.id.loc,
                        format!("exercise `{}` is declared twice", ex.id.value),
                    )
                    .related(prev, "first declared here")
                    .hint("give each exercise its own id"),
                );
            }
            let mut student = Vec::new();
            for s in &ex.student {
                let Some((node, part)) = s.split_once('/') else {
                    self.err(
                        s.loc,
                        format!("`{}` is not a part reference", s.value),
                        "write `NODE/PART`, e.g. `r1/radvd` or `h1/eth1.ipv6`",
                    );
                    continue;
                };
                let Some(ni) = self.node_ref(&Sp::new(node.to_owned(), s.loc)) else {
                    continue;
                };
                let n = &mut nodes[ni];
                match n.parts.iter_mut().find(|p| p.id == part) {
                    Some(p) => {
                        if let Some(other) = &p.student
                            && other != &ex.id.value
                        {
                            self.err(
                                s.loc,
                                format!(
                                    "`{}` is already left to the student by exercise `{other}`",
                                    s.value
                                ),
                                "leave each part to one exercise",
                            );
                            continue;
                        }
                        p.student = Some(ex.id.value.clone());
                        student.push(s.value.clone());
                    }
                    None => {
                        let known: Vec<&str> = n.parts.iter().map(|p| p.id.as_str()).collect();
                        let hint = match did_you_mean(part, &known) {
                            Some(k) => format!("did you mean `{node}/{k}`?"),
                            None => format!("parts of `{node}`: {}", known.join(", ")),
                        };
                        self.err(s.loc, format!("node `{node}` has no part `{part}`"), hint);
                    }
                }
            }
            if ex.checks.is_empty() {
                self.err(
                    ex.id.loc,
                    format!("exercise `{}` has no checks", ex.id.value),
                    "add at least one check that proves the student's work",
                );
            }
            let mut checks = Vec::new();
            for c in &ex.checks {
                if let Some(cp) = self.plan_check(c, nodes, segments, nat64) {
                    checks.push(cp);
                }
            }
            let mut solution = Vec::new();
            for st in &ex.solution {
                if self.node_ref(&st.node).is_some() {
                    solution.push(SolutionPlan {
                        node: st.node.value.clone(),
                        run: st.run.value.clone(),
                    });
                }
            }
            if ex.solution.is_empty() && ex.student.is_empty() && !ex.passes_initially {
                self.err(
                    ex.id.loc,
                    format!("exercise `{}` has no solution and leaves nothing to the student", ex.id.value),
                    "list the parts left to the student under `student:`, write a `solution:`, or set `passes-initially: true`",
                );
            }
            out.push(ExercisePlan {
                id: ex.id.value.clone(),
                title: ex.title.clone(),
                instructions: ex.instructions.clone().unwrap_or_default(),
                student,
                passes_initially: ex.passes_initially,
                checks,
                solution,
            });
        }
        out
    }

    pub(super) fn plan_check(
        &mut self,
        c: &t::Check,
        nodes: &[NodePlan],
        segments: &[SegmentPlan],
        nat64: Option<&Nat64Plan>,
    ) -> Option<CheckPlan> {
        let ni = self.node_ref(&c.node);
        let kinds: Vec<(&str, bool)> = vec![
            ("command", c.command.is_some()),
            ("slaac", c.slaac.is_some()),
            ("dhcpv6", c.dhcpv6.is_some()),
            ("default-route", c.default_route.is_some()),
            ("only-router", c.only_router.is_some()),
            ("ping", c.ping.is_some()),
            ("dns", c.dns.is_some()),
            ("http", c.http.is_some()),
            ("route", c.route.is_some()),
            ("daemon", c.daemon.is_some()),
            ("ospf6-neighbor", c.ospf6_neighbor.is_some()),
            ("bgp-session", c.bgp_session.is_some()),
            ("pref64", c.pref64.is_some()),
            ("path-mtu", c.path_mtu.is_some()),
            ("bgp-received", c.bgp_received.is_some()),
            ("bgp-advertised", c.bgp_advertised.is_some()),
            ("flow", c.flow.is_some()),
        ];
        let present: Vec<&str> = kinds.iter().filter(|(_, p)| *p).map(|(k, _)| *k).collect();
        let all: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
        if present.len() != 1 {
            let msg = if present.is_empty() {
                "this check says nothing to check".to_string()
            } else {
                format!(
                    "this check has {} kinds ({}); a check has exactly one",
                    present.len(),
                    present.join(", ")
                )
            };
            self.err(
                c.node.loc,
                msg,
                format!(
                    "use one of: {}; split it into several checks",
                    all.join(", ")
                ),
            );
            return None;
        }
        if present[0] != "command"
            && (c.exit.is_some() || c.stdout.is_some() || c.stderr.is_some() || c.json.is_some())
        {
            self.err(
                c.node.loc,
                format!(
                    "`exit`, `stdout`, `stderr` and `json` belong to `command` checks, not `{}`",
                    present[0]
                ),
                "remove them, or write a `command` check",
            );
        }
        let timeout_secs = match &c.timeout {
            Some(tmo) => match values::parse_duration(tmo) {
                Ok(s) => s,
                Err(e) => {
                    self.err(
                        tmo.loc,
                        format!("`{}` is not a duration: {e}", tmo.value),
                        "write e.g. `10s`",
                    );
                    DEFAULT_CHECK_TIMEOUT_SECS
                }
            },
            None => DEFAULT_CHECK_TIMEOUT_SECS,
        };
        let prefix6 = |me: &mut Self, s: &Sp<String>| -> Option<Ipv6Net> {
            if let Ok(n) = s.parse::<Ipv6Net>() {
                return Some(n.trunc());
            }
            let si = me.segment_ref(s)?;
            match segments[si].ipv6 {
                Some(p) => Some(p),
                None => {
                    me.err(
                        s.loc,
                        format!("segment `{}` has no IPv6 prefix", s.value),
                        "check an IPv6 segment",
                    );
                    None
                }
            }
        };
        let (kind, title) = if let Some(cmd) = &c.command {
            let exit = c.exit.unwrap_or(0);
            if let Some(r) = c
                .stdout
                .as_ref()
                .and_then(|m| m.regex.as_ref())
                .or(c.stderr.as_ref().and_then(|m| m.regex.as_ref()))
            {
                let _ = r;
            }
            (
                CheckKind::Command {
                    command: cmd.value.clone(),
                    exit,
                    stdout_contains: c.stdout.as_ref().and_then(|m| m.contains.clone()),
                    stdout_regex: c
                        .stdout
                        .as_ref()
                        .and_then(|m| m.regex.as_ref().map(|r| r.value.clone())),
                    stderr_contains: c.stderr.as_ref().and_then(|m| m.contains.clone()),
                    stderr_regex: c
                        .stderr
                        .as_ref()
                        .and_then(|m| m.regex.as_ref().map(|r| r.value.clone())),
                    json_query: c.json.as_ref().map(|j| j.query.value.clone()),
                    json_equals: c.json.as_ref().and_then(|j| j.equals.clone()),
                    json_contains: c.json.as_ref().and_then(|j| j.contains.clone()),
                },
                format!("`{}` succeeds", cmd.value),
            )
        } else if let Some(s) = &c.slaac {
            let p = prefix6(self, s)?;
            (
                CheckKind::Slaac { prefix: p },
                format!("has a SLAAC address in {p}"),
            )
        } else if let Some(s) = &c.dhcpv6 {
            let p = prefix6(self, s)?;
            (
                CheckKind::Dhcpv6 { prefix: p },
                format!("has a DHCPv6 address in {p}"),
            )
        } else if let Some(r) = &c.default_route {
            let ri = self.node_ref(r)?;
            let me = &nodes[ni?];
            let ll = me.interfaces.iter().find_map(|i| {
                nodes[ri]
                    .interfaces
                    .iter()
                    .find(|o| o.segment == i.segment)
                    .and_then(|o| o.link_local)
            });
            match ll {
                Some(via) => (
                    CheckKind::DefaultRoute {
                        via,
                        router: r.value.clone(),
                    },
                    format!("default route via {} ({via})", r.value),
                ),
                None => {
                    self.err(
                        r.loc,
                        format!("`{}` shares no IPv6 segment with `{}`", r.value, me.name),
                        "name a router on one of this node's segments",
                    );
                    return None;
                }
            }
        } else if let Some(r) = &c.only_router {
            // The router may be behind a switch: any of its link-local addresses.
            let ri = self.node_ref(r)?;
            let via: Vec<Ipv6Addr> = nodes[ri]
                .interfaces
                .iter()
                .filter_map(|i| i.link_local)
                .collect();
            if via.is_empty() {
                self.err(
                    r.loc,
                    format!("`{}` has no IPv6 interface", r.value),
                    "name a router with an interface on an IPv6 segment",
                );
                return None;
            }
            (
                CheckKind::OnlyRouter {
                    via,
                    router: r.value.clone(),
                },
                format!("only default router is {}", r.value),
            )
        } else if let Some(p) = &c.ping {
            let (to, fam, count, size, df) = match p {
                t::PingDef::Target(to) => (to, None, None, None, false),
                t::PingDef::Full(p) => (
                    &p.to,
                    p.family.as_ref().map(|f| f.value),
                    p.count,
                    p.size,
                    p.dont_fragment,
                ),
            };
            let family = fam.unwrap_or(if to.parse::<Ipv4Addr>().is_ok() {
                IpFamily::Ipv4
            } else {
                IpFamily::Ipv6
            });
            let target = self.target_address(to, family, nodes)?;
            (
                CheckKind::Ping {
                    target: target.clone(),
                    family,
                    count: count.unwrap_or(1),
                    size,
                    dont_fragment: df,
                },
                format!(
                    "ping {} reaches {target}",
                    if family == IpFamily::Ipv6 { "-6" } else { "-4" }
                ),
            )
        } else if let Some(d) = &c.dns {
            let rtype = d
                .rtype
                .as_ref()
                .map(|r| r.value.to_ascii_uppercase())
                .unwrap_or_else(|| "AAAA".into());
            if !["A", "AAAA", "PTR"].contains(&rtype.as_str()) {
                let loc = d.rtype.as_ref().map(|r| r.loc).unwrap_or(d.name.loc);
                self.err(
                    loc,
                    format!("`{rtype}` is not a record type checks know"),
                    "use A, AAAA or PTR",
                );
            }
            let server = match &d.server {
                Some(s) => match s.parse::<IpAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        let si = self.node_ref(s)?;
                        nodes[si]
                            .interfaces
                            .iter()
                            .find_map(|i| match i.ipv6 {
                                Assign6::Static { address } => Some(IpAddr::V6(address.addr())),
                                _ => None,
                            })
                            .or(nodes[si].first_v4().map(IpAddr::V4))
                    }
                },
                None => None,
            };
            let within = match &d.within {
                Some(w) if w.value == "nat64" => match nat64 {
                    Some(n) => Some(IpNet::V6(n.prefix)),
                    None => {
                        self.err(
                            w.loc,
                            "this lab has no NAT64",
                            "remove `within: nat64` or add a `nat64:` section",
                        );
                        None
                    }
                },
                Some(w) => match w.parse::<IpNet>() {
                    Ok(n) => Some(n.trunc()),
                    Err(_) => match self.seg_index.get(w.as_str()) {
                        Some(&si) => segments[si]
                            .ipv6
                            .map(IpNet::V6)
                            .or(segments[si].ipv4.map(IpNet::V4)),
                        None => {
                            self.err(
                                w.loc,
                                format!("`{}` is not a prefix, segment or `nat64`", w.value),
                                "write e.g. `2001:db8:64::/96` or `nat64`",
                            );
                            None
                        }
                    },
                },
                None => None,
            };
            (
                CheckKind::Dns {
                    name: d.name.value.clone(),
                    rtype: rtype.clone(),
                    server,
                    within,
                    contains: d.contains.clone(),
                },
                format!("DNS {rtype} of {} answers", d.name.value),
            )
        } else if let Some(h) = &c.http {
            let url = if h.url.contains("://") {
                h.url.value.clone()
            } else {
                let ti = self.node_ref(&h.url)?;
                let fam = h.family.as_ref().map(|f| f.value).unwrap_or(IpFamily::Ipv6);
                let port = self.topo.nodes.0[ti]
                    .1
                    .services
                    .as_ref()
                    .and_then(|s| s.http.as_ref())
                    .and_then(|h| h.port.as_ref())
                    .map(|p| p.value)
                    .unwrap_or(80);
                let a = self.target_address(&h.url, fam, nodes)?;
                match fam {
                    IpFamily::Ipv6 => format!("http://[{a}]:{port}/"),
                    IpFamily::Ipv4 => format!("http://{a}:{port}/"),
                }
            };
            (
                CheckKind::Http {
                    url: url.clone(),
                    family: h.family.as_ref().map(|f| f.value),
                    contains: h.contains.clone(),
                },
                format!("HTTP GET {url} answers"),
            )
        } else if let Some(r) = &c.route {
            let prefix = match r.parse::<IpNet>() {
                Ok(n) => n.trunc(),
                Err(_) => {
                    let si = self.segment_ref(r)?;
                    segments[si]
                        .ipv6
                        .map(IpNet::V6)
                        .or(segments[si].ipv4.map(IpNet::V4))?
                }
            };
            (
                CheckKind::Route { prefix },
                format!("route to {prefix} present"),
            )
        } else if let Some(d) = &c.daemon {
            (
                CheckKind::Daemon {
                    process: d.value.clone(),
                },
                format!("{} is running", d.value),
            )
        } else if let Some(n) = &c.ospf6_neighbor {
            let oi = self.node_ref(n)?;
            let rid = router_id(self.topo, oi);
            match rid {
                Some(router_id) => (
                    CheckKind::Ospf6Neighbor {
                        router_id,
                        neighbor: n.value.clone(),
                    },
                    format!("OSPFv3 neighbour {} is Full", n.value),
                ),
                None => {
                    self.err(
                        n.loc,
                        format!("node `{}` does not run OSPFv3", n.value),
                        "add `ospf6:` to that node",
                    );
                    return None;
                }
            }
        } else if let Some(b) = &c.bgp_session {
            let (name, family) = match b {
                t::BgpSessionDef::Peer(p) => (p, IpFamily::Ipv6),
                t::BgpSessionDef::Full(f) => (
                    &f.peer,
                    f.family.as_ref().map(|x| x.value).unwrap_or(IpFamily::Ipv6),
                ),
            };
            let peer = self.bgp_peer(ni, name, family, nodes)?;
            (
                CheckKind::BgpSession { peer },
                format!("BGP session with {} ({peer}) is Established", name.value),
            )
        } else if let Some(src) = &c.pref64 {
            let Some(n) = nat64 else {
                self.err(
                    src.loc,
                    "this lab has no NAT64 prefix to learn",
                    "add a `nat64:` section, or remove the check",
                );
                return None;
            };
            if src.value == t::Pref64Source::Ra && !n.pref64 {
                self.err(
                    src.loc,
                    "the lab's Router Advertisements carry no PREF64",
                    "add `pref64: true` to the `nat64:` section, or check `pref64: dns`",
                );
            }
            let how = match src.value {
                t::Pref64Source::Ra => "from a Router Advertisement (PREF64)",
                t::Pref64Source::Dns => "from ipv4only.arpa",
            };
            (
                CheckKind::Pref64 {
                    source: src.value,
                    prefix: n.prefix,
                },
                format!("learns the NAT64 prefix {} {how}", n.prefix),
            )
        } else if let Some(p) = &c.path_mtu {
            if !(68..=65535).contains(&p.mtu.value) {
                self.err(
                    p.mtu.loc,
                    format!("{} is not an MTU", p.mtu.value),
                    "write e.g. `1280` (IPv6's minimum)",
                );
            }
            let family = if p.to.parse::<Ipv4Addr>().is_ok() {
                IpFamily::Ipv4
            } else {
                IpFamily::Ipv6
            };
            let target = self.target_address(&p.to, family, nodes)?;
            let Ok(target) = target.parse::<IpAddr>() else {
                self.err(
                    p.to.loc,
                    format!("`{}` is not a node or an address", p.to.value),
                    "name a node, or write its address",
                );
                return None;
            };
            (
                CheckKind::PathMtu {
                    target,
                    mtu: p.mtu.value,
                },
                format!("path MTU toward {} is {}", p.to.value, p.mtu.value),
            )
        } else if let Some(b) = c.bgp_received.as_ref().or(c.bgp_advertised.as_ref()) {
            let family = b.family.as_ref().map(|f| f.value).unwrap_or(IpFamily::Ipv6);
            let peer = self.bgp_peer(ni, &b.peer, family, nodes);
            let prefixes = self.prefixes_of(&b.prefix, segments)?;
            let prefix = prefixes
                .iter()
                .find(|p| p.addr().is_ipv6() == (family == IpFamily::Ipv6))
                .copied();
            let Some(prefix) = prefix else {
                self.err(
                    b.prefix.loc,
                    format!(
                        "segment `{}` has no {} prefix",
                        b.prefix.value,
                        if family == IpFamily::Ipv6 {
                            "IPv6"
                        } else {
                            "IPv4"
                        }
                    ),
                    "name a segment of that family, or write a prefix",
                );
                return None;
            };
            let peer = peer?;
            if c.bgp_received.is_some() {
                (
                    CheckKind::BgpReceived { peer, prefix },
                    format!("{prefix} received from {} over BGP", b.peer.value),
                )
            } else {
                (
                    CheckKind::BgpAdvertised { peer, prefix },
                    format!("{prefix} advertised to {} over BGP", b.peer.value),
                )
            }
        } else if let Some(f) = &c.flow {
            self.flow_check(ni, f, nodes, segments)?
        } else {
            return None;
        };
        Some(CheckPlan {
            node: c.node.value.clone(),
            title: c.title.clone().unwrap_or(title),
            kind,
            expect_fail: c.expect_fail,
            timeout_secs,
            pass: c.pass.clone(),
            fail: c.fail.clone(),
        })
    }

    /// A `flow` check: where the traffic goes, and whether the protocol needs a port.
    fn flow_check(
        &mut self,
        ni: Option<usize>,
        f: &t::Flow,
        nodes: &[NodePlan],
        segments: &[SegmentPlan],
    ) -> Option<(CheckKind, String)> {
        use t::{FlowExpect, FlowProtocol as P};
        let protocol = f.protocol.value;
        let family = f.family.as_ref().map(|x| x.value).unwrap_or(IpFamily::Ipv6);
        if family == IpFamily::Ipv4 && !matches!(protocol, P::Tcp | P::Udp) {
            let loc = f.family.as_ref().map(|x| x.loc).unwrap_or(f.protocol.loc);
            self.err(
                loc,
                "only `tcp` and `udp` flows can be IPv4",
                "remove `family: ipv4`, or check ICMP with a `ping` check",
            );
        }
        let needs_port = matches!(protocol, P::Tcp | P::Udp);
        match (&f.port, needs_port) {
            (None, true) => self.err(
                f.protocol.loc,
                "a `tcp` or `udp` flow needs a `port`",
                "add e.g. `port: 22`",
            ),
            (Some(p), false) => self.err(
                p.loc,
                "only `tcp` and `udp` flows have a port",
                "remove `port`",
            ),
            _ => {}
        }
        if f.size.is_some() && protocol != P::PacketTooBig {
            let loc = f.size.as_ref().map(|s| s.loc).unwrap_or_default();
            self.err(
                loc,
                "only `packet-too-big` flows have a size",
                "remove `size`",
            );
        }
        let size = f.size.as_ref().map(|s| s.value).unwrap_or(1400);
        if !(1240..=65000).contains(&size) {
            let loc = f.size.as_ref().map(|s| s.loc).unwrap_or_default();
            self.err(
                loc,
                format!("a probe of {size} bytes proves nothing about Packet Too Big"),
                "write a size from 1240 (above the IPv6 minimum MTU) to 65000",
            );
        }
        let mut iface = None;
        let target: IpAddr = if protocol == P::Nd {
            // Neighbour discovery happens on a shared link only.
            let me = &nodes[ni?];
            let link = match f.to.parse::<Ipv6Addr>() {
                // An address: the interface on the segment whose prefix holds it.
                Ok(a) => me
                    .interfaces
                    .iter()
                    .find(|i| {
                        segments
                            .iter()
                            .any(|s| s.name == i.segment && s.ipv6.is_some_and(|p| p.contains(&a)))
                    })
                    .map(|i| (i.name.as_str(), IpAddr::V6(a))),
                Err(_) => self
                    .node_index
                    .get(f.to.as_str())
                    .and_then(|&ti| super::bgp::shared_link(me, &nodes[ti], IpFamily::Ipv6)),
            };
            match link {
                Some((i, a)) => {
                    iface = Some(i.to_owned());
                    a
                }
                None => {
                    let msg = if f.to.parse::<Ipv6Addr>().is_ok() {
                        format!("`{}` is on none of `{}`'s segments", f.to.value, me.name)
                    } else {
                        self.node_ref(&f.to)?;
                        format!(
                            "`{}` has no planned IPv6 address on a segment shared with `{}`",
                            f.to.value, me.name
                        )
                    };
                    self.err(
                        f.to.loc,
                        msg,
                        "neighbour discovery happens on a link: name a node or an address on one of this node's segments",
                    );
                    return None;
                }
            }
        } else {
            let fam = if needs_port { family } else { IpFamily::Ipv6 };
            let a = self.target_address(&f.to, fam, nodes)?;
            match a.parse() {
                Ok(a) => a,
                Err(_) => {
                    self.err(
                        f.to.loc,
                        format!("`{}` is not a node or an address", f.to.value),
                        "write a node name or an IP address",
                    );
                    return None;
                }
            }
        };
        let port = f.port.as_ref().map(|p| p.value);
        let what = match protocol {
            P::Tcp => format!("TCP to port {}", port.unwrap_or(0)),
            P::Udp => format!("UDP to port {}", port.unwrap_or(0)),
            P::Icmpv6 => "ICMPv6 echo".into(),
            P::Nd => "neighbour discovery".into(),
            P::PacketTooBig => "Packet Too Big".into(),
        };
        let verdict = match f.expect.value {
            FlowExpect::Allowed => "passes",
            FlowExpect::Blocked => "is blocked",
        };
        Some((
            CheckKind::Flow {
                target,
                protocol,
                port,
                expect: f.expect.value,
                size,
                iface,
            },
            format!(
                "{what} from {} to {} {verdict}",
                ni.map(|i| nodes[i].name.as_str()).unwrap_or("?"),
                f.to.value
            ),
        ))
    }

    /// A node name becomes one of its addresses of the family; addresses and DNS names stay.
    pub(super) fn target_address(
        &mut self,
        to: &Sp<String>,
        family: IpFamily,
        nodes: &[NodePlan],
    ) -> Option<String> {
        if to.parse::<IpAddr>().is_ok() || to.contains('.') {
            return Some(to.value.clone());
        }
        let ti = self.node_ref(to)?;
        let n = &nodes[ti];
        let a = match family {
            IpFamily::Ipv6 => n.first_v6().map(|a| a.to_string()),
            IpFamily::Ipv4 => n.first_v4().map(|a| a.to_string()),
        };
        if a.is_none() {
            self.err(
                to.loc,
                format!(
                    "node `{}` has no planned {} address",
                    to.value,
                    if family == IpFamily::Ipv6 {
                        "IPv6"
                    } else {
                        "IPv4"
                    }
                ),
                "target a node with a static or SLAAC address, or write an address",
            );
        }
        a
    }
}
