//! The Docker runtime: realizes a [`LabSpec`] on one host's Docker engine.
//!
//! - Every node is a container (`network_mode: none`, `init: true`, every capability dropped but
//!   [`crate::spec::NODE_CAPABILITIES`], `no-new-privileges`, never privileged, limits, size-limited
//!   scratch file systems, labels `dev.v6lab.*`) named `v6lab-<lab>_<node>`.
//! - Every segment is a host bridge and every interface a veth pair made through netlink
//!   ([`netlink`]); names derive from the lab hash ([`crate::names`]).
//! - Everything is found again by label and name prefix, so [`Docker::down`] works whatever
//!   state an interrupted [`Docker::up`] left behind.
//!
//! The engine API version is negotiated, so Docker 20.10 (API 1.41) and 28+ both work.

pub(crate) mod exec;
mod firewall;
pub mod images;
pub mod kill;
pub mod netlink;

use crate::names::{self, LinkName};
use crate::readiness;
use crate::runtime::{
    BoxFuture, Ensured, ImageError, ImageList, Pipes, Recipe, Runtime, Streamed, Terminal,
};
use crate::spec::{LabSpec, NodeSpec};
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, DeviceMapping, HostConfig, ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures::{StreamExt, TryStreamExt, stream};
use netlink::{HostLink, Netlink, NetlinkError, VethSpec};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub use crate::runtime::{
    DEFAULT_OUTPUT_CAP, Error, Event, EventKind, ExecLimits, ExecOutput, LabStatus, LabSummary,
    NodeStatus, NoopObserver, Observer, ProbeTimeout, Removed, SegmentStatus,
};

/// Default deadline for a node's readiness probes, counted from when they start.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default deadline for each start command of a node.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Default number of nodes created, wired or removed at once.
pub const DEFAULT_CONCURRENCY: usize = 8;

fn docker_err(context: impl Into<String>) -> impl FnOnce(BollardError) -> Error {
    let context = format!("Docker engine: {}", context.into());
    move |source| Error::Engine {
        context,
        source: Box::new(source),
    }
}

fn netlink_err(context: impl Into<String>) -> impl FnOnce(NetlinkError) -> Error {
    let context = context.into();
    move |source| Error::Engine {
        context,
        source: Box::new(source),
    }
}

