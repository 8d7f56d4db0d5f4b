//! The Docker runtime against the real engine on this host (needs root and a running Docker).
//!
//! Image: the lab image of this source tree (`v6lab/node:<recipe hash>`), which the test command
//! builds before any test runs (`v6lab images build`); `V6LAB_TEST_IMAGE` overrides it.
//! Every test uses its own lab names, so the tests run concurrently; none touches other labs.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use v6lab_runtime::docker::{Docker, Error, Event, EventKind, ExecLimits, NoopObserver};
use v6lab_runtime::names;
use v6lab_runtime::spec::{FileSpec, InterfaceSpec, LabSpec, Limits, NodeSpec, Probe, SegmentSpec};

fn image() -> String {
    std::env::var("V6LAB_TEST_IMAGE").unwrap_or_else(|_| {
        v6lab_runtime::runtime::Recipe::locate()
            .expect("the lab image recipe (deploy/images) of this source tree")
            .tag()
    })
}

/// A lab name unique to this test and this process.
fn lab_name(test: &str) -> String {
    format!("rt-{test}-{}", std::process::id())
}

/// Bounds for the tests' own commands.
fn limits() -> ExecLimits {
    ExecLimits::within(Duration::from_secs(30))
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn sh(script: &str) -> Vec<String> {
    argv(&["sh", "-c", script])
}

/// A host with static addresses on eth1 (`n` = 1, 2, ...): 2001:db8::n/64 and 192.0.2.n/24.
fn host(name: &str, n: u8, segment: &str) -> NodeSpec {
    NodeSpec {
        name: name.to_string(),
        image: None,
        sysctls: BTreeMap::from([
            (
                "net.ipv6.conf.all.disable_ipv6".to_string(),
                "0".to_string(),
            ),
            (
                "net.ipv6.conf.default.disable_ipv6".to_string(),
                "0".to_string(),
            ),
        ]),
        link_sysctls: BTreeMap::new(),
        limits: Limits {
            memory_bytes: 128 << 20,
            pids: 256,
            nano_cpus: 500_000_000,
        },
        tun: false,
        interfaces: vec![InterfaceSpec {
            name: "eth1".to_string(),
            segment: segment.to_string(),
            mac: format!("02:00:00:00:00:{n:02x}"),
            mtu: 1500,
        }],
        files: vec![],
        start: vec![
            argv(&[
                "ip",
                "addr",
                "add",
                &format!("2001:db8::{n}/64"),
                "dev",
                "eth1",
            ]),
            argv(&[
                "ip",
                "addr",
                "add",
                &format!("192.0.2.{n}/24"),
                "dev",
                "eth1",
            ]),
        ],
        probes: vec![Probe {
            description: format!("2001:db8::{n} usable (DAD done)"),
            argv: sh(&format!(
                "ip -6 addr show dev eth1 tentative | grep -q . && exit 1; \
                 ip -6 addr show dev eth1 | grep -q 'inet6 2001:db8::{n}/64'"
            )),
        }],
    }
}

fn spec(lab: &str, hosts: u8) -> LabSpec {
    LabSpec {
        lab: lab.to_string(),
        topology: "runtime-test".to_string(),
        topology_hash: "0123abcd".to_string(),
        expires_at: Some(4_102_444_800),
        owner: "cli".to_string(),
        node_count: usize::from(hosts),
        image: image(),
        segments: vec![SegmentSpec {
            name: "lan".to_string(),
            mtu: 1500,
        }],
        nodes: (1..=hosts)
            .map(|n| host(&format!("n{n}"), n, "lan"))
            .collect(),
    }
}

/// Removes the lab when a test ends, even by a panic.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let lab = self.0.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                if let Ok(d) = Docker::connect().await {
                    let _ = d.down(&lab).await;
                }
            })
        })
        .join();
    }
}

/// What the host still has of a lab: containers (by label and by name) and links.
fn leftovers(lab: &str) -> Vec<String> {
    let mut found = Vec::new();
    for filter in [
        format!("label={}={lab}", names::LABEL_LAB),
        format!("name={}", names::container_prefix(lab)),
    ] {
        let out = Command::new("docker")
            .args(["ps", "-a", "--format", "{{.Names}}", "--filter", &filter])
            .output()
            .unwrap();
        assert!(out.status.success());
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|n| n.starts_with(&names::container_prefix(lab)))
                .map(|n| format!("container {n}")),
        );
    }
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let prefix = names::link_prefix(lab);
    found.extend(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&prefix) || l.contains(&format!("alias {lab}/")))
            .map(|l| format!("link {l}")),
    );
    found
}

/// A global IPv4 address of the host outside the lab's 192.0.2.0/24.
fn host_ipv4() -> Option<String> {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
        .filter_map(|a| a.split('/').next())
        .find(|a| !a.starts_with("192.0.2."))
        .map(str::to_string)
}

async fn docker() -> Docker {
    Docker::connect().await.expect("a running Docker engine")
}

async fn ok(d: &Docker, lab: &str, node: &str, cmd: &[String]) -> String {
    let out = d.exec(lab, node, cmd, limits()).await.unwrap();
    assert_eq!(out.exit_code, 0, "{node}: {cmd:?}: {}", out.combined());
    out.stdout
}

