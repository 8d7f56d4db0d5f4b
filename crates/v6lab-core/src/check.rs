//! Checks as data: the shell command a check runs in its node, and the pure judgement of what
//! the command printed. Runtimes only execute; retrying until the deadline is theirs too.

use crate::plan::{CheckKind, CheckPlan};
use crate::topology::{FlowExpect, FlowProtocol, Pref64Source};
use ipnet::{IpNet, Ipv6Net};
use serde::Serialize;
use serde_json::Value;
use std::net::{IpAddr, Ipv6Addr};

/// What a check's command produced.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// The verdict on one run of a check (before `expect-fail` is applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub ok: bool,
    /// What was seen, for the student: "no address in 2001:db8:1::/64".
    pub detail: String,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The shell command (run with `sh -c`) that gathers what the check looks at.
pub fn command(c: &CheckPlan) -> String {
    match &c.kind {
        CheckKind::Command { command, .. } => command.clone(),
        CheckKind::Slaac { .. } | CheckKind::Dhcpv6 { .. } => {
            "ip -j -6 addr show scope global".into()
        }
        CheckKind::DefaultRoute { .. } | CheckKind::OnlyRouter { .. } => {
            "ip -j -6 route show default".into()
        }
        CheckKind::Ping {
            target,
            family,
            count,
            size,
            dont_fragment,
        } => {
            let fam = match family {
                crate::topology::IpFamily::Ipv6 => "-6",
                crate::topology::IpFamily::Ipv4 => "-4",
            };
            let mut cmd = format!("ping {fam} -n -c {count} -W 2");
            if let Some(s) = size {
                cmd.push_str(&format!(" -s {s}"));
            }
            if *dont_fragment {
                cmd.push_str(" -M do");
            }
            format!("{cmd} {}", quote(target))
        }
        CheckKind::Dns {
            name,
            rtype,
            server,
            ..
        } => {
            let at = server.map(|s| format!(" @{s}")).unwrap_or_default();
            let name = if rtype == "PTR" {
                format!("-x {}", quote(name))
            } else {
                format!("{} {rtype}", quote(name))
            };
            format!("dig +short +time=2 +tries=1{at} {name}")
        }
        CheckKind::Http { url, family, .. } => {
            let fam = match family {
                Some(crate::topology::IpFamily::Ipv6) => " -6",
                Some(crate::topology::IpFamily::Ipv4) => " -4",
                None => "",
            };
            format!("curl -sS -m 5{fam} {}", quote(url))
        }
        CheckKind::Route { prefix } => {
            let fam = if prefix.addr().is_ipv6() { "-6" } else { "-4" };
            format!("ip -j {fam} route show")
        }
        CheckKind::Daemon { process } => format!("pidof {}", quote(process)),
        CheckKind::Ospf6Neighbor { .. } => "vtysh -c 'show ipv6 ospf6 neighbor'".into(),
        CheckKind::BgpSession { peer } => format!("vtysh -c 'show bgp neighbors {peer}'"),
        // The Router Advertisements arriving in the next seconds, as raw bytes.
        CheckKind::Pref64 {
            source: Pref64Source::Ra,
            ..
        } => "timeout 7 tcpdump -l -nn -x -c 8 -i any 'icmp6 and ip6[40] == 134' 2>/dev/null; true"
            .into(),
        CheckKind::Pref64 {
            source: Pref64Source::Dns,
            ..
        } => "dig +short +time=2 +tries=1 ipv4only.arpa AAAA".into(),
        CheckKind::PathMtu { target, .. } => format!("ip route get {target}"),
        CheckKind::BgpReceived { peer, prefix } | CheckKind::BgpAdvertised { peer, prefix } => {
            let af = if prefix.addr().is_ipv6() {
                "ipv6"
            } else {
                "ipv4"
            };
            let what = if matches!(c.kind, CheckKind::BgpReceived { .. }) {
                "routes"
            } else {
                "advertised-routes"
            };
            format!("vtysh -c 'show bgp {af} unicast neighbors {peer} {what} json'")
        }
        CheckKind::Flow {
            target,
            protocol,
            port,
            size,
            iface,
            ..
        } => flow_command(
            *target,
            *protocol,
            port.unwrap_or(0),
            *size,
            iface.as_deref().unwrap_or("eth1"),
        ),
    }
}

/// What a `flow` check sends. Every step is bounded by its own timeout (at most a few seconds).
fn flow_command(
    target: IpAddr,
    protocol: FlowProtocol,
    port: u16,
    size: u32,
    iface: &str,
) -> String {
    let (fam, sock) = match target {
        IpAddr::V6(a) => ("6", format!("[{a}]:{port}")),
        IpAddr::V4(a) => ("4", format!("{a}:{port}")),
    };
    match protocol {
        // Connected (exit 0), refused or timed out.
        FlowProtocol::Tcp => {
            format!("socat -T 3 /dev/null TCP{fam}:{sock},connect-timeout=3")
        }
        // The listener sends the datagram back.
        FlowProtocol::Udp => {
            format!("echo {FLOW_TOKEN} | socat -t 2 -T 3 - UDP{fam}:{sock}")
        }
        FlowProtocol::Icmpv6 => format!("ping -6 -n -c 1 -W 2 {target}"),
        // A Neighbor Solicitation of our own: the kernel's cache may hold the target already
        // (learnt from the target's own solicitations), which proves nothing.
        FlowProtocol::Nd => format!("ndisc6 -n -r 3 -w 500 {target} {iface}"),
        // Forget the path MTU, send a packet too big for a link on the way, show the path MTU.
        FlowProtocol::PacketTooBig => format!(
            "ip -6 route flush cache >/dev/null 2>&1; ping -6 -n -c 2 -i 0.5 -W 2 -M do -s {size} {target}; ip -6 route get {target}"
        ),
    }
}

