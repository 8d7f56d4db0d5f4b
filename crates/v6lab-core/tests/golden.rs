//! A golden plan per sample topology: the table and the full JSON plan are snapshots
//! (tests/snapshots). A change to addressing or rendering shows up as a reviewed diff.

use std::path::Path;

fn samples() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn sample_plans_match_their_snapshots() {
    let files = samples();
    assert!(files.len() >= 6, "samples missing");
    for f in files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&f).unwrap();
        let (_, plan) = match v6lab_core::plan_source(&format!("{name}.yaml"), &bytes) {
            Ok(x) => x,
            Err((s, d)) => panic!("{}", d.render(&s.text)),
        };
        assert!(
            plan.exercises.len() >= 2,
            "{name}: a sample needs at least two exercises"
        );
        insta::assert_snapshot!(
            format!("{name}-table"),
            v6lab_core::report::plan_table(&plan)
        );
        insta::assert_json_snapshot!(format!("{name}-plan"), plan);
    }
}

#[test]
fn planning_is_deterministic_for_samples() {
    for f in samples() {
        let bytes = std::fs::read(&f).unwrap();
        let a = v6lab_core::plan_source("x", &bytes).map(|x| x.1).ok();
        let b = v6lab_core::plan_source("x", &bytes).map(|x| x.1).ok();
        assert_eq!(a, b);
    }
}

#[test]
fn sample_pictures_match_their_snapshots() {
    for f in samples() {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&f).unwrap();
        let (_, plan) = v6lab_core::plan_source("x", &bytes)
            .map_err(|e| e.1.render(&e.0.text))
            .unwrap();
        let svg = v6lab_core::graph::svg(&plan);
        // Every segment and node is drawn, with its family's colour.
        for s in &plan.segments {
            assert!(
                svg.contains(&format!("data-segment=\"{}\"", s.name)),
                "{name}: segment {} missing",
                s.name
            );
            assert!(svg.contains(v6lab_core::graph::segment_style(s).0));
        }
        for n in &plan.nodes {
            assert!(
                svg.contains(&format!("data-node=\"{}\"", n.name)),
                "{name}: node {} missing",
                n.name
            );
        }
        insta::assert_snapshot!(format!("{name}-dot"), v6lab_core::graph::dot(&plan));
        insta::assert_snapshot!(format!("{name}-mermaid"), v6lab_core::graph::mermaid(&plan));
    }
}

#[test]
fn dhcpv4_clients_get_the_labs_resolver() {
    let y = "name: d4\nsegments:\n  lan: dual-stack\nnodes:\n  r1: {role: router, interfaces: {eth1: lan}}\n  dns1: {role: dns, interfaces: {eth1: lan}, services: {resolver: {}}}\n  h1:\n    role: host\n    interfaces:\n      eth1: {segment: lan, ipv4: dhcp}\n";
    let (_, plan) = v6lab_core::plan_source("d4.yaml", y.as_bytes())
        .map_err(|e| e.1.render(&e.0.text))
        .unwrap();
    let r1 = plan.node("r1").unwrap();
    let conf = &r1
        .file("/etc/v6lab/dnsmasq.conf")
        .expect("r1 serves DHCP")
        .content;
    let dns1 = plan.node("dns1").unwrap().first_v4().unwrap();
    assert!(
        conf.contains(&format!("dhcp-option=option:dns-server,{dns1}")),
        "{conf}"
    );
    assert!(
        conf.contains("dhcp-option=option:router,192.0.2.1"),
        "{conf}"
    );
    assert!(r1.parts.iter().any(|p| p.id == "dhcp"));
}