#[tokio::test]
async fn up_ping_inspect_down() {
    let lab = lab_name("basic");
    let _cleanup = Cleanup(lab.clone());
    let d = docker().await;
    let mut spec = spec(&lab, 2);
    spec.nodes[0].files = vec![
        FileSpec {
            path: "/etc/v6lab/deep/dir/hello.txt".into(),
            mode: 0o640,
            content: "hello\n".into(),
        },
        FileSpec {
            path: "/usr/local/bin/note".into(),
            mode: 0o755,
            content: "#!/bin/sh\necho note\n".into(),
        },
    ];
    spec.nodes[0].start.push(argv(&["/usr/local/bin/note"]));
    spec.nodes[1].tun = true;

    let events = Arc::new(Mutex::new(Vec::<Event>::new()));
    let sink = events.clone();
    let observer = move |e: &Event| sink.lock().unwrap().push(e.clone());
    let t0 = Instant::now();
    d.up(&spec, &observer).await.unwrap();
    eprintln!("up (2 nodes): {:?}", t0.elapsed());

    let events = events.lock().unwrap().clone();
    for kind in [
        EventKind::SegmentCreated {
            segment: "lan".into(),
        },
        EventKind::NodeCreated { node: "n1".into() },
        EventKind::NodeStarted { node: "n2".into() },
        EventKind::NodeWired { node: "n1".into() },
        EventKind::NodeConfigured { node: "n2".into() },
        EventKind::NodeReady { node: "n1".into() },
        EventKind::NodeReady { node: "n2".into() },
    ] {
        assert!(
            events.iter().any(|e| e.kind == kind && e.lab == lab),
            "no {kind:?} in {events:?}"
        );
    }

    // Traffic inside the lab, both families (IPv4 crosses Docker's FORWARD DROP policy).
    ok(
        &d,
        &lab,
        "n1",
        &argv(&["ping", "-6", "-c", "1", "-W", "3", "2001:db8::2"]),
    )
    .await;
    ok(
        &d,
        &lab,
        "n2",
        &argv(&["ping", "-4", "-c", "1", "-W", "3", "192.0.2.1"]),
    )
    .await;
    ok(
        &d,
        &lab,
        "n1",
        &argv(&["ping", "-4", "-c", "1", "-W", "3", "192.0.2.2"]),
    )
    .await;
    // ... answered by n2 itself (on this test host, 192.0.2.2 is also the host's own eth0).
    let neigh = ok(&d, &lab, "n1", &argv(&["ip", "neigh", "show", "192.0.2.2"])).await;
    assert!(neigh.contains("lladdr 02:00:00:00:00:02"), "{neigh}");
    // The host answers nothing on the bridge, even ARP for one of its own addresses.
    if let Some(host_ip) = host_ipv4() {
        ok(
            &d,
            &lab,
            "n1",
            &argv(&[
                "ip",
                "route",
                "add",
                &format!("{host_ip}/32"),
                "dev",
                "eth1",
            ]),
        )
        .await;
        let out = d
            .exec(
                &lab,
                "n1",
                &argv(&["ping", "-c", "1", "-W", "1", &host_ip]),
                limits(),
            )
            .await
            .unwrap();
        assert_ne!(
            out.exit_code,
            0,
            "the host answered on a lab segment: {}",
            out.combined()
        );
        let neigh = ok(&d, &lab, "n1", &argv(&["ip", "neigh", "show", &host_ip])).await;
        assert!(
            !neigh.contains("lladdr"),
            "the host answered ARP on a lab segment: {neigh}"
        );
    }
    // Link-local too, through the interface: NDP over the bridge.
    ok(
        &d,
        &lab,
        "n2",
        &argv(&["ping", "-6", "-c", "1", "-W", "3", "ff02::1%eth1"]),
    )
    .await;

    // The node: hostname, interface name/MAC/MTU, files with modes and parents, /tmp intact.
    assert_eq!(ok(&d, &lab, "n1", &argv(&["hostname"])).await.trim(), "n1");
    let link = ok(&d, &lab, "n2", &argv(&["ip", "-o", "link", "show", "eth1"])).await;
    assert!(
        link.contains("02:00:00:00:00:02") && link.contains("mtu 1500"),
        "{link}"
    );
    assert_eq!(
        ok(
            &d,
            &lab,
            "n1",
            &argv(&["cat", "/etc/v6lab/deep/dir/hello.txt"])
        )
        .await,
        "hello\n"
    );
    let modes = ok(
        &d,
        &lab,
        "n1",
        &argv(&[
            "stat",
            "-c",
            "%a %n",
            "/etc/v6lab/deep/dir/hello.txt",
            "/usr/local/bin/note",
            "/tmp",
        ]),
    )
    .await;
    assert_eq!(
        modes,
        "640 /etc/v6lab/deep/dir/hello.txt\n755 /usr/local/bin/note\n1777 /tmp\n"
    );
    // Only eth1 and lo: network_mode none.
    let links = ok(&d, &lab, "n1", &argv(&["ls", "/sys/class/net"])).await;
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["eth1", "lo"]);

    // The container: no network but ours, init, only the listed capabilities, limits, labels, tun
    // only where asked, sysctls inherited by the interface added after start.
    let info = d
        .client()
        .inspect_container(&names::container(&lab, "n2"), None)
        .await
        .unwrap();
    let hc = info.host_config.unwrap();
    assert_eq!(hc.network_mode.as_deref(), Some("none"));
    assert_eq!((hc.init, hc.privileged), (Some(true), Some(false)));
    assert_eq!(hc.cap_drop.unwrap(), ["ALL"]);
    let kept: Vec<&str> = v6lab_runtime::spec::NODE_CAPABILITIES
        .iter()
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(hc.cap_add.unwrap(), kept);
    assert_eq!(hc.security_opt.unwrap(), ["no-new-privileges"]);
    assert_eq!(
        (hc.memory, hc.pids_limit, hc.nano_cpus),
        (Some(128 << 20), Some(256), Some(500_000_000))
    );
    assert_eq!(
        hc.devices.unwrap()[0].path_on_host.as_deref(),
        Some("/dev/net/tun")
    );
    let labels = info.config.unwrap().labels.unwrap();
    assert_eq!(labels[names::LABEL_LAB], lab);
    assert_eq!(labels[names::LABEL_NODE], "n2");
    assert_eq!(labels[names::LABEL_TOPOLOGY], "runtime-test");
    assert_eq!(labels[names::LABEL_TOPOLOGY_HASH], "0123abcd");
    assert_eq!(labels[names::LABEL_EXPIRES], "4102444800");
    assert_eq!(labels[names::LABEL_MANAGED], "true");
    ok(&d, &lab, "n2", &argv(&["test", "-c", "/dev/net/tun"])).await;
    assert_ne!(
        d.exec(&lab, "n1", &argv(&["test", "-e", "/dev/net/tun"]), limits())
            .await
            .unwrap()
            .exit_code,
        0
    );
    let sysctl = ok(
        &d,
        &lab,
        "n1",
        &argv(&["cat", "/proc/sys/net/ipv6/conf/eth1/disable_ipv6"]),
    )
    .await;
    assert_eq!(sysctl.trim(), "0");

    // Failed command: exit code and both streams captured.
    let out = d
        .exec(&lab, "n1", &sh("echo out; echo err >&2; exit 7"), limits())
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, out.stdout.as_str(), out.stderr.as_str()),
        (7, "out\n", "err\n")
    );

    // The host takes no part: no address on the bridge or the host veths.
    let addrs = Command::new("ip")
        .args(["-o", "addr", "show"])
        .output()
        .unwrap();
    let addrs = String::from_utf8_lossy(&addrs.stdout);
    assert!(!addrs.contains(&names::link_prefix(&lab)), "{addrs}");

    let status = d.inspect(&lab).await.unwrap();
    assert_eq!(status.topology, "runtime-test");
    assert_eq!(status.expires_at, Some(4_102_444_800));
    assert_eq!(status.nodes.len(), 2);
    assert_eq!(status.segments.len(), 1);
    assert_eq!(status.segments[0].segment.as_deref(), Some("lan"));
    assert_eq!(status.segments[0].ports, 2);
    let n1 = &status.nodes[0];
    assert_eq!((n1.node.as_str(), n1.state.as_str()), ("n1", "running"));
    let eth1 = n1
        .interfaces
        .iter()
        .find(|i| i.name == "eth1")
        .expect("eth1");
    assert_eq!(eth1.mac.as_deref(), Some("02:00:00:00:00:01"));
    assert!(eth1.up && eth1.lower_up);
    let global = eth1
        .addresses
        .iter()
        .find(|a| a.address.to_string() == "2001:db8::1")
        .expect("address");
    assert!(!global.tentative && !global.dad_failed && global.prefix_len == 64);
    assert!(
        eth1.addresses
            .iter()
            .any(|a| a.address.to_string() == "192.0.2.1")
    );
    assert!(eth1.addresses.iter().any(|a| a.scope == "link"), "{eth1:?}");

    let listed = d.list().await.unwrap();
    let me = listed.iter().find(|l| l.lab == lab).expect("listed");
    assert_eq!(
        (me.nodes, me.running, me.topology.as_str()),
        (2, 2, "runtime-test")
    );

    // Exists already: a clear error, and the running lab is untouched.
    let err = d.up(&spec, &NoopObserver).await.unwrap_err();
    assert!(matches!(err, Error::LabExists { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("v6lab down {lab}")),
        "{err}"
    );
    ok(
        &d,
        &lab,
        "n1",
        &argv(&["ping", "-6", "-c", "1", "-W", "3", "2001:db8::2"]),
    )
    .await;

    let t0 = Instant::now();
    let removed = d.down(&lab).await.unwrap();
    eprintln!("down (2 nodes): {:?}, {removed:?}", t0.elapsed());
    assert_eq!((removed.containers, removed.bridges), (2, 1));
    assert_eq!(leftovers(&lab), Vec::<String>::new());
    // Twice is fine.
    assert!(d.down(&lab).await.unwrap().is_empty());
    assert!(matches!(
        d.inspect(&lab).await,
        Err(Error::LabNotFound { .. })
    ));
}