/// What the UDP echo listener sends back.
const FLOW_TOKEN: &str = "v6lab-flow";

fn addr_infos(stdout: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(stdout).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| {
            l.get("addr_info")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

/// Gateways of `ip -j -6 route show default`: single routes and multipath next hops. A route
/// past its lifetime (`expires` of 0 or less) is not used any more, though the kernel may list
/// it until its next garbage collection.
fn default_gateways(stdout: &str) -> Vec<String> {
    let routes: Value = serde_json::from_str(stdout).unwrap_or(Value::Null);
    let mut out = Vec::new();
    for r in routes.as_array().into_iter().flatten() {
        if r.get("expires")
            .and_then(Value::as_i64)
            .is_some_and(|e| e <= 0)
        {
            continue;
        }
        let hops = r.get("nexthops").and_then(Value::as_array);
        for h in std::iter::once(r).chain(hops.into_iter().flatten()) {
            if let Some(g) = h.get("gateway").and_then(Value::as_str) {
                out.push(g.to_owned());
            }
        }
    }
    out
}

fn local(a: &Value) -> Option<IpAddr> {
    a.get("local")?.as_str()?.parse().ok()
}

/// Judges one run of a check's command.
pub fn judge(c: &CheckPlan, out: &Output) -> Verdict {
    let v = |ok: bool, detail: String| Verdict { ok, detail };
    match &c.kind {
        CheckKind::Command {
            exit,
            stdout_contains,
            stdout_regex,
            stderr_contains,
            stderr_regex,
            json_query,
            json_equals,
            json_contains,
            ..
        } => {
            if out.exit_code != i64::from(*exit) {
                return v(
                    false,
                    format!(
                        "exited with {} (expected {exit}): {}",
                        out.exit_code,
                        first_line(&out.stderr, &out.stdout)
                    ),
                );
            }
            for (name, text, contains, regex) in [
                ("output", &out.stdout, stdout_contains, stdout_regex),
                ("error output", &out.stderr, stderr_contains, stderr_regex),
            ] {
                if let Some(s) = contains
                    && !text.contains(s.as_str())
                {
                    return v(false, format!("{name} does not contain `{s}`"));
                }
                if let Some(r) = regex {
                    match regex::RegexBuilder::new(r).multi_line(true).build() {
                        Ok(re) if re.is_match(text) => {}
                        Ok(_) => return v(false, format!("{name} does not match /{r}/")),
                        Err(e) => return v(false, format!("bad regex /{r}/: {e}")),
                    }
                }
            }
            if let Some(q) = json_query {
                let doc: Value = match serde_json::from_str(&out.stdout) {
                    Ok(d) => d,
                    Err(e) => return v(false, format!("output is not JSON: {e}")),
                };
                let found = json_path(&doc, q);
                let ok = match (json_equals, json_contains) {
                    (Some(want), _) => found.contains(&want),
                    (None, Some(s)) => found.iter().any(|x| text_of(x).contains(s.as_str())),
                    (None, None) => !found.is_empty(),
                };
                if !ok {
                    return v(
                        false,
                        format!(
                            "`{q}` gives {}",
                            Value::Array(found.into_iter().cloned().collect())
                        ),
                    );
                }
            }
            v(true, "as expected".into())
        }
        CheckKind::Slaac { prefix } | CheckKind::Dhcpv6 { prefix } => {
            let slaac = matches!(c.kind, CheckKind::Slaac { .. });
            let infos = addr_infos(&out.stdout);
            let hit = infos.iter().find(|a| {
                let inside = matches!(local(a), Some(IpAddr::V6(ip)) if prefix.contains(&ip));
                let len = a.get("prefixlen").and_then(Value::as_u64).unwrap_or(0);
                let dynamic = a.get("dynamic").and_then(Value::as_bool).unwrap_or(false);
                inside
                    && if slaac {
                        dynamic && len == 64
                    } else {
                        len == 128
                    }
            });
            match hit {
                Some(a) => v(
                    true,
                    format!(
                        "has {}",
                        local(a).map(|x| x.to_string()).unwrap_or_default()
                    ),
                ),
                None => v(
                    false,
                    format!(
                        "no {} address in {prefix}",
                        if slaac { "SLAAC" } else { "DHCPv6" }
                    ),
                ),
            }
        }
        CheckKind::DefaultRoute { via, router } => {
            let routes: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
            let gws: Vec<String> = routes
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.get("gateway")?.as_str().map(str::to_owned))
                .collect();
            if gws.iter().any(|g| g.parse::<Ipv6Addr>().ok() == Some(*via)) {
                v(true, format!("default via {via} ({router})"))
            } else if gws.is_empty() {
                v(false, "no IPv6 default route".into())
            } else {
                v(
                    false,
                    format!("default via {} instead of {router}'s {via}", gws.join(", ")),
                )
            }
        }
        CheckKind::OnlyRouter { via, router } => {
            let gws = default_gateways(&out.stdout);
            let others: Vec<&String> = gws
                .iter()
                .filter(|g| !g.parse::<Ipv6Addr>().is_ok_and(|a| via.contains(&a)))
                .collect();
            if gws.is_empty() {
                v(false, "no IPv6 default route".into())
            } else if others.is_empty() {
                v(true, format!("only default router: {router}"))
            } else {
                let others: Vec<&str> = others.iter().map(|g| g.as_str()).collect();
                v(
                    false,
                    format!(
                        "default routes also via {} (not {router}): a rogue Router Advertisement?",
                        others.join(", ")
                    ),
                )
            }
        }
        CheckKind::Ping { target, .. } => {
            if out.exit_code == 0 {
                v(true, format!("{target} answers"))
            } else {
                v(
                    false,
                    format!(
                        "{target} does not answer: {}",
                        first_line(&out.stderr, &out.stdout)
                    ),
                )
            }
        }
        CheckKind::Dns {
            name,
            within,
            contains,
            ..
        } => {
            let answers: Vec<&str> = out
                .stdout
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with(';'))
                .collect();
            if out.exit_code != 0 || answers.is_empty() {
                return v(false, format!("no answer for {name}"));
            }
            if let Some(w) = within {
                let inside = answers
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .any(|ip| w.contains(&ip));
                if !inside {
                    return v(
                        false,
                        format!("{name} gives {} — not inside {w}", answers.join(", ")),
                    );
                }
            }
            if let Some(s) = contains
                && !answers.iter().any(|a| a.contains(s.as_str()))
            {
                return v(
                    false,
                    format!("{name} gives {} — no `{s}`", answers.join(", ")),
                );
            }
            v(true, format!("{name} → {}", answers.join(", ")))
        }
        CheckKind::Http { url, contains, .. } => {
            if out.exit_code != 0 {
                return v(
                    false,
                    format!("{url}: {}", first_line(&out.stderr, &out.stdout)),
                );
            }
            match contains {
                Some(s) if !out.stdout.contains(s.as_str()) => {
                    v(false, format!("{url} answered without `{s}`"))
                }
                _ => v(true, format!("{url} answered")),
            }
        }
        CheckKind::Route { prefix } => {
            let routes: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
            let found = routes.as_array().into_iter().flatten().any(|r| {
                r.get("dst").and_then(Value::as_str).and_then(|d| {
                    d.parse::<IpNet>()
                        .ok()
                        .or_else(|| d.parse::<IpAddr>().ok().map(IpNet::from))
                }) == Some(*prefix)
            });
            if found {
                v(true, format!("route to {prefix} present"))
            } else {
                v(false, format!("no route to {prefix}"))
            }
        }
        CheckKind::Daemon { process } => {
            if out.exit_code == 0 {
                v(true, format!("{process} runs"))
            } else {
                v(false, format!("{process} is not running"))
            }
        }
        CheckKind::Ospf6Neighbor {
            router_id,
            neighbor,
        } => {
            let rid = router_id.to_string();
            let full = out
                .stdout
                .lines()
                .any(|l| l.split_whitespace().next() == Some(rid.as_str()) && l.contains("Full"));
            if full {
                v(true, format!("{neighbor} ({rid}) is Full"))
            } else if out.stdout.contains(&rid) {
                v(false, format!("{neighbor} ({rid}) is not Full yet"))
            } else {
                v(
                    false,
                    format!(
                        "no OSPFv3 neighbour {neighbor} ({rid}): {}",
                        first_line(&out.stderr, &out.stdout)
                    ),
                )
            }
        }
        CheckKind::BgpSession { peer } => {
            if out.stdout.contains("BGP state = Established") {
                v(true, format!("session with {peer} Established"))
            } else {
                v(false, format!("session with {peer} not Established"))
            }
        }
        CheckKind::Pref64 { source, prefix } => {
            let (learned, none) = match source {
                Pref64Source::Ra => {
                    let ras = captured_packets(&out.stdout);
                    let learned: Vec<Ipv6Net> = ras.iter().filter_map(|p| ra_pref64(p)).collect();
                    let none = if ras.is_empty() {
                        "no Router Advertisement arrived".to_string()
                    } else {
                        format!("{} Router Advertisement(s), none with PREF64", ras.len())
                    };
                    (learned, none)
                }
                Pref64Source::Dns => {
                    let learned: Vec<Ipv6Net> = out
                        .stdout
                        .lines()
                        .filter_map(|l| l.trim().parse::<Ipv6Addr>().ok())
                        .filter_map(ipv4only_prefix)
                        .collect();
                    let none = if out.stdout.trim().is_empty() || out.exit_code != 0 {
                        "no AAAA answer for ipv4only.arpa".to_string()
                    } else {
                        format!(
                            "ipv4only.arpa gives {}: no NAT64 prefix in it",
                            out.stdout.split_whitespace().collect::<Vec<_>>().join(", ")
                        )
                    };
                    (learned, none)
                }
            };
            if learned.contains(prefix) {
                v(true, format!("learned {prefix}"))
            } else if let Some(other) = learned.first() {
                v(false, format!("learned {other}, not the lab's {prefix}"))
            } else {
                v(false, none)
            }
        }
        CheckKind::PathMtu { target, mtu } => {
            if out.exit_code != 0 {
                return v(
                    false,
                    format!(
                        "no route to {target}: {}",
                        first_line(&out.stderr, &out.stdout)
                    ),
                );
            }
            match route_mtu(&out.stdout) {
                Some(m) if m == *mtu => v(true, format!("path MTU toward {target} is {m}")),
                Some(m) => v(false, format!("path MTU toward {target} is {m}, not {mtu}")),
                None => v(
                    false,
                    format!("no path MTU learned toward {target}: no Packet Too Big arrived"),
                ),
            }
        }
        CheckKind::BgpReceived { peer, prefix } | CheckKind::BgpAdvertised { peer, prefix } => {
            let (verb, dir) = if matches!(c.kind, CheckKind::BgpReceived { .. }) {
                ("received", "from")
            } else {
                ("advertised", "to")
            };
            let doc: Value = match serde_json::from_str(&out.stdout) {
                Ok(d) => d,
                Err(_) => {
                    return v(
                        false,
                        format!(
                            "no BGP routes {dir} {peer}: {}",
                            first_line(&out.stderr, &out.stdout)
                        ),
                    );
                }
            };
            let mut found = Vec::new();
            prefixes_in(&doc, &mut found);
            if found.contains(prefix) {
                v(true, format!("{prefix} {verb} {dir} {peer}"))
            } else if found.is_empty() {
                v(false, format!("nothing {verb} {dir} {peer}"))
            } else {
                let list: Vec<String> = found.iter().map(|p| p.to_string()).collect();
                v(
                    false,
                    format!(
                        "{prefix} not {verb} {dir} {peer} (only {})",
                        list.join(", ")
                    ),
                )
            }
        }
        CheckKind::Flow {
            target,
            protocol,
            port,
            expect,
            size,
            ..
        } => {
            let (passed, seen) = flow_outcome(*target, *protocol, *size, out);
            let what = match (protocol, port) {
                (FlowProtocol::Tcp, Some(p)) => format!("TCP to {target} port {p}"),
                (FlowProtocol::Udp, Some(p)) => format!("UDP to {target} port {p}"),
                (FlowProtocol::Icmpv6, _) => format!("ICMPv6 echo to {target}"),
                (FlowProtocol::Nd, _) => format!("neighbour discovery of {target}"),
                (_, _) => format!("Packet Too Big on the way to {target}"),
            };
            let want = *expect == FlowExpect::Allowed;
            let outcome = if passed { "passes" } else { "is blocked" };
            v(passed == want, format!("{what} {outcome}: {seen}"))
        }
    }
}

