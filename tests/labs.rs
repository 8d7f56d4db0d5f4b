//! Labs for real on the Docker engine: NAT64/DNS64, dual-stack, isolation of identical labs,
//! nothing left after `down`, nothing left after a killed `up`.

mod common;

use common::*;
use std::net::{IpAddr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::time::Duration;

fn node<'a>(plan: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap()
}

fn nat64_packets(lab: &Lab) -> u64 {
    let out = lab.ok("gw", "ip -s -j link show nat64");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["stats64"]["rx"]["packets"].as_u64().unwrap()
        + v[0]["stats64"]["tx"]["packets"].as_u64().unwrap()
}

#[test]
fn nat64_dns64_ipv6_only_client_reaches_ipv4_site_by_name() {
    let plan = plan_json("nat64-dns64");
    let lab = Lab::up("nat64-dns64", "nat64", &["--complete"]);

    // The client has no IPv4 address at all.
    let v4 = lab.ok("client", "ip -4 -o addr show");
    assert!(
        v4.lines().all(|l| l.contains(" lo ")),
        "client has IPv4: {v4}"
    );
    assert!(lab.ok("client", "ip -4 route show").trim().is_empty());

    // Its global address came by SLAAC from gw's RA: dynamic, inside the planned prefix, and the
    // default route goes via gw's link-local address.
    let prefix: ipnet::Ipv6Net = plan["segments"][0]["ipv6"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let addrs: serde_json::Value =
        serde_json::from_str(&lab.ok("client", "ip -j -6 addr show dev eth1 scope global"))
            .unwrap();
    let slaac: Vec<Ipv6Addr> = addrs[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["dynamic"] == true)
        .map(|a| a["local"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        slaac.iter().any(|a| prefix.contains(a)),
        "no SLAAC address in {prefix}: {addrs}"
    );
    let gw_ll = node(&plan, "gw")["interfaces"][0]["link_local"]
        .as_str()
        .unwrap();
    let routes: serde_json::Value =
        serde_json::from_str(&lab.ok("client", "ip -j -6 route show default")).unwrap();
    assert_eq!(routes[0]["gateway"].as_str(), Some(gw_ll), "{routes}");
    assert_eq!(routes[0]["protocol"].as_str(), Some("ra"), "{routes}");

    // DNS64 answers inside the lab's NAT64 prefix.
    let nat64: ipnet::Ipv6Net = plan["nat64"]["prefix"].as_str().unwrap().parse().unwrap();
    let answer = lab.ok("client", "dig +short AAAA www.example.net");
    let ip: IpAddr = answer
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no AAAA: {answer}"));
    assert!(
        matches!(ip, IpAddr::V6(a) if nat64.contains(&a)),
        "{ip} not in {nat64}"
    );

    // The page comes through, translated by tayga on gw.
    let before = nat64_packets(&lab);
    let body = lab.ok("client", "curl -sS -m 5 http://www.example.net/");
    assert!(body.contains("hello from the IPv4-only web"), "{body}");
    let after = nat64_packets(&lab);
    assert!(
        after > before + 4,
        "the nat64 device saw {before} then {after} packets"
    );
}

#[test]
fn dual_stack_service_both_families_and_no_ipv4_from_ipv6_only() {
    let plan = plan_json("dual-stack");
    let lab = Lab::up("dual-stack", "dual", &["--complete"]);
    let want = "hello from the dual-stack web";
    assert!(
        lab.ok("h1", "curl -4 -sS -m 5 http://www.example.org/")
            .contains(want)
    );
    assert!(
        lab.ok("h1", "curl -6 -sS -m 5 http://www.example.org/")
            .contains(want)
    );

    // The host on the IPv6-only segment has no IPv4 at all and reaches no IPv4 address.
    assert!(
        lab.ok("h6", "ip -4 -o addr show")
            .lines()
            .all(|l| l.contains(" lo "))
    );
    assert!(lab.ok("h6", "ip -4 route show").trim().is_empty());
    let web4 = node(&plan, "web")["interfaces"][0]["ipv4"]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let r1_4 = node(&plan, "r1")["interfaces"][0]["ipv4"]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    for target in [&web4, &r1_4] {
        let (code, _, _) = lab.exec("h6", &format!("ping -4 -c 1 -W 1 {target}"));
        assert_ne!(code, 0, "h6 reached {target} over IPv4");
    }
    let (code, _, _) = lab.exec("h6", &format!("curl -4 -sS -m 3 http://{web4}/"));
    assert_ne!(code, 0, "h6 fetched over IPv4");
    // ...while IPv6 works from there.
    assert!(
        lab.ok("h6", "curl -6 -sS -m 5 http://www.example.org/")
            .contains(want)
    );
}

#[test]
fn two_labs_with_identical_addresses_do_not_talk() {
    let a = Lab::up("ipv6-basics", "iso-a", &["--complete"]);
    let b = Lab::up("ipv6-basics", "iso-b", &["--complete"]);
    // Same plan, same addresses.
    let addr = |l: &Lab| {
        l.ok(
            "h1",
            "ip -6 -o addr show dev eth1 scope global | awk '{print $4}' | sort",
        )
    };
    assert_eq!(addr(&a), addr(&b));
    assert!(!addr(&a).trim().is_empty());

    // An address only lab B has.
    b.ok("h2", "ip -6 addr add 2001:db8:1::beef/64 dev eth1 nodad");
    // Positive control: it answers inside B.
    b.ok("h1", "ping -6 -c 1 -W 2 2001:db8:1::beef");
    // Lab A cannot reach it, and never learns a neighbour for it.
    let (code, _, _) = a.exec("h1", "ping -6 -c 2 -W 1 2001:db8:1::beef");
    assert_ne!(code, 0, "lab A reached an address of lab B");
    let neigh = a.ok("h1", "ip -6 neigh show 2001:db8:1::beef");
    assert!(
        !neigh.contains("REACHABLE") && !neigh.contains("STALE") && !neigh.contains("lladdr"),
        "A learnt B's neighbour: {neigh}"
    );
    // B never saw A's probes: no neighbour entry for A's h1 on B's h2 beyond its own lab's traffic,
    // checked through a counter only A's pings could raise.
    let b_rx: u64 = b
        .ok("h2", "cat /sys/class/net/eth1/statistics/rx_packets")
        .trim()
        .parse()
        .unwrap();
    let (code, _, _) = a.exec("h1", "ping -6 -c 20 -i 0.05 -W 1 2001:db8:1::beef");
    assert_ne!(code, 0);
    let b_rx2: u64 = b
        .ok("h2", "cat /sys/class/net/eth1/statistics/rx_packets")
        .trim()
        .parse()
        .unwrap();
    assert!(
        b_rx2 < b_rx + 20,
        "B's h2 received {} packets while A pinged 20 times",
        b_rx2 - b_rx
    );
}

#[test]
fn down_leaves_nothing_and_is_idempotent() {
    let lab = Lab::up("static-routing", "down", &[]);
    let name = lab.name.clone();
    // Remember each node's network namespace.
    let ids = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=dev.v6lab.lab={name}"),
        ])
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 4);
    let mut namespaces = Vec::new();
    for id in &ids {
        let o = Command::new("docker")
            .args(["inspect", "-f", "{{.State.Pid}}", id])
            .output()
            .unwrap();
        let pid = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(ns.starts_with("net:["), "{ns}");
        namespaces.push(ns);
    }
    assert!(
        !alive_namespaces(&namespaces).is_empty(),
        "the scan does not see the lab's namespaces"
    );
    assert!(
        !leftovers(&name).is_empty(),
        "the lab's objects are not visible to the leftover scan"
    );
    v6lab_ok(&["down", &name]);
    assert_eq!(leftovers(&name), Vec::<String>::new());
    // No network namespace of the lab stays alive: no process is in one, no file descriptor or
    // mount holds one. The engine's last processes of a removed container (its shim) may take a
    // moment to exit after `down` returns.
    wait_for(
        "the lab's network namespaces to be released",
        Duration::from_secs(15),
        || alive_namespaces(&namespaces).is_empty().then_some(()),
    );
    // Again: nothing to do, no error.
    let out = v6lab_ok(&["down", &name]);
    assert!(out.contains("nothing to remove"), "{out}");
    drop(lab);
}

