//! From a [`LabSpec`] to the Kubernetes objects that realize it, and the commands each pod's
//! set-up runs. Pure: no IO, no API server.
//!
//! Each node is a pod running the lab image (`sleep infinity`); its files are a ConfigMap mounted
//! read-only at [`FILES_MOUNT`] and copied into place by its set-up. Each segment is a switch pod
//! holding a Linux bridge with one VXLAN spoke per member interface; the member's interface is
//! the other end of that spoke. Pod IPs are known only once pods run, so the set-up commands are
//! rendered from them ([`switch_setup`], [`node_setup`]), and re-pointing a spoke at a moved pod is
//! one `bridge fdb replace` ([`repoint`]).

use super::names;
use crate::spec::{LabSpec, NodeSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, Pod,
    PodDNSConfig, PodSecurityContext, PodSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, Sysctl, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Where a node pod's files ConfigMap is mounted (read-only); set-up copies them into place.
pub const FILES_MOUNT: &str = "/run/v6lab/files";
/// UDP port of every VXLAN spoke (IANA's).
pub const VXLAN_PORT: u16 = 4789;
/// VXLAN's encapsulation over IPv4: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 bytes.
pub const VXLAN_OVERHEAD_V4: u32 = 50;
/// The same over IPv6 (outer header 40 bytes).
pub const VXLAN_OVERHEAD_V6: u32 = 70;
/// VNIs per segment: segment number `s` owns `[(s + 1) * VNI_BLOCK, (s + 2) * VNI_BLOCK)`.
pub const VNI_BLOCK: u32 = 4096;
/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = (1 << 24) - 1;
/// Smallest MTU an IPv6 link may have (RFC 8200).
pub const IPV6_MIN_MTU: u32 = 1280;
/// Largest ConfigMap (etcd's object limit, 1 MiB), minus room for its metadata.
pub const CONFIG_MAP_MAX: usize = 1_000_000;
/// The bridge inside a switch pod.
pub const SWITCH_BRIDGE: &str = "br0";
/// The pod network's interface in every pod; no lab interface may take its name.
pub const POD_INTERFACE: &str = "eth0";

/// What the renderer must know of the cluster. A segment's frames must fit in one pod-network
/// packet with VXLAN's overhead (Linux answers bigger ones with Packet Too Big from the tunnel
/// itself), so labs for Kubernetes are planned with segments of at most
/// [`Network::segment_mtu_max`] (the plan's MTU cap: Router Advertisements and interfaces agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// MTU of the pod network's interface (`eth0`) in pods.
    pub pod_mtu: u32,
    /// Pod IPs are IPv6 (VXLAN over IPv6 costs 20 more bytes).
    pub pod_ipv6: bool,
}

/// Environment variable giving the pod network's MTU when it is not 1500.
pub const POD_MTU_VAR: &str = "V6LAB_POD_MTU";
/// Environment variable saying pod addresses are IPv6 (`1`).
pub const POD_IPV6_VAR: &str = "V6LAB_POD_IPV6";

impl Network {
    /// The pod network labs are planned for: MTU from [`POD_MTU_VAR`] (default 1500), IPv6 pod
    /// addresses if [`POD_IPV6_VAR`] is `1`. Checked against the real one when a lab is made.
    pub fn configured() -> Network {
        Network {
            pod_mtu: std::env::var(POD_MTU_VAR)
                .ok()
                .and_then(|m| m.trim().parse().ok())
                .unwrap_or(1500),
            pod_ipv6: std::env::var(POD_IPV6_VAR).is_ok_and(|v| v.trim() == "1"),
        }
    }

