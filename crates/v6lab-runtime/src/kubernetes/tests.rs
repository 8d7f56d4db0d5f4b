//! Rendering tested with data: the nat64-dns64 sample's objects as a snapshot, and each rule.

use super::names;
use super::render::*;
use crate::from_plan::{Apply, lab_spec};
use crate::spec::LabSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use std::collections::BTreeMap;
use std::net::IpAddr;

fn spec(topology: &str, lab: &str) -> LabSpec {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../topologies")
        .join(topology);
    let bytes = std::fs::read(&p).unwrap();
    // Planned for the pod network of the tests, as a command on Kubernetes plans.
    let policy = v6lab_core::Policy::default().with_segment_mtu(Some(NET.segment_mtu_max()));
    let plan = v6lab_core::plan_source_with(topology, &bytes, &policy)
        .map_err(|e| e.1.render(&e.0.text))
        .unwrap()
        .1;
    lab_spec(
        &plan,
        "",
        lab,
        "v6lab/node:test",
        Some(1_900_000_000),
        Apply::Exercises,
    )
}

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "v6lab.dev/v1alpha1".into(),
        kind: "Lab".into(),
        name: "nat64-dns64".into(),
        uid: "00000000-0000-0000-0000-000000000001".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

const NET: Network = Network {
    pod_mtu: 1500,
    pod_ipv6: false,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn argv(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| format!("{}{}", if s.may_fail { "-" } else { "" }, s.argv.join(" ")))
        .collect()
}

#[test]
fn nat64_dns64_objects_match_their_snapshot() {
    let s = spec("nat64-dns64.yaml", "nat64-dns64");
    let r = render(&s, "v6lab", &owner(), &NET).unwrap();
    insta::assert_json_snapshot!("nat64_dns64_pods", r.pods);
    insta::assert_json_snapshot!("nat64_dns64_segments", r.segments);
    let keys: Vec<Vec<&String>> = r
        .config_maps
        .iter()
        .map(|c| c.data.as_ref().unwrap().keys().collect())
        .collect();
    insta::assert_json_snapshot!("nat64_dns64_config_map_keys", keys);
}

#[test]
fn node_pods_are_confined_like_docker_containers() {
    let s = spec("nat64-dns64.yaml", "l1");
    let r = render(&s, "ns", &owner(), &NET).unwrap();
    let node_pods: Vec<_> = r
        .pods
        .iter()
        .filter(|p| p.metadata.labels.as_ref().unwrap()[names::LABEL_ROLE] == "node")
        .collect();
    assert_eq!(node_pods.len(), s.nodes.len());
    for (pod, node) in node_pods.iter().zip(&s.nodes) {
        let meta = &pod.metadata;
        assert_eq!(
            meta.name.as_deref(),
            Some(names::node_pod("l1", &node.name).as_str())
        );
        assert_eq!(meta.labels.as_ref().unwrap()[names::LABEL_LAB], "l1");
        assert_eq!(meta.labels.as_ref().unwrap()[names::LABEL_NODE], node.name);
        assert_eq!(meta.owner_references.as_ref().unwrap(), &vec![owner()]);
        let ps = pod.spec.as_ref().unwrap();
        assert_eq!(ps.automount_service_account_token, Some(false));
        let c = &ps.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("Never"));
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.privileged, Some(false));
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        let caps = sc.capabilities.as_ref().unwrap();
        assert_eq!(caps.drop, Some(vec!["ALL".to_string()]));
        let add = caps.add.as_ref().unwrap();
        for (c, _) in crate::spec::NODE_CAPABILITIES {
            assert!(add.iter().any(|a| a == c), "{c}");
        }
        assert!(add.iter().any(|a| a == "NET_BIND_SERVICE"));
        assert_eq!(add.iter().any(|a| a == "MKNOD"), node.tun, "{}", node.name);
        assert!(!add.iter().any(|a| a == "SYS_ADMIN"));
        let lim = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(lim["memory"].0, node.limits.memory_bytes.to_string());
        assert_eq!(
            lim["cpu"].0,
            format!("{}m", node.limits.nano_cpus.div_ceil(1_000_000))
        );
        let sysctls = ps
            .security_context
            .as_ref()
            .unwrap()
            .sysctls
            .as_ref()
            .unwrap();
        for (k, v) in &node.sysctls {
            assert!(sysctls.iter().any(|x| &x.name == k && &x.value == v), "{k}");
        }
        assert!(!sysctls.iter().any(|x| x.name.contains("IFACE")));
        assert!(!ps.volumes.iter().flatten().any(|v| v.host_path.is_some()));
        assert!(!sysctls.iter().any(|x| x.name.contains("unprivileged_port")));
    }
    assert!(s.nodes.iter().any(|n| n.tun), "the sample has a translator");
}

