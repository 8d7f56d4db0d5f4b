//! The seam between v6lab and a container engine: [`Runtime`], and the runtime-neutral types
//! it speaks (errors, progress, lab status and summaries, command output). Nothing here names
//! an engine: the Docker runtime ([`crate::docker`]) implements the trait, the fake one
//! ([`crate::fake`]) stands in for it in tests, a Kubernetes one would too.
//!
//! The trait is object-safe (its methods return boxed futures, written out by hand), so the
//! controller holds an `Arc<dyn Runtime>` chosen at start and its tests hold a fake one.

use crate::spec::LabSpec;
use futures::Stream;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
pub use tokio_util::sync::CancellationToken;

pub use crate::image::{Ensured, ImageError, Recipe};

/// A boxed future borrowing from the runtime and the call's arguments.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error from below the runtime (the engine's client, the host's netlink), kept as a source.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the {engine}: {source}")]
    Connect {
        /// "Docker engine".
        engine: String,
        #[source]
        source: Cause,
    },
    #[error("invalid lab spec: {0}")]
    InvalidSpec(String),
    #[error(
        "image {image} is not in the engine; build it first (v6lab builds its lab images before `up`)"
    )]
    ImageMissing { image: String },
    #[error("lab {lab} already exists; `v6lab down {lab}` first")]
    LabExists { lab: String },
    #[error("lab {lab} not found")]
    LabNotFound { lab: String },
    #[error("node {node} not found in lab {lab}")]
    NodeNotFound { lab: String, node: String },
    #[error("node {node} of lab {lab} is not running")]
    NodeNotRunning { lab: String, node: String },
    #[error("node {node} of lab {lab}: `{command}` exited with code {exit_code}{}", show_output(.output))]
    StartFailed {
        lab: String,
        node: String,
        command: String,
        exit_code: i64,
        output: String,
    },
    /// A command was stopped by its bounds (deadline or output cap).
    #[error("node {node} of lab {lab}: `{command}`: {reason}{}", show_output(.output))]
    CommandStopped {
        lab: String,
        node: String,
        command: String,
        /// "did not finish within 60s; it was stopped", "output truncated at 64 KiB; ...".
        reason: String,
        output: String,
    },
    #[error("creating lab {lab} was cancelled (the lab was deleted meanwhile)")]
    Cancelled { lab: String },
    #[error("{0}")]
    ProbeTimeout(Box<ProbeTimeout>),
    /// The engine or the host refused (context: what was being done, with the engine's name).
    #[error("{context}: {source}")]
    Engine {
        context: String,
        #[source]
        source: Cause,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// A node's readiness probe did not pass before the deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTimeout {
    pub lab: String,
    pub node: String,
    /// The probe's description ("radvd running").
    pub probe: String,
    pub command: String,
    pub timeout: Duration,
    /// What the probe printed the last time it ran.
    pub last_output: String,
}

impl std::fmt::Display for ProbeTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node {} of lab {} not ready after {}s: still waiting for {} (`{}`){}",
            self.node,
            self.lab,
            self.timeout.as_secs_f32(),
            self.probe,
            self.command,
            show_output(&self.last_output)
        )
    }
}

pub(crate) fn show_output(output: &str) -> String {
    let output = output.trim();
    if output.is_empty() {
        return String::new();
    }
    // The end of the output is what explains a failure.
    const MAX: usize = 2000;
    let tail = if output.len() > MAX {
        let mut start = output.len() - MAX;
        while !output.is_char_boundary(start) {
            start += 1;
        }
        format!("...{}", &output[start..])
    } else {
        output.to_string()
    };
    format!("; output:\n{tail}")
}

/// A step of [`Runtime::up`], for progress bars and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The segment's bridge exists.
    SegmentCreated { segment: String },
    /// The node's container exists and its files are in place.
    NodeCreated { node: String },
    /// The node's container runs.
    NodeStarted { node: String },
    /// All the node's interfaces are plugged into their segments.
    NodeWired { node: String },
    /// The node's start commands all succeeded.
    NodeConfigured { node: String },
    /// The node waits for a readiness probe (emitted once per probe, before polling it).
    NodeWaiting { node: String, probe: String },
    /// All the node's probes passed.
    NodeReady { node: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub lab: String,
    pub kind: EventKind,
    /// Since `up` began.
    pub elapsed: Duration,
}

/// Receives [`Event`]s while a lab comes up; called from the `up` task, keep it quick.
pub trait Observer: Send + Sync {
    fn event(&self, event: &Event);
}

/// Ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl Observer for NoopObserver {
    fn event(&self, _: &Event) {}
}

impl<F: Fn(&Event) + Send + Sync> Observer for F {
    fn event(&self, event: &Event) {
        self(event)
    }
}