#[tokio::test]
async fn missing_image_fails_first_and_leaves_nothing() {
    let lab = lab_name("noimage");
    let _cleanup = Cleanup(lab.clone());
    let d = docker().await;
    let mut spec = spec(&lab, 2);
    spec.nodes[1].image = Some("v6lab/does-not-exist:never".into());
    let err = d.up(&spec, &NoopObserver).await.unwrap_err();
    assert!(
        matches!(&err, Error::ImageMissing { image } if image == "v6lab/does-not-exist:never"),
        "{err}"
    );
    assert!(err.to_string().contains("build"), "{err}");
    assert_eq!(leftovers(&lab), Vec::<String>::new());
    assert!(d.down(&lab).await.unwrap().is_empty());
    assert!(d.down(&lab).await.unwrap().is_empty());
}

#[tokio::test]
async fn labs_with_identical_addresses_are_isolated() {
    let (a, b) = (lab_name("iso-a"), lab_name("iso-b"));
    let _cleanup = (Cleanup(a.clone()), Cleanup(b.clone()));
    let d = docker().await;
    let spec_a = spec(&a, 2);
    let mut spec_b = spec(&b, 2);
    // An address that exists in lab b only.
    spec_b.nodes[1].start.push(argv(&[
        "ip",
        "addr",
        "add",
        "2001:db8::99/64",
        "dev",
        "eth1",
        "nodad",
    ]));
    let (ra, rb) = tokio::join!(d.up(&spec_a, &NoopObserver), d.up(&spec_b, &NoopObserver));
    ra.unwrap();
    rb.unwrap(); // DAD passed in both labs: neither saw the other's identical addresses.

    for lab in [&a, &b] {
        ok(
            &d,
            lab,
            "n1",
            &argv(&["ping", "-6", "-c", "1", "-W", "3", "2001:db8::2"]),
        )
        .await;
    }
    ok(
        &d,
        &b,
        "n1",
        &argv(&["ping", "-6", "-c", "1", "-W", "3", "2001:db8::99"]),
    )
    .await;
    let out = d
        .exec(
            &a,
            "n1",
            &argv(&["ping", "-6", "-c", "2", "-W", "1", "2001:db8::99"]),
            limits(),
        )
        .await
        .unwrap();
    assert_ne!(
        out.exit_code,
        0,
        "lab {a} reached lab {b}: {}",
        out.combined()
    );
    // Lab a's n1 knows only lab a's neighbours.
    let neigh = ok(
        &d,
        &a,
        "n1",
        &argv(&["ip", "-6", "neigh", "show", "dev", "eth1"]),
    )
    .await;
    assert!(!neigh.contains("2001:db8::99 lladdr"), "{neigh}");

    // Down of one leaves the other working.
    d.down(&a).await.unwrap();
    assert_eq!(leftovers(&a), Vec::<String>::new());
    ok(
        &d,
        &b,
        "n1",
        &argv(&["ping", "-6", "-c", "1", "-W", "3", "2001:db8::2"]),
    )
    .await;
    d.down(&b).await.unwrap();
    assert_eq!(leftovers(&b), Vec::<String>::new());
}