/// Which of `namespaces` (`net:[inode]`) a process, file descriptor or mount still holds.
fn alive_namespaces(namespaces: &[String]) -> Vec<String> {
    let mut held = std::collections::HashSet::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let path = p.path();
        if let Ok(l) = std::fs::read_link(path.join("ns/net")) {
            held.insert(l.to_string_lossy().into_owned());
        }
        if let Ok(fds) = std::fs::read_dir(path.join("fd")) {
            for fd in fds.flatten() {
                if let Ok(l) = std::fs::read_link(fd.path()) {
                    held.insert(l.to_string_lossy().into_owned());
                }
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    namespaces
        .iter()
        .filter(|n| held.contains(*n) || mounts.contains(n.as_str()))
        .cloned()
        .collect()
}

#[test]
fn killed_up_then_down_leaves_nothing() {
    let name = lab_name("killed");
    let t = topology("ospfv3");
    let mut child = Command::new(bin())
        .args(["up", t.to_str().unwrap(), "--name", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Half-way: some container exists, the lab is not complete.
    wait_for("a container of the lab", Duration::from_secs(60), || {
        let o = Command::new("docker")
            .args([
                "ps",
                "-a",
                "-q",
                "--filter",
                &format!("label=dev.v6lab.lab={name}"),
            ])
            .output()
            .unwrap();
        (!o.stdout.is_empty()).then_some(())
    });
    child.kill().unwrap(); // SIGKILL: no clean-up handler runs.
    child.wait().unwrap();
    assert!(
        !leftovers(&name).is_empty(),
        "the killed up left nothing to clean: the test proves nothing"
    );
    v6lab_ok(&["down", &name]);
    assert_eq!(leftovers(&name), Vec::<String>::new());
}

#[test]
fn invalid_topology_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("v6lab-invalid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.yaml");
    std::fs::write(&f, "name: bad\nsegments: {lan: ipv6-only}\nnodes:\n  h1: {role: host, interfaces: {eth1: lna}}\n").unwrap();
    let name = lab_name("invalid");
    let o = v6lab(&["up", f.to_str().unwrap(), "--name", &name]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad.yaml:4:"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(leftovers(&name), Vec::<String>::new());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn policy_refuses_large_limits_and_foreign_images_before_anything_exists() {
    let dir = std::env::temp_dir().join(format!("v6lab-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("greedy.yaml");
    std::fs::write(
        &f,
        "name: greedy\nsegments: {lan: ipv6-only}\nnodes:\n  h1:\n    role: host\n    image: docker.io/library/alpine\n    interfaces: {eth1: lan}\n    limits: {memory: 3GiB}\n",
    )
    .unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, "node: {memory: 2GiB}\n").unwrap();
    let name = lab_name("policy");
    let (file, policy) = (f.to_str().unwrap(), policy.to_str().unwrap());
    let o = v6lab(&["up", file, "--name", &name, "--policy", policy]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("greedy.yaml:6:12"), "{err}");
    assert!(
        err.contains("image `docker.io/library/alpine` is not allowed"),
        "{err}"
    );
    assert!(err.contains("greedy.yaml:8:22"), "{err}");
    assert!(err.contains("above the maximum of 2GiB per node"), "{err}");
    assert!(err.contains(policy), "the hint names the policy: {err}");
    assert_eq!(leftovers(&name), Vec::<String>::new());

    // Allowing the image leaves the limit; `validate` says the same as `up`.
    let o = v6lab(&[
        "validate",
        file,
        "--policy",
        policy,
        "--allow-image",
        "docker.io/library/alpine",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("not allowed"), "{err}");
    assert!(err.contains("greedy.yaml:8:22"), "{err}");
    assert_eq!(leftovers(&name), Vec::<String>::new());
    std::fs::remove_dir_all(&dir).unwrap();
}
