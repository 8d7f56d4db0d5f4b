//! Human-readable views of a plan (the `v6lab plan` table).

use crate::plan::{Assign4, Assign6, Plan};
use crate::topology::Role;
use std::fmt::Write as _;

/// Formats rows as left-aligned columns separated by two spaces.
pub fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (v, u) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if v > 0 {
            let _ = write!(out, "{v}{u}");
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

/// The `v6lab plan` table: segments, then one row per interface, then NAT64 and exercises.
pub fn plan_table(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {} — lifetime {}",
        plan.name,
        human_duration(plan.lifetime_secs)
    );
    if let Some(d) = &plan.description {
        let _ = writeln!(out, "{d}");
    }
    out.push('\n');
    let mut rows = vec![vec![
        "SEGMENT".into(),
        "FAMILY".into(),
        "IPv6".into(),
        "IPv4".into(),
        "RA".into(),
        "RDNSS".into(),
        "MTU".into(),
    ]];
    for s in &plan.segments {
        rows.push(vec![
            s.name.clone(),
            format!(
                "{}{}",
                s.family.as_str(),
                if s.nat64 { " (nat64)" } else { "" }
            ),
            s.ipv6.map(|p| p.to_string()).unwrap_or("-".into()),
            s.ipv4.map(|p| p.to_string()).unwrap_or("-".into()),
            if s.family.has_v6() {
                s.ra.as_str().to_owned()
            } else {
                "-".into()
            },
            if s.rdnss.is_empty() {
                "-".into()
            } else {
                s.rdnss
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            },
            s.mtu.to_string(),
        ]);
    }
    out.push_str(&columns(&rows));
    out.push('\n');
    let mut rows = vec![vec![
        "NODE".into(),
        "ROLE".into(),
        "INTERFACE".into(),
        "SEGMENT".into(),
        "FAMILY".into(),
        "IPv6".into(),
        "IPv4".into(),
        "HOW".into(),
    ]];
    for n in &plan.nodes {
        for (k, i) in n.interfaces.iter().enumerate() {
            let fam = plan
                .segment(&i.segment)
                .map(|s| s.family.as_str())
                .unwrap_or("?");
            let v6 = match &i.ipv6 {
                Assign6::Static { address } => address.to_string(),
                Assign6::Slaac { expected, prefix } => {
                    format!("{expected}/{}", prefix.prefix_len())
                }
                Assign6::Dhcpv6 { prefix } => format!("(from {prefix})"),
                Assign6::None => "(student)".into(),
                Assign6::Disabled => "-".into(),
            };
            let v4 = match &i.ipv4 {
                Assign4::Static { address } => address.to_string(),
                Assign4::Dhcp { prefix } => format!("(from {prefix})"),
                Assign4::None => "(student)".into(),
                Assign4::Disabled => "-".into(),
            };
            let how = match (&i.ipv6, &i.ipv4) {
                _ if n.role == Role::Switch => "switch port (br0)".to_string(),
                (Assign6::Disabled, a) => format!("v4 {}", a.label()),
                (a, Assign4::Disabled) => format!("v6 {}", a.label()),
                (a, b) => format!("v6 {}, v4 {}", a.label(), b.label()),
            };
            let (v6, v4) = if n.role == Role::Switch {
                ("-".to_string(), "-".to_string())
            } else {
                (v6, v4)
            };
            rows.push(vec![
                if k == 0 {
                    n.name.clone()
                } else {
                    String::new()
                },
                if k == 0 {
                    n.role.as_str().to_owned()
                } else {
                    String::new()
                },
                i.name.clone(),
                i.segment.clone(),
                fam.to_owned(),
                v6,
                v4,
                how,
            ]);
        }
        if n.interfaces.is_empty() {
            rows.push(vec![n.name.clone(), n.role.as_str().to_owned(), "-".into()]);
        }
    }
    out.push_str(&columns(&rows));
    let routes: Vec<Vec<String>> = plan
        .nodes
        .iter()
        .flat_map(|n| {
            n.routes.iter().map(move |r| {
                vec![
                    n.name.clone(),
                    r.to.to_string(),
                    r.via.to_string(),
                    r.origin.clone(),
                ]
            })
        })
        .collect();
    if !routes.is_empty() {
        out.push('\n');
        let mut rows = vec![vec![
            "NODE".into(),
            "ROUTE".into(),
            "VIA".into(),
            "WHY".into(),
        ]];
        rows.extend(routes);
        out.push_str(&columns(&rows));
    }
    if let Some(n) = &plan.nat64 {
        let _ = writeln!(
            out,
            "\nNAT64: prefix {} on {}, IPv4 pool {} (out {}), DNS64 resolver {} ({})",
            n.prefix, n.translator, n.pool, n.ipv4_interface, n.resolver, n.resolver_address
        );
        if n.pref64 {
            let _ = writeln!(out, "PREF64: {} in RAs on NAT64 segments", n.prefix);
        }
    }
    for (node, c) in plan
        .nodes
        .iter()
        .filter_map(|n| n.services.clat.as_ref().map(|c| (n, c)))
    {
        let _ = writeln!(
            out,
            "CLAT: {} has IPv4 {} on `clat`, translated to {} on {}, PLAT prefix {}",
            node.name, c.ipv4, c.ipv6, c.interface, c.plat_prefix
        );
    }
    let parts: Vec<Vec<String>> = plan
        .nodes
        .iter()
        .flat_map(|n| n.parts.iter().map(move |p| (n, p)))
        .map(|(n, p)| {
            vec![
                format!("{}/{}", n.name, p.id),
                p.title.clone(),
                p.student
                    .clone()
                    .map(|s| format!("student ({s})"))
                    .unwrap_or("at start".into()),
            ]
        })
        .collect();
    if !parts.is_empty() {
        out.push('\n');
        let mut rows = vec![vec!["PART".into(), "WHAT".into(), "APPLIED".into()]];
        rows.extend(parts);
        out.push_str(&columns(&rows));
    }
    if !plan.exercises.is_empty() {
        out.push('\n');
        let mut rows = vec![vec![
            "EXERCISE".into(),
            "TITLE".into(),
            "CHECKS".into(),
            "LEFT TO THE STUDENT".into(),
        ]];
        for e in &plan.exercises {
            rows.push(vec![
                e.id.clone(),
                e.title.clone(),
                e.checks.len().to_string(),
                if e.student.is_empty() {
                    "-".into()
                } else {
                    e.student.join(", ")
                },
            ]);
        }
        out.push_str(&columns(&rows));
    }
    out
}