/// Whether a flow got through, and what showed it.
fn flow_outcome(target: IpAddr, protocol: FlowProtocol, size: u32, out: &Output) -> (bool, String) {
    match protocol {
        FlowProtocol::Tcp | FlowProtocol::Icmpv6 => {
            let ok = out.exit_code == 0;
            let seen = if ok {
                "answered".to_string()
            } else {
                first_line(&out.stderr, &out.stdout).to_string()
            };
            (ok, seen)
        }
        FlowProtocol::Udp => {
            if out.stdout.contains(FLOW_TOKEN) {
                (true, "the datagram came back".into())
            } else {
                (
                    false,
                    format!(
                        "no answer ({})",
                        first_line(&out.stderr, "nothing came back")
                    ),
                )
            }
        }
        FlowProtocol::Nd => {
            let line = out
                .stdout
                .lines()
                .find(|l| l.contains("link-layer address"))
                .filter(|_| out.exit_code == 0);
            match line {
                Some(l) => (true, format!("{target} answered ({})", l.trim())),
                None => (false, "no Neighbor Advertisement came back".into()),
            }
        }
        FlowProtocol::PacketTooBig => {
            let mtu = out.stdout.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                while let Some(x) = w.next() {
                    if x == "mtu" {
                        return w.next()?.parse::<u32>().ok();
                    }
                }
                None
            });
            match mtu {
                Some(m) if m < size + 48 => (true, format!("path MTU now {m}")),
                _ => (
                    false,
                    "no Packet Too Big came back (path MTU unchanged)".into(),
                ),
            }
        }
    }
}