#[tokio::test]
async fn failing_start_command_is_reported_and_down_cleans_up() {
    let lab = lab_name("startfail");
    let _cleanup = Cleanup(lab.clone());
    let d = docker().await;
    let mut spec = spec(&lab, 2);
    spec.nodes[1]
        .start
        .push(sh("echo radvd: cannot open config >&2; exit 3"));
    let err = d.up(&spec, &NoopObserver).await.unwrap_err();
    let Error::StartFailed {
        node,
        command,
        exit_code,
        output,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((node.as_str(), *exit_code), ("n2", 3));
    assert!(command.starts_with("sh -c 'echo radvd"), "{command}");
    assert!(output.contains("cannot open config"), "{output}");
    let msg = err.to_string();
    assert!(
        msg.contains("n2") && msg.contains("code 3") && msg.contains("cannot open config"),
        "{msg}"
    );

    let removed = d.down(&lab).await.unwrap();
    assert_eq!(removed.containers, 2);
    assert_eq!(leftovers(&lab), Vec::<String>::new());
}

#[tokio::test]
async fn probe_timeout_names_node_and_probe() {
    let lab = lab_name("probe");
    let _cleanup = Cleanup(lab.clone());
    let d = docker().await.with_probe_timeout(Duration::from_secs(2));
    let mut spec = spec(&lab, 1);
    spec.nodes[0].probes.push(Probe {
        description: "unbound listening".into(),
        argv: sh("echo not yet; exit 1"),
    });
    let t0 = Instant::now();
    let err = d.up(&spec, &NoopObserver).await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    let Error::ProbeTimeout(t) = &err else {
        panic!("{err}")
    };
    assert_eq!(
        (t.node.as_str(), t.probe.as_str()),
        ("n1", "unbound listening")
    );
    assert!(err.to_string().contains("not yet"), "{err}");
    d.down(&lab).await.unwrap();
    assert_eq!(leftovers(&lab), Vec::<String>::new());
}

/// An `up` dropped half-way (as when the CLI is killed): containers created, some not started,
/// bridges maybe made. `down` removes it all, and the lab can come up again.
#[tokio::test]
async fn down_after_interrupted_up() {
    let lab = lab_name("killed");
    let _cleanup = Cleanup(lab.clone());
    let d = docker().await;
    let spec = spec(&lab, 3);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = Mutex::new(Some(tx));
    let observer = move |e: &Event| {
        if matches!(e.kind, EventKind::NodeWired { .. })
            && let Some(tx) = tx.lock().unwrap().take()
        {
            let _ = tx.send(());
        }
    };
    tokio::select! {
        r = d.up(&spec, &observer) => panic!("up finished before it was interrupted: {r:?}"),
        _ = rx => {}
    }
    assert!(!leftovers(&lab).is_empty());
    let removed = d.down(&lab).await.unwrap();
    assert_eq!(removed.containers, 3);
    assert_eq!(leftovers(&lab), Vec::<String>::new());

    // Links left without any container (e.g. containers removed by hand) do not block `up`.
    d.up(&spec, &NoopObserver).await.unwrap();
    for c in ["n1", "n2", "n3"] {
        let status = Command::new("docker")
            .args(["rm", "-f", &names::container(&lab, c)])
            .output()
            .unwrap();
        assert!(status.status.success());
    }
    d.up(&spec, &NoopObserver).await.unwrap();
    ok(
        &d,
        &lab,
        "n3",
        &argv(&["ping", "-6", "-c", "1", "-W", "3", "2001:db8::1"]),
    )
    .await;
    d.down(&lab).await.unwrap();
    assert_eq!(leftovers(&lab), Vec::<String>::new());
}

#[tokio::test]
async fn interactive_exec_with_tty() {
    let lab = lab_name("tty");
    let _cleanup = Cleanup(lab.clone());
    let d = docker().await;
    let mut spec = spec(&lab, 1);
    spec.nodes[0].probes.clear();
    d.up(&spec, &NoopObserver).await.unwrap();

    // Reads a line, prints the terminal size, binary bytes 0x01 0x02 and 0x00 at the start of
    // a write (what bollard's decoder would take for a header), exits 3.
    // The engine applies the size only once the exec runs: the script waits for it (polled,
    // with a bound) before it reads.
    let script = "i=0; while [ \"$(stty size)\" = '0 0' ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
                  read line; echo \"got:$line\"; stty size; sleep 0.2; printf '\\001\\002\\000bin\\n'; exit 3";
    let (mut input, stdin) = tokio::io::duplex(1024);
    let (stdout, mut output) = tokio::io::duplex(64 * 1024);
    let (resize_tx, resize_rx) = futures::channel::mpsc::unbounded::<(u16, u16)>();
    resize_tx.unbounded_send((132, 43)).unwrap();
    let reader = tokio::spawn(async move {
        let mut all = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut output, &mut all)
            .await
            .unwrap();
        all
    });
    let cmd = sh(script);
    let session = d.exec_interactive(&lab, "n1", &cmd, stdin, stdout, resize_rx);
    let feed = async {
        // The terminal keeps the line until the script reads it.
        tokio::io::AsyncWriteExt::write_all(&mut input, b"hello\r")
            .await
            .unwrap();
    };
    let (code, ()) = tokio::join!(session, feed);
    assert_eq!(code.unwrap(), 3);
    drop(resize_tx);
    let out = reader.await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("got:hello"), "{text:?}");
    assert!(text.contains("43 132"), "{text:?}");
    assert!(out.windows(6).any(|w| w == b"\x01\x02\x00bin"), "{text:?}");

    assert!(matches!(
        d.exec(&lab, "nope", &argv(&["true"]), limits()).await,
        Err(Error::NodeNotFound { .. })
    ));
    d.down(&lab).await.unwrap();
}