/// What [`Runtime::down`] or [`Runtime::down_all`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub containers: usize,
    pub bridges: usize,
    /// Host veth ends deleted by v6lab (most vanish with their container's namespace).
    pub veths: usize,
    /// Copies of the shared forwarding rule (only `down_all`).
    pub firewall_rules: usize,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        *self == Removed::default()
    }
}

/// One lab as found on the engine (from its objects' labels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSummary {
    pub lab: String,
    pub topology: String,
    pub topology_hash: String,
    pub nodes: usize,
    pub running: usize,
    pub expires_at: Option<u64>,
    /// `cli` or `controller` (empty for labs made before owners were recorded).
    pub owner: String,
    /// How many nodes the whole lab has (0 when unknown).
    pub expected_nodes: usize,
}

/// A lab in detail: [`Runtime::inspect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabStatus {
    pub lab: String,
    pub topology: String,
    pub topology_hash: String,
    pub expires_at: Option<u64>,
    pub nodes: Vec<NodeStatus>,
    pub segments: Vec<SegmentStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: String,
    pub container: String,
    pub image: String,
    /// The engine's state: `created`, `running`, `exited`, ...
    pub state: String,
    pub pid: Option<u32>,
    /// Interfaces inside the node except `lo` (empty unless running).
    pub interfaces: Vec<NetnsInterface>,
}

/// An interface inside a node, as read from its network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsInterface {
    pub index: u32,
    pub name: String,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Has a carrier (`IFF_LOWER_UP`).
    pub lower_up: bool,
    pub addresses: Vec<IfAddress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfAddress {
    pub address: IpAddr,
    pub prefix_len: u8,
    /// `global`, `link`, `host`, `site`.
    pub scope: String,
    /// Duplicate address detection is still running: the address is not usable yet.
    pub tentative: bool,
    /// Duplicate address detection found another node with this address.
    pub dad_failed: bool,
    pub deprecated: bool,
    /// Learnt from a Router Advertisement (SLAAC) rather than configured statically.
    pub dynamic: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentStatus {
    /// Segment name, if known.
    pub segment: Option<String>,
    pub bridge: String,
    /// Interfaces attached to the segment.
    pub ports: usize,
}

/// Bounds on a captured command ([`Runtime::exec`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecLimits {
    /// Output bytes kept, stdout and stderr together. More output is not read: the command is
    /// stopped and [`ExecOutput::truncated`] set.
    pub output_cap: usize,
    /// Time from the call until the command must have ended; then it is killed and
    /// [`ExecOutput::timed_out`] set.
    pub deadline: Duration,
}

/// Output kept of a captured command unless the caller says otherwise.
pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;

impl ExecLimits {
    /// The default output cap and this deadline.
    pub fn within(deadline: Duration) -> Self {
        ExecLimits {
            output_cap: DEFAULT_OUTPUT_CAP,
            deadline,
        }
    }

    pub fn with_output_cap(mut self, bytes: usize) -> Self {
        self.output_cap = bytes;
        self
    }
}

/// What a captured command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// -1 when the command was stopped (see `stopped`).
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
    /// The output reached the cap: the rest was not read and the command was stopped.
    #[serde(default)]
    pub truncated: bool,
    /// The command did not end before its deadline and was killed.
    #[serde(default)]
    pub timed_out: bool,
    /// Why the command was stopped, for people ("output truncated at 64 KiB; ...").
    #[serde(default)]
    pub stopped: Option<String>,
}

impl ExecOutput {
    /// stdout then stderr, then why the command was stopped, for messages.
    pub fn combined(&self) -> String {
        let mut parts: Vec<&str> = [self.stdout.trim_end(), self.stderr.trim_end()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        if let Some(s) = &self.stopped {
            parts.push(s);
        }
        parts.join("\n")
    }
}

/// Lab images on an engine: tag, size in bytes, creation time (unix seconds).
pub type ImageList = Vec<(String, i64, i64)>;

/// A command's input: read until EOF, which closes the command's stdin.
pub type Input = Box<dyn AsyncRead + Send + Unpin + 'static>;
/// Where a command's output goes; each write is awaited (back-pressure).
pub type Output<'a> = &'a mut (dyn AsyncWrite + Send + Unpin);

/// The ends of a terminal session ([`Runtime::exec_interactive`]).
pub struct Terminal<'a> {
    pub stdin: Input,
    pub stdout: Output<'a>,
    /// Sizes `(cols, rows)`, the initial one first.
    pub resize: Pin<Box<dyn Stream<Item = (u16, u16)> + Send + 'a>>,
}

/// The ends of a command without a terminal ([`Runtime::exec_streamed`]).
pub struct Pipes<'a> {
    pub stdin: Input,
    pub stdout: Output<'a>,
    pub stderr: Output<'a>,
}