    /// The largest MTU a segment can have on this pod network.
    pub fn segment_mtu_max(&self) -> u32 {
        let overhead = if self.pod_ipv6 {
            VXLAN_OVERHEAD_V6
        } else {
            VXLAN_OVERHEAD_V4
        };
        self.pod_mtu.saturating_sub(overhead)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(
        "the pod network's MTU {pod_mtu} leaves {mtu} bytes for segments, below IPv6's minimum 1280: \
         run v6lab on a pod network with an MTU of at least 1330 (1350 with IPv6 pod addresses)"
    )]
    MtuTooSmall { pod_mtu: u32, mtu: u32 },
    #[error(
        "node {node}: interface {interface} takes the name of the pod network's interface eth0: \
         rename it in the topology (eth1, eth2, ...)"
    )]
    PodInterface { node: String, interface: String },
    #[error(
        "too many segments or members for 24-bit VNIs (segment {segment}, {members} members; at \
         most {max_segments} segments of {VNI_BLOCK} members)",
        max_segments = VNI_MAX / VNI_BLOCK - 1
    )]
    Vni { segment: String, members: usize },
    #[error(
        "node {node}: its files take {bytes} bytes, more than a ConfigMap holds ({CONFIG_MAP_MAX}): \
         make the node's files smaller"
    )]
    FilesTooLarge { node: String, bytes: usize },
    #[error("two objects of lab {lab} are both named {name}: rename a node or a segment")]
    NameClash { lab: String, name: String },
    #[error(
        "segment {segment} has MTU {mtu}, more than this pod network carries in VXLAN ({max}, \
         its MTU being {pod_mtu}): tell v6lab the pod network's MTU with {POD_MTU_VAR}={pod_mtu} \
         ({POD_IPV6_VAR}=1 if pod addresses are IPv6), so labs are planned for it"
    )]
    MtuTooLarge {
        segment: String,
        mtu: u32,
        max: u32,
        pod_mtu: u32,
    },
    #[error("node {node}: interface {interface} is on segment {segment}, which the lab lacks")]
    UnknownSegment {
        node: String,
        interface: String,
        segment: String,
    },
    #[error("no address of the pod of {what} is known yet")]
    MissingAddress { what: String },
}

/// Everything one lab becomes in the API (created in this order: config maps, switch pods,
/// node pods), and the segment plans the set-up is rendered from.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub config_maps: Vec<ConfigMap>,
    pub network_policies: Vec<NetworkPolicy>,
    pub pods: Vec<Pod>,
    pub segments: Vec<SegmentPlan>,
}

/// One segment: its switch pod, VNI block, MTU and member interfaces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SegmentPlan {
    pub name: String,
    pub switch: String,
    /// First VNI of the segment's block (recorded in the Lab's status).
    pub vni: u32,
    /// At most [`Network::segment_mtu_max`] (planned so: see [`Network::configured`]).
    pub mtu: u32,
    pub members: Vec<Member>,
}

/// One member interface of a segment: the two ends of one VXLAN spoke.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub node: String,
    pub pod: String,
    pub interface: String,
    pub mac: String,
    /// The spoke's VNI: the segment's first VNI plus the member's number.
    pub vni: u32,
    /// The spoke's name in the switch pod: `vx<member number>`.
    pub spoke: String,
}

/// One set-up command; `may_fail` for clean-ups of what an earlier run may have left.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    pub argv: Vec<String>,
    pub may_fail: bool,
}

fn step(argv: &[&str]) -> Step {
    Step {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        may_fail: false,
    }
}

fn cleanup(argv: &[&str]) -> Step {
    Step {
        may_fail: true,
        ..step(argv)
    }
}