/// Timing of a 3-node lab (printed; run with `--nocapture`).
#[tokio::test]
async fn three_node_lab_timing() {
    let lab = lab_name("timing");
    let _cleanup = Cleanup(lab.clone());
    let d = docker().await;
    let spec = spec(&lab, 3);
    let t0 = Instant::now();
    let log = |e: &Event| eprintln!("  {:>6.0?} {:?}", e.elapsed, e.kind);
    d.up(&spec, &log).await.unwrap();
    let up = t0.elapsed();
    ok(
        &d,
        &lab,
        "n3",
        &argv(&["ping", "-6", "-c", "1", "-W", "3", "2001:db8::1"]),
    )
    .await;
    let t0 = Instant::now();
    let removed = d.down(&lab).await.unwrap();
    let down = t0.elapsed();
    eprintln!(
        "3-node lab (API {}): up {up:?} (incl. DAD probes), down {down:?}, {removed:?}",
        d.api_version()
    );
    assert_eq!(leftovers(&lab), Vec::<String>::new());
}

#[tokio::test]
async fn invalid_specs_are_refused_before_anything_is_created() {
    let lab = lab_name("invalid");
    let d = docker().await;
    let mut bad = spec(&lab, 2);
    bad.nodes[1].interfaces[0].segment = "wan".into();
    let err = d.up(&bad, &NoopObserver).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidSpec(_)) && err.to_string().contains("unknown segment wan"),
        "{err}"
    );
    let mut bad = spec(&lab, 2);
    bad.nodes[1].name = "n1".into();
    assert!(matches!(
        d.up(&bad, &NoopObserver).await,
        Err(Error::InvalidSpec(_))
    ));
    let mut bad = spec(&lab, 1);
    bad.nodes[0].interfaces[0].mac = "02:00:00:00:00".into();
    assert!(matches!(
        d.up(&bad, &NoopObserver).await,
        Err(Error::InvalidSpec(_))
    ));
    let bad = spec("Not_A_Lab", 1);
    assert!(matches!(
        d.up(&bad, &NoopObserver).await,
        Err(Error::InvalidSpec(_))
    ));
    // A file under a scratch directory would vanish under the tmpfs mounted at start.
    let mut bad = spec(&lab, 1);
    bad.nodes[0].files.push(FileSpec {
        path: "/tmp/x".into(),
        mode: 0o644,
        content: String::new(),
    });
    let err = d.up(&bad, &NoopObserver).await.unwrap_err();
    assert!(err.to_string().contains("hidden"), "{err}");
    assert_eq!(leftovers(&lab), Vec::<String>::new());
}

