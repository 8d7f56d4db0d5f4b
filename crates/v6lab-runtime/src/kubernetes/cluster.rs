//! The Kubernetes runtime: realizes a [`LabSpec`] in one namespace of a cluster, through the API
//! server only (no CNI plugin, nothing on the cluster's nodes).
//!
//! `up` creates the lab's `Lab` object first; every other object (ConfigMaps, NetworkPolicies,
//! switch and node pods) is owned by it, so deleting the Lab removes them all (the cluster's
//! garbage collector). Once every pod runs, each switch pod's bridge and spokes and each node's
//! interfaces are made by one set-up command per pod (rendered by [`render`]), then the node's
//! start commands and readiness probes run as on Docker ([`crate::readiness`]). The Lab's status
//! follows: `Creating`, then `Ready` or `Failed` with a condition.

use super::crd::{self, Lab, LabPhase, LabResourceSpec};
use super::exec::{self, ExecError, describe};
use super::names;
use super::render::{self, Network, SegmentPlan, Step};
use crate::readiness;
use crate::runtime::{
    BoxFuture, Ensured, Error, Event, EventKind, ExecLimits, ExecOutput, IfAddress, ImageError,
    ImageList, LabStatus, LabSummary, NetnsInterface, NodeStatus, Observer, Pipes, Recipe, Removed,
    Runtime, SegmentStatus, Streamed, Terminal,
};
use crate::spec::LabSpec;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Environment variable asking for each lab's pods to be spread over the cluster's nodes
/// (`1`): segments then cross nodes (what the multi-node tests prove works).
pub const SPREAD_VAR: &str = "V6LAB_SPREAD";
/// Namespace labs go to unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "v6lab-labs";
/// How long pods may take to be scheduled and run (image already on the node).
pub const DEFAULT_POD_TIMEOUT: Duration = Duration::from_secs(180);
/// How long `down` waits for a lab's objects to be gone.
const DOWN_TIMEOUT: Duration = Duration::from_secs(120);
/// How often pods are looked at while waiting.
const POLL: Duration = Duration::from_millis(250);
/// Deadline of one pod's set-up command.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Annotations of a Lab object (what `ls` shows of it; labels allow too few characters).
pub const ANNOTATION_TOPOLOGY: &str = "v6lab.dev/topology";
pub const ANNOTATION_TOPOLOGY_HASH: &str = "v6lab.dev/topology-hash";
pub const ANNOTATION_EXPIRES: &str = "v6lab.dev/expires";
pub const ANNOTATION_NODES: &str = "v6lab.dev/nodes";
/// Set on Labs a v6lab command or controller makes itself; a Lab without it was applied by
/// someone else (`kubectl apply`) and is realized by the Lab operator ([`super::operator`]).
pub const ANNOTATION_MADE_BY: &str = "v6lab.dev/made-by";
/// The owner of Labs applied with kubectl (their `spec.owner` default).
pub const OWNER_KUBECTL: &str = "kubectl";

fn api_err(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let context = format!("Kubernetes API: {}", context.into());
    move |e| Error::Engine {
        context,
        source: describe(&e).into(),
    }
}

fn api_status(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

fn selector(lab: Option<&str>) -> ListParams {
    match lab {
        Some(lab) => ListParams::default().labels(&format!(
            "{}={}",
            names::LABEL_LAB,
            names::label_value(lab)
        )),
        None => ListParams::default().labels(names::LABEL_LAB),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 of unix seconds.
pub fn rfc3339(secs: u64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Whether an API server of this version passes EOF on a command's stdin (exec protocol v5, on
/// by default from Kubernetes 1.30). `minor` may carry a `+` (`"30+"`).
pub fn closes_stdin(major: &str, minor: &str) -> bool {
    let num = |s: &str| -> u32 { s.trim_end_matches('+').parse().unwrap_or(0) };
    (num(major), num(minor)) >= (1, 30)
}

/// Time left, to the minute, for people: `2h15m`, `7m`, `<1m`.
pub fn left_text(secs: u64) -> String {
    let (h, m) = (secs / 3600, secs / 60 % 60);
    match (h, m) {
        (0, 0) => "<1m".into(),
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h{m}m"),
    }
}

/// When a Lab expires (unix seconds): its annotation, else its creation plus its lifetime.
pub fn expires_at(lab: &Lab) -> Option<u64> {
    let annotated = lab
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_EXPIRES))
        .and_then(|e| e.parse().ok());
    annotated.or_else(|| {
        let created = lab.metadata.creation_timestamp.as_ref()?.0.as_second();
        Some(u64::try_from(created).ok()? + lab.spec.lifetime_seconds?)
    })
}

fn annotation<'a>(lab: &'a Lab, key: &str) -> Option<&'a str> {
    lab.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// A pod's state as a word (`pending`, `running`, `waiting: ErrImageNeverPull`, `failed`, ...).
pub fn pod_state(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .next();
    let phase = status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into())
        .to_lowercase();
    match (phase.as_str(), waiting) {
        ("pending", Some(w)) => format!("waiting: {w}"),
        ("failed", _) => format!(
            "failed: {}",
            status
                .and_then(|s| s.reason.clone().or(s.message.clone()))
                .unwrap_or_default()
        ),
        _ => phase,
    }
}

/// A label of a pod, if it has it.
fn pod_label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// Whether a pod runs its container and has an address.
fn running(pod: &Pod) -> Option<IpAddr> {
    let s = pod.status.as_ref()?;
    let ready = s
        .container_statuses
        .as_ref()?
        .iter()
        .all(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()));
    if s.phase.as_deref() != Some("Running") || !ready {
        return None;
    }
    s.pod_ip.as_deref()?.parse().ok()
}