/// The segments of `spec`, with names, VNIs and members.
pub fn segments(spec: &LabSpec, net: &Network) -> Result<Vec<SegmentPlan>, RenderError> {
    let mtu_max = net.segment_mtu_max();
    if mtu_max < IPV6_MIN_MTU {
        return Err(RenderError::MtuTooSmall {
            pod_mtu: net.pod_mtu,
            mtu: mtu_max,
        });
    }
    let mut out: Vec<SegmentPlan> = Vec::new();
    for (s, seg) in spec.segments.iter().enumerate() {
        let vni = u32::try_from(s + 1)
            .ok()
            .and_then(|n| n.checked_mul(VNI_BLOCK))
            .filter(|v| v + VNI_BLOCK - 1 <= VNI_MAX);
        let members: Vec<_> = spec
            .nodes
            .iter()
            .flat_map(|n| n.interfaces.iter().map(move |i| (n, i)))
            .filter(|(_, i)| i.segment == seg.name)
            .collect();
        if seg.mtu > mtu_max {
            return Err(RenderError::MtuTooLarge {
                segment: seg.name.clone(),
                mtu: seg.mtu,
                max: mtu_max,
                pod_mtu: net.pod_mtu,
            });
        }
        let Some(vni) = vni.filter(|_| members.len() <= VNI_BLOCK as usize) else {
            return Err(RenderError::Vni {
                segment: seg.name.clone(),
                members: members.len(),
            });
        };
        out.push(SegmentPlan {
            name: seg.name.clone(),
            switch: names::switch_pod(&spec.lab, &seg.name),
            vni,
            mtu: seg.mtu,
            members: members
                .into_iter()
                .enumerate()
                .map(|(m, (n, i))| Member {
                    node: n.name.clone(),
                    pod: names::node_pod(&spec.lab, &n.name),
                    interface: i.name.clone(),
                    mac: i.mac.clone(),
                    vni: vni + m as u32,
                    spoke: format!("vx{m}"),
                })
                .collect(),
        });
    }
    for n in &spec.nodes {
        for i in &n.interfaces {
            if i.name == POD_INTERFACE {
                return Err(RenderError::PodInterface {
                    node: n.name.clone(),
                    interface: i.name.clone(),
                });
            }
            if !out.iter().any(|s| s.name == i.segment) {
                return Err(RenderError::UnknownSegment {
                    node: n.name.clone(),
                    interface: i.name.clone(),
                    segment: i.segment.clone(),
                });
            }
        }
    }
    Ok(out)
}

fn meta(
    name: &str,
    namespace: &str,
    owner: &OwnerReference,
    labels: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

fn labels(lab: &str, role: &str, extra: Option<(&str, &str)>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (names::LABEL_LAB.to_string(), lab.to_string()),
        (names::LABEL_ROLE.to_string(), role.to_string()),
    ]);
    if let Some((k, v)) = extra {
        l.insert(k.to_string(), names::label_value(v));
    }
    l
}

/// Kubernetes quantity of a CPU limit in billionths of a CPU (rounded up to a millicpu).
fn cpu_quantity(nano_cpus: u64) -> Quantity {
    Quantity(format!("{}m", nano_cpus.div_ceil(1_000_000)))
}

/// CPU a pod asks the scheduler for: lab nodes idle most of the time, so a lab's pods are
/// placed by what they use, not by their limits (which would fit two nodes per CPU).
pub const CPU_REQUEST_MILLIS: u64 = 10;
/// Memory a pod asks the scheduler for (or its limit, if smaller): about what an idle node
/// with its daemons uses.
pub const MEMORY_REQUEST: u64 = 32 << 20;

fn limits(memory_bytes: u64, nano_cpus: u64) -> ResourceRequirements {
    let mut requests = BTreeMap::from([(
        "cpu".to_string(),
        Quantity(format!("{CPU_REQUEST_MILLIS}m")),
    )]);
    requests.insert(
        "memory".to_string(),
        Quantity(
            match memory_bytes {
                0 => MEMORY_REQUEST,
                m => m.min(MEMORY_REQUEST),
            }
            .to_string(),
        ),
    );
    let mut l = BTreeMap::new();
    if memory_bytes > 0 {
        l.insert("memory".to_string(), Quantity(memory_bytes.to_string()));
    }
    if nano_cpus > 0 {
        l.insert("cpu".to_string(), cpu_quantity(nano_cpus));
    }
    ResourceRequirements {
        limits: Some(l),
        requests: Some(requests),
        ..Default::default()
    }
}

fn container_security(caps: Vec<String>) -> SecurityContext {
    SecurityContext {
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: Some(caps),
        }),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Capabilities a node pod adds after dropping all: Docker's ([`crate::spec::NODE_CAPABILITIES`]),