/// Capability numbers (linux/capability.h) of the names in `NODE_CAPABILITIES`.
fn cap_bit(name: &str) -> u32 {
    match name {
        "CHOWN" => 0,
        "DAC_OVERRIDE" => 1,
        "FOWNER" => 3,
        "FSETID" => 4,
        "KILL" => 5,
        "SETGID" => 6,
        "SETUID" => 7,
        "SETPCAP" => 8,
        "NET_BIND_SERVICE" => 10,
        "NET_ADMIN" => 12,
        "NET_RAW" => 13,
        "SYS_CHROOT" => 18,
        "SYS_ADMIN" => 21,
        "MKNOD" => 27,
        "AUDIT_WRITE" => 29,
        "SETFCAP" => 31,
        other => panic!("unknown capability {other}"),
    }
}

/// A field of /proc/PID/status inside a node.
async fn status_field(d: &Docker, lab: &str, pid: &str, field: &str) -> String {
    let out = ok(d, lab, "n1", &sh(&format!("cat /proc/{pid}/status"))).await;
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status:\n{out}"))
        .trim()
        .to_string()
}

/// Free bytes of the file system holding Docker's writable layers, on the host.
fn host_free_bytes() -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1", "/var/lib/docker"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}

#[tokio::test]
async fn nodes_are_root_in_their_lab_and_nothing_more() {
    let lab = lab_name("confined");
    let _cleanup = Cleanup(lab.clone());
    let d = docker().await;
    d.up(&spec(&lab, 1), &NoopObserver).await.unwrap();

    // Exactly the capabilities of the list, in the bounding set too (so nothing can gain more),
    // for PID 1 and for what v6lab runs (exec).
    let want: u64 = v6lab_runtime::spec::NODE_CAPABILITIES
        .iter()
        .map(|(c, _)| 1u64 << cap_bit(c))
        .sum();
    for pid in ["1", "self"] {
        for field in ["CapEff", "CapBnd", "CapPrm"] {
            let got = status_field(&d, &lab, pid, field).await;
            let got = u64::from_str_radix(&got, 16).unwrap();
            assert_eq!(got, want, "{field} of {pid}: {got:#x}, expected {want:#x}");
        }
        assert_eq!(status_field(&d, &lab, pid, "NoNewPrivs").await, "1");
        // Mode 2: the engine's default seccomp filter is in force.
        assert_eq!(status_field(&d, &lab, pid, "Seccomp").await, "2");
    }
    println!("node capabilities: CapEff = CapBnd = {want:#018x}");

    // Root in the lab: its network is the student's; a daemon user can be taken on.
    ok(
        &d,
        &lab,
        "n1",
        &sh("ip addr add 2001:db8:ffff::1/128 dev lo && ip addr del 2001:db8:ffff::1/128 dev lo"),
    )
    .await;
    // Servers bind ports below 1024 without NET_BIND_SERVICE (in the node's own namespace).
    ok(
        &d,
        &lab,
        "n1",
        &sh("timeout 1 socat -u UDP6-RECV:53 /dev/null; test $? = 124"),
    )
    .await;
    let id = ok(&d, &lab, "n1", &sh("su -s /bin/sh -c id nobody")).await;
    assert!(id.contains("uid=65534"), "{id}");
    // And nothing more: no mounts, no device nodes, no chroot.
    for cmd in [
        "mount -t tmpfs none /mnt",
        "mknod /dev/v6test b 8 0",
        "chroot / true",
    ] {
        let out = d.exec(&lab, "n1", &sh(cmd), limits()).await.unwrap();
        assert_ne!(out.exit_code, 0, "`{cmd}` succeeded: {}", out.combined());
    }

    // Disk: a scratch directory fills up to its size and no further; a file anywhere else stops
    // at the file size limit. The host's file system loses at most what those bounds allow.
    let before = host_free_bytes();
    let size = v6lab_runtime::spec::SCRATCH_SIZE;
    let fill = d
        .exec(
            &lab,
            "n1",
            // Two files, each below the file size limit: the file system's size stops them.
            &sh(
                "for f in a b; do dd if=/dev/zero of=/tmp/$f bs=1M count=48 2>&1; done; \
                 cat /tmp/a /tmp/b | wc -c",
            ),
            limits(),
        )
        .await
        .unwrap();
    assert!(fill.stdout.contains("No space left"), "{}", fill.combined());
    let filled: u64 = fill.stdout.lines().last().unwrap().trim().parse().unwrap();
    assert!(filled <= size, "{filled} bytes in /tmp");
    let big = d
        .exec(
            &lab,
            "n1",
            &sh("dd if=/dev/zero of=/var/big bs=1M count=1000 2>&1; stat -c %s /var/big"),
            limits(),
        )
        .await
        .unwrap();
    let written: u64 = big.stdout.lines().last().unwrap().trim().parse().unwrap();
    assert_eq!(
        written,
        v6lab_runtime::spec::FILE_SIZE_MAX,
        "{}",
        big.combined()
    );
    // Hard limit: root in the node cannot raise it.
    let raise = d
        .exec(
            &lab,
            "n1",
            &sh("ulimit -f unlimited && echo raised"),
            limits(),
        )
        .await
        .unwrap();
    assert!(!raise.stdout.contains("raised"), "{}", raise.combined());
    let after = host_free_bytes();
    println!(
        "disk fill: /tmp stopped at {} MiB, a file elsewhere at {} MiB; host free space {} MiB -> {} MiB",
        filled >> 20,
        written >> 20,
        before >> 20,
        after >> 20
    );
}