/// Every prefix named as an object key in FRR's JSON (its route tables are keyed by prefix).
fn prefixes_in(v: &Value, out: &mut Vec<IpNet>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if let Ok(p) = k.parse::<IpNet>()
                    && !out.contains(&p)
                {
                    out.push(p);
                }
                prefixes_in(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| prefixes_in(x, out)),
        _ => {}
    }
}

/// The `mtu` of an `ip route get` answer: the path MTU, when one was learned or set.
pub fn route_mtu(text: &str) -> Option<u32> {
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "mtu" {
            // `mtu lock 1280` when the MTU is locked.
            let n = words.find(|x| *x != "lock")?;
            return n.parse().ok();
        }
    }
    None
}

/// The packets of `tcpdump -x` output, as bytes (from the network header on).
pub fn captured_packets(text: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    for line in text.lines() {
        let t = line.trim_start();
        let hex = t
            .strip_prefix("0x")
            .and_then(|r| r.split_once(':'))
            .filter(|_| line.starts_with(char::is_whitespace));
        match hex {
            Some((_, words)) => {
                let bytes = cur.get_or_insert_with(Vec::new);
                for w in words.split_whitespace() {
                    let mut i = 0;
                    while i + 2 <= w.len() {
                        match u8::from_str_radix(&w[i..i + 2], 16) {
                            Ok(b) => bytes.push(b),
                            Err(_) => break,
                        }
                        i += 2;
                    }
                }
            }
            None if !line.starts_with(char::is_whitespace) => {
                out.extend(cur.take().filter(|b| !b.is_empty()));
            }
            None => {}
        }
    }
    out.extend(cur.filter(|b| !b.is_empty()));
    out
}