/// NET_BIND_SERVICE instead of Docker's `net.ipv4.ip_unprivileged_port_start=0` (an unsafe
/// sysctl for Kubernetes 1.20, which a cluster would have to allow), and for a node that needs
/// `/dev/net/tun`, MKNOD to make it (see [`node_setup`]; no `hostPath` volume, which needs the
/// `privileged` Pod Security level).
pub fn node_capabilities(node: &NodeSpec) -> Vec<String> {
    let mut caps: Vec<String> = crate::spec::NODE_CAPABILITIES
        .iter()
        .map(|(c, _)| c.to_string())
        .collect();
    caps.push("NET_BIND_SERVICE".into());
    if node.tun {
        caps.push("MKNOD".into());
    }
    caps
}

/// The pod's sysctls: the node's own, and its per-interface `conf` ones on `default`
/// (`IFACE` -> `default`: set before any lab interface exists, so every interface the set-up
/// creates inherits them, as on Docker). Neighbour-table settings are not sysctls here (a new
/// network namespace has no `neigh/default`): [`link_steps`] sets them on each interface.
pub fn pod_sysctls(node: &NodeSpec) -> Vec<Sysctl> {
    let mut all = node.sysctls.clone();
    for (k, v) in &node.link_sysctls {
        if neigh_parameter(k).is_none() {
            all.insert(k.replace("IFACE", "default"), v.clone());
        }
    }
    all.into_iter()
        .map(|(name, value)| Sysctl { name, value })
        .collect()
}

/// A per-interface neighbour-table sysctl as `(table, ip ntable parameter)`: what `ip ntable`
/// sets through netlink where `/proc/sys` is read-only.
fn neigh_parameter(key: &str) -> Option<(&'static str, &'static str)> {
    let table = if key.starts_with("net.ipv6.neigh.IFACE.") {
        "ndisc_cache"
    } else if key.starts_with("net.ipv4.neigh.IFACE.") {
        "arp_cache"
    } else {
        return None;
    };
    let param = match key.rsplit('.').next()? {
        "retrans_time_ms" => "retrans",
        "base_reachable_time_ms" => "base_reachable",
        "delay_first_probe_time" => "delay_probe",
        "mcast_solicit" => "mcast_probes",
        "ucast_solicit" => "ucast_probes",
        "app_solicit" => "app_probes",
        "gc_stale_time" => "gc_stale",
        _ => return None,
    };
    Some((table, param))
}

/// The steps setting a node's neighbour-table sysctls on interface `dev` (see [`pod_sysctls`]).
pub fn link_steps(node: &NodeSpec, dev: &str) -> Vec<Step> {
    node.link_sysctls
        .iter()
        .filter_map(|(k, v)| {
            let (table, param) = neigh_parameter(k)?;
            Some(step(&[
                "ip", "ntable", "change", "name", table, "dev", dev, param, v,
            ]))
        })
        .collect()
}

/// ConfigMap key of file number `i`.
fn file_key(i: usize) -> String {
    format!("f{i}")
}

fn files_config_map(
    spec: &LabSpec,
    node: &NodeSpec,
    namespace: &str,
    owner: &OwnerReference,
) -> Result<ConfigMap, RenderError> {
    let pod = names::node_pod(&spec.lab, &node.name);
    let bytes: usize = node.files.iter().map(|f| f.content.len() + 16).sum();
    if bytes > CONFIG_MAP_MAX {
        return Err(RenderError::FilesTooLarge {
            node: node.name.clone(),
            bytes,
        });
    }
    Ok(ConfigMap {
        metadata: meta(
            &names::files_config_map(&pod),
            namespace,
            owner,
            labels(&spec.lab, "files", Some((names::LABEL_NODE, &node.name))),
        ),
        data: Some(
            node.files
                .iter()
                .enumerate()
                .map(|(i, f)| (file_key(i), f.content.clone()))
                .collect(),
        ),
        immutable: Some(true),
        ..Default::default()
    })
}

