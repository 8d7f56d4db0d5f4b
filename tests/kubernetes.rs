//! The Kubernetes runtime on a real cluster: the test cluster of
//! `deploy/kubernetes/test-cluster.sh` (two kind-style nodes, Kubernetes 1.20 from Debian's
//! source), which `deploy/test.sh` brings up before running these with `--ignored`.
//!
//! Every test works in a namespace of its own (deleted at the end) and spreads each lab's pods
//! over both cluster nodes (`V6LAB_SPREAD=1`), so every segment crosses nodes.

mod common;

use common::serve::Serve;
use common::{topology, wait_for};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const KUBECONFIG: &str = "/var/lib/v6lab/kubernetes/admin.kubeconfig";
const KUBECTL: &str = "/var/lib/v6lab/kubernetes/kubectl";
const CLUSTER_NODES: [&str; 2] = ["v6k8s-a", "v6k8s-b"];

/// A namespace for one test, deleted (with everything in it) when dropped.
struct Namespace(String);

impl Namespace {
    fn new(test: &str) -> Namespace {
        let name = format!("v6t{}-{test}", std::process::id() % 100_000);
        kubectl_ok(&["create", "namespace", &name]);
        Namespace(name)
    }

    /// Global options putting a command on this namespace.
    fn args(&self) -> [&str; 4] {
        ["--runtime", "kubernetes", "--namespace", &self.0]
    }