#[test]
fn link_sysctls_move_to_default_and_neighbour_settings_to_each_link() {
    let mut s = spec("nat64-dns64.yaml", "l1");
    let n = &mut s.nodes[0];
    n.link_sysctls
        .insert("net.ipv6.neigh.IFACE.retrans_time_ms".into(), "500".into());
    n.link_sysctls
        .insert("net.ipv6.conf.IFACE.accept_ra".into(), "2".into());
    let got = pod_sysctls(n);
    assert!(
        got.iter()
            .any(|x| x.name == "net.ipv6.conf.default.accept_ra" && x.value == "2")
    );
    assert!(
        !got.iter()
            .any(|x| x.name.contains("IFACE") || x.name.contains("neigh"))
    );
    let steps = link_steps(n, "eth1");
    assert_eq!(steps.len(), 1);
    assert_eq!(
        steps[0].argv.join(" "),
        "ip ntable change name ndisc_cache dev eth1 retrans 500"
    );
}

#[test]
fn segments_fit_in_the_pod_network_with_vxlan() {
    let s = spec("nat64-dns64.yaml", "l1");
    assert_eq!(NET.segment_mtu_max(), 1450);
    // Planned for Kubernetes (MTU capped at 1450): the segments keep the plan's MTU.
    for (g, want) in segments(&s, &NET).unwrap().iter().zip(&s.segments) {
        assert_eq!(g.mtu, want.mtu);
        assert!(g.mtu <= 1450);
    }
    let v6 = Network {
        pod_mtu: 1500,
        pod_ipv6: true,
    };
    assert_eq!(v6.segment_mtu_max(), 1430);
    // Planned for a bigger pod network than the real one: refused, saying what to set.
    let e = segments(&s, &v6).unwrap_err();
    assert!(
        matches!(
            e,
            RenderError::MtuTooLarge {
                max: 1430,
                pod_mtu: 1500,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("V6LAB_POD_MTU=1500"), "{e}");
    let tiny = Network {
        pod_mtu: 1300,
        pod_ipv6: false,
    };
    assert_eq!(
        segments(&s, &tiny),
        Err(RenderError::MtuTooSmall {
            pod_mtu: 1300,
            mtu: 1250
        })
    );
}

#[test]
fn vnis_are_deterministic_and_distinct() {
    let s = spec("nat64-dns64.yaml", "l1");
    let a = segments(&s, &NET).unwrap();
    assert_eq!(a, segments(&s, &NET).unwrap());
    let mut all = std::collections::BTreeSet::new();
    for (k, g) in a.iter().enumerate() {
        assert_eq!(g.vni, (k as u32 + 1) * VNI_BLOCK);
        for m in &g.members {
            assert!(all.insert(m.vni), "VNI {} twice", m.vni);
            assert!(m.vni >= g.vni && m.vni < g.vni + VNI_BLOCK);
        }
    }
}

#[test]
fn switch_setup_is_a_bridge_with_one_spoke_per_member() {
    let s = spec("nat64-dns64.yaml", "l1");
    let seg = &segments(&s, &NET).unwrap()[0];
    let ips: Vec<IpAddr> = (0..seg.members.len())
        .map(|i| ip(&format!("198.18.128.{}", 10 + i)))
        .collect();
    let got = argv(&switch_setup(seg, &ips).unwrap());
    let m0 = &seg.members[0];
    let mut want = vec![
        "-ip link delete br0".to_string(),
        "ip link add br0 type bridge mcast_snooping 0".into(),
        "ip link set br0 addrgenmode none".into(),
        "-ip link delete vx0".into(),
        format!(
            "ip link add vx0 mtu 1450 type vxlan id {} dstport 4789 srcport 4789 4790 nolearning",
            m0.vni
        ),
        "-bridge fdb del 00:00:00:00:00:00 dev vx0 self".into(),
        "bridge fdb append 00:00:00:00:00:00 dev vx0 dst 198.18.128.10 self permanent".into(),
        "ip link set vx0 addrgenmode none".into(),
        "ip link set vx0 master br0 up".into(),
    ];
    assert_eq!(got[..want.len()], want[..]);
    want.clear();
    assert_eq!(got.last().unwrap(), "ip link set br0 up");
    assert_eq!(got.len(), 3 + 6 * seg.members.len() + 1);
    assert_eq!(
        switch_setup(seg, &ips[..ips.len() - 1]),
        Err(RenderError::MissingAddress {
            what: format!(
                "node {} (segment {})",
                seg.members.last().unwrap().node,
                seg.name
            )
        })
    );
}

#[test]
fn node_setup_copies_files_then_makes_each_interface_a_spoke() {
    let s = spec("nat64-dns64.yaml", "l1");
    let segs = segments(&s, &NET).unwrap();
    let node = s
        .nodes
        .iter()
        .find(|n| !n.interfaces.is_empty() && !n.tun)
        .unwrap();
    let switch_ips: BTreeMap<String, IpAddr> = segs
        .iter()
        .enumerate()
        .map(|(k, g)| (g.name.clone(), ip(&format!("198.18.129.{}", 10 + k))))
        .collect();
    let got = argv(&node_setup(node, &segs, &switch_ips).unwrap());
    for (i, f) in node.files.iter().enumerate() {
        assert_eq!(
            got[i],
            format!("install -D -m {:04o} {FILES_MOUNT}/f{i} {}", f.mode, f.path)
        );
    }
    let links = &got[node.files.len()..];
    assert_eq!(links.len(), 6 * node.interfaces.len());
    for (k, i) in node.interfaces.iter().enumerate() {
        let seg = segs.iter().find(|g| g.name == i.segment).unwrap();
        let m = seg
            .members
            .iter()
            .find(|m| m.node == node.name && m.interface == i.name)
            .unwrap();
        let sw = switch_ips[&seg.name];
        assert_eq!(
            links[6 * k..6 * k + 6],
            [
                format!("-ip link delete {}", i.name),
                format!(
                    "ip link add {} address {} mtu {} type vxlan id {} dstport 4789 srcport 4789 4790 nolearning",
                    i.name,
                    i.mac,
                    i.mtu.min(seg.mtu),
                    m.vni
                ),
                format!("-bridge fdb del 00:00:00:00:00:00 dev {} self", i.name),
                format!(
                    "bridge fdb append 00:00:00:00:00:00 dev {} dst {sw} self permanent",
                    i.name
                ),
                format!(
                    "ip ntable change name ndisc_cache dev {} retrans 250",
                    i.name
                ),
                format!("ip link set {} up", i.name),
            ]
        );
    }
    let mut missing = switch_ips.clone();
    missing.remove(&node.interfaces[0].segment);
    assert!(matches!(
        node_setup(node, &segs, &missing),
        Err(RenderError::MissingAddress { .. })
    ));
    let tun = s.nodes.iter().find(|n| n.tun).unwrap();
    let got = argv(&node_setup(tun, &segs, &switch_ips).unwrap());
    assert_eq!(
        got[..3],
        [
            "mkdir -p /dev/net",
            "-rm -f /dev/net/tun",
            "mknod -m 0666 /dev/net/tun c 10 200"
        ]
    );
    assert_eq!(
        argv(&repoint("eth1", ip("2001:db8::1"))),
        [
            "-bridge fdb del 00:00:00:00:00:00 dev eth1 self",
            "bridge fdb append 00:00:00:00:00:00 dev eth1 dst 2001:db8::1 self permanent"
        ]
    );
}

#[test]
fn bad_labs_are_refused_with_a_reason() {
    let mut s = spec("nat64-dns64.yaml", "l1");
    s.nodes[0].interfaces[0].name = "eth0".into();
    let e = render(&s, "ns", &owner(), &NET).unwrap_err();
    assert!(matches!(e, RenderError::PodInterface { .. }), "{e}");
    assert!(e.to_string().contains("rename it"));

    let mut s = spec("nat64-dns64.yaml", "l1");
    s.nodes[0].files[0].content = "x".repeat(CONFIG_MAP_MAX + 1);
    let e = render(&s, "ns", &owner(), &NET).unwrap_err();
    assert!(matches!(e, RenderError::FilesTooLarge { .. }), "{e}");

    let mut s = spec("nat64-dns64.yaml", "l1");
    s.nodes[0].interfaces[0].segment = "nowhere".into();
    let e = render(&s, "ns", &owner(), &NET).unwrap_err();
    assert!(matches!(e, RenderError::UnknownSegment { .. }), "{e}");

    // Two node names that differ only where a pod name cannot: still two pods.
    let mut s = spec("nat64-dns64.yaml", "l1");
    let mut twin = s.nodes[0].clone();
    twin.name = twin.name.to_uppercase();
    s.nodes.push(twin);
    let r = render(&s, "ns", &owner(), &NET).unwrap();
    let names: std::collections::BTreeSet<_> =
        r.pods.iter().map(|p| p.metadata.name.clone()).collect();
    assert_eq!(names.len(), r.pods.len());
}

#[test]
fn pods_speak_only_vxlan_with_their_own_labs_pods() {
    let s = spec("nat64-dns64.yaml", "l1");
    let r = render(&s, "ns", &owner(), &NET).unwrap();
    insta::assert_json_snapshot!("network_policies", r.network_policies);
    // Every pod of the lab is selected by one policy that names both directions.
    for pod in &r.pods {
        let labels = pod.metadata.labels.as_ref().unwrap();
        let selecting: Vec<_> = r
            .network_policies
            .iter()
            .filter(|p| {
                let sel = p.spec.as_ref().unwrap().pod_selector.as_ref().unwrap();
                sel.match_labels
                    .as_ref()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| labels.get(k) == Some(v))
            })
            .collect();
        assert_eq!(selecting.len(), 1, "{:?}", pod.metadata.name);
        let types = selecting[0].spec.as_ref().unwrap().policy_types.clone();
        assert_eq!(types, Some(vec!["Ingress".into(), "Egress".into()]));
    }
    let other = render(&spec("nat64-dns64.yaml", "l2"), "ns", &owner(), &NET).unwrap();
    for p in &other.network_policies {
        let sel = p.spec.as_ref().unwrap().pod_selector.as_ref().unwrap();
        assert_eq!(sel.match_labels.as_ref().unwrap()[names::LABEL_LAB], "l2");
    }
}

#[test]
fn spreading_asks_for_an_even_split_of_the_labs_pods_over_hosts() {
    let s = spec("nat64-dns64.yaml", "l1");
    let mut r = render(&s, "v6lab", &owner(), &NET).unwrap();
    assert!(r.pods.iter().all(|p| {
        p.spec
            .as_ref()
            .unwrap()
            .topology_spread_constraints
            .is_none()
    }));
    spread(&mut r.pods, "l1");
    for p in &r.pods {
        let c = &p
            .spec
            .as_ref()
            .unwrap()
            .topology_spread_constraints
            .as_ref()
            .unwrap()[0];
        assert_eq!(
            (c.max_skew, c.when_unsatisfiable.as_str()),
            (1, "DoNotSchedule")
        );
        assert_eq!(c.topology_key, "kubernetes.io/hostname");
        let sel = c
            .label_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(sel[names::LABEL_LAB], "l1");
    }
}