/// The NAT64 prefix of an IPv6 packet carrying a Router Advertisement with a PREF64 option
/// (RFC 8781: 13 bits of scaled lifetime, 3 of prefix length code, then 96 bits of prefix).
pub fn ra_pref64(packet: &[u8]) -> Option<Ipv6Net> {
    if packet.len() < 56 || packet[0] >> 4 != 6 || packet[6] != 58 || packet[40] != 134 {
        return None;
    }
    let mut opts = &packet[56..];
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if opts[0] == 38 && len == 16 {
            let plc = opts[3] & 7;
            let plen = match plc {
                0 => 96,
                1 => 64,
                2 => 56,
                3 => 48,
                4 => 40,
                5 => 32,
                _ => return None,
            };
            let mut o = [0u8; 16];
            o[..12].copy_from_slice(&opts[4..16]);
            return Ipv6Net::new(Ipv6Addr::from(o), plen)
                .ok()
                .map(|n| n.trunc());
        }
        opts = &opts[len..];
    }
    None
}

/// The NAT64 prefix inside a synthesized AAAA of `ipv4only.arpa` (RFC 7050 section 3): the
/// RFC 6052 length at which 192.0.0.170 or 192.0.0.171 is embedded.
pub fn ipv4only_prefix(a: Ipv6Addr) -> Option<Ipv6Net> {
    let o = a.octets();
    for (len, pos) in [
        (96u8, [12, 13, 14, 15]),
        (64, [9, 10, 11, 12]),
        (56, [7, 9, 10, 11]),
        (48, [6, 7, 9, 10]),
        (40, [5, 6, 7, 9]),
        (32, [4, 5, 6, 7]),
    ] {
        let v4 = pos.map(|p| o[p]);
        if v4 == [192, 0, 0, 170] || v4 == [192, 0, 0, 171] {
            return Ipv6Net::new(a, len).ok().map(|n| n.trunc());
        }
    }
    None
}

/// Applies `expect-fail`: the final pass/fail of one run.
pub fn passes(c: &CheckPlan, verdict: &Verdict) -> bool {
    verdict.ok != c.expect_fail
}