/// `down_all` removes every v6lab object on the host, other people's labs included: run it
/// only on a machine where no other lab matters (`cargo test -- --ignored down_all`).
#[tokio::test]
#[ignore = "removes every v6lab lab on this host"]
async fn down_all_removes_everything() {
    let (a, b) = (lab_name("all-a"), lab_name("all-b"));
    let _cleanup = (Cleanup(a.clone()), Cleanup(b.clone()));
    let d = docker().await;
    d.up(&spec(&a, 1), &NoopObserver).await.unwrap();
    d.up(&spec(&b, 2), &NoopObserver).await.unwrap();
    let removed = d.down_all().await.unwrap();
    assert!(
        removed.containers >= 3 && removed.bridges >= 2,
        "{removed:?}"
    );
    assert!(leftovers(&a).is_empty() && leftovers(&b).is_empty());
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label={}=true", names::LABEL_MANAGED),
        ])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty());
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        !links.lines().any(|l| l
            .split(": ")
            .nth(1)
            .and_then(|n| names::parse_link(n.split('@').next()?))
            .is_some()),
        "{links}"
    );
    assert!(d.down_all().await.unwrap().is_empty());
    assert!(d.list().await.unwrap().is_empty());
}

/// The node's processes as the host sees them: (host PID, command line with spaces).
fn node_processes(lab: &str, node: &str) -> Vec<(u32, String)> {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.Id}}", &names::container(lab, node)])
        .output()
        .unwrap();
    assert!(out.status.success());
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| v6lab_runtime::docker::kill::in_container(&c, &id))
        })
        .filter_map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")))
        })
        .collect()
}