/// How a streamed command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streamed {
    Exited(i64),
    /// It was still running at its deadline and was killed from the host.
    DeadlinePassed,
}

/// A container engine that realizes labs. Every method is bounded or cancellable by dropping
/// its future; commands in nodes are stopped from the host, never by a tool inside the node.
pub trait Runtime: Send + Sync {
    /// Brings a lab up, reporting progress to `observer`; stops as soon as `cancel` fires
    /// ([`Error::Cancelled`]). A partial lab is left for [`Runtime::down`].
    fn up<'a>(
        &'a self,
        spec: &'a LabSpec,
        observer: &'a dyn Observer,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Removes everything of `lab`, whatever state it is in (idempotent).
    fn down<'a>(&'a self, lab: &'a str) -> BoxFuture<'a, Result<Removed, Error>>;

    /// Removes everything v6lab made on this engine.
    fn down_all(&self) -> BoxFuture<'_, Result<Removed, Error>>;

    /// Every lab on this engine, sorted by name.
    fn list(&self) -> BoxFuture<'_, Result<Vec<LabSummary>, Error>>;

    /// One lab in detail; [`Error::LabNotFound`] when it has no node.
    fn inspect<'a>(&'a self, lab: &'a str) -> BoxFuture<'a, Result<LabStatus, Error>>;

    /// Labs that still have objects besides their nodes (host links): with no node, what a
    /// killed `up` or `down` left behind.
    fn stray_labs(&self) -> BoxFuture<'_, Result<BTreeSet<String>, Error>>;

    /// Runs `argv` in a node and captures its output within `limits`.
    fn exec<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        limits: ExecLimits,
    ) -> BoxFuture<'a, Result<ExecOutput, Error>>;

    /// Runs `argv` in a node with a TTY wired to `term`; the command's exit code.
    fn exec_interactive<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        term: Terminal<'a>,
    ) -> BoxFuture<'a, Result<i64, Error>>;

    /// Runs `argv` in a node without a TTY, its stdin, stdout and stderr piped through `pipes`.
    /// The output is read no faster than `pipes` takes it. At `deadline` (if any), or when the
    /// future is dropped, the command's processes are killed from the host.
    fn exec_streamed<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        pipes: Pipes<'a>,
        deadline: Option<Duration>,
    ) -> BoxFuture<'a, Result<Streamed, Error>>;

    /// Builds the lab image from `recipe` unless the engine has it (or `force`).
    fn ensure_image<'a>(
        &'a self,
        recipe: &'a Recipe,
        force: bool,
        progress: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<Ensured, ImageError>>;

    /// The lab images on the engine: tag, size in bytes, creation time.
    fn images(&self) -> BoxFuture<'_, Result<ImageList, ImageError>>;
}

/// A shared runtime is a runtime (the controller holds an `Arc<dyn Runtime>`).
impl<R: Runtime + ?Sized> Runtime for std::sync::Arc<R> {
    fn up<'a>(
        &'a self,
        spec: &'a LabSpec,
        observer: &'a dyn Observer,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<(), Error>> {
        (**self).up(spec, observer, cancel)
    }

    fn down<'a>(&'a self, lab: &'a str) -> BoxFuture<'a, Result<Removed, Error>> {
        (**self).down(lab)
    }

    fn down_all(&self) -> BoxFuture<'_, Result<Removed, Error>> {
        (**self).down_all()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<LabSummary>, Error>> {
        (**self).list()
    }

    fn inspect<'a>(&'a self, lab: &'a str) -> BoxFuture<'a, Result<LabStatus, Error>> {
        (**self).inspect(lab)
    }

    fn stray_labs(&self) -> BoxFuture<'_, Result<BTreeSet<String>, Error>> {
        (**self).stray_labs()
    }

    fn exec<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        limits: ExecLimits,
    ) -> BoxFuture<'a, Result<ExecOutput, Error>> {
        (**self).exec(lab, node, argv, limits)
    }

    fn exec_interactive<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        term: Terminal<'a>,
    ) -> BoxFuture<'a, Result<i64, Error>> {
        (**self).exec_interactive(lab, node, argv, term)
    }

    fn exec_streamed<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        pipes: Pipes<'a>,
        deadline: Option<Duration>,
    ) -> BoxFuture<'a, Result<Streamed, Error>> {
        (**self).exec_streamed(lab, node, argv, pipes, deadline)
    }

    fn ensure_image<'a>(
        &'a self,
        recipe: &'a Recipe,
        force: bool,
        progress: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<Ensured, ImageError>> {
        (**self).ensure_image(recipe, force, progress)
    }

    fn images(&self) -> BoxFuture<'_, Result<ImageList, ImageError>> {
        (**self).images()
    }
}
