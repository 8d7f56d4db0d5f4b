//! A runtime in memory, for tests of what sits above the seam (the controller's executor,
//! expiry, recovery; the exercise runner): labs are entries in a map, bringing one up succeeds,
//! fails or hangs as the test says, and commands answer from a function the test gives.
//! Nothing touches an engine or the host.

use crate::runtime::{
    BoxFuture, Ensured, Error, ExecLimits, ExecOutput, ImageError, ImageList, LabStatus,
    LabSummary, NodeStatus, Observer, Pipes, Recipe, Removed, Runtime, Streamed, Terminal,
};
use crate::spec::LabSpec;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What [`Fake`]'s `up` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Up {
    /// Makes the whole lab.
    Succeed,
    /// Makes one node, then fails with a start command's error carrying this output.
    Fail(String),
    /// Makes one node, then waits until cancelled.
    Hang,
}

/// Answers a command: (lab, node, argv, limits).
pub type ExecFn = dyn Fn(&str, &str, &[String], ExecLimits) -> BoxFuture<'static, Result<ExecOutput, Error>>
    + Send
    + Sync;

/// What the fake holds and what was asked of it.
#[derive(Debug, Default)]
pub struct State {
    pub labs: BTreeMap<String, LabSummary>,
    /// Labs with leftovers and no node ([`Runtime::stray_labs`]).
    pub stray: BTreeSet<String>,
    /// Labs `up` was called for, in order.
    pub ups: Vec<String>,
    /// Labs `down` was called for, in order.
    pub downs: Vec<String>,
    /// `up` calls under way.
    pub coming_up: usize,
}

pub struct Fake {
    state: Mutex<State>,
    up: Mutex<Up>,
    exec: Box<ExecFn>,
}

impl Default for Fake {
    fn default() -> Self {
        Fake::new()
    }
}

impl Fake {
    /// Labs come up; every command exits 0 printing nothing.
    pub fn new() -> Fake {
        Fake {
            state: Mutex::new(State::default()),
            up: Mutex::new(Up::Succeed),
            exec: Box::new(|_, _, _, _| Box::pin(async { Ok(ExecOutput::default()) })),
        }
    }

    /// Commands answer from `f`.
    pub fn with_exec(
        mut self,
        f: impl Fn(&str, &str, &[String], ExecLimits) -> BoxFuture<'static, Result<ExecOutput, Error>>
        + Send
        + Sync
        + 'static,
    ) -> Fake {
        self.exec = Box::new(f);
        self
    }

    /// What the next `up`s do.
    pub fn set_up(&self, up: Up) {
        *self.up.lock().unwrap_or_else(|p| p.into_inner()) = up;
    }

    /// The state, to read or to arrange (a lab left behind, stray links).
    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Names of the labs present.
    pub fn labs(&self) -> Vec<String> {
        self.state().labs.keys().cloned().collect()
    }

    fn summary(spec: &LabSpec, nodes: usize) -> LabSummary {
        LabSummary {
            lab: spec.lab.clone(),
            topology: spec.topology.clone(),
            topology_hash: spec.topology_hash.clone(),
            nodes,
            running: nodes,
            expires_at: spec.expires_at,
            owner: spec.owner.clone(),
            expected_nodes: spec.node_count,
        }
    }

    async fn bring_up(&self, spec: &LabSpec, cancel: &CancellationToken) -> Result<(), Error> {
        let up = self.up.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if cancel.is_cancelled() {
            return Err(Error::Cancelled {
                lab: spec.lab.clone(),
            });
        }
        {
            let mut st = self.state();
            st.ups.push(spec.lab.clone());
            if st.labs.contains_key(&spec.lab) {
                return Err(Error::LabExists {
                    lab: spec.lab.clone(),
                });
            }
            let made = if up == Up::Succeed {
                spec.nodes.len()
            } else {
                1
            };
            st.labs.insert(spec.lab.clone(), Fake::summary(spec, made));
        }
        match up {
            Up::Succeed => Ok(()),
            Up::Fail(output) => Err(Error::StartFailed {
                lab: spec.lab.clone(),
                node: spec
                    .nodes
                    .first()
                    .map(|n| n.name.clone())
                    .unwrap_or_default(),
                command: "false".into(),
                exit_code: 1,
                output,
            }),
            Up::Hang => {
                self.state().coming_up += 1;
                cancel.cancelled().await;
                self.state().coming_up -= 1;
                Err(Error::Cancelled {
                    lab: spec.lab.clone(),
                })
            }
        }
    }