fn node_pod(spec: &LabSpec, node: &NodeSpec, namespace: &str, owner: &OwnerReference) -> Pod {
    let pod = names::node_pod(&spec.lab, &node.name);
    let mut volumes = vec![Volume {
        name: "files".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: names::files_config_map(&pod),
            default_mode: Some(0o444),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "files".into(),
        mount_path: FILES_MOUNT.into(),
        read_only: Some(true),
        ..Default::default()
    }];
    for (i, dir) in v6lab_core::policy::SCRATCH_DIRS.iter().enumerate() {
        let name = format!("scratch{i}");
        volumes.push(Volume {
            name: name.clone(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity(crate::spec::SCRATCH_SIZE.to_string())),
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name,
            mount_path: dir.to_string(),
            ..Default::default()
        });
    }
    let caps = node_capabilities(node);
    Pod {
        metadata: meta(
            &pod,
            namespace,
            owner,
            labels(&spec.lab, "node", Some((names::LABEL_NODE, &node.name))),
        ),
        spec: Some(PodSpec {
            hostname: names::is_dns_label(&node.name).then(|| node.name.clone()),
            containers: vec![Container {
                name: "node".into(),
                image: Some(node.image.clone().unwrap_or_else(|| spec.image.clone())),
                image_pull_policy: Some("Never".into()),
                command: Some(vec!["sleep".into(), "infinity".into()]),
                resources: Some(limits(node.limits.memory_bytes, node.limits.nano_cpus)),
                security_context: Some(container_security(caps)),
                volume_mounts: Some(mounts),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..pod_common(Some(pod_sysctls(node)))
        }),
        ..Default::default()
    }
}

/// What every pod of a lab shares: no service account token (students are root in their
/// pods), no service links, the pause process as PID 1 reaping zombies (Docker's `init`), the
/// node's own resolver (the plan writes `resolv.conf`), restarts in place.
fn pod_common(sysctls: Option<Vec<Sysctl>>) -> PodSpec {
    PodSpec {
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        share_process_namespace: Some(true),
        restart_policy: Some("Always".into()),
        termination_grace_period_seconds: Some(2),
        dns_policy: Some("None".into()),
        dns_config: Some(PodDNSConfig {
            nameservers: Some(vec!["::1".into()]),
            ..Default::default()
        }),
        security_context: Some(PodSecurityContext {
            sysctls,
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Memory limit of a switch pod.
pub const SWITCH_MEMORY: u64 = 32 << 20;
/// CPU limit of a switch pod (billionths of a CPU).
pub const SWITCH_NANO_CPUS: u64 = 200_000_000;

fn switch_pod(spec: &LabSpec, seg: &SegmentPlan, namespace: &str, owner: &OwnerReference) -> Pod {
    Pod {
        metadata: meta(
            &seg.switch,
            namespace,
            owner,
            labels(&spec.lab, "switch", Some((names::LABEL_SEGMENT, &seg.name))),
        ),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "switch".into(),
                image: Some(spec.image.clone()),
                image_pull_policy: Some("Never".into()),
                command: Some(vec!["sleep".into(), "infinity".into()]),
                resources: Some(limits(SWITCH_MEMORY, SWITCH_NANO_CPUS)),
                security_context: Some(container_security(vec!["NET_ADMIN".into()])),
                ..Default::default()
            }],
            ..pod_common(None)
        }),
        ..Default::default()
    }
}

/// Spreads a lab's pods evenly over the cluster's nodes (`topologySpreadConstraints` on
/// `kubernetes.io/hostname`, at most one pod of difference, never broken): every segment then
/// has members on more than one node. The default packs nothing and spreads nothing: the
/// scheduler places pods where they fit.
pub fn spread(pods: &mut [Pod], lab: &str) {
    for p in pods.iter_mut() {
        if let Some(spec) = p.spec.as_mut() {
            spec.topology_spread_constraints = Some(vec![TopologySpreadConstraint {
                max_skew: 1,
                topology_key: "kubernetes.io/hostname".into(),
                when_unsatisfiable: "DoNotSchedule".into(),
                label_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        names::LABEL_LAB.to_string(),
                        names::label_value(lab),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }]);
        }
    }
}

/// The objects realizing `spec` in `namespace`, each owned by the Lab `owner`.
pub fn render(
    spec: &LabSpec,
    namespace: &str,
    owner: &OwnerReference,
    net: &Network,
) -> Result<Rendered, RenderError> {
    let segments = segments(spec, net)?;
    let config_maps = spec
        .nodes
        .iter()
        .map(|n| files_config_map(spec, n, namespace, owner))
        .collect::<Result<Vec<_>, _>>()?;
    let pods: Vec<Pod> = segments
        .iter()
        .map(|s| switch_pod(spec, s, namespace, owner))
        .chain(
            spec.nodes
                .iter()
                .map(|n| node_pod(spec, n, namespace, owner)),
        )
        .collect();
    let mut seen = BTreeSet::new();
    for name in pods.iter().filter_map(|p| p.metadata.name.as_deref()) {
        if !seen.insert(name) {
            return Err(RenderError::NameClash {
                lab: spec.lab.clone(),
                name: name.to_string(),
            });
        }
    }
    Ok(Rendered {
        config_maps,
        network_policies: network_policies(&spec.lab, namespace, owner),
        pods,
        segments,
    })
}

fn role_selector(lab: &str, role: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(lab, role, None)),
        ..Default::default()
    }
}