/// Waiting reasons that never resolve by themselves.
fn stuck(state: &str) -> bool {
    state.starts_with("failed")
        || [
            "ErrImageNeverPull",
            "InvalidImageName",
            "CreateContainerConfigError",
            "CreateContainerError",
            "RunContainerError",
            "CrashLoopBackOff",
        ]
        .iter()
        .any(|r| state.ends_with(r))
}

/// Single-quotes a word for `sh`.
fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// One shell script running `steps` in order: a failing step stops it, unless it may fail.
pub fn script(steps: &[Step]) -> String {
    let mut out = String::from("set -e\n");
    for s in steps {
        let line: Vec<String> = s.argv.iter().map(|w| quote(w)).collect();
        out.push_str(&line.join(" "));
        if s.may_fail {
            out.push_str(" 2>/dev/null || true");
        }
        out.push('\n');
    }
    out
}

/// Interfaces from `ip -j addr show` (JSON), `lo` left out. Output a student may have forged:
/// anything unreadable is skipped.
pub fn parse_ip_json(text: &str) -> Vec<NetnsInterface> {
    let Ok(serde_json::Value::Array(links)) = serde_json::from_str::<serde_json::Value>(text)
    else {
        return Vec::new();
    };
    links
        .iter()
        .filter_map(|l| {
            let name = l.get("ifname")?.as_str()?.to_string();
            if name == "lo" {
                return None;
            }
            let flags: Vec<&str> = l
                .get("flags")
                .and_then(|f| f.as_array())
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
                .collect();
            let flag =
                |k: &str, a: &serde_json::Value| a.get(k).and_then(|v| v.as_bool()) == Some(true);
            let addresses = l
                .get("addr_info")
                .and_then(|a| a.as_array())
                .into_iter()
                .flatten()
                .filter_map(|a| {
                    Some(IfAddress {
                        address: a.get("local")?.as_str()?.parse().ok()?,
                        prefix_len: u8::try_from(a.get("prefixlen")?.as_u64()?).ok()?,
                        scope: a.get("scope").and_then(|s| s.as_str()).unwrap_or("").into(),
                        tentative: flag("tentative", a),
                        dad_failed: flag("dadfailed", a),
                        deprecated: flag("deprecated", a),
                        dynamic: flag("dynamic", a),
                    })
                })
                .collect();
            Some(NetnsInterface {
                index: u32::try_from(l.get("ifindex")?.as_u64()?).ok()?,
                name: name.split('@').next().unwrap_or(&name).to_string(),
                mac: l
                    .get("address")
                    .and_then(|m| m.as_str())
                    .map(str::to_string),
                mtu: l
                    .get("mtu")
                    .and_then(|m| m.as_u64())
                    .and_then(|m| u32::try_from(m).ok()),
                up: flags.contains(&"UP"),
                lower_up: flags.contains(&"LOWER_UP"),
                addresses,
            })
        })
        .collect()
}

/// The Kubernetes runtime.
#[derive(Clone)]
pub struct Kubernetes {
    client: Client,
    namespace: String,
    probe_timeout: Duration,
    start_timeout: Duration,
    pod_timeout: Duration,
    concurrency: usize,
    /// Spread each lab's pods over the cluster's nodes ([`SPREAD_VAR`]).
    spread: bool,
    /// The API server passes EOF on a command's stdin (exec protocol v5, Kubernetes 1.30+).
    stdin_eof: bool,
    /// The pod network, learnt from the first pod that runs.
    network: std::sync::Arc<tokio::sync::OnceCell<Network>>,
    /// The namespace's Labs and lab pods, kept by watches (started at first use).
    cache: std::sync::Arc<tokio::sync::OnceCell<Cache>>,
}

/// What the watches keep of the namespace: reading it costs the API server nothing, where a
/// list per controller pass (every second) and per waiting lab (every 250 ms) would cost it a
/// full read each.
#[derive(Clone)]
pub struct Cache {
    pub labs: reflector::Store<Lab>,
    pub pods: reflector::Store<Pod>,
}

/// How long the watches may take to read the namespace the first time.
const CACHE_TIMEOUT: Duration = Duration::from_secs(60);

