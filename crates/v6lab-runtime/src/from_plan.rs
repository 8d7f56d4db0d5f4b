//! From a plan to what a runtime realizes. Pure: no IO.

use crate::spec::{FileSpec, InterfaceSpec, LabSpec, Limits, NodeSpec, Probe, SegmentSpec};
use v6lab_core::plan::{Assign6, Plan};
use v6lab_core::render::UP_SCRIPT;
use v6lab_core::topology::Role;

/// Which parts a lab applies when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// Everything except the parts left to students (a lab for a student).
    Exercises,
    /// Every part (a trainer's reference lab: the exercises are solved).
    Complete,
}

/// Where every node keeps the topology it was planned from, so a lab can be checked and solved
/// with nothing but the lab's name.
pub const TOPOLOGY_FILE: &str = "/etc/v6lab/topology.yaml";

/// The lab spec of one lab of `plan`; `source` is the topology text the plan came from.
pub fn lab_spec(
    plan: &Plan,
    source: &str,
    lab: &str,
    image: &str,
    expires_at: Option<u64>,
    apply: Apply,
) -> LabSpec {
    let applied = |node: &str, part: &str| {
        plan.node(node)
            .and_then(|n| n.parts.iter().find(|p| p.id == part))
            .is_some_and(|p| apply == Apply::Complete || p.student.is_none())
    };
    let nodes = plan
        .nodes
        .iter()
        .map(|n| {
            let mut probes: Vec<Probe> = n
                .parts
                .iter()
                .filter(|p| applied(&n.name, &p.id))
                .flat_map(|p| p.probes.iter())
                .map(|p| Probe {
                    description: p.description.clone(),
                    argv: vec!["sh".into(), "-c".into(), p.command.clone()],
                })
                .collect();
            // Addresses that arrive from a router, when that router's part is applied.
            for i in &n.interfaces {
                let router_applies = |part: &str| {
                    plan.nodes.iter().any(|r| {
                        r.role == Role::Router
                            && r.interfaces.iter().any(|ri| ri.segment == i.segment)
                            && applied(&r.name, part)
                    })
                };
                let own_part = format!("{}.ipv6", i.name);
                let wait = match &i.ipv6 {
                    Assign6::Slaac { prefix, expected } if router_applies("radvd") => Some((
                        format!("SLAAC address {expected} in {prefix}"),
                        format!(" {expected}/64 "),
                    )),
                    Assign6::Dhcpv6 { prefix }
                        if applied(&n.name, &own_part) && router_applies("dhcp") =>
                    {
                        Some((format!("DHCPv6 address in {prefix}"), "/128 ".to_string()))
                    }
                    _ => None,
                };
                if let Some((what, needle)) = wait {
                    let cmd = v6lab_core::render::usable6(&i.name, &needle);
                    probes.push(Probe {
                        description: format!("{what} on {}", i.name),
                        argv: vec!["sh".into(), "-c".into(), cmd],
                    });
                }
            }
            let start = match apply {
                Apply::Exercises => vec![vec!["sh".to_string(), UP_SCRIPT.to_string()]],
                // One exec for every part: each exec costs a round trip to the engine.
                Apply::Complete => {
                    let all: Vec<String> =
                        n.parts.iter().map(|p| format!("sh {}", p.script)).collect();
                    vec![vec!["sh".to_string(), "-ec".to_string(), all.join("\n")]]
                }
            };
            NodeSpec {
                name: n.name.clone(),
                image: n.image.clone(),
                sysctls: n.sysctls.clone(),
                link_sysctls: n.link_sysctls.clone(),
                limits: Limits {
                    memory_bytes: n.limits.memory_bytes,
                    pids: n.limits.pids,
                    nano_cpus: (n.limits.cpus * 1e9) as u64,
                },
                tun: n.tun,
                interfaces: n
                    .interfaces
                    .iter()
                    .map(|i| InterfaceSpec {
                        name: i.name.clone(),
                        segment: i.segment.clone(),
                        mac: i.mac.clone(),
                        mtu: i.mtu,
                    })
                    .collect(),
                files: n
                    .files
                    .iter()
                    .map(|f| FileSpec {
                        path: f.path.clone(),
                        mode: f.mode,
                        content: f.content.clone(),
                    })
                    .chain([FileSpec {
                        path: TOPOLOGY_FILE.into(),
                        mode: 0o644,
                        content: source.to_owned(),
                    }])
                    .collect(),
                start,
                probes,
            }
        })
        .collect();
    LabSpec {
        lab: lab.to_owned(),
        topology: plan.name.clone(),
        topology_hash: plan.topology_hash.clone(),
        expires_at,
        owner: "cli".into(),
        node_count: plan.nodes.len(),
        image: image.to_owned(),
        segments: plan
            .segments
            .iter()
            .map(|s| SegmentSpec {
                name: s.name.clone(),
                mtu: s.mtu,
            })
            .collect(),
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str) -> Plan {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../topologies")
            .join(name);
        let bytes = std::fs::read(&p).unwrap();
        v6lab_core::plan_source(name, &bytes)
            .map_err(|e| e.1.render(&e.0.text))
            .unwrap()
            .1
    }

    #[test]
    fn student_parts_are_not_awaited_unless_complete() {
        let p = plan("ipv6-basics.yaml");
        let s = lab_spec(&p, "", "l", "img", None, Apply::Exercises);
        let r1 = s.nodes.iter().find(|n| n.name == "r1").unwrap();
        assert!(!r1.probes.iter().any(|x| x.description.contains("radvd")));
        let h1 = s.nodes.iter().find(|n| n.name == "h1").unwrap();
        assert!(
            !h1.probes.iter().any(|x| x.description.contains("SLAAC")),
            "radvd is the student's: no SLAAC to wait for"
        );
        assert_eq!(
            h1.start,
            vec![vec!["sh".to_string(), UP_SCRIPT.to_string()]]
        );

        let s = lab_spec(&p, "", "l", "img", None, Apply::Complete);
        let h1 = s.nodes.iter().find(|n| n.name == "h1").unwrap();
        assert!(h1.probes.iter().any(|x| x.description.contains("SLAAC")));
        let r1 = s.nodes.iter().find(|n| n.name == "r1").unwrap();
        assert!(r1.probes.iter().any(|x| x.description == "radvd running"));
        assert_eq!(r1.start.len(), 1, "every part in one exec");
        for f in r1.files.iter().filter(|f| f.path.contains("/parts/")) {
            assert!(
                r1.start[0][2].contains(&format!("sh {}", f.path)),
                "{} not run",
                f.path
            );
        }
    }

    #[test]
    fn translator_gets_tun_and_limits_carry_over() {
        let p = plan("nat64-dns64.yaml");
        let s = lab_spec(&p, "", "l", "img", Some(42), Apply::Complete);
        let gw = s.nodes.iter().find(|n| n.name == "gw").unwrap();
        assert!(gw.tun);
        assert!(s.nodes.iter().filter(|n| n.name != "gw").all(|n| !n.tun));
        assert_eq!(gw.limits.nano_cpus, 1_000_000_000);
        assert_eq!(s.expires_at, Some(42));
        assert_eq!(
            gw.sysctls
                .get("net.ipv6.conf.all.forwarding")
                .map(String::as_str),
            Some("1")
        );
    }
}