/// The lab's two NetworkPolicies: its node pods and its switch pods speak VXLAN (UDP 4789) with
/// each other and nothing else on the pod network, in or out (no other lab's switch, no other
/// pod, no API server). `kubectl exec` does not cross the pod network, so it is unaffected. Only
/// enforced where the cluster's network plugin implements NetworkPolicy.
pub fn network_policies(lab: &str, namespace: &str, owner: &OwnerReference) -> Vec<NetworkPolicy> {
    let vxlan = || {
        Some(vec![NetworkPolicyPort {
            protocol: Some("UDP".into()),
            port: Some(IntOrString::Int(i32::from(VXLAN_PORT))),
            ..Default::default()
        }])
    };
    [("node", "switch"), ("switch", "node")]
        .into_iter()
        .map(|(role, peer)| {
            let peers = || {
                Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(role_selector(lab, peer)),
                    ..Default::default()
                }])
            };
            NetworkPolicy {
                metadata: meta(
                    &format!("{lab}-{role}-vxlan"),
                    namespace,
                    owner,
                    labels(lab, "policy", None),
                ),
                spec: Some(NetworkPolicySpec {
                    pod_selector: Some(role_selector(lab, role)),
                    policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
                    ingress: Some(vec![NetworkPolicyIngressRule {
                        from: peers(),
                        ports: vxlan(),
                    }]),
                    egress: Some(vec![NetworkPolicyEgressRule {
                        to: peers(),
                        ports: vxlan(),
                    }]),
                }),
            }
        })
        .collect()
}

/// The all-zero FDB entry of `dev`, pointing at `ip`. The kernel refuses `bridge fdb replace`
/// of an all-zero entry (`Operation not supported`): the old one is deleted, the new appended.
fn fdb_to(dev: &str, ip: IpAddr) -> Vec<Step> {
    let ip = ip.to_string();
    let zero = "00:00:00:00:00:00";
    vec![
        cleanup(&["bridge", "fdb", "del", zero, "dev", dev, "self"]),
        step(&[
            "bridge",
            "fdb",
            "append",
            zero,
            "dev",
            dev,
            "dst",
            &ip,
            "self",
            "permanent",
        ]),
    ]
}

/// A point-to-point VXLAN link `dev` (no learning; its one destination is the all-zero FDB
/// entry, so a moved peer is one [`repoint`] away), removed first if a previous run left it. It
/// sends from UDP port 4789 too: both directions of a spoke are then one flow for the pod's
/// connection tracking, so a student's stateful firewall (`ct state established accept`, then
/// `policy drop`) keeps the segments the node is on.
fn vxlan(dev: &str, vni: u32, mtu: u32, mac: Option<&str>, peer: IpAddr) -> Vec<Step> {
    let (vni, mtu, port) = (vni.to_string(), mtu.to_string(), VXLAN_PORT.to_string());
    let port_end = (VXLAN_PORT + 1).to_string();
    let mut add = vec!["ip", "link", "add", dev];
    if let Some(mac) = mac {
        add.extend(["address", mac]);
    }
    add.extend([
        "mtu",
        &mtu,
        "type",
        "vxlan",
        "id",
        &vni,
        "dstport",
        &port,
        "srcport",
        &port,
        &port_end,
        "nolearning",
    ]);
    let mut steps = vec![cleanup(&["ip", "link", "delete", dev]), step(&add)];
    steps.extend(fdb_to(dev, peer));
    steps
}