fn first_line<'a>(a: &'a str, b: &'a str) -> &'a str {
    a.lines()
        .chain(b.lines())
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output")
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A tiny path language over JSON: `a.b[].c`; `[]` walks every element of an array.
pub fn json_path<'a>(doc: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur = vec![doc];
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (key, each) = match seg.strip_suffix("[]") {
            Some(k) => (k, true),
            None => (seg, false),
        };
        let mut next = Vec::new();
        for v in cur {
            let v = if key.is_empty() { Some(v) } else { v.get(key) };
            if let Some(v) = v {
                if each {
                    next.extend(v.as_array().into_iter().flatten());
                } else {
                    next.push(v);
                }
            }
        }
        cur = next;
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::CheckPlan;

    fn check(kind: CheckKind) -> CheckPlan {
        CheckPlan {
            node: "h1".into(),
            title: "t".into(),
            kind,
            expect_fail: false,
            timeout_secs: 1,
            pass: None,
            fail: None,
        }
    }

    const ADDRS: &str = r#"[{"ifindex":2,"ifname":"eth1","addr_info":[{"family":"inet6","local":"2001:db8:1:0:76:36ff:fe00:101","prefixlen":64,"scope":"global","dynamic":true,"mngtmpaddr":true},{"family":"inet6","local":"2001:db8:1::1234","prefixlen":128,"scope":"global","dynamic":true}]}]"#;

    #[test]
    fn slaac_and_dhcpv6_are_told_apart() {
        let out = Output {
            exit_code: 0,
            stdout: ADDRS.into(),
            stderr: String::new(),
        };
        let p = "2001:db8:1::/64".parse().unwrap();
        assert!(judge(&check(CheckKind::Slaac { prefix: p }), &out).ok);
        assert!(judge(&check(CheckKind::Dhcpv6 { prefix: p }), &out).ok);
        let other = "2001:db8:2::/64".parse().unwrap();
        assert!(!judge(&check(CheckKind::Slaac { prefix: other }), &out).ok);
        let empty = Output {
            exit_code: 0,
            stdout: "[]".into(),
            stderr: String::new(),
        };
        assert!(!judge(&check(CheckKind::Slaac { prefix: p }), &empty).ok);
    }

    #[test]
    fn dns_within_prefix() {
        let c = check(CheckKind::Dns {
            name: "www.example.net".into(),
            rtype: "AAAA".into(),
            server: None,
            within: Some("2001:db8:64::/96".parse().unwrap()),
            contains: None,
        });
        assert!(
            judge(
                &c,
                &Output {
                    exit_code: 0,
                    stdout: "2001:db8:64::c000:202\n".into(),
                    stderr: String::new()
                }
            )
            .ok
        );
        assert!(
            !judge(
                &c,
                &Output {
                    exit_code: 0,
                    stdout: "2001:db8:2::2\n".into(),
                    stderr: String::new()
                }
            )
            .ok
        );
        assert!(
            !judge(
                &c,
                &Output {
                    exit_code: 9,
                    stdout: ";; connection timed out\n".into(),
                    stderr: String::new()
                }
            )
            .ok
        );
    }

    #[test]
    fn only_router_fails_with_a_second_default_router() {
        let c = check(CheckKind::OnlyRouter {
            via: vec!["fe80::76:36ff:fe00:1".parse().unwrap()],
            router: "r1".into(),
        });
        let out = |s: &str| Output {
            exit_code: 0,
            stdout: s.into(),
            stderr: String::new(),
        };
        let legit =
            r#"[{"dst":"default","gateway":"fe80::76:36ff:fe00:1","dev":"eth1","protocol":"ra"}]"#;
        assert!(judge(&c, &out(legit)).ok);
        let rogue = r#"[{"dst":"default","protocol":"ra","metric":1024,"nexthops":[
            {"gateway":"fe80::76:36ff:fe00:1","dev":"eth1"},
            {"gateway":"fe80::76:36ff:fe04:1","dev":"eth1"}]}]"#;
        let v = judge(&c, &out(rogue));
        assert!(!v.ok);
        assert!(v.detail.contains("fe80::76:36ff:fe04:1"), "{}", v.detail);
        let only_rogue =
            r#"[{"dst":"default","gateway":"fe80::76:36ff:fe04:1","dev":"eth1","protocol":"ra"}]"#;
        assert!(!judge(&c, &out(only_rogue)).ok);
        let expired = r#"[
            {"dst":"default","gateway":"fe80::76:36ff:fe04:1","dev":"eth1","expires":-6},
            {"dst":"default","gateway":"fe80::76:36ff:fe00:1","dev":"eth1","expires":22}]"#;
        assert!(judge(&c, &out(expired)).ok);
        assert!(!judge(&c, &out("[]")).ok);
    }

    #[test]
    fn default_route_via_link_local() {
        let c = check(CheckKind::DefaultRoute {
            via: "fe80::76:36ff:fe00:1".parse().unwrap(),
            router: "r1".into(),
        });
        let ok =
            r#"[{"dst":"default","gateway":"fe80::76:36ff:fe00:1","dev":"eth1","protocol":"ra"}]"#;
        assert!(
            judge(
                &c,
                &Output {
                    exit_code: 0,
                    stdout: ok.into(),
                    stderr: String::new()
                }
            )
            .ok
        );
        assert!(
            !judge(
                &c,
                &Output {
                    exit_code: 0,
                    stdout: "[]".into(),
                    stderr: String::new()
                }
            )
            .ok
        );
    }

    #[test]
    fn command_expectations_and_negation() {
        let mut c = check(CheckKind::Command {
            command: "x".into(),
            exit: 0,
            stdout_contains: None,
            stdout_regex: Some("^$".into()),
            stderr_contains: None,
            stderr_regex: None,
            json_query: None,
            json_equals: None,
            json_contains: None,
        });
        let empty = Output::default();
        let v = judge(&c, &empty);
        assert!(v.ok && passes(&c, &v));
        let v = judge(
            &c,
            &Output {
                exit_code: 0,
                stdout: "inet 192.0.2.2/24".into(),
                stderr: String::new(),
            },
        );
        assert!(!v.ok);
        c.expect_fail = true;
        assert!(passes(&c, &v));
    }

    #[test]
    fn json_queries() {
        let doc: Value = serde_json::from_str(ADDRS).unwrap();
        let found = json_path(&doc, "[].addr_info[].local");
        assert_eq!(found.len(), 2);
        let c = check(CheckKind::Command {
            command: "ip -j addr".into(),
            exit: 0,
            stdout_contains: None,
            stdout_regex: None,
            stderr_contains: None,
            stderr_regex: None,
            json_query: Some("[].addr_info[].local".into()),
            json_equals: Some(Value::String("2001:db8:1::1234".into())),
            json_contains: None,
        });
        assert!(
            judge(
                &c,
                &Output {
                    exit_code: 0,
                    stdout: ADDRS.into(),
                    stderr: String::new()
                }
            )
            .ok
        );
    }

    #[test]
    fn route_present() {
        let c = check(CheckKind::Route {
            prefix: "2001:db8:3::/64".parse().unwrap(),
        });
        let out = r#"[{"dst":"2001:db8:3::/64","gateway":"2001:db8:2::2","dev":"eth2"},{"dst":"fe80::/64","dev":"eth1"}]"#;
        assert!(
            judge(
                &c,
                &Output {
                    exit_code: 0,
                    stdout: out.into(),
                    stderr: String::new()
                }
            )
            .ok
        );
        assert!(
            !judge(
                &c,
                &Output {
                    exit_code: 0,
                    stdout: "[]".into(),
                    stderr: String::new()
                }
            )
            .ok
        );
    }

    /// What `tcpdump -l -nn -x -i any` printed for gw's PREF64 RA on a lab (its checksum from
    /// the kernel), then one of radvd's RAs (prefix, MTU and RDNSS options, no PREF64).
    const CAPTURE: &str = "18:15:24.402899 eth1 M   IP6 fe80::64cd:cfff:feee:9869 > ff02::1: ICMP6, router advertisement, length 32
	0x0000:  6000 8a24 0020 3aff fe80 0000 0000 0000
	0x0010:  64cd cfff feee 9869 ff02 0000 0000 0000
	0x0020:  0000 0000 0000 0001 8600 5965 0000 001e
	0x0030:  0000 0000 0000 0000 2602 0258 2001 0db8
	0x0040:  0064 0000 0000 0000
