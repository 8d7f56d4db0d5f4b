//! Non-vacuity of every shipped exercise, on real labs: on a fresh lab each exercise's checks
//! FAIL (unless the topology declares `passes-initially`), after `v6lab solve` they PASS.
//! Exercises are taken in order, as a student would.

mod common;

use common::*;

fn check(lab: &Lab, exercise: &str) -> (i32, serde_json::Value) {
    let o = v6lab(&[
        "check",
        &lab.name,
        "--exercise",
        exercise,
        "--output",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    (o.status.code().unwrap_or(-1), v)
}

fn exercises_prove_work(topology_name: &str) {
    let plan = plan_json(topology_name);
    let lab = Lab::up(topology_name, &format!("ex-{topology_name}"), &[]);
    for e in plan["exercises"].as_array().unwrap() {
        let id = e["id"].as_str().unwrap();
        let (code, before) = check(&lab, id);
        let checks = &before["exercises"][0]["checks"];
        if e["passes_initially"] == true {
            assert_eq!(
                code, 0,
                "{topology_name}/{id} declares passes-initially but fails: {before}"
            );
        } else {
            assert_eq!(
                code, 1,
                "{topology_name}/{id} passes before the student did anything: {before}"
            );
            // Every check but the negative ones must fail on its own: a check that passes anyway
            // proves nothing. A flow expected to be blocked is a negative check.
            for (c, spec) in checks
                .as_array()
                .unwrap()
                .iter()
                .zip(e["checks"].as_array().unwrap())
            {
                if spec["expect_fail"] != true && spec["kind"]["expect"] != "blocked" {
                    assert_eq!(
                        c["passed"], false,
                        "{topology_name}/{id}: check `{}` passes on a fresh lab",
                        c["title"]
                    );
                }
            }
        }
        v6lab_ok(&["solve", &lab.name, id]);
        let (code, after) = check(&lab, id);
        assert_eq!(
            code, 0,
            "{topology_name}/{id} still fails after its solution: {after}"
        );
    }
}

#[test]
fn ipv6_basics() {
    exercises_prove_work("ipv6-basics");
}

#[test]
fn dhcpv6() {
    exercises_prove_work("dhcpv6");
}

#[test]
fn dual_stack() {
    exercises_prove_work("dual-stack");
}

#[test]
fn nat64_dns64() {
    exercises_prove_work("nat64-dns64");
}

#[test]
fn static_routing() {
    exercises_prove_work("static-routing");
}

#[test]
fn ospfv3() {
    exercises_prove_work("ospfv3");
}

#[test]
fn ipv6_only_464xlat() {
    exercises_prove_work("ipv6-only-464xlat");
}

#[test]
fn pmtud() {
    exercises_prove_work("pmtud");
}

#[test]
fn bgp() {
    exercises_prove_work("bgp");
}

#[test]
fn firewall() {
    exercises_prove_work("firewall");
}

#[test]
fn dhcpv6_stateless() {
    exercises_prove_work("dhcpv6-stateless");
}

#[test]
fn dns_reverse() {
    exercises_prove_work("dns-reverse");
}

#[test]
fn ra_guard() {
    exercises_prove_work("ra-guard");
}

#[test]
fn every_shipped_topology_is_covered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bgp",
            "dhcpv6",
            "dhcpv6-stateless",
            "dns-reverse",
            "dual-stack",
            "firewall",
            "ipv6-basics",
            "ipv6-only-464xlat",
            "nat64-dns64",
            "ospfv3",
            "pmtud",
            "ra-guard",
            "static-routing"
        ],
        "a new topology needs its test above"
    );
}
