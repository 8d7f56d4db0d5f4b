//! Property tests of the address plan: deterministic, never overlapping, always inside
//! documentation and benchmarking ranges, every address inside its segment.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use std::collections::HashSet;
use v6lab_core::plan::{Assign4, Assign6};

#[derive(Debug, Clone)]
struct Seg {
    family: u8,
    explicit6: Option<u16>,
    ra_none: bool,
}

fn topology(segs: &[Seg], nodes: &[(u8, Vec<usize>)]) -> String {
    let fam = ["ipv6-only", "dual-stack", "ipv4-only"];
    let mut y = String::from("name: prop\nsegments:\n");
    for (i, s) in segs.iter().enumerate() {
        let f = fam[s.family as usize % 3];
        y.push_str(&format!("  s{i}: {{family: {f}"));
        if let (Some(x), true) = (s.explicit6, f != "ipv4-only") {
            y.push_str(&format!(", ipv6: \"2001:db8:{x:x}::/64\""));
        }
        if s.ra_none && f != "ipv4-only" {
            y.push_str(", ra: none");
        }
        y.push_str("}\n");
    }
    y.push_str("nodes:\n");
    let roles = ["router", "host", "server", "dns"];
    for (i, (role, ifs)) in nodes.iter().enumerate() {
        y.push_str(&format!(
            "  n{i}:\n    role: {}\n    interfaces:\n",
            roles[*role as usize % 4]
        ));
        let mut seen = HashSet::new();
        for (k, s) in ifs.iter().enumerate() {
            let s = s % segs.len();
            if seen.insert(s) {
                y.push_str(&format!("      eth{}: s{s}\n", k + 1));
            }
        }
        if seen.is_empty() {
            y.push_str("      eth1: s0\n");
        }
    }
    y
}

fn doc6() -> Vec<Ipv6Net> {
    vec![
        "2001:db8::/32".parse().unwrap(),
        "3fff::/20".parse().unwrap(),
    ]
}
fn doc4() -> Vec<Ipv4Net> {
    [
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "198.18.0.0/15",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn plan_is_deterministic_disjoint_and_documentation_only(
        segs in prop::collection::vec((0u8..3, prop::option::of(1u16..40), any::<bool>()).prop_map(|(family, explicit6, ra_none)| Seg { family, explicit6, ra_none }), 1..12),
        nodes in prop::collection::vec((0u8..4, prop::collection::vec(0usize..12, 1..4)), 1..10),
    ) {
        let y = topology(&segs, &nodes);
        let a = v6lab_core::plan_source("p.yaml", y.as_bytes());
        let b = v6lab_core::plan_source("p.yaml", y.as_bytes());
        match (&a, &b) {
            (Ok((_, pa)), Ok((_, pb))) => prop_assert_eq!(pa, pb),
            (Err((_, da)), Err((_, db))) => {
                prop_assert_eq!(da, db);
                // Only explicit prefixes can clash; the pool never makes an invalid plan.
                for d in &da.items {
                    prop_assert!(d.message.contains("overlaps") || d.message.contains("is also used by"), "unexpected error {}\n{}", d.message, y);
                }
                return Ok(());
            }
            _ => prop_assert!(false, "non-deterministic validity"),
        }
        let (_, plan) = a.unwrap();
        // Explicit prefixes win.
        for (i, seg) in segs.iter().enumerate() {
            if let (Some(x), true) = (seg.explicit6, seg.family % 3 != 2) {
                let want: Ipv6Net = format!("2001:db8:{x:x}::/64").parse().unwrap();
                prop_assert_eq!(plan.segments[i].ipv6, Some(want));
            }
        }
        let mut nets: Vec<IpNet> = Vec::new();
        for s in &plan.segments {
            if let Some(p) = s.ipv6 {
                prop_assert!(doc6().iter().any(|d| d.contains(&p)), "{} outside documentation ranges", p);
                nets.push(IpNet::V6(p));
            }
            if let Some(p) = s.ipv4 {
                prop_assert!(doc4().iter().any(|d| d.contains(&p)), "{} outside documentation ranges", p);
                nets.push(IpNet::V4(p));
            }
            prop_assert_eq!(s.ipv6.is_some(), s.family.has_v6());
            prop_assert_eq!(s.ipv4.is_some(), s.family.has_v4());
        }
        for (i, x) in nets.iter().enumerate() {
            for y in &nets[..i] {
                prop_assert!(!x.contains(y) && !y.contains(x), "{} overlaps {}", x, y);
            }
        }
        let mut seen = HashSet::new();
        for n in &plan.nodes {
            for i in &n.interfaces {
                let seg = plan.segment(&i.segment).unwrap();
                match &i.ipv6 {
                    Assign6::Static { address } => {
                        prop_assert!(seg.ipv6.unwrap().contains(&address.addr()));
                        prop_assert!(seen.insert(address.addr().to_string()), "duplicate {}", address);
                    }
                    Assign6::Slaac { prefix, expected } => prop_assert!(prefix.contains(expected)),
                    _ => {}
                }
                if let Assign4::Static { address } = &i.ipv4 {
                    prop_assert!(seg.ipv4.unwrap().contains(&address.addr()));
                    prop_assert!(seen.insert(address.addr().to_string()), "duplicate {}", address);
                }
            }
        }
    }
}
