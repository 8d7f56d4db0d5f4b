//! Pictures of a plan: SVG (for the web pages), Graphviz DOT and Mermaid (for slides and
//! handouts). Segments are coloured by family: IPv6-only, dual-stack, IPv4-only, NAT64.

use crate::plan::{Assign4, Assign6, InterfacePlan, Plan, SegmentPlan};
use crate::topology::Family;
use std::fmt::Write as _;

/// The colour and legend label of a segment.
pub fn segment_style(s: &SegmentPlan) -> (&'static str, &'static str) {
    match (s.family, s.nat64) {
        (Family::Ipv6Only, true) => ("#1a7f37", "IPv6-only + NAT64"),
        (Family::Ipv6Only, false) => ("#0969da", "IPv6-only"),
        (Family::DualStack, _) => ("#8250df", "dual-stack"),
        (Family::Ipv4Only, _) => ("#bc4c00", "IPv4-only"),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn prefixes(s: &SegmentPlan) -> String {
    [s.ipv6.map(|p| p.to_string()), s.ipv4.map(|p| p.to_string())]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("  ")
}

fn iface_label(i: &InterfacePlan) -> String {
    let v6 = match &i.ipv6 {
        Assign6::Static { address } => {
            Some(format!("::{}", last_groups(&address.addr().to_string())))
        }
        Assign6::Slaac { .. } => Some("slaac".into()),
        Assign6::Dhcpv6 { .. } => Some("dhcpv6".into()),
        _ => None,
    };
    let v4 = match &i.ipv4 {
        Assign4::Static { address } => Some(format!(".{}", address.addr().octets()[3])),
        Assign4::Dhcp { .. } => Some("dhcp".into()),
        _ => None,
    };
    let addrs: Vec<String> = v6.into_iter().chain(v4).collect();
    if addrs.is_empty() {
        i.name.clone()
    } else {
        format!("{} {}", i.name, addrs.join(" "))
    }
}

/// The host part of a static address as written in workbooks (`1` of `2001:db8:1::1`).
fn last_groups(a: &str) -> String {
    a.rsplit("::").next().unwrap_or(a).to_owned()
}

const ROW: i64 = 150;
const COL: i64 = 170;
const TOP: i64 = 110;
const LEFT: i64 = 40;
const BOX_W: i64 = 130;
const BOX_H: i64 = 46;

/// An SVG picture: one horizontal bar per segment, nodes as boxes wired to their segments.
pub fn svg(plan: &Plan) -> String {
    let seg_y = |name: &str| {
        plan.segments
            .iter()
            .position(|s| s.name == name)
            .map(|i| TOP + ROW * i as i64 + ROW / 2)
            .unwrap_or(TOP)
    };
    let width = LEFT * 2 + COL * plan.nodes.len().max(2) as i64 + 60;
    let height = TOP + ROW * plan.segments.len().max(1) as i64 - ROW / 2
        + if plan.nat64.is_some() { 75 } else { 50 };
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="t-{name}" font-family="system-ui, sans-serif">"#,
        name = esc(&plan.name)
    );
    let _ = writeln!(
        o,
        r#"<title id="t-{0}">Topology of lab {0}</title>"#,
        esc(&plan.name)
    );
    let _ = writeln!(o, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        o,
        r##"<text x="{LEFT}" y="36" font-size="22" font-weight="700" fill="#1f2328">{}</text>"##,
        esc(&plan.name)
    );
    // Legend of the families present.
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for s in &plan.segments {
        let st = segment_style(s);
        if !seen.contains(&st) {
            seen.push(st);
        }
    }
    for (k, (color, label)) in seen.iter().enumerate() {
        let x = LEFT + k as i64 * 190;
        let _ = writeln!(
            o,
            r##"<rect x="{x}" y="52" width="26" height="10" rx="3" fill="{color}"/><text x="{}" y="62" font-size="14" fill="#1f2328">{label}</text>"##,
            x + 34
        );
    }
    // Segments.
    for s in &plan.segments {
        let y = seg_y(&s.name);
        let (color, label) = segment_style(s);
        let _ = writeln!(o, r#"<g class="segment" data-segment="{}">"#, esc(&s.name));
        let _ = writeln!(
            o,
            r#"<rect x="{LEFT}" y="{}" width="{}" height="10" rx="5" fill="{color}"/>"#,
            y - 5,
            width - 2 * LEFT
        );
        let _ = writeln!(
            o,
            r##"<text x="{}" y="{}" font-size="15" text-anchor="end" fill="{color}" font-weight="700">{}</text><text x="{}" y="{}" font-size="13" text-anchor="end" fill="#57606a">{} · {}</text>"##,
            width - LEFT,
            y - 12,
            esc(&s.name),
            width - LEFT,
            y + 24,
            label,
            esc(&prefixes(s))
        );
        let _ = writeln!(o, "</g>");
    }
    // Nodes: a column each, placed between (or just above) their segments.
    for (col, n) in plan.nodes.iter().enumerate() {
        let x = LEFT + 20 + COL * col as i64;
        let ys: Vec<i64> = n.interfaces.iter().map(|i| seg_y(&i.segment)).collect();
        let (lo, hi) = (
            ys.iter().copied().min().unwrap_or(TOP),
            ys.iter().copied().max().unwrap_or(TOP),
        );
        let mut cy = if lo == hi {
            lo - ROW / 2 + 10
        } else {
            (lo + hi) / 2
        };
        // Never on top of a segment's bar: between two bars instead.
        if plan
            .segments
            .iter()
            .any(|s| (seg_y(&s.name) - cy).abs() < BOX_H)
        {
            cy -= ROW / 2;
        }
        let cx = x + BOX_W / 2;
        let _ = writeln!(o, r#"<g class="node" data-node="{}">"#, esc(&n.name));
        for i in &n.interfaces {
            let sy = seg_y(&i.segment);
            let _ = writeln!(
                o,
                r##"<line x1="{cx}" y1="{cy}" x2="{cx}" y2="{sy}" stroke="#57606a" stroke-width="2"/>"##
            );
            let ly = if sy > cy { sy - 14 } else { sy + 22 };
            let _ = writeln!(
                o,
                r##"<text x="{}" y="{ly}" font-size="12" fill="#1f2328">{}</text>"##,
                cx + 6,
                esc(&iface_label(i))
            );
        }
        let fill = if n.forwarding { "#ddf4ff" } else { "#f6f8fa" };
        let _ = writeln!(
            o,
            r##"<rect x="{x}" y="{}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}" stroke="#1f2328" stroke-width="1.5"/><text x="{cx}" y="{}" font-size="16" font-weight="700" text-anchor="middle" fill="#1f2328">{}</text><text x="{cx}" y="{}" font-size="12" text-anchor="middle" fill="#57606a">{}</text>"##,
            cy - BOX_H / 2,
            cy - 2,
            esc(&n.name),
            cy + 15,
            n.role.as_str()
        );
        let _ = writeln!(o, "</g>");
    }
    if let Some(n) = &plan.nat64 {
        let _ = writeln!(
            o,
            r##"<text x="{LEFT}" y="{}" font-size="13" fill="#1a7f37">NAT64 prefix {} on {} · DNS64 resolver {}</text>"##,
            height - 20,
            n.prefix,
            esc(&n.translator),
            esc(&n.resolver)
        );
    }
    o.push_str("</svg>\n");
    o
}

fn id(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Graphviz DOT: segments are coloured boxes, nodes ellipses, edges carry interface and address.
pub fn dot(plan: &Plan) -> String {
    let mut o = format!(
        "graph \"{}\" {{\n  layout=neato; overlap=false; splines=true;\n  node [fontname=\"sans-serif\"]; edge [fontname=\"sans-serif\", fontsize=10];\n",
        plan.name
    );
    for s in &plan.segments {
        let (color, label) = segment_style(s);
        let _ = writeln!(
            o,
            "  seg_{} [shape=box, style=\"rounded,filled\", fillcolor=\"{color}\", fontcolor=white, label=\"{}\\n{}\\n{}\"];",
            id(&s.name),
            s.name,
            label,
            prefixes(s).replace("  ", "\\n")
        );
    }
    for n in &plan.nodes {
        let _ = writeln!(
            o,
            "  node_{} [shape=ellipse, label=\"{}\\n({})\"];",
            id(&n.name),
            n.name,
            n.role.as_str()
        );
        for i in &n.interfaces {
            let _ = writeln!(
                o,
                "  node_{} -- seg_{} [label=\"{}\"];",
                id(&n.name),
                id(&i.segment),
                iface_label(i)
            );
        }
    }
    o.push_str("}\n");
    o
}

/// Mermaid flowchart, for Markdown handouts.
pub fn mermaid(plan: &Plan) -> String {
    let mut o = String::from("flowchart LR\n");
    for s in &plan.segments {
        let (_, label) = segment_style(s);
        let _ = writeln!(
            o,
            "  seg_{}[[\"{} · {}<br/>{}\"]]",
            id(&s.name),
            s.name,
            label,
            prefixes(s)
        );
    }
    for n in &plan.nodes {
        let _ = writeln!(
            o,
            "  node_{}(\"{}<br/>{}\")",
            id(&n.name),
            n.name,
            n.role.as_str()
        );
        for i in &n.interfaces {
            let _ = writeln!(
                o,
                "  node_{} ---|\"{}\"| seg_{}",
                id(&n.name),
                iface_label(i),
                id(&i.segment)
            );
        }
    }
    for (k, s) in plan.segments.iter().enumerate() {
        let (color, _) = segment_style(s);
        let _ = writeln!(o, "  style seg_{} fill:{color},color:#fff", id(&s.name));
        let _ = k;
    }
    o
}