    fn v6lab(&self, args: &[&str]) -> Output {
        Command::new(common::bin())
            .args(self.args())
            .args(args)
            .env("KUBECONFIG", KUBECONFIG)
            .env("V6LAB_SPREAD", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run v6lab")
    }

    fn v6lab_ok(&self, args: &[&str]) -> String {
        let o = self.v6lab(args);
        assert!(
            o.status.success(),
            "v6lab {args:?} failed ({:?}):\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn up(&self, topology_name: &str, lab: &str, extra: &[&str]) {
        let t = topology(topology_name);
        let mut args = vec!["up", t.to_str().unwrap(), "--name", lab, "--quiet"];
        args.extend_from_slice(extra);
        self.v6lab_ok(&args);
    }

    fn exec(&self, lab: &str, node: &str, cmd: &str) -> (i32, String) {
        let o = self.v6lab(&["exec", lab, node, "--", "sh", "-c", cmd]);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    }

    fn ok(&self, lab: &str, node: &str, cmd: &str) -> String {
        let (code, out) = self.exec(lab, node, cmd);
        assert_eq!(code, 0, "`{cmd}` in {lab}/{node} failed:\n{out}");
        out
    }

    /// `kubectl get KIND -n NS` as JSON items.
    fn items(&self, kind: &str, selector: Option<&str>) -> Vec<Value> {
        let mut args = vec!["-n", &self.0, "get", kind, "-o", "json"];
        if let Some(s) = selector {
            args.extend(["-l", s]);
        }
        let v: Value = serde_json::from_str(&kubectl_ok(&args)).unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// Every object of `lab` left in the API: pods, ConfigMaps, NetworkPolicies, its Lab.
    fn leftovers(&self, lab: &str) -> Vec<String> {
        let sel = format!("v6lab.dev/lab={lab}");
        let mut out: Vec<String> = ["pods", "configmaps", "networkpolicies"]
            .iter()
            .flat_map(|k| {
                self.items(k, Some(&sel))
                    .into_iter()
                    .map(move |i| format!("{k}/{}", i["metadata"]["name"]))
            })
            .collect();
        out.extend(
            self.items("labs", None)
                .into_iter()
                .filter(|l| l["metadata"]["name"] == lab)
                .map(|l| format!("lab/{}", l["metadata"]["name"])),
        );
        out
    }

    /// The cluster node each pod of `lab` runs on, by pod name.
    fn placement(&self, lab: &str) -> Vec<(String, String, String)> {
        self.items("pods", Some(&format!("v6lab.dev/lab={lab}")))
            .iter()
            .map(|p| {
                let labels = &p["metadata"]["labels"];
                (
                    p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    labels["v6lab.dev/role"].as_str().unwrap_or("").to_string(),
                    p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}

fn kubectl(args: &[&str]) -> Output {
    Command::new(KUBECTL)
        .args(args)
        .output()
        .expect("run the test cluster's kubectl (deploy/kubernetes/test-cluster.sh up writes it)")
}

fn kubectl_ok(args: &[&str]) -> String {
    let o = kubectl(args);
    assert!(
        o.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn exercises(topology_name: &str) -> Vec<Value> {
    common::plan_json(topology_name)["exercises"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn check(ns: &Namespace, lab: &str, id: &str) -> (i32, Value) {
    let o = ns.v6lab(&["check", lab, "--exercise", id, "--output", "json"]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.code().unwrap_or(-1), v)
}

/// Up, every exercise failing fresh and passing after its solution, down: nothing left.
fn exercises_prove_work(ns: &Namespace, topology_name: &str) {
    let lab = format!("ex-{topology_name}");
    ns.up(topology_name, &lab, &[]);
    let roles: Vec<String> = ns.placement(&lab).into_iter().map(|p| p.2).collect();
    assert!(
        CLUSTER_NODES.iter().all(|n| roles.iter().any(|r| r == n)),
        "{lab}: pods not spread over both cluster nodes: {roles:?}"
    );
    for e in exercises(topology_name) {
        let id = e["id"].as_str().unwrap();
        let (code, before) = check(ns, &lab, id);
        if e["passes_initially"] == true {
            assert_eq!(code, 0, "{lab}/{id} declares passes-initially: {before}");
        } else {
            assert_eq!(code, 1, "{lab}/{id} passes on a fresh lab: {before}");
        }
        ns.v6lab_ok(&["solve", &lab, id]);
        let (code, after) = check(ns, &lab, id);
        assert_eq!(
            code, 0,
            "{lab}/{id} still fails after its solution: {after}"
        );
    }
    ns.v6lab_ok(&["down", &lab, "--quiet"]);
    assert_eq!(ns.leftovers(&lab), Vec::<String>::new());
}

#[test]
#[ignore = "needs the test cluster"]
fn every_sample_topology_proves_its_exercises_across_nodes() {
    let ns = Namespace::new("samples");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "yaml").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    // Five labs at a time: most of a lab's time is waiting (pods starting, probes, checks).
    for chunk in names.chunks(5) {
        std::thread::scope(|s| {
            for name in chunk {
                let ns = &ns;
                s.spawn(move || exercises_prove_work(ns, name));
            }
        });
    }
}

#[test]
#[ignore = "needs the test cluster"]
fn the_ipv6_only_client_loads_the_ipv4_only_page_by_name_across_nodes() {
    let ns = Namespace::new("nat64");
    ns.up("nat64-dns64", "n1", &["--complete"]);
    let pods = ns.placement("n1");
    assert_eq!(
        pods.iter().filter(|p| p.1 == "switch").count(),
        2,
        "{pods:?}"
    );
    // The spread leaves some segment with members on another node than its switch.
    let on = |pod: &str| pods.iter().find(|p| p.0 == pod).map(|p| p.2.clone());
    let crossing = pods.iter().filter(|p| p.1 == "node").any(|p| {
        pods.iter()
            .filter(|s| s.1 == "switch")
            .any(|s| on(&s.0) != on(&p.0))
    });
    assert!(crossing, "no pod on another node than a switch: {pods:?}");
    // By name, through DNS64 and NAT64 (tayga on /dev/net/tun made in the pod).
    let page = ns.ok("n1", "client", "curl -sS -m 10 http://www.example.net/");
    assert!(!page.trim().is_empty());
    let aaaa = ns.ok("n1", "client", "dig +short AAAA www.example.net");
    assert!(aaaa.trim().starts_with("2001:db8:64::"), "{aaaa}");
    // The client is IPv6-only: no IPv4 path of its own.
    assert_ne!(ns.exec("n1", "client", "ping -4 -c 1 -W 1 192.0.2.2").0, 0);
    // Segments fit VXLAN on the pod network: a full-size frame crosses, one byte more does not.
    let mtu: u32 = ns
        .ok("n1", "client", "cat /sys/class/net/eth1/mtu")
        .trim()
        .parse()
        .unwrap();
    assert!(mtu <= 1450, "{mtu}");
    let full = format!("ping -6 -c 1 -W 2 -M do -s {} 2001:db8:1::1", mtu - 48);
    ns.ok("n1", "client", &full);
    let over = format!("ping -6 -c 1 -W 2 -M do -s {} 2001:db8:1::1", mtu - 47);
    assert_ne!(ns.exec("n1", "client", &over).0, 0);
    // inspect reads each node's interfaces in its pod.
    let v: Value =
        serde_json::from_str(&ns.v6lab_ok(&["inspect", "n1", "--output", "json"])).unwrap();
    let client = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "client")
        .unwrap();
    assert!(
        client["interfaces"].to_string().contains("2001:db8:1:"),
        "{client}"
    );
}

#[test]
#[ignore = "needs the test cluster"]
fn two_labs_of_one_topology_do_not_talk() {
    let ns = Namespace::new("iso");
    ns.up("ipv6-basics", "a", &["--complete"]);
    ns.up("ipv6-basics", "b", &["--complete"]);
    let addr = |l: &str| {
        ns.ok(
            l,
            "h1",
            "ip -6 -o addr show dev eth1 scope global | awk '{print $4}' | sort",
        )
    };
    assert_eq!(addr("a"), addr("b"));
    ns.ok(
        "b",
        "h2",
        "ip -6 addr add 2001:db8:1::beef/64 dev eth1 nodad",
    );
    ns.ok("b", "h1", "ping -6 -c 1 -W 2 2001:db8:1::beef");
    let rx = || -> u64 {
        ns.ok("b", "h2", "cat /sys/class/net/eth1/statistics/rx_packets")
            .trim()
            .parse()
            .unwrap()
    };
    let before = rx();
    assert_ne!(
        ns.exec("a", "h1", "ping -6 -c 20 -i 0.05 -W 1 2001:db8:1::beef")
            .0,
        0,
        "lab a reached an address of lab b"
    );
    let after = rx();
    assert!(
        after < before + 20,
        "b's h2 received {} packets while a pinged 20 times",
        after - before
    );
    let neigh = ns.ok("a", "h1", "ip -6 neigh show 2001:db8:1::beef");
    assert!(!neigh.contains("lladdr"), "a learnt b's neighbour: {neigh}");
}

fn askpass(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("askpass.sh");
    std::fs::write(&p, "#!/bin/sh\nprintf '%s\\n' \"$V6LAB_TEST_TOKEN\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    p
}

fn ssh(s: &Serve, user: &str, token: &str, tty: bool, remote: &[&str]) -> Command {
    let mut c = Command::new("ssh");
    c.args(["-F", "/dev/null", "-p", &s.ssh_port.unwrap().to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "LogLevel=ERROR",
            "-o",
            "PreferredAuthentications=password",
        ])
        .args([
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
        ])
        .args(["-o", "ConnectTimeout=20"]);
    if tty {
        c.arg("-tt");
    }
    c.arg(format!("{user}@127.0.0.1"));
    if !remote.is_empty() {
        c.arg("--").args(remote);
    }
    c.env("SSH_ASKPASS", askpass(&s.dir))
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .env("V6LAB_TEST_TOKEN", token);
    c
}

#[test]
#[ignore = "needs the test cluster"]
fn a_class_runs_through_the_controller_with_tokens_checks_and_ssh() {
    let ns = Namespace::new("class");
    let mut s = Serve::on_runtime("k8s-class", &ns.args(), "5s");
    let class = format!("k{}", std::process::id() % 100_000);
    s.class_create("nat64-dns64", &class, 3, "15m");
    let v = s.wait_ready(&class, 3);
    let labs: Vec<(String, String)> = v["labs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["token"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Each lab is a Lab object in the namespace, Ready, with its three node pods.
    let objects = ns.items("labs", None);
    assert_eq!(objects.len(), 3);
    assert!(objects.iter().all(|l| l["status"]["phase"] == "Ready"));
    for (i, (lab, token)) in labs.iter().enumerate() {
        assert_eq!(
            s.request("GET", &format!("/api/labs/{lab}"), Some(token)).0,
            200
        );
        for (j, (other, _)) in labs.iter().enumerate() {
            if i != j {
                assert_eq!(
                    s.request("GET", &format!("/api/labs/{other}"), Some(token))
                        .0,
                    403,
                    "{lab}'s token opened {other}"
                );
                assert_eq!(
                    s.request("POST", &format!("/api/labs/{other}/checks"), Some(token))
                        .0,
                    403
                );
            }
        }
        assert_eq!(s.request("GET", "/api/classes", Some(token)).0, 403);
        assert_eq!(s.request("GET", "/api/labs", Some(token)).0, 403);
    }
    // The periodic checks run on the pods: fresh labs fail both exercises.
    let (lab, token) = &labs[0];
    wait_for(
        "a periodic check of the class",
        Duration::from_secs(120),
        || {
            let (code, body) = s.request("GET", &format!("/api/labs/{lab}/checks"), Some(token));
            (code == 200 && body.contains("\"passed\":false")).then_some(())
        },
    );
    // SSH without a terminal (streamed exec) and with one (interactive exec).
    let o = ssh(
        &s,
        &format!("{lab}+client"),
        token,
        false,
        &["ip", "-6", "-o", "addr", "show", "dev", "eth1"],
    )
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("2001:db8:1:"),
        "ssh exec: {o:?}"
    );
    let mut child = ssh(&s, &format!("{lab}+client"), token, true, &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo k8s-$((6*7))\nexit\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("k8s-42"),
        "terminal: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    // A wrong token opens nothing.
    let o = ssh(&s, &format!("{lab}+client"), "v6s_wrong", false, &["true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    // Deleting the class removes every object of its labs.
    let (code, _) = s.request(
        "DELETE",
        &format!("/api/classes/{class}"),
        Some(&s.admin_token()),
    );
    assert!(code == 200 || code == 204, "{code}");
    wait_for(
        "the class's objects to be gone",
        Duration::from_secs(180),
        || {
            labs.iter()
                .all(|(l, _)| ns.leftovers(l).is_empty())
                .then_some(())
        },
    );
}

/// A Lab as `kubectl apply` takes it.
fn lab_manifest(name: &str, topology_name: &str, lifetime: u64) -> String {
    let text = std::fs::read_to_string(topology(topology_name)).unwrap();
    let indented: String = text.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v6lab.dev/v1alpha1\nkind: Lab\nmetadata:\n  name: {name}\nspec:\n  \
         lifetimeSeconds: {lifetime}\n  topology: |\n{indented}"
    )
}

fn apply(ns: &Namespace, manifest: &str) {
    let mut c = Command::new(KUBECTL)
        .args(["-n", &ns.0, "apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn lab_object(ns: &Namespace, name: &str) -> Option<Value> {
    ns.items("labs", None)
        .into_iter()
        .find(|l| l["metadata"]["name"] == name)
}

#[test]
#[ignore = "needs the test cluster"]
fn a_lab_applied_with_kubectl_comes_up_and_ends_at_its_expiry() {
    let ns = Namespace::new("applied");
    let _s = Serve::on_runtime("k8s-applied", &ns.args(), "0s");
    apply(&ns, &lab_manifest("applied", "nat64-dns64", 75));
    let ready = wait_for(
        "the applied Lab to be Ready",
        Duration::from_secs(180),
        || {
            let l = lab_object(&ns, "applied")?;
            (l["status"]["phase"] == "Ready").then_some(l)
        },
    );
    assert_eq!(ready["status"]["ready"], "3/3");
    assert!(ready["status"]["left"].is_string(), "{ready}");
    assert_eq!(ready["status"]["segments"].as_array().unwrap().len(), 2);
    // Each node's addresses, read in its pod: gw's static one on lan6.
    let nodes = ready["status"]["nodes"].to_string();
    assert!(nodes.contains("eth1 2001:db8:1::1/64"), "{nodes}");
    // The lab works: the client's address came by SLAAC over the segment.
    ns.ok(
        "applied",
        "client",
        "ip -6 addr show dev eth1 | grep -q 'scope global'",
    );
    // `kubectl get labs` shows its state and time left.
    let table = kubectl_ok(&["-n", &ns.0, "get", "labs"]);
    assert!(table.contains("LEFT") && table.contains("Ready"), "{table}");
    // A topology with a mistake: Failed, with the located error, nothing made.
    apply(
        &ns,
        &lab_manifest("broken", "nat64-dns64", 600).replace("\n    segments:", "\n    segmets:"),
    );
    let broken = wait_for("the broken Lab to fail", Duration::from_secs(60), || {
        let l = lab_object(&ns, "broken")?;
        (l["status"]["phase"] == "Failed").then_some(l)
    });
    let message = broken["status"]["conditions"][0]["message"].to_string();
    assert!(message.contains("spec.topology"), "{message}");
    assert!(message.contains(':'), "no line and column: {message}");
    assert!(ns.items("pods", Some("v6lab.dev/lab=broken")).is_empty());
    // At its expiry, the operator removes it and everything it owned.
    wait_for(
        "the applied Lab to expire",
        Duration::from_secs(180),
        || ns.leftovers("applied").is_empty().then_some(()),
    );
}

/// Links on a cluster node (the node container's network namespace): `(veths, vxlans, bridges)`.
fn node_links(node: &str) -> (usize, usize, Vec<String>) {
    let o = Command::new("docker")
        .args(["exec", node, "ip", "-d", "-o", "link", "show"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    // Pods' veths (`veth...@ifN`); the node's own `eth0` is a veth too (Docker's), not a pod's.
    let veths = text
        .lines()
        .filter(|l| {
            l.contains(" veth ") && l.split(": ").nth(1).is_some_and(|n| n.starts_with("veth"))
        })
        .count();
    let vxlans = text.lines().filter(|l| l.contains(" vxlan ")).count();
    let bridges = text
        .lines()
        .filter(|l| l.contains(" bridge ") && !l.contains("bridge_slave"))
        .filter_map(|l| l.split(": ").nth(1).map(str::to_string))
        .collect();
    (veths, vxlans, bridges)
}

#[test]
#[ignore = "needs the test cluster"]
fn down_leaves_no_object_and_no_link_on_the_nodes() {
    let ns = Namespace::new("down");
    ns.up("ospfv3", "d1", &[]);
    assert!(!ns.leftovers("d1").is_empty());
    // Each pod's network namespace, known by the MAC of its pod-network interface (random, where
    // the lab links' MACs are the plan's, the same in every lab of a topology): once that
    // interface is gone, so is the namespace with the pod's VXLAN devices and bridges, and the
    // veth on the cluster node.
    let pods = ns.placement("d1");
    let mut macs = Vec::new();
    for (pod, _, _) in &pods {
        let out = kubectl_ok(&[
            "-n",
            &ns.0,
            "exec",
            pod,
            "--",
            "cat",
            "/sys/class/net/eth0/address",
        ]);
        macs.extend(
            out.lines()
                .map(str::trim)
                .filter(|m| m.len() == 17 && *m != "00:00:00:00:00:00")
                .map(str::to_string),
        );
    }
    assert_eq!(macs.len(), pods.len(), "{macs:?}");
    ns.v6lab_ok(&["down", "d1", "--quiet"]);
    assert_eq!(ns.leftovers("d1"), Vec::<String>::new());
    // Again: nothing to do, no error.
    ns.v6lab_ok(&["down", "d1", "--quiet"]);
    // On each cluster node, no network namespace still holds a link of the lab's pods (their
    // veths go with them), no VXLAN device and no bridge but the pod network's in the node's own.
    for node in CLUSTER_NODES {
        wait_for(
            &format!("the lab's links to be gone from {node}"),
            Duration::from_secs(60),
            || {
                let o = Command::new("docker")
                    .args(["exec", node, "sh", "-c"])
                    .arg("ip -o link show; for n in $(ip netns list | cut -d' ' -f1); do ip -n \"$n\" -o link show; done")
                    .output()
                    .ok()?;
                let text = String::from_utf8_lossy(&o.stdout).to_lowercase();
                let (_, vxlans, bridges) = node_links(node);
                let left: Vec<&String> =
                    macs.iter().filter(|m| text.contains(m.as_str())).collect();
                (left.is_empty() && vxlans == 0 && bridges.len() <= 1).then_some(())
            },
        );
    }
}

#[test]
#[ignore = "needs the test cluster"]
fn a_controller_killed_while_creating_converges_with_nothing_half_made() {
    let ns = Namespace::new("kill");
    let mut s = Serve::on_runtime("k8s-kill", &ns.args(), "0s");
    let class = format!("q{}", std::process::id() % 100_000);
    s.class_create("nat64-dns64", &class, 2, "15m");
    // Killed once some pods exist, before the labs are ready.
    wait_for("the first pods", Duration::from_secs(60), || {
        (!ns.items("pods", None).is_empty()).then_some(())
    });
    s.kill9();
    s.spawn();
    let v = s.wait_ready(&class, 2);
    for l in v["labs"].as_array().unwrap() {
        let lab = l["name"].as_str().unwrap();
        let pods = ns.items("pods", Some(&format!("v6lab.dev/lab={lab}")));
        // 3 nodes and 2 switches, each once, every one running.
        assert_eq!(pods.len(), 5, "{lab}: {pods:?}");
        assert!(pods.iter().all(|p| p["status"]["phase"] == "Running"));
        let o = Command::new(common::bin())
            .args(ns.args())
            .args(["check", lab, "--output", "json"])
            .env("KUBECONFIG", KUBECONFIG)
            .output()
            .unwrap();
        // Fresh labs: the checks run (and fail as they should), nothing is broken.
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let (code, _) = s.request(
        "DELETE",
        &format!("/api/classes/{class}"),
        Some(&s.admin_token()),
    );
    assert!(code == 200 || code == 204, "{code}");
    wait_for(
        "nothing left of the class",
        Duration::from_secs(180),
        || (ns.items("pods", None).is_empty() && ns.items("labs", None).is_empty()).then_some(()),
    );
}