/// The set-up of a segment's switch pod: the bridge (multicast snooping off, so RA, ND, DAD,
/// DHCPv6 and OSPFv3 multicast is flooded to every member; no addresses of its own) and one spoke
/// per member, `member_ips` in member order.
pub fn switch_setup(seg: &SegmentPlan, member_ips: &[IpAddr]) -> Result<Vec<Step>, RenderError> {
    let br = SWITCH_BRIDGE;
    let mut steps = vec![
        cleanup(&["ip", "link", "delete", br]),
        step(&[
            "ip",
            "link",
            "add",
            br,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]),
        step(&["ip", "link", "set", br, "addrgenmode", "none"]),
    ];
    for (i, m) in seg.members.iter().enumerate() {
        let ip = *member_ips
            .get(i)
            .ok_or_else(|| RenderError::MissingAddress {
                what: format!("node {} (segment {})", m.node, seg.name),
            })?;
        steps.extend(vxlan(&m.spoke, m.vni, seg.mtu, None, ip));
        // Its own step: set with `up` in one command, the link would get a link-local
        // address first, and send Router Solicitations into the segment.
        steps.push(step(&[
            "ip",
            "link",
            "set",
            &m.spoke,
            "addrgenmode",
            "none",
        ]));
        steps.push(step(&["ip", "link", "set", &m.spoke, "master", br, "up"]));
    }
    steps.push(step(&["ip", "link", "set", br, "up"]));
    Ok(steps)
}

/// The set-up of node `node`'s pod: make `/dev/net/tun` if it needs it, copy its files into place, then make each interface the
/// member end of its segment's spoke, up (its start scripts address it, as on Docker). `switch_ips`: each segment's switch pod IP, by segment name.
pub fn node_setup(
    node: &NodeSpec,
    segments: &[SegmentPlan],
    switch_ips: &BTreeMap<String, IpAddr>,
) -> Result<Vec<Step>, RenderError> {
    let mut steps = Vec::new();
    if node.tun {
        steps.extend([
            step(&["mkdir", "-p", "/dev/net"]),
            cleanup(&["rm", "-f", "/dev/net/tun"]),
            step(&["mknod", "-m", "0666", "/dev/net/tun", "c", "10", "200"]),
        ]);
    }
    steps.extend(node.files.iter().enumerate().map(|(i, f)| {
        let mode = format!("{:04o}", f.mode);
        let from = format!("{FILES_MOUNT}/{}", file_key(i));
        step(&["install", "-D", "-m", &mode, &from, &f.path])
    }));
    for i in &node.interfaces {
        let (seg, m) = segments
            .iter()
            .find_map(|s| {
                s.members
                    .iter()
                    .find(|m| m.node == node.name && m.interface == i.name)
                    .map(|m| (s, m))
            })
            .ok_or_else(|| RenderError::UnknownSegment {
                node: node.name.clone(),
                interface: i.name.clone(),
                segment: i.segment.clone(),
            })?;
        let ip = *switch_ips
            .get(&seg.name)
            .ok_or_else(|| RenderError::MissingAddress {
                what: format!("the switch of segment {}", seg.name),
            })?;
        let mtu = i.mtu.min(seg.mtu);
        steps.extend(vxlan(&i.name, m.vni, mtu, Some(&i.mac), ip));
        steps.extend(link_steps(node, &i.name));
        steps.push(step(&["ip", "link", "set", &i.name, "up"]));
    }
    Ok(steps)
}

/// Points the spoke end `dev` at `ip` again (a pod restarted elsewhere has a new IP).
pub fn repoint(dev: &str, ip: IpAddr) -> Vec<Step> {
    fdb_to(dev, ip)
}