18:15:25.100000 eth1 M   IP6 fe80::64cd:cfff:feee:9869 > ff02::1: ICMP6, router advertisement, length 32
	0x0000:  6000 0000 0020 3aff fe80 0000 0000 0000
	0x0010:  64cd cfff feee 9869 ff02 0000 0000 0000
	0x0020:  0000 0000 0000 0001 8600 0000 4000 001e
	0x0030:  0000 0000 0000 0000 0501 0000 0000 05dc
	0x0040:  1902 0000 0000 001e 2001 0db8 0001 0000
";

    fn pref64(source: Pref64Source) -> CheckPlan {
        check(CheckKind::Pref64 {
            source,
            prefix: "2001:db8:64::/96".parse().unwrap(),
        })
    }

    /// What a command that exited 0 printed.
    fn printed(stdout: &str) -> Output {
        out(0, stdout)
    }

    fn out(exit_code: i64, stdout: &str) -> Output {
        Output {
            exit_code,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn pref64_is_read_from_captured_router_advertisements() {
        let packets = captured_packets(CAPTURE);
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0].len(), 72);
        assert_eq!(
            ra_pref64(&packets[0]),
            Some("2001:db8:64::/96".parse().unwrap())
        );
        assert_eq!(ra_pref64(&packets[1]), None);
        let c = pref64(Pref64Source::Ra);
        assert!(judge(&c, &printed(CAPTURE)).ok);
        let second = CAPTURE.split_once("18:15:25").unwrap().1;
        let v = judge(&c, &printed(&format!("x{second}")));
        assert!(!v.ok);
        assert_eq!(v.detail, "1 Router Advertisement(s), none with PREF64");
        assert_eq!(
            judge(&c, &printed("")).detail,
            "no Router Advertisement arrived"
        );
        // The RA the lab renders is the one captured (bar the checksum).
        let ra = crate::render::pref64_ra(
            crate::topology::RaMode::Slaac,
            "2001:db8:64::/96".parse().unwrap(),
        );
        let mut sent = packets[0][40..].to_vec();
        sent[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(ra, sent);
    }

    #[test]
    fn pref64_length_codes() {
        let mut p = captured_packets(CAPTURE).remove(0);
        p[59] = (p[59] & !7) | 1; // prefix length code 1: /64
        assert_eq!(ra_pref64(&p), Some("2001:db8:64::/64".parse().unwrap()));
        p[59] |= 7; // reserved code
        assert_eq!(ra_pref64(&p), None);
    }

    #[test]
    fn pref64_is_found_in_ipv4only_arpa() {
        let c = pref64(Pref64Source::Dns);
        assert!(judge(&c, &printed("2001:db8:64::c000:aa\n2001:db8:64::c000:ab\n")).ok);
        let v = judge(&c, &printed("2001:db8:99::c000:ab\n"));
        assert!(!v.ok);
        assert_eq!(
            v.detail,
            "learned 2001:db8:99::/96, not the lab's 2001:db8:64::/96"
        );
        assert!(!judge(&c, &printed("")).ok);
        assert!(!judge(&c, &printed("2001:db8:64::1\n")).ok);
        // Other RFC 6052 lengths: /64 puts the IPv4 address after the u octet.
        let a = crate::plan::embed_v4(
            "2001:db8:1:2::/64".parse().unwrap(),
            "192.0.0.170".parse().unwrap(),
        );
        assert_eq!(
            ipv4only_prefix(a),
            Some("2001:db8:1:2::/64".parse().unwrap())
        );
        let a = crate::plan::embed_v4(
            "2001:db8::/32".parse().unwrap(),
            "192.0.0.171".parse().unwrap(),
        );
        assert_eq!(ipv4only_prefix(a), Some("2001:db8::/32".parse().unwrap()));
    }

    #[test]
    fn path_mtu_from_route_get() {
        let c = check(CheckKind::PathMtu {
            target: "2001:db8:1::2".parse().unwrap(),
            mtu: 1280,
        });
        let learned = "2001:db8:1::2 from :: via 2001:db8:3::1 dev eth1 proto ra src 2001:db8:3::2 metric 1024 expires 597sec mtu 1280 hoplimit 64 pref medium\n";
        assert!(judge(&c, &printed(learned)).ok);
        let none = "2001:db8:1::2 from :: via 2001:db8:3::1 dev eth1 proto ra src 2001:db8:3::2 metric 1024 hoplimit 64 pref medium\n";
        let v = judge(&c, &printed(none));
        assert!(!v.ok);
        assert!(v.detail.contains("no Packet Too Big"), "{}", v.detail);
        assert_eq!(route_mtu("x mtu lock 1400 hoplimit 64"), Some(1400));
        assert!(!judge(&c, &printed("x mtu 1400")).ok);
    }

    #[test]
    fn bgp_prefixes_are_found_in_frr_json() {
        let peer = "2001:db8:3::2".parse().unwrap();
        let lan3 = "2001:db8:4::/64".parse().unwrap();
        let received = r#"{"vrfId":0,"routes":{"2001:db8:4::/64":[{"valid":true,"network":"2001:db8:4::/64"}]}}"#;
        let advertised =
            r#"{"advertisedRoutes":{"2001:db8:1::/64":{"network":"2001:db8:1::/64"}}}"#;
        let rx = check(CheckKind::BgpReceived { peer, prefix: lan3 });
        assert!(judge(&rx, &out(0, received)).ok);
        let v = judge(&rx, &out(0, advertised));
        assert!(!v.ok);
        assert!(v.detail.contains("only 2001:db8:1::/64"), "{}", v.detail);
        assert!(!judge(&rx, &out(1, "% No such neighbor")).ok);
        let tx = check(CheckKind::BgpAdvertised {
            peer,
            prefix: "2001:db8:1::/64".parse().unwrap(),
        });
        assert!(judge(&tx, &out(0, advertised)).ok);
        // A prefix named only as a value (not a route table key) is not a route.
        assert!(!judge(&rx, &out(0, r#"{"routes":{},"network":"2001:db8:4::/64"}"#)).ok);
        assert!(
            command(&tx)
                .contains("show bgp ipv6 unicast neighbors 2001:db8:3::2 advertised-routes json")
        );
    }

    fn flow(protocol: FlowProtocol, expect: FlowExpect) -> CheckPlan {
        check(CheckKind::Flow {
            target: "2001:db8:3::2".parse().unwrap(),
            protocol,
            port: Some(80),
            expect,
            size: 1400,
            iface: Some("eth1".into()),
        })
    }

    #[test]
    fn flows_pass_when_the_outcome_is_the_expected_one() {
        use FlowExpect::{Allowed, Blocked};
        use FlowProtocol::*;
        let timed_out = Output {
            exit_code: 1,
            stdout: String::new(),
            stderr: "socat[1] E connecting to [2001:db8:3::2]:80: Connection timed out".into(),
        };
        assert!(judge(&flow(Tcp, Allowed), &out(0, "")).ok);
        assert!(!judge(&flow(Tcp, Allowed), &timed_out).ok);
        let v = judge(&flow(Tcp, Blocked), &timed_out);
        assert!(v.ok && v.detail.contains("timed out"), "{}", v.detail);
        assert!(judge(&flow(Udp, Allowed), &out(0, "v6lab-flow\n")).ok);
        assert!(judge(&flow(Udp, Blocked), &out(0, "")).ok);
        let na = "Soliciting 2001:db8:3::2 (2001:db8:3::2) on eth1...\nTarget link-layer address: 02:76:36:00:03:01\n from 2001:db8:3::2\n";
        assert!(judge(&flow(Nd, Allowed), &out(0, na)).ok);
        assert!(!judge(&flow(Nd, Allowed), &out(2, "Timed out.\nNo response.\n")).ok);
        let ptb = "2001:db8:3::2 from :: via fe80::1 dev eth1 src 2001:db8:1::9 metric 1024 expires 599sec mtu 1280 hoplimit 64 pref medium\n";
        let none = "2001:db8:3::2 from :: via fe80::1 dev eth1 src 2001:db8:1::9 metric 1024 hoplimit 64 pref medium\n";
        assert!(judge(&flow(PacketTooBig, Allowed), &out(0, ptb)).ok);
        assert!(!judge(&flow(PacketTooBig, Allowed), &out(0, none)).ok);
        assert!(
            command(&flow(Nd, Allowed)).starts_with("ndisc6 -n -r 3 -w 500 2001:db8:3::2 eth1")
        );
        assert!(command(&flow(Tcp, Allowed)).contains("TCP6:[2001:db8:3::2]:80"));
    }
}