/// HTTP status of an engine error response, if it is one.
fn status(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The Docker runtime.
#[derive(Debug, Clone)]
pub struct Docker {
    client: bollard::Docker,
    socket: PathBuf,
    probe_timeout: Duration,
    start_timeout: Duration,
    concurrency: usize,
    /// Whether the storage driver refused a writable-layer quota (learnt at the first create).
    no_layer_quota: Arc<AtomicBool>,
}

/// One interface, resolved.
struct IfaceWiring {
    segment: usize,
    host: String,
    alias: String,
    mac: [u8; 6],
}

/// Names and indices resolved from a spec before anything is created.
struct Wiring {
    /// Per node, per interface.
    nodes: Vec<Vec<IfaceWiring>>,
    bridges: Vec<(String, String)>,
}

impl Wiring {
    fn new(spec: &LabSpec) -> Result<Self, Error> {
        let invalid = |m: String| Error::InvalidSpec(m);
        let name_err = |e: names::NameError| Error::InvalidSpec(e.to_string());
        let lab = spec.lab.as_str();
        names::check_lab(lab).map_err(name_err)?;
        let check_mtu = |what: String, mtu: u32| {
            if (68..=65535).contains(&mtu) {
                Ok(())
            } else {
                Err(invalid(format!(
                    "{what}: MTU {mtu} is out of range 68..=65535"
                )))
            }
        };
        let mut segments = HashMap::new();
        let mut bridges = Vec::new();
        for (i, seg) in spec.segments.iter().enumerate() {
            if segments.insert(seg.name.as_str(), i).is_some() {
                return Err(invalid(format!("segment {} is declared twice", seg.name)));
            }
            check_mtu(format!("segment {}", seg.name), seg.mtu)?;
            bridges.push((
                names::bridge(lab, i).map_err(name_err)?,
                names::bridge_alias(lab, &seg.name),
            ));
        }
        let mut node_names = HashSet::new();
        let mut nodes = Vec::new();
        for (n, node) in spec.nodes.iter().enumerate() {
            names::check_node(&node.name).map_err(name_err)?;
            if !node_names.insert(node.name.as_str()) {
                return Err(invalid(format!("node {} is declared twice", node.name)));
            }
            if node.image.as_deref().unwrap_or(&spec.image).is_empty() {
                return Err(invalid(format!("node {} has no image", node.name)));
            }
            let mut ifnames = HashSet::new();
            let mut ifaces = Vec::new();
            for (i, iface) in node.interfaces.iter().enumerate() {
                let what = format!("node {} interface {}", node.name, iface.name);
                names::check_interface(&iface.name).map_err(|e| invalid(format!("{what}: {e}")))?;
                if iface.name == "lo" || !ifnames.insert(iface.name.as_str()) {
                    return Err(invalid(format!("{what}: name used twice (or `lo`)")));
                }
                let seg = *segments
                    .get(iface.segment.as_str())
                    .ok_or_else(|| invalid(format!("{what}: unknown segment {}", iface.segment)))?;
                check_mtu(what.clone(), iface.mtu)?;
                let mac =
                    names::parse_mac(&iface.mac).map_err(|e| invalid(format!("{what}: {e}")))?;
                ifaces.push(IfaceWiring {
                    segment: seg,
                    host: names::host_veth(lab, n, i).map_err(name_err)?,
                    alias: names::veth_alias(lab, &node.name, &iface.name),
                    mac,
                });
            }
            for f in &node.files {
                if !f.path.starts_with('/')
                    || f.path.ends_with('/')
                    || f.path.split('/').any(|c| c == "..")
                {
                    return Err(invalid(format!(
                        "node {}: file path {:?} must be absolute",
                        node.name, f.path
                    )));
                }
                if let Some(dir) = v6lab_core::policy::scratch_dir(&f.path) {
                    return Err(invalid(format!(
                        "node {}: file {:?} would be hidden by the empty {dir} mounted at start; place it elsewhere",
                        node.name, f.path
                    )));
                }
            }
            if node
                .start
                .iter()
                .chain(node.probes.iter().map(|p| &p.argv))
                .any(|a| a.is_empty())
            {
                return Err(invalid(format!("node {}: empty command", node.name)));
            }
            nodes.push(ifaces);
        }
        Ok(Wiring { nodes, bridges })
    }
}

fn label<'a>(c: &'a ContainerSummary, key: &str) -> Option<&'a str> {
    c.labels.as_ref()?.get(key).map(String::as_str)
}

fn container_name(c: &ContainerSummary) -> Option<&str> {
    c.names
        .as_ref()?
        .iter()
        .map(|n| n.trim_start_matches('/'))
        .next()
}

fn tar_files(node: &NodeSpec) -> Result<Vec<u8>, std::io::Error> {
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut builder = tar::Builder::new(Vec::new());
    for f in &node.files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(f.content.len() as u64);
        header.set_mode(f.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        // Docker extracts relative to the upload path (`/`) and creates missing parent
        // directories (0755, root) itself; existing directories keep their mode.
        builder.append_data(
            &mut header,
            f.path.trim_start_matches('/'),
            f.content.as_bytes(),
        )?;
    }
    builder.into_inner()
}

/// How long `down` waits before its last look for containers a killed `up` left in flight.
const DOWN_SETTLE: Duration = Duration::from_millis(250);

/// Whether the engine refused a container because its storage driver has no quota
/// (`--storage-opt is supported only for overlay over xfs with 'pquota' mount option`).
fn refuses_layer_quota(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { message, .. }
        if message.contains("storage-opt") || message.contains("storage opt"))
}