impl std::fmt::Debug for Kubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubernetes")
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Kubernetes {
    /// Connects to the cluster of the usual kubeconfig (`KUBECONFIG`, `~/.kube/config`) or, in a
    /// pod, the cluster it runs in; labs go to `namespace`.
    pub async fn connect(namespace: &str) -> Result<Self, Error> {
        let unreachable = |e: kube::Error| Error::Connect {
            engine: "Kubernetes API server".into(),
            source: describe(&e).into(),
        };
        let client = Client::try_default().await.map_err(unreachable)?;
        let version = client.apiserver_version().await.map_err(unreachable)?;
        let mut k = Self::with_client(client, namespace);
        k.stdin_eof = closes_stdin(&version.major, &version.minor);
        Ok(k)
    }

    pub fn with_client(client: Client, namespace: &str) -> Self {
        Kubernetes {
            client,
            namespace: namespace.to_string(),
            probe_timeout: crate::docker::DEFAULT_PROBE_TIMEOUT,
            start_timeout: crate::docker::DEFAULT_START_TIMEOUT,
            pod_timeout: DEFAULT_POD_TIMEOUT,
            concurrency: crate::docker::DEFAULT_CONCURRENCY,
            spread: std::env::var(SPREAD_VAR).is_ok_and(|v| v.trim() == "1"),
            stdin_eof: false,
            network: Default::default(),
            cache: Default::default(),
        }
    }

    /// The watched Labs and lab pods of the namespace, once both were read in full.
    pub async fn cache(&self) -> Result<&Cache, Error> {
        self.cache
            .get_or_try_init(|| async {
                fn keep<K>(api: Api<K>, config: watcher::Config) -> reflector::Store<K>
                where
                    K: kube::Resource<DynamicType = ()>
                        + Clone
                        + std::fmt::Debug
                        + serde::de::DeserializeOwned
                        + Send
                        + Sync
                        + 'static,
                {
                    let (store, writer) = reflector::store();
                    let stream = reflector::reflector(writer, watcher(api, config))
                        .default_backoff()
                        .touched_objects()
                        .for_each(|_| futures::future::ready(()));
                    tokio::spawn(stream);
                    store
                }
                let cache = Cache {
                    labs: keep(self.labs(), watcher::Config::default()),
                    pods: keep(
                        self.pods(),
                        watcher::Config::default().labels(names::LABEL_LAB),
                    ),
                };
                let ready = async {
                    cache.labs.wait_until_ready().await.ok();
                    cache.pods.wait_until_ready().await.ok();
                };
                tokio::time::timeout(CACHE_TIMEOUT, ready)
                    .await
                    .map_err(|_| Error::Engine {
                        context: format!("Kubernetes API: watching namespace {}", self.namespace),
                        source: format!(
                            "Labs and pods not read within {}s (does v6lab have `watch` on them?)",
                            CACHE_TIMEOUT.as_secs()
                        )
                        .into(),
                    })?;
                Ok(cache)
            })
            .await
    }

    /// The lab pods of `lab` (or of every lab) as the watch has them.
    async fn cached_pods(&self, lab: Option<&str>) -> Result<Vec<std::sync::Arc<Pod>>, Error> {
        let want = lab.map(names::label_value);
        Ok(self.cache().await?.pods.state_filter(|p| {
            let of = pod_label(p, names::LABEL_LAB);
            match &want {
                Some(w) => of == Some(w.as_str()),
                None => of.is_some(),
            }
        }))
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn with_probe_timeout(mut self, t: Duration) -> Self {
        self.probe_timeout = t;
        self
    }

    pub fn with_pod_timeout(mut self, t: Duration) -> Self {
        self.pod_timeout = t;
        self
    }

    fn labs(&self) -> Api<Lab> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub(crate) fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn config_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn policies(&self) -> Api<NetworkPolicy> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The Lab object of `lab`, if any.
    pub async fn lab_object(&self, lab: &str) -> Result<Option<Lab>, Error> {
        self.labs()
            .get_opt(lab)
            .await
            .map_err(api_err(format!("reading Lab {lab}")))
    }

    /// Brings a lab up: its Lab object, then everything it owns.
    pub async fn up(
        &self,
        spec: &LabSpec,
        observer: &dyn Observer,
        cancel: &CancellationToken,
    ) -> Result<(), Error> {
        crate::names::check_lab(&spec.lab).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        let topology = spec
            .nodes
            .iter()
            .flat_map(|n| &n.files)
            .find(|f| f.path == crate::from_plan::TOPOLOGY_FILE)
            .map(|f| f.content.clone())
            .unwrap_or_default();
        let mut annotations = BTreeMap::from([
            (ANNOTATION_TOPOLOGY.to_string(), spec.topology.clone()),
            (
                ANNOTATION_TOPOLOGY_HASH.to_string(),
                spec.topology_hash.clone(),
            ),
            (ANNOTATION_NODES.to_string(), spec.node_count.to_string()),
            (ANNOTATION_MADE_BY.to_string(), "v6lab".to_string()),
        ]);
        if let Some(e) = spec.expires_at {
            annotations.insert(ANNOTATION_EXPIRES.to_string(), e.to_string());
        }
        let mut object = Lab::new(
            &spec.lab,
            LabResourceSpec {
                topology,
                lifetime_seconds: spec.expires_at.map(|e| e.saturating_sub(now())),
                owner: spec.owner.clone(),
                complete: false,
            },
        );
        object.metadata.annotations = Some(annotations);
        object.metadata.labels = Some(BTreeMap::from([(
            names::LABEL_LAB.to_string(),
            names::label_value(&spec.lab),
        )]));
        let created = match self.labs().create(&PostParams::default(), &object).await {
            Ok(c) => c,
            Err(e) if api_status(&e) == Some(409) => {
                return Err(Error::LabExists {
                    lab: spec.lab.clone(),
                });
            }
            Err(e) => return Err(api_err(format!("creating Lab {}", spec.lab))(e)),
        };
        self.realize(&created, spec, observer, cancel).await
    }

    /// Sets the time a Lab has left, if it changed.
    pub async fn set_left(&self, lab: &Lab, now: u64) -> Result<(), Error> {
        let Some(e) = expires_at(lab) else {
            return Ok(());
        };
        let left = left_text(e.saturating_sub(now));
        if lab.status.as_ref().and_then(|s| s.left.as_deref()) == Some(left.as_str()) {
            return Ok(());
        }
        let name = lab.metadata.name.clone().unwrap_or_default();
        let patch = serde_json::json!({ "status": { "left": left } });
        self.labs()
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_err(format!("updating the status of Lab {name}")))?;
        Ok(())
    }

    async fn set_status(&self, lab: &str, status: crd::LabStatus) -> Result<(), Error> {
        let patch = serde_json::json!({ "status": status });
        self.labs()
            .patch_status(lab, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_err(format!("updating the status of Lab {lab}")))?;
        Ok(())
    }

    /// Makes everything `object` owns from `spec`, recording progress in its status; on failure
    /// the status says why (phase `Failed`) and what was made stays for [`Kubernetes::down`].
    pub async fn realize(
        &self,
        object: &Lab,
        spec: &LabSpec,
        observer: &dyn Observer,
        cancel: &CancellationToken,
    ) -> Result<(), Error> {
        let lab = spec.lab.as_str();
        let expires = spec.expires_at.map(rfc3339);
        let status = |phase, ready: usize, conditions| crd::LabStatus {
            phase: Some(phase),
            ready: Some(format!("{ready}/{}", spec.nodes.len())),
            nodes: Vec::new(),
            segments: Vec::new(),
            expires: expires.clone(),
            left: spec.expires_at.map(|e| left_text(e.saturating_sub(now()))),
            conditions,
        };
        self.set_status(lab, status(LabPhase::Creating, 0, Vec::new()))
            .await?;
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(Error::Cancelled { lab: lab.to_string() }),
            r = self.make(object, spec, observer) => r,
        };
        match result {
            Ok(segments) => {
                let mut s = status(
                    LabPhase::Ready,
                    spec.nodes.len(),
                    vec![condition(
                        "Ready",
                        "True",
                        "NodesReady",
                        "every node is ready",
                    )],
                );
                let reading: Vec<_> = spec
                    .nodes
                    .iter()
                    .map(|n| async move {
                        crd::NodeStatus {
                            name: n.name.clone(),
                            pod: names::node_pod(lab, &n.name),
                            addresses: self.addresses(lab, &n.name).await,
                        }
                    })
                    .collect();
                s.nodes = stream::iter(reading)
                    .buffered(self.concurrency)
                    .collect()
                    .await;
                s.segments = segments
                    .iter()
                    .map(|g| crd::SegmentStatus {
                        name: g.name.clone(),
                        switch: g.switch.clone(),
                        vni: g.vni,
                    })
                    .collect();
                self.set_status(lab, s).await
            }
            Err(e) => {
                let message = e.to_string();
                let _ = self
                    .set_status(
                        lab,
                        status(
                            LabPhase::Failed,
                            0,
                            vec![condition("Ready", "False", "CreationFailed", &message)],
                        ),
                    )
                    .await;
                Err(e)
            }
        }
    }

    async fn make(
        &self,
        object: &Lab,
        spec: &LabSpec,
        observer: &dyn Observer,
    ) -> Result<Vec<SegmentPlan>, Error> {
        let t0 = Instant::now();
        let lab = spec.lab.as_str();
        let emit = |kind: EventKind| {
            observer.event(&Event {
                lab: lab.to_string(),
                kind,
                elapsed: t0.elapsed(),
            })
        };
        let owner = OwnerReference {
            api_version: Lab::api_version(&()).to_string(),
            kind: Lab::kind(&()).to_string(),
            name: lab.to_string(),
            uid: object.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: None,
        };
        // The objects do not depend on the pod network; the segments' MTUs do (below).
        let provisional = Network::configured();
        let mut rendered = render::render(spec, &self.namespace, &owner, &provisional)
            .map_err(|e| Error::InvalidSpec(e.to_string()))?;
        if self.spread {
            render::spread(&mut rendered.pods, lab);
        }
        let pp = PostParams::default();
        for cm in &rendered.config_maps {
            self.config_maps()
                .create(&pp, cm)
                .await
                .map_err(api_err(format!("creating the files of lab {lab}")))?;
        }
        for np in &rendered.network_policies {
            self.policies()
                .create(&pp, np)
                .await
                .map_err(api_err(format!(
                    "creating the network policies of lab {lab}"
                )))?;
        }
        let creating: Vec<_> = rendered
            .pods
            .iter()
            .map(|p| {
                let emit = &emit;
                async move {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    self.pods()
                        .create(&PostParams::default(), p)
                        .await
                        .map_err(api_err(format!("creating pod {name}")))?;
                    if let Some(node) = spec
                        .nodes
                        .iter()
                        .find(|n| names::node_pod(lab, &n.name) == name)
                    {
                        emit(EventKind::NodeCreated {
                            node: node.name.clone(),
                        });
                    }
                    Ok::<_, Error>(())
                }
            })
            .collect();
        stream::iter(creating)
            .buffer_unordered(self.concurrency)
            .try_collect::<()>()
            .await?;

        let ips = self
            .await_pods(lab, rendered.pods.len(), spec, &emit)
            .await?;
        let any_pod = rendered
            .pods
            .first()
            .and_then(|p| p.metadata.name.clone())
            .unwrap_or_default();
        let net = self.network(&any_pod).await?;
        let segments =
            render::segments(spec, &net).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        let ip_of = |pod: &str| {
            ips.get(pod)
                .copied()
                .ok_or_else(|| Error::InvalidSpec(format!("pod {pod} has no address")))
        };

        let switching: Vec<_> = segments
            .iter()
            .map(|seg| {
                let emit = &emit;
                async move {
                    let member_ips = seg
                        .members
                        .iter()
                        .map(|m| ip_of(&m.pod))
                        .collect::<Result<Vec<_>, _>>()?;
                    let steps = render::switch_setup(seg, &member_ips)
                        .map_err(|e| Error::InvalidSpec(e.to_string()))?;
                    self.setup(lab, &seg.switch, &format!("segment {}", seg.name), &steps)
                        .await?;
                    emit(EventKind::SegmentCreated {
                        segment: seg.name.clone(),
                    });
                    Ok::<_, Error>(())
                }
            })
            .collect();
        stream::iter(switching)
            .buffer_unordered(self.concurrency)
            .try_collect::<()>()
            .await?;

        let switch_ips: BTreeMap<String, IpAddr> = segments
            .iter()
            .map(|s| Ok((s.name.clone(), ip_of(&s.switch)?)))
            .collect::<Result<_, Error>>()?;
        let wiring: Vec<_> = spec
            .nodes
            .iter()
            .map(|node| {
                let (emit, segments, switch_ips) = (&emit, &segments, &switch_ips);
                async move {
                    let steps = render::node_setup(node, segments, switch_ips)
                        .map_err(|e| Error::InvalidSpec(e.to_string()))?;
                    let pod = names::node_pod(lab, &node.name);
                    self.setup(lab, &pod, &node.name, &steps).await?;
                    emit(EventKind::NodeWired {
                        node: node.name.clone(),
                    });
                    Ok::<_, Error>(())
                }
            })
            .collect();
        stream::iter(wiring)
            .buffer_unordered(self.concurrency)
            .try_collect::<()>()
            .await?;

        let configuring: Vec<_> = spec
            .nodes
            .iter()
            .map(|node| {
                readiness::configure(
                    self,
                    lab,
                    node,
                    (self.start_timeout, self.probe_timeout),
                    &emit,
                )
            })
            .collect();
        stream::iter(configuring)
            .buffer_unordered(self.concurrency)
            .try_collect::<()>()
            .await?;
        Ok(segments)
    }

    /// Waits until the lab's `expected` pods run; their addresses by pod name.
    async fn await_pods(
        &self,
        lab: &str,
        expected: usize,
        spec: &LabSpec,
        emit: &(dyn Fn(EventKind) + Sync),
    ) -> Result<BTreeMap<String, IpAddr>, Error> {
        let deadline = Instant::now() + self.pod_timeout;
        let mut started = BTreeSet::new();
        loop {
            let pods = self.cached_pods(Some(lab)).await?;
            let mut ips = BTreeMap::new();
            let mut waiting = Vec::new();
            for p in &pods {
                let name = p.metadata.name.clone().unwrap_or_default();
                match running(p) {
                    Some(ip) => {
                        if started.insert(name.clone())
                            && let Some(n) = spec
                                .nodes
                                .iter()
                                .find(|n| names::node_pod(lab, &n.name) == name)
                        {
                            emit(EventKind::NodeStarted {
                                node: n.name.clone(),
                            });
                        }
                        ips.insert(name, ip);
                    }
                    None => {
                        let state = pod_state(p);
                        if stuck(&state) {
                            return Err(Error::Engine {
                                context: format!("pod {name} of lab {lab} cannot run"),
                                source: state.into(),
                            });
                        }
                        waiting.push(format!("{name} ({state})"));
                    }
                }
            }
            if ips.len() >= expected {
                return Ok(ips);
            }
            if Instant::now() >= deadline {
                return Err(Error::Engine {
                    context: format!(
                        "lab {lab}: pods not running after {}s",
                        self.pod_timeout.as_secs()
                    ),
                    source: format!("still waiting for {}", waiting.join(", ")).into(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The pod network, read once from a running pod: its `eth0`'s MTU and address family.
    async fn network(&self, pod: &str) -> Result<Network, Error> {
        self.network
            .get_or_try_init(|| async {
                let argv: Vec<String> = [
                    "sh",
                    "-c",
                    "cat /sys/class/net/eth0/mtu; ip -6 -o addr show dev eth0 scope global",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                let out =
                    exec::captured(&self.pods(), pod, &argv, ExecLimits::within(SETUP_TIMEOUT))
                        .await
                        .map_err(|e| exec_error(pod, e))?;
                let mut lines = out.stdout.lines();
                let pod_mtu = lines
                    .next()
                    .and_then(|l| l.trim().parse().ok())
                    .unwrap_or(1500);
                let pod_ipv6 = lines.next().is_some_and(|l| l.contains("inet6"))
                    && !self.pod_has_ipv4(pod).await;
                Ok(Network { pod_mtu, pod_ipv6 })
            })
            .await
            .copied()
    }

    async fn pod_has_ipv4(&self, pod: &str) -> bool {
        match self.pods().get(pod).await {
            Ok(p) => p
                .status
                .and_then(|s| s.pod_ip)
                .is_some_and(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok()),
            Err(_) => true,
        }
    }

    /// A ready node's global addresses on its lab interfaces (`eth1 2001:db8:1::1/64`), as
    /// read in its pod; none if they cannot be read.
    async fn addresses(&self, lab: &str, node: &str) -> Vec<String> {
        let argv: Vec<String> = ["ip", "-j", "addr", "show"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let limits = ExecLimits::within(Duration::from_secs(10));
        let Ok(out) = self.exec(lab, node, &argv, limits).await else {
            return Vec::new();
        };
        parse_ip_json(&out.stdout)
            .into_iter()
            .filter(|i| i.name != render::POD_INTERFACE)
            .flat_map(|i| {
                i.addresses
                    .into_iter()
                    .filter(|a| a.scope == "global")
                    .map(move |a| format!("{} {}/{}", i.name, a.address, a.prefix_len))
            })
            .collect()
    }

    /// Runs a pod's set-up as one script.
    async fn setup(&self, lab: &str, pod: &str, what: &str, steps: &[Step]) -> Result<(), Error> {
        let argv = vec!["sh".to_string(), "-c".into(), script(steps)];
        let out = exec::captured(&self.pods(), pod, &argv, ExecLimits::within(SETUP_TIMEOUT))
            .await
            .map_err(|e| exec_error(pod, e))?;
        if out.exit_code != 0 || out.stopped.is_some() {
            return Err(Error::StartFailed {
                lab: lab.to_string(),
                node: what.to_string(),
                command: "set-up of its links".into(),
                exit_code: out.exit_code,
                output: out.combined(),
            });
        }
        Ok(())
    }

    /// Removes a lab: its Lab object and everything labelled with it, then waits until they
    /// are gone.
    pub async fn down(&self, lab: &str) -> Result<Removed, Error> {
        self.down_matching(Some(lab)).await
    }

    pub async fn down_all(&self) -> Result<Removed, Error> {
        self.down_matching(None).await
    }

    async fn down_matching(&self, lab: Option<&str>) -> Result<Removed, Error> {
        let what = lab.map_or("every lab".to_string(), |l| format!("lab {l}"));
        let lp = selector(lab);
        let pods = self
            .pods()
            .list(&lp)
            .await
            .map_err(api_err(format!("listing the pods of {what}")))?;
        let role = |p: &Pod, r: &str| pod_label(p, names::LABEL_ROLE) == Some(r);
        let removed = Removed {
            containers: pods.items.iter().filter(|p| role(p, "node")).count(),
            bridges: pods.items.iter().filter(|p| role(p, "switch")).count(),
            veths: 0,
            firewall_rules: 0,
        };
        let labs: Vec<String> = match lab {
            Some(l) => vec![l.to_string()],
            None => self
                .labs()
                .list(&ListParams::default())
                .await
                .map_err(api_err("listing Labs"))?
                .items
                .into_iter()
                .filter_map(|l| l.metadata.name)
                .collect(),
        };
        for l in &labs {
            match self.labs().delete(l, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if api_status(&e) == Some(404) => {}
                Err(e) => return Err(api_err(format!("deleting Lab {l}"))(e)),
            }
        }
        self.delete_labelled(lab, true).await?;
        Ok(removed)
    }

    /// Removes what a Lab owns, keeping the Lab (its status says what happened).
    pub async fn delete_owned(&self, lab: &str) -> Result<(), Error> {
        self.delete_labelled(Some(lab), false).await
    }

    /// Marks a Lab failed with `reason` and `message`; the error to return.
    pub async fn fail(&self, lab: &str, reason: &str, message: &str) -> Result<(), Error> {
        let status = crd::LabStatus {
            phase: Some(LabPhase::Failed),
            conditions: vec![condition("Ready", "False", reason, message)],
            ..Default::default()
        };
        self.set_status(lab, status).await?;
        Err(Error::InvalidSpec(message.to_string()))
    }

    /// Deletes the objects labelled with `lab` (or with any lab) and waits until they, and the
    /// Labs too when `with_labs`, are gone.
    async fn delete_labelled(&self, lab: Option<&str>, with_labs: bool) -> Result<(), Error> {
        let what = lab.map_or("every lab".to_string(), |l| format!("lab {l}"));
        let lp = selector(lab);
        // The garbage collector would remove these too; deleting them now is quicker, and
        // catches objects whose Lab was never made (a killed `up`).
        let dp = DeleteParams::background();
        self.pods()
            .delete_collection(&dp, &lp)
            .await
            .map_err(api_err(format!("deleting the pods of {what}")))?;
        self.config_maps()
            .delete_collection(&dp, &lp)
            .await
            .map_err(api_err(format!("deleting the files of {what}")))?;
        self.policies()
            .delete_collection(&dp, &lp)
            .await
            .map_err(api_err(format!("deleting the network policies of {what}")))?;
        let deadline = Instant::now() + DOWN_TIMEOUT;
        loop {
            let left = self.remaining(lab, with_labs).await?;
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Engine {
                    context: format!("removing {what}"),
                    source: format!(
                        "still there after {}s: {}",
                        DOWN_TIMEOUT.as_secs(),
                        left.join(", ")
                    )
                    .into(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Objects of `lab` (or of every lab) still in the API: `kind/name`.
    pub async fn remaining(
        &self,
        lab: Option<&str>,
        with_labs: bool,
    ) -> Result<Vec<String>, Error> {
        let lp = selector(lab);
        let mut left = Vec::new();
        let named = |kind: &str, n: Option<String>| format!("{kind}/{}", n.unwrap_or_default());
        for p in self
            .pods()
            .list(&lp)
            .await
            .map_err(api_err("listing pods"))?
            .items
        {
            left.push(named("pod", p.metadata.name));
        }
        for c in self
            .config_maps()
            .list(&lp)
            .await
            .map_err(api_err("listing ConfigMaps"))?
            .items
        {
            left.push(named("configmap", c.metadata.name));
        }
        for n in self
            .policies()
            .list(&lp)
            .await
            .map_err(api_err("listing NetworkPolicies"))?
            .items
        {
            left.push(named("networkpolicy", n.metadata.name));
        }
        let labs = match lab {
            _ if !with_labs => Vec::new(),
            Some(l) => self.lab_object(l).await?.into_iter().collect(),
            None => {
                self.labs()
                    .list(&ListParams::default())
                    .await
                    .map_err(api_err("listing Labs"))?
                    .items
            }
        };
        for l in labs {
            left.push(named("lab", l.metadata.name));
        }
        Ok(left)
    }

    /// Every lab in the namespace. Labs applied with kubectl that have no pod yet are left out:
    /// the Lab operator is making them, and a controller must not take them for leftovers.
    pub async fn list(&self) -> Result<Vec<LabSummary>, Error> {
        let labs = self.cache().await?.labs.state();
        let pods: Vec<std::sync::Arc<Pod>> = self
            .cached_pods(None)
            .await?
            .into_iter()
            .filter(|p| pod_label(p, names::LABEL_ROLE) == Some("node"))
            .collect();
        let mut out = Vec::new();
        for l in &labs {
            let name = l.metadata.name.clone().unwrap_or_default();
            let mine: Vec<&std::sync::Arc<Pod>> = pods
                .iter()
                .filter(|p| {
                    pod_label(p, names::LABEL_LAB) == Some(names::label_value(&name).as_str())
                })
                .collect();
            if mine.is_empty() && l.spec.owner == OWNER_KUBECTL {
                continue;
            }
            out.push(LabSummary {
                lab: name,
                topology: annotation(l, ANNOTATION_TOPOLOGY)
                    .unwrap_or_default()
                    .to_string(),
                topology_hash: annotation(l, ANNOTATION_TOPOLOGY_HASH)
                    .unwrap_or_default()
                    .to_string(),
                nodes: mine.len(),
                running: mine.iter().filter(|p| running(p).is_some()).count(),
                expires_at: expires_at(l),
                owner: l.spec.owner.clone(),
                expected_nodes: annotation(l, ANNOTATION_NODES)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            });
        }
        out.sort_by(|a, b| a.lab.cmp(&b.lab));
        Ok(out)
    }

    /// One lab: each node's pod, state and interfaces (read in the pod), each segment's switch.
    pub async fn inspect(&self, lab: &str) -> Result<LabStatus, Error> {
        let object = self.lab_object(lab).await?;
        let pods = self
            .pods()
            .list(&selector(Some(lab)))
            .await
            .map_err(api_err(format!("listing the pods of lab {lab}")))?;
        let role = |p: &Pod| {
            pod_label(p, names::LABEL_ROLE)
                .unwrap_or_default()
                .to_string()
        };
        let label = |p: &Pod, k: &str| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(k))
                .cloned()
                .unwrap_or_default()
        };
        let node_pods: Vec<&Pod> = pods.items.iter().filter(|p| role(p) == "node").collect();
        if node_pods.is_empty() {
            return Err(Error::LabNotFound {
                lab: lab.to_string(),
            });
        }
        let mut nodes = Vec::new();
        for p in node_pods {
            let pod = p.metadata.name.clone().unwrap_or_default();
            let interfaces = if running(p).is_some() {
                let argv: Vec<String> = ["ip", "-j", "addr", "show"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                match exec::captured(
                    &self.pods(),
                    &pod,
                    &argv,
                    ExecLimits::within(Duration::from_secs(10)),
                )
                .await
                {
                    Ok(out) => parse_ip_json(&out.stdout)
                        .into_iter()
                        .filter(|i| i.name != render::POD_INTERFACE)
                        .collect(),
                    Err(_) => Vec::new(),
                }
            } else {
                Vec::new()
            };
            let image = p
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            nodes.push(NodeStatus {
                node: label(p, names::LABEL_NODE),
                container: pod,
                image,
                state: pod_state(p),
                pid: None,
                interfaces,
            });
        }
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        let mut segments: Vec<SegmentStatus> = pods
            .items
            .iter()
            .filter(|p| role(p) == "switch")
            .map(|p| SegmentStatus {
                segment: Some(label(p, names::LABEL_SEGMENT)),
                bridge: p.metadata.name.clone().unwrap_or_default(),
                ports: 0,
            })
            .collect();
        segments.sort_by(|a, b| a.bridge.cmp(&b.bridge));
        let object = object.as_ref();
        Ok(LabStatus {
            lab: lab.to_string(),
            topology: object
                .and_then(|o| annotation(o, ANNOTATION_TOPOLOGY))
                .unwrap_or_default()
                .to_string(),
            topology_hash: object
                .and_then(|o| annotation(o, ANNOTATION_TOPOLOGY_HASH))
                .unwrap_or_default()
                .to_string(),
            expires_at: object.and_then(expires_at),
            nodes,
            segments,
        })
    }

    /// Labs with objects but no node pod (what a killed `up` left), Labs applied with kubectl
    /// and still being made excepted.
    pub async fn stray_labs(&self) -> Result<BTreeSet<String>, Error> {
        // ConfigMaps and NetworkPolicies need no look: their Lab owns them (a Lab with no node
        // pod is in `list`, with 0 nodes), or the garbage collector removes them.
        let lab_of = |p: &Pod| pod_label(p, names::LABEL_LAB).map(str::to_string);
        let pods = self.cached_pods(None).await?;
        let with_nodes: BTreeSet<String> = pods
            .iter()
            .filter(|p| pod_label(p, names::LABEL_ROLE) == Some("node"))
            .filter_map(|p| lab_of(p))
            .collect();
        let kubectl: BTreeSet<String> = self
            .cache()
            .await?
            .labs
            .state()
            .iter()
            .filter(|l| l.spec.owner == OWNER_KUBECTL)
            .filter_map(|l| l.metadata.name.clone())
            .collect();
        Ok(pods
            .iter()
            .filter_map(|p| lab_of(p))
            .filter(|l| !with_nodes.contains(l) && !kubectl.contains(l))
            .collect())
    }

    /// A node's pod, checked to exist and run.
    async fn node_pod(&self, lab: &str, node: &str) -> Result<String, Error> {
        let pod = names::node_pod(lab, node);
        match self
            .pods()
            .get_opt(&pod)
            .await
            .map_err(api_err(format!("reading pod {pod}")))?
        {
            None => Err(Error::NodeNotFound {
                lab: lab.to_string(),
                node: node.to_string(),
            }),
            Some(p) if running(&p).is_none() => Err(Error::NodeNotRunning {
                lab: lab.to_string(),
                node: node.to_string(),
            }),
            Some(_) => Ok(pod),
        }
    }

    pub async fn exec(
        &self,
        lab: &str,
        node: &str,
        argv: &[String],
        limits: ExecLimits,
    ) -> Result<ExecOutput, Error> {
        let pod = self.node_pod(lab, node).await?;
        exec::captured(&self.pods(), &pod, argv, limits)
            .await
            .map_err(|e| exec_error(&pod, e))
    }

    /// Which lab images the cluster's nodes hold: tag, size, and 0 (no creation time).
    pub async fn node_images(&self) -> Result<ImageList, ImageError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let list = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| ImageError::Engine(Box::new(e)))?;
        let mut found: BTreeMap<String, i64> = BTreeMap::new();
        for n in list.items {
            for image in n.status.and_then(|s| s.images).unwrap_or_default() {
                for name in image.names.unwrap_or_default() {
                    let name = name.strip_prefix("docker.io/").unwrap_or(&name).to_string();
                    if name.starts_with("v6lab/node:") {
                        found.insert(name, image.size_bytes.unwrap_or(0));
                    }
                }
            }
        }
        Ok(found.into_iter().map(|(t, s)| (t, s, 0)).collect())
    }
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> crd::LabCondition {
    crd::LabCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.chars().take(4000).collect(),
        last_transition_time: Some(rfc3339(now())),
    }
}

fn exec_error(pod: &str, e: ExecError) -> Error {
    Error::Engine {
        context: format!("Kubernetes API: running a command in pod {pod}"),
        source: Box::new(e),
    }
}

impl Runtime for Kubernetes {
    fn up<'a>(
        &'a self,
        spec: &'a LabSpec,
        observer: &'a dyn Observer,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(Kubernetes::up(self, spec, observer, cancel))
    }

    fn down<'a>(&'a self, lab: &'a str) -> BoxFuture<'a, Result<Removed, Error>> {
        Box::pin(Kubernetes::down(self, lab))
    }

    fn down_all(&self) -> BoxFuture<'_, Result<Removed, Error>> {
        Box::pin(Kubernetes::down_all(self))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<LabSummary>, Error>> {
        Box::pin(Kubernetes::list(self))
    }

    fn inspect<'a>(&'a self, lab: &'a str) -> BoxFuture<'a, Result<LabStatus, Error>> {
        Box::pin(Kubernetes::inspect(self, lab))
    }

    fn stray_labs(&self) -> BoxFuture<'_, Result<BTreeSet<String>, Error>> {
        Box::pin(Kubernetes::stray_labs(self))
    }

    fn exec<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        limits: ExecLimits,
    ) -> BoxFuture<'a, Result<ExecOutput, Error>> {
        Box::pin(Kubernetes::exec(self, lab, node, argv, limits))
    }

    fn exec_interactive<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        term: Terminal<'a>,
    ) -> BoxFuture<'a, Result<i64, Error>> {
        Box::pin(async move {
            let pod = self.node_pod(lab, node).await?;
            exec::interactive(&self.pods(), &pod, argv, term, self.stdin_eof)
                .await
                .map_err(|e| exec_error(&pod, e))
        })
    }

    fn exec_streamed<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        pipes: Pipes<'a>,
        deadline: Option<Duration>,
    ) -> BoxFuture<'a, Result<Streamed, Error>> {
        Box::pin(async move {
            let pod = self.node_pod(lab, node).await?;
            exec::streamed(&self.pods(), &pod, argv, pipes, deadline, self.stdin_eof)
                .await
                .map_err(|e| exec_error(&pod, e))
        })
    }

    /// A cluster has no engine to build in: the image must already be on its nodes (loaded
    /// with `deploy/kubernetes/load-images.sh`).
    fn ensure_image<'a>(
        &'a self,
        recipe: &'a Recipe,
        _force: bool,
        _progress: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<Ensured, ImageError>> {
        Box::pin(async move {
            let start = Instant::now();
            let tag = recipe.tag();
            let images = self.node_images().await?;
            if images.iter().any(|(t, _, _)| *t == tag) {
                Ok(Ensured {
                    tag,
                    built: false,
                    elapsed: start.elapsed(),
                })
            } else {
                Err(ImageError::Build(format!(
                    "the cluster's nodes do not hold the lab image {tag}: build it with \
                     `v6lab images build` on a machine with Docker, then load it onto every node \
                     with `bash deploy/kubernetes/load-images.sh` (no registry is used)"
                )))
            }
        })
    }

    fn images(&self) -> BoxFuture<'_, Result<ImageList, ImageError>> {
        Box::pin(self.node_images())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_up_scripts_quote_every_word_and_let_clean_ups_fail() {
        let steps = vec![
            Step {
                argv: vec!["ip".into(), "link".into(), "delete".into(), "vx0".into()],
                may_fail: true,
            },
            Step {
                argv: vec![
                    "install".into(),
                    "-m".into(),
                    "0644".into(),
                    "/x/it's here".into(),
                ],
                may_fail: false,
            },
        ];
        assert_eq!(
            script(&steps),
            "set -e\nip link delete vx0 2>/dev/null || true\ninstall -m 0644 '/x/it'\\''s here'\n"
        );
    }

    #[test]
    fn interfaces_are_read_from_ip_json_and_forged_output_is_skipped() {
        let text = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"mtu":65536,"addr_info":[]},
            {"ifindex":7,"ifname":"eth1@if3","flags":["BROADCAST","UP","LOWER_UP"],"mtu":1450,
             "address":"02:00:00:00:00:01","addr_info":[
               {"family":"inet6","local":"2001:db8:1::10","prefixlen":64,"scope":"global","dynamic":true},
               {"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link","tentative":true},
               {"family":"inet6","local":"not an address","prefixlen":64}]},
            {"ifname": 5}]"#;
        let got = parse_ip_json(text);
        assert_eq!(got.len(), 1);
        let i = &got[0];
        assert_eq!((i.index, i.name.as_str(), i.mtu), (7, "eth1", Some(1450)));
        assert!(i.up && i.lower_up);
        assert_eq!(i.addresses.len(), 2);
        assert!(i.addresses[0].dynamic && !i.addresses[0].tentative);
        assert!(i.addresses[1].tentative);
        assert!(parse_ip_json("garbage").is_empty());
    }

    #[test]
    fn a_lab_expires_at_its_annotation_else_its_lifetime_after_creation() {
        let mut lab = Lab::new(
            "l",
            LabResourceSpec {
                topology: String::new(),
                lifetime_seconds: Some(60),
                owner: OWNER_KUBECTL.into(),
                complete: false,
            },
        );
        assert_eq!(expires_at(&lab), None);
        lab.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap(),
            ));
        assert_eq!(expires_at(&lab), Some(1_060));
        lab.metadata.annotations = Some(BTreeMap::from([(ANNOTATION_EXPIRES.into(), "5".into())]));
        assert_eq!(expires_at(&lab), Some(5));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            [59, 60, 3599, 3600, 8100].map(left_text),
            ["<1m", "1m", "59m", "1h0m", "2h15m"]
        );
    }

    #[test]
    fn stdin_is_closed_only_where_the_exec_protocol_can_say_so() {
        assert!(!closes_stdin("1", "20"));
        assert!(!closes_stdin("1", "29+"));
        assert!(closes_stdin("1", "30"));
        assert!(closes_stdin("1", "33+"));
        assert!(!closes_stdin("", ""));
    }

    #[test]
    fn pods_that_cannot_run_are_told_from_pods_still_starting() {
        assert!(stuck("waiting: ErrImageNeverPull"));
        assert!(stuck("failed: SysctlForbidden"));
        assert!(!stuck("waiting: ContainerCreating"));
        assert!(!stuck("pending"));
    }
}