    /// Copies `stdin` to `out` (an echoing node), within `deadline`.
    async fn echo(
        mut stdin: crate::runtime::Input,
        out: crate::runtime::Output<'_>,
        deadline: Option<Duration>,
    ) -> Result<Streamed, Error> {
        let copy = async {
            tokio::io::copy(&mut stdin, out)
                .await
                .map_err(|source| Error::Io {
                    context: "echoing".into(),
                    source,
                })
        };
        match deadline {
            None => copy.await.map(|_| Streamed::Exited(0)),
            Some(d) => match tokio::time::timeout(d, copy).await {
                Ok(r) => r.map(|_| Streamed::Exited(0)),
                Err(_) => Ok(Streamed::DeadlinePassed),
            },
        }
    }
}

impl Runtime for Fake {
    fn up<'a>(
        &'a self,
        spec: &'a LabSpec,
        _observer: &'a dyn Observer,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.bring_up(spec, cancel))
    }

    fn down<'a>(&'a self, lab: &'a str) -> BoxFuture<'a, Result<Removed, Error>> {
        Box::pin(async move {
            let mut st = self.state();
            st.downs.push(lab.to_owned());
            let containers = st.labs.remove(lab).map_or(0, |l| l.nodes);
            let bridges = usize::from(st.stray.remove(lab));
            Ok(Removed {
                containers,
                bridges,
                ..Removed::default()
            })
        })
    }

    fn down_all(&self) -> BoxFuture<'_, Result<Removed, Error>> {
        Box::pin(async move {
            let mut st = self.state();
            let containers = st.labs.values().map(|l| l.nodes).sum();
            st.labs.clear();
            let bridges = std::mem::take(&mut st.stray).len();
            Ok(Removed {
                containers,
                bridges,
                ..Removed::default()
            })
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<LabSummary>, Error>> {
        Box::pin(async move { Ok(self.state().labs.values().cloned().collect()) })
    }

    fn inspect<'a>(&'a self, lab: &'a str) -> BoxFuture<'a, Result<LabStatus, Error>> {
        Box::pin(async move {
            let st = self.state();
            let l = st.labs.get(lab).ok_or_else(|| Error::LabNotFound {
                lab: lab.to_owned(),
            })?;
            Ok(LabStatus {
                lab: l.lab.clone(),
                topology: l.topology.clone(),
                topology_hash: l.topology_hash.clone(),
                expires_at: l.expires_at,
                nodes: (0..l.nodes)
                    .map(|i| NodeStatus {
                        node: format!("n{i}"),
                        container: format!("{lab}_n{i}"),
                        image: "fake".into(),
                        state: "running".into(),
                        pid: None,
                        interfaces: Vec::new(),
                    })
                    .collect(),
                segments: Vec::new(),
            })
        })
    }

    fn stray_labs(&self) -> BoxFuture<'_, Result<BTreeSet<String>, Error>> {
        Box::pin(async move { Ok(self.state().stray.clone()) })
    }

    fn exec<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        limits: ExecLimits,
    ) -> BoxFuture<'a, Result<ExecOutput, Error>> {
        (self.exec)(lab, node, argv, limits)
    }

    fn exec_interactive<'a>(
        &'a self,
        _lab: &'a str,
        _node: &'a str,
        _argv: &'a [String],
        term: Terminal<'a>,
    ) -> BoxFuture<'a, Result<i64, Error>> {
        Box::pin(async move {
            Fake::echo(term.stdin, term.stdout, None).await?;
            Ok(0)
        })
    }

    fn exec_streamed<'a>(
        &'a self,
        _lab: &'a str,
        _node: &'a str,
        _argv: &'a [String],
        pipes: Pipes<'a>,
        deadline: Option<Duration>,
    ) -> BoxFuture<'a, Result<Streamed, Error>> {
        Box::pin(Fake::echo(pipes.stdin, pipes.stdout, deadline))
    }

    fn ensure_image<'a>(
        &'a self,
        recipe: &'a Recipe,
        _force: bool,
        _progress: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<Ensured, ImageError>> {
        Box::pin(async move {
            Ok(Ensured {
                tag: recipe.tag(),
                built: false,
                elapsed: Duration::ZERO,
            })
        })
    }

    fn images(&self) -> BoxFuture<'_, Result<ImageList, ImageError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