/// Waits (with a deadline) until no process of the node has `needle` in its command line.
async fn gone_from_host(lab: &str, node: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<_> = node_processes(lab, node)
            .into_iter()
            .filter(|(_, c)| c.contains(needle))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still running: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A lab of one node `n1` (no probes) whose own `kill`, `timeout` and `pkill` do nothing: they are
/// no help to anyone stopping its commands.
async fn node_without_kill(test: &str) -> (Docker, String, Cleanup) {
    let lab = lab_name(test);
    let cleanup = Cleanup(lab.clone());
    let d = docker().await;
    let mut spec = spec(&lab, 1);
    spec.nodes[0].probes.clear();
    d.up(&spec, &NoopObserver).await.unwrap();
    ok(&d, &lab, "n1", &sh("for t in kill timeout pkill; do p=$(command -v $t) && ln -sf /bin/true \"$p\"; done; true")).await;
    (d, lab, cleanup)
}

#[tokio::test]
async fn bounded_exec_stops_floods_and_hangs_from_the_host() {
    let (d, lab, _cleanup) = node_without_kill("bounded").await;

    // A flood: the first 64 KiB are kept, the rest is not read, the command is killed.
    let t0 = Instant::now();
    let out = d
        .exec(&lab, "n1", &argv(&["cat", "/dev/zero"]), limits())
        .await
        .unwrap();
    eprintln!("flood: stopped after {:?}", t0.elapsed());
    assert!(out.truncated && !out.timed_out, "{out:?}");
    assert_eq!(out.stdout.len(), 64 * 1024);
    assert!(
        out.combined()
            .ends_with("output truncated at 64 KiB; the command was stopped")
    );
    gone_from_host(&lab, "n1", "cat /dev/zero").await;

    // A flood left behind by a command that ended at once (the exec's own process is gone):
    // found by its mark and killed too.
    let out = d
        .exec(&lab, "n1", &sh("cat /dev/zero & exit 0"), limits())
        .await
        .unwrap();
    assert!(out.truncated, "{out:?}");
    gone_from_host(&lab, "n1", "cat /dev/zero").await;

    // A hang, with a descendant: killed at the deadline, the tree with it. (The deadline leaves
    // a loaded engine time to start the command and pass on its first line.)
    let deadline = Duration::from_secs(5);
    let t0 = Instant::now();
    let out = d
        .exec(
            &lab,
            "n1",
            &sh("echo started; sleep 31536001 & sleep infinity"),
            ExecLimits::within(deadline),
        )
        .await
        .unwrap();
    let took = t0.elapsed();
    eprintln!("hang: returned after {took:?} (deadline {deadline:?})");
    assert!(out.timed_out && !out.truncated, "{out:?}");
    assert_eq!(out.stdout, "started\n");
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(3),
        "{took:?}"
    );
    assert!(
        out.combined().contains(&format!(
            "the command did not finish within {}s; it was stopped",
            deadline.as_secs()
        )),
        "{}",
        out.combined()
    );
    gone_from_host(&lab, "n1", "sleep 31536001").await;
    // Only the node's own init and entrypoint are left.
    let sleeping = node_processes(&lab, "n1")
        .into_iter()
        .filter(|(_, c)| c.contains("sleep infinity"))
        .count();
    assert_eq!(sleeping, 2, "{:?}", node_processes(&lab, "n1"));

    // Binary junk and invalid UTF-8: kept lossily, bounded, the command ends normally.
    let out = d
        .exec(
            &lab,
            "n1",
            &sh("head -c 20000 /dev/urandom; printf '\\377\\376'"),
            limits(),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert!(!out.truncated && !out.timed_out);

    // A dropped exec (its caller gave up) is stopped too.
    let dropped = tokio::time::timeout(
        Duration::from_millis(500),
        d.exec(&lab, "n1", &argv(&["sleep", "31536002"]), limits()),
    )
    .await;
    assert!(dropped.is_err());
    gone_from_host(&lab, "n1", "sleep 31536002").await;
    d.down(&lab).await.unwrap();
}

#[tokio::test]
async fn hanging_start_command_fails_the_lab_naming_node_and_command() {
    let lab = lab_name("starthang");
    let _cleanup = Cleanup(lab.clone());
    let d = docker().await.with_start_timeout(Duration::from_secs(2));
    let mut spec = spec(&lab, 2);
    spec.nodes[1].start.push(argv(&["sleep", "31536003"]));
    let t0 = Instant::now();
    let err = d.up(&spec, &NoopObserver).await.unwrap_err();
    eprintln!(
        "hanging start command failed the lab after {:?}",
        t0.elapsed()
    );
    let Error::CommandStopped { node, command, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!((node.as_str(), command.as_str()), ("n2", "sleep 31536003"));
    assert!(
        err.to_string().contains("did not finish within 2s"),
        "{err}"
    );
    gone_from_host(&lab, "n2", "sleep 31536003").await;
    d.down(&lab).await.unwrap();
    assert_eq!(leftovers(&lab), Vec::<String>::new());
}

#[tokio::test]
async fn cancelled_up_stops_at_once_and_down_cleans_up() {
    let lab = lab_name("cancel");
    let _cleanup = Cleanup(lab.clone());
    let d = docker().await;
    let mut spec = spec(&lab, 2);
    spec.nodes[0].start.push(argv(&["sleep", "31536004"]));
    let cancel = tokio_util::sync::CancellationToken::new();
    let trigger = cancel.clone();
    // Cancelled once every node is wired, while n1's start command hangs.
    let wired = Mutex::new(0);
    let observer = move |e: &Event| {
        if matches!(e.kind, EventKind::NodeWired { .. }) {
            let mut n = wired.lock().unwrap();
            *n += 1;
            if *n == 2 {
                let t = trigger.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    t.cancel();
                });
            }
        }
    };
    let t0 = Instant::now();
    let err = d
        .up_cancellable(&spec, &observer, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    gone_from_host(&lab, "n1", "sleep 31536004").await;
    d.down(&lab).await.unwrap();
    assert_eq!(leftovers(&lab), Vec::<String>::new());
}

/// A command without a terminal through the runtime's streamed exec: stdin in (EOF closes it),
/// stdout and stderr apart, the exit code; the output read only as fast as it is taken; killed
/// from the host at its deadline or when its caller drops it.
#[tokio::test]
async fn streamed_exec_pipes_back_pressures_and_is_killed_from_the_host() {
    use tokio::io::AsyncReadExt;
    use v6lab_runtime::runtime::{Pipes, Streamed};
    let (d, lab, _cleanup) = node_without_kill("streamed").await;

    // Input, both outputs apart, the exit code.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let pipes = Pipes {
        stdin: Box::new(&b"line one\nline two\n"[..]),
        stdout: &mut out,
        stderr: &mut err,
    };
    let ended = d
        .exec_streamed(
            &lab,
            "n1",
            &sh("wc -l; echo oops >&2; exit 3"),
            pipes,
            Some(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!(ended, Streamed::Exited(3));
    assert_eq!(String::from_utf8_lossy(&out).trim(), "2");
    assert_eq!(String::from_utf8_lossy(&err), "oops\n");

    // A deadline: the command and what it left running are killed from the host.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let pipes = Pipes {
        stdin: Box::new(tokio::io::empty()),
        stdout: &mut out,
        stderr: &mut err,
    };
    let t0 = Instant::now();
    let ended = d
        .exec_streamed(
            &lab,
            "n1",
            &sh("echo started; sleep 31536003 & sleep infinity"),
            pipes,
            Some(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    eprintln!(
        "streamed hang: returned after {:?} (deadline 2s)",
        t0.elapsed()
    );
    assert_eq!(ended, Streamed::DeadlinePassed);
    assert_eq!(out, b"started\n");
    gone_from_host(&lab, "n1", "sleep 31536003").await;

    // A flood into a reader that stops reading: the runtime waits for it (only a bounded
    // amount is in flight) and, when its caller gives up, the command is killed.
    let (mut writer, mut reader) = tokio::io::duplex(16 * 1024);
    let mut err = Vec::new();
    let flood = argv(&["cat", "/dev/zero"]);
    let work = d.exec_streamed(
        &lab,
        "n1",
        &flood,
        Pipes {
            stdin: Box::new(tokio::io::empty()),
            stdout: &mut writer,
            stderr: &mut err,
        },
        None,
    );
    let read = async {
        let mut buf = vec![0u8; 1 << 20];
        reader.read_exact(&mut buf).await.unwrap();
        // Then nothing more is read: the exec must wait, not buffer.
        std::future::pending::<()>().await
    };
    tokio::select! {
        r = work => panic!("a flood ended by itself: {r:?}"),
        _ = tokio::time::sleep(Duration::from_secs(3)) => {}
        () = read => unreachable!(),
    }
    gone_from_host(&lab, "n1", "cat /dev/zero").await;
    d.down(&lab).await.unwrap();
}