impl Docker {
    /// Connects to the local engine (`DOCKER_HOST=unix://...` or `/var/run/docker.sock`) and
    /// negotiates the API version (down to the server's, e.g. 1.41 for Docker 20.10).
    pub async fn connect() -> Result<Self, Error> {
        let socket = std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
        let unreachable = |e: BollardError| Error::Connect {
            engine: "Docker engine".into(),
            source: Box::new(e),
        };
        let client = bollard::Docker::connect_with_local_defaults().map_err(unreachable)?;
        let client = client.negotiate_version().await.map_err(unreachable)?;
        Ok(Docker {
            client,
            socket,
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
            start_timeout: DEFAULT_START_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            no_layer_quota: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Deadline for each node's probes (all of them, together).
    pub fn with_probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// Deadline for each start command; one that hangs fails the lab's creation.
    pub fn with_start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// How many nodes are created, wired, or removed at once (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The negotiated API version, e.g. `1.41`.
    pub fn api_version(&self) -> String {
        self.client.client_version().to_string()
    }

    /// The underlying engine client.
    pub fn client(&self) -> &bollard::Docker {
        &self.client
    }

    /// Brings a lab up: containers (created, files copied), bridges, then per node: started,
    /// wired; once all are wired, per node: start commands in order, then readiness probes.
    /// Nodes proceed concurrently (at most [`Docker::with_concurrency`] at once).
    ///
    /// Fails before creating anything when the spec is invalid, an image is missing or the lab
    /// exists. On a later failure the partial lab is left for inspection; [`Docker::down`]
    /// removes it.
    /// [`Docker::up`] that stops as soon as `cancel` fires (the lab was deleted while being
    /// created): the step under way is abandoned (a command in a node is killed) and nothing
    /// more is made; [`Docker::down`] removes what was. Fails with [`Error::Cancelled`].
    pub async fn up_cancellable(
        &self,
        spec: &LabSpec,
        observer: &dyn Observer,
        cancel: &CancellationToken,
    ) -> Result<(), Error> {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(Error::Cancelled { lab: spec.lab.clone() }),
            r = self.up(spec, observer) => r,
        }
    }

    pub async fn up(&self, spec: &LabSpec, observer: &dyn Observer) -> Result<(), Error> {
        let t0 = Instant::now();
        let emit = |kind: EventKind| {
            observer.event(&Event {
                lab: spec.lab.clone(),
                kind,
                elapsed: t0.elapsed(),
            })
        };
        let wiring = Wiring::new(spec)?;
        let lab = spec.lab.as_str();

        let images: HashSet<&str> = spec
            .nodes
            .iter()
            .map(|n| n.image.as_deref().unwrap_or(&spec.image))
            .collect();
        for image in images {
            if let Err(e) = self.client.inspect_image(image).await {
                return Err(if status(&e) == Some(404) {
                    Error::ImageMissing {
                        image: image.to_string(),
                    }
                } else {
                    docker_err(format!("inspecting image {image}"))(e)
                });
            }
        }
        if !self.lab_containers(Some(lab)).await?.is_empty() {
            return Err(Error::LabExists {
                lab: lab.to_string(),
            });
        }

        // Containers first: their names are unique on the engine, so once they are all
        // created this call owns the lab (a concurrent `up` of the same lab fails here).
        let emit = &emit;
        // Futures are collected before streaming them: a `Stream::map` closure over borrowed
        // data makes the whole `up` future fail the Send check when it is spawned.
        let creating: Vec<_> = spec
            .nodes
            .iter()
            .map(|node| async move {
                self.create_node(spec, node).await?;
                emit(EventKind::NodeCreated {
                    node: node.name.clone(),
                });
                Ok::<_, Error>(())
            })
            .collect();
        stream::iter(creating)
            .buffer_unordered(self.concurrency)
            .try_collect::<()>()
            .await?;

        let nl = Netlink::connect().map_err(netlink_err("netlink"))?;
        // Links left by an earlier, interrupted lab of this name.
        self.remove_links(&nl, Some(lab)).await?;
        firewall::ensure().await;
        let mut bridge_index = Vec::new();
        for (seg, (bridge, alias)) in spec.segments.iter().zip(&wiring.bridges) {
            let index = nl
                .create_bridge(bridge, alias, seg.mtu)
                .await
                .map_err(netlink_err(format!("segment {} of lab {lab}", seg.name)))?;
            bridge_index.push(index);
            emit(EventKind::SegmentCreated {
                segment: seg.name.clone(),
            });
        }

        let wiring_futures: Vec<_> = spec
            .nodes
            .iter()
            .zip(&wiring.nodes)
            .map(|(node, ifaces)| {
                let (nl, bridge_index) = (&nl, &bridge_index);
                async move {
                    let name = || node.name.clone();
                    let container = names::container(lab, &node.name);
                    self.client
                        .start_container(&container, None)
                        .await
                        .map_err(docker_err(format!("starting {container}")))?;
                    let pid = self.pid(lab, &node.name).await?;
                    emit(EventKind::NodeStarted { node: name() });
                    for (iface, w) in node.interfaces.iter().zip(ifaces) {
                        nl.create_veth(&VethSpec {
                            host: &w.host,
                            alias: &w.alias,
                            bridge_index: bridge_index[w.segment],
                            peer: &iface.name,
                            peer_mac: w.mac,
                            mtu: iface.mtu,
                            pid,
                        })
                        .await
                        .map_err(netlink_err(format!(
                            "wiring {} of node {} in lab {lab} to segment {}",
                            iface.name, node.name, iface.segment
                        )))?;
                    }
                    if !node.interfaces.is_empty() {
                        let names = node.interfaces.iter().map(|i| i.name.clone()).collect();
                        let sysctls = node
                            .link_sysctls
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        netlink::set_up_in_netns(pid, names, sysctls)
                            .await
                            .map_err(netlink_err(format!(
                                "bringing up the interfaces of node {} in lab {lab}",
                                node.name
                            )))?;
                    }
                    emit(EventKind::NodeWired { node: name() });
                    Ok::<_, Error>(())
                }
            })
            .collect();
        stream::iter(wiring_futures)
            .buffer_unordered(self.concurrency)
            .try_collect::<()>()
            .await?;

        // Every link exists before any start command runs (a daemon started on one node sees
        // its peers from its first packet).
        let configuring: Vec<_> = spec
            .nodes
            .iter()
            .map(|node| {
                readiness::configure(
                    self,
                    lab,
                    node,
                    (self.start_timeout, self.probe_timeout),
                    emit,
                )
            })
            .collect();
        stream::iter(configuring)
            .buffer_unordered(self.concurrency)
            .try_collect::<()>()
            .await
    }

    /// Creates a container with a writable-layer quota ([`crate::spec::LAYER_QUOTA`]) where the
    /// storage driver has quotas; once the engine refuses one (overlay2 on ext4), without.
    async fn create_with_quota(
        &self,
        container: &str,
        mut body: ContainerCreateBody,
    ) -> Result<(), BollardError> {
        let options = || {
            CreateContainerOptionsBuilder::default()
                .name(container)
                .build()
        };
        if !self.no_layer_quota.load(Ordering::Relaxed) {
            let mut quota = body.clone();
            if let Some(h) = quota.host_config.as_mut() {
                h.storage_opt = Some(HashMap::from([(
                    "size".to_string(),
                    crate::spec::LAYER_QUOTA.to_string(),
                )]));
            }
            match self.client.create_container(Some(options()), quota).await {
                Ok(_) => return Ok(()),
                Err(e) if refuses_layer_quota(&e) => {
                    if !self.no_layer_quota.swap(true, Ordering::Relaxed) {
                        tracing::info!(
                            "the engine's storage driver has no writable-layer quota: nodes' \
                             writes are bounded per file and per scratch path (docs/security.md)"
                        );
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(h) = body.host_config.as_mut() {
            h.storage_opt = None;
        }
        self.client
            .create_container(Some(options()), body)
            .await
            .map(|_| ())
    }

    async fn create_node(&self, spec: &LabSpec, node: &NodeSpec) -> Result<(), Error> {
        let lab = spec.lab.as_str();
        let container = names::container(lab, &node.name);
        let image = node.image.as_deref().unwrap_or(&spec.image);
        let mut labels = HashMap::from([
            (names::LABEL_LAB.to_string(), lab.to_string()),
            (names::LABEL_NODE.to_string(), node.name.clone()),
            (names::LABEL_TOPOLOGY.to_string(), spec.topology.clone()),
            (
                names::LABEL_TOPOLOGY_HASH.to_string(),
                spec.topology_hash.clone(),
            ),
            (names::LABEL_MANAGED.to_string(), "true".to_string()),
            (names::LABEL_OWNER.to_string(), spec.owner.clone()),
            (names::LABEL_NODES.to_string(), spec.node_count.to_string()),
        ]);
        if let Some(t) = spec.expires_at {
            labels.insert(names::LABEL_EXPIRES.to_string(), t.to_string());
        }
        let positive = |v: u64| (v > 0).then(|| i64::try_from(v).unwrap_or(i64::MAX));
        let host_config = HostConfig {
            network_mode: Some("none".into()),
            init: Some(true),
            // Root in the lab and nothing more: every capability dropped, the few nodes need
            // added back; no gaining privileges through setuid files; the engine's default
            // seccomp and AppArmor profiles (never `unconfined`).
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(
                crate::spec::NODE_CAPABILITIES
                    .iter()
                    .map(|(c, _)| c.to_string())
                    .collect(),
            ),
            security_opt: Some(vec!["no-new-privileges".into()]),
            privileged: Some(false),
            tmpfs: Some(
                v6lab_core::policy::SCRATCH_DIRS
                    .iter()
                    .map(|path| {
                        let mode = if *path == "/root" { "0700" } else { "1777" };
                        let size = crate::spec::SCRATCH_SIZE;
                        (
                            path.to_string(),
                            format!("rw,nosuid,nodev,size={size},mode={mode}"),
                        )
                    })
                    .collect(),
            ),
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("fsize".into()),
                soft: Some(crate::spec::FILE_SIZE_MAX as i64),
                hard: Some(crate::spec::FILE_SIZE_MAX as i64),
            }]),
            // Nodes never see the host's resolver; the plan writes each node's resolv.conf.
            dns: Some(vec!["::1".into()]),
            dns_search: Some(vec![".".into()]),
            sysctls: Some(
                // Any port may be bound inside the node's own namespace, so servers below 1024
                // need no NET_BIND_SERVICE (Docker's default since 20.10, stated here).
                [("net.ipv4.ip_unprivileged_port_start", "0")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .chain(node.sysctls.iter().map(|(k, v)| (k.clone(), v.clone())))
                    .collect(),
            ),
            memory: positive(node.limits.memory_bytes),
            pids_limit: positive(u64::from(node.limits.pids)),
            nano_cpus: positive(node.limits.nano_cpus),
            devices: node.tun.then(|| {
                vec![DeviceMapping {
                    path_on_host: Some("/dev/net/tun".into()),
                    path_in_container: Some("/dev/net/tun".into()),
                    cgroup_permissions: Some("rwm".into()),
                }]
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            hostname: Some(node.name.clone()),
            // The entrypoint, not the command: an image's own ENTRYPOINT must not wrap it.
            entrypoint: Some(vec!["sleep".into(), "infinity".into()]),
            cmd: None,
            labels: Some(labels),
            host_config: Some(host_config),
            ..Default::default()
        };
        if let Err(e) = self.create_with_quota(&container, body).await {
            return Err(match status(&e) {
                Some(409) => Error::LabExists {
                    lab: lab.to_string(),
                },
                Some(404) => Error::ImageMissing {
                    image: image.to_string(),
                },
                _ => docker_err(format!("creating {container}"))(e),
            });
        }
        if !node.files.is_empty() {
            let tar = tar_files(node).map_err(|source| Error::Io {
                context: format!("packing files of {container}"),
                source,
            })?;
            let options = UploadToContainerOptionsBuilder::default().path("/").build();
            self.client
                .upload_to_container(&container, Some(options), bollard::body_full(tar.into()))
                .await
                .map_err(docker_err(format!("copying files into {container}")))?;
        }
        Ok(())
    }

    async fn pid(&self, lab: &str, node: &str) -> Result<u32, Error> {
        let container = names::container(lab, node);
        let info = self
            .client
            .inspect_container(&container, None)
            .await
            .map_err(docker_err(format!("inspecting {container}")))?;
        match info.state.and_then(|s| s.pid) {
            Some(pid) if pid > 0 => Ok(pid as u32),
            _ => Err(Error::NodeNotRunning {
                lab: lab.to_string(),
                node: node.to_string(),
            }),
        }
    }

    async fn list_containers(
        &self,
        filters: HashMap<&str, Vec<String>>,
    ) -> Result<Vec<ContainerSummary>, Error> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.client
            .list_containers(Some(options))
            .await
            .map_err(docker_err("listing containers"))
    }

    /// Containers of `lab` (by label, or by name prefix when they carry no lab label); every
    /// container v6lab made when `lab` is `None`.
    async fn lab_containers(&self, lab: Option<&str>) -> Result<Vec<ContainerSummary>, Error> {
        let (by_label, prefix) = match lab {
            Some(lab) => (
                format!("{}={lab}", names::LABEL_LAB),
                names::container_prefix(lab),
            ),
            None => (
                format!("{}=true", names::LABEL_MANAGED),
                names::CONTAINER_PREFIX.to_string(),
            ),
        };
        let mut found = self
            .list_containers(HashMap::from([("label", vec![by_label])]))
            .await?;
        // Docker's name filter is a substring match: check the prefix here. A labelled
        // container must carry this lab's label too.
        let by_name = self
            .list_containers(HashMap::from([("name", vec![prefix.clone()])]))
            .await?;
        for c in by_name {
            let ours = container_name(&c).is_some_and(|n| n.starts_with(&prefix))
                && match lab {
                    Some(lab) => label(&c, names::LABEL_LAB).is_none_or(|l| l == lab),
                    None => true,
                };
            if ours && !found.iter().any(|f| f.id == c.id) {
                found.push(c);
            }
        }
        Ok(found)
    }

    async fn remove_containers(&self, containers: Vec<ContainerSummary>) -> Result<usize, Error> {
        let removed: Vec<bool> = stream::iter(containers)
            .map(|c| async move {
                let id = c.id.clone().unwrap_or_default();
                let options = RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .v(true)
                    .build();
                match self.client.remove_container(&id, Some(options)).await {
                    Ok(()) => Ok(true),
                    // Already gone, or a concurrent removal is under way.
                    Err(e) if matches!(status(&e), Some(404 | 409)) => Ok(false),
                    Err(e) => Err(docker_err(format!(
                        "removing {}",
                        container_name(&c).unwrap_or(&id)
                    ))(e)),
                }
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        Ok(removed.into_iter().filter(|r| *r).count())
    }

    /// Host links of `lab` (or every v6lab link): name made by [`names`] with the lab's hash,
    /// and an alias that is absent or names the lab (guards against hash collisions).
    fn lab_links(links: Vec<HostLink>, lab: Option<&str>) -> Vec<(HostLink, LinkName)> {
        let hash = lab.map(names::lab_hash);
        links
            .into_iter()
            .filter_map(|l| {
                let parsed = names::parse_link(&l.name)?;
                if let (Some(lab), Some(hash)) = (lab, &hash) {
                    let alias_ok = l.alias.as_deref().is_none_or(|a| {
                        a.strip_prefix(lab)
                            .is_some_and(|rest| rest.starts_with('/'))
                    });
                    if parsed.hash() != hash || !alias_ok {
                        return None;
                    }
                }
                Some((l, parsed))
            })
            .collect()
    }

    async fn remove_links(&self, nl: &Netlink, lab: Option<&str>) -> Result<(usize, usize), Error> {
        let links = nl
            .links()
            .await
            .map_err(netlink_err("listing host links"))?;
        let mut links = Self::lab_links(links, lab);
        // Veths before bridges (either order works; this one never leaves a port dangling).
        links.sort_by_key(|(_, p)| matches!(p, LinkName::Bridge { .. }));
        let (mut bridges, mut veths) = (0, 0);
        for (link, parsed) in links {
            let deleted = nl
                .delete(&link)
                .await
                .map_err(netlink_err(format!("deleting link {}", link.name)))?;
            match (deleted, parsed) {
                (true, LinkName::Bridge { .. }) => bridges += 1,
                (true, LinkName::HostVeth { .. }) => veths += 1,
                _ => {}
            }
        }
        Ok((bridges, veths))
    }

    /// Labs that have host links (bridges, veths), by the lab name in the links' aliases. A lab
    /// with links and no container is what a killed `up` or `down` leaves behind.
    pub async fn labs_with_links(&self) -> Result<BTreeSet<String>, Error> {
        let nl = Netlink::connect().map_err(netlink_err("netlink"))?;
        let links = nl
            .links()
            .await
            .map_err(netlink_err("listing host links"))?;
        Ok(links
            .into_iter()
            .filter(|l| names::parse_link(&l.name).is_some())
            .filter_map(|l| l.alias.and_then(|a| a.split('/').next().map(str::to_owned)))
            .filter(|lab| names::check_lab(lab).is_ok())
            .collect())
    }

    /// Removes every container, bridge and veth of `lab`, whatever state it is in. Idempotent:
    /// a lab that does not exist gives an empty [`Removed`].
    pub async fn down(&self, lab: &str) -> Result<Removed, Error> {
        names::check_lab(lab).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        self.down_matching(Some(lab)).await
    }

    /// Removes everything v6lab made on this host (label `dev.v6lab.managed`, names `v6lab-*`,
    /// links `v6l<hash>...`) and the shared forwarding rule; needs no topology.
    pub async fn down_all(&self) -> Result<Removed, Error> {
        let mut removed = self.down_matching(None).await?;
        removed.firewall_rules = firewall::remove().await;
        Ok(removed)
    }

    async fn down_matching(&self, lab: Option<&str>) -> Result<Removed, Error> {
        // A killed `up` can leave a container create in flight in the engine, which lands just
        // after a first listing (seen 30-60 ms after `down` started): list again until two
        // listings, a moment apart, find nothing.
        let mut containers = 0;
        let mut empty = 0;
        // Bounded: a concurrent `up` of the same lab cannot keep this going.
        for _ in 0..40 {
            if empty == 2 {
                break;
            }
            let found = self.lab_containers(lab).await?;
            if found.is_empty() {
                empty += 1;
                if empty < 2 {
                    tokio::time::sleep(DOWN_SETTLE).await;
                }
            } else {
                empty = 0;
                containers += self.remove_containers(found).await?;
            }
        }
        let nl = Netlink::connect().map_err(netlink_err("netlink"))?;
        let (bridges, veths) = self.remove_links(&nl, lab).await?;
        Ok(Removed {
            containers,
            bridges,
            veths,
            firewall_rules: 0,
        })
    }

    /// Every lab on this engine, by label, sorted by name.
    pub async fn list(&self) -> Result<Vec<LabSummary>, Error> {
        let containers = self
            .list_containers(HashMap::from([(
                "label",
                vec![format!("{}=true", names::LABEL_MANAGED)],
            )]))
            .await?;
        let mut labs: BTreeMap<String, LabSummary> = BTreeMap::new();
        for c in &containers {
            let Some(lab) = label(c, names::LABEL_LAB) else {
                continue;
            };
            let entry = labs.entry(lab.to_string()).or_insert_with(|| LabSummary {
                lab: lab.to_string(),
                topology: label(c, names::LABEL_TOPOLOGY)
                    .unwrap_or_default()
                    .to_string(),
                topology_hash: label(c, names::LABEL_TOPOLOGY_HASH)
                    .unwrap_or_default()
                    .to_string(),
                nodes: 0,
                running: 0,
                expires_at: label(c, names::LABEL_EXPIRES).and_then(|e| e.parse().ok()),
                owner: label(c, names::LABEL_OWNER).unwrap_or_default().to_string(),
                expected_nodes: label(c, names::LABEL_NODES)
                    .and_then(|e| e.parse().ok())
                    .unwrap_or(0),
            });
            entry.nodes += 1;
            if c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING) {
                entry.running += 1;
            }
        }
        Ok(labs.into_values().collect())
    }

    /// One lab in detail: per node its container state and interfaces (with addresses and
    /// their DAD state), per segment its bridge.
    pub async fn inspect(&self, lab: &str) -> Result<LabStatus, Error> {
        let containers = self.lab_containers(Some(lab)).await?;
        let Some(first) = containers.first() else {
            return Err(Error::LabNotFound {
                lab: lab.to_string(),
            });
        };
        let mut status = LabStatus {
            lab: lab.to_string(),
            topology: label(first, names::LABEL_TOPOLOGY)
                .unwrap_or_default()
                .to_string(),
            topology_hash: label(first, names::LABEL_TOPOLOGY_HASH)
                .unwrap_or_default()
                .to_string(),
            expires_at: label(first, names::LABEL_EXPIRES).and_then(|e| e.parse().ok()),
            nodes: Vec::new(),
            segments: Vec::new(),
        };
        let prefix = names::container_prefix(lab);
        for c in &containers {
            let container = container_name(c).unwrap_or_default().to_string();
            let node = label(c, names::LABEL_NODE)
                .map(str::to_string)
                .unwrap_or_else(|| {
                    container
                        .strip_prefix(&prefix)
                        .unwrap_or(&container)
                        .to_string()
                });
            let info = self
                .client
                .inspect_container(c.id.as_deref().unwrap_or(&container), None)
                .await
                .map_err(docker_err(format!("inspecting {container}")))?;
            let state = info.state.unwrap_or_default();
            let pid = state.pid.filter(|p| *p > 0).map(|p| p as u32);
            let interfaces = match pid {
                Some(pid) if state.running == Some(true) => netlink::netns_interfaces(pid)
                    .await
                    .map_err(netlink_err(format!("reading interfaces of {container}")))?
                    .into_iter()
                    .filter(|i| i.name != "lo")
                    .collect(),
                _ => Vec::new(),
            };
            status.nodes.push(NodeStatus {
                node,
                container,
                image: c.image.clone().unwrap_or_default(),
                state: state.status.map(|s| s.to_string()).unwrap_or_default(),
                pid,
                interfaces,
            });
        }
        status.nodes.sort_by(|a, b| a.node.cmp(&b.node));
        let nl = Netlink::connect().map_err(netlink_err("netlink"))?;
        let links = nl
            .links()
            .await
            .map_err(netlink_err("listing host links"))?;
        let links = Self::lab_links(links, Some(lab));
        for (link, parsed) in &links {
            if let LinkName::Bridge { .. } = parsed {
                status.segments.push(SegmentStatus {
                    segment: link
                        .alias
                        .as_deref()
                        .and_then(|a| a.strip_prefix(lab)?.strip_prefix('/'))
                        .map(str::to_string),
                    bridge: link.name.clone(),
                    ports: links
                        .iter()
                        .filter(|(l, _)| l.controller == Some(link.index))
                        .count(),
                });
            }
        }
        status.segments.sort_by(|a, b| a.bridge.cmp(&b.bridge));
        Ok(status)
    }
}

impl Runtime for Docker {
    fn up<'a>(
        &'a self,
        spec: &'a LabSpec,
        observer: &'a dyn Observer,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.up_cancellable(spec, observer, cancel))
    }

    fn down<'a>(&'a self, lab: &'a str) -> BoxFuture<'a, Result<Removed, Error>> {
        Box::pin(Docker::down(self, lab))
    }

    fn down_all(&self) -> BoxFuture<'_, Result<Removed, Error>> {
        Box::pin(Docker::down_all(self))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<LabSummary>, Error>> {
        Box::pin(Docker::list(self))
    }

    fn inspect<'a>(&'a self, lab: &'a str) -> BoxFuture<'a, Result<LabStatus, Error>> {
        Box::pin(Docker::inspect(self, lab))
    }

    fn stray_labs(&self) -> BoxFuture<'_, Result<BTreeSet<String>, Error>> {
        Box::pin(self.labs_with_links())
    }

    fn exec<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        limits: ExecLimits,
    ) -> BoxFuture<'a, Result<ExecOutput, Error>> {
        Box::pin(Docker::exec(self, lab, node, argv, limits))
    }

    fn exec_interactive<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        term: Terminal<'a>,
    ) -> BoxFuture<'a, Result<i64, Error>> {
        Box::pin(Docker::exec_interactive(
            self,
            lab,
            node,
            argv,
            term.stdin,
            term.stdout,
            term.resize,
        ))
    }

    fn exec_streamed<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        pipes: Pipes<'a>,
        deadline: Option<Duration>,
    ) -> BoxFuture<'a, Result<Streamed, Error>> {
        Box::pin(Docker::exec_streamed(
            self, lab, node, argv, pipes, deadline,
        ))
    }

    fn ensure_image<'a>(
        &'a self,
        recipe: &'a Recipe,
        force: bool,
        progress: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<Ensured, ImageError>> {
        Box::pin(images::ensure(&self.client, recipe, force, progress))
    }

    fn images(&self) -> BoxFuture<'_, Result<ImageList, ImageError>> {
        Box::pin(images::list(&self.client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_driver_without_quotas_is_recognised() {
        let refused = |status_code, message: &str| BollardError::DockerResponseServerError {
            status_code,
            message: message.into(),
        };
        assert!(refuses_layer_quota(&refused(
            500,
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
        )));
        assert!(!refuses_layer_quota(&refused(
            500,
            "no space left on device"
        )));
        assert!(!refuses_layer_quota(&refused(
            409,
            "Conflict. The container name is already in use"
        )));
    }
}
