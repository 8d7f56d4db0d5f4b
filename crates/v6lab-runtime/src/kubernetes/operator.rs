//! The Lab operator: what makes `kubectl apply -f lab.yaml` run a lab and every Lab end at its
//! expiry. It looks at the namespace's Labs every [`INTERVAL`]:
//!
//! - a Lab past its expiry is removed with everything it owns, whoever made it;
//! - a Lab applied with kubectl (no [`ANNOTATION_MADE_BY`]) and no phase yet is planned from its
//!   topology (an invalid one gets phase `Failed` and the located errors in its condition) and
//!   realized, with the same plan, limits and probes as `v6lab up`;
//! - a kubectl Lab left `Creating` by an operator that stopped is made again from the start;
//! - a Lab deleted while being made stops being made.
//!
//! Labs made by `v6lab up` or a controller are realized by them; the operator only ends them.

use super::cluster::{
    ANNOTATION_EXPIRES, ANNOTATION_MADE_BY, ANNOTATION_NODES, ANNOTATION_TOPOLOGY,
    ANNOTATION_TOPOLOGY_HASH, Kubernetes, OWNER_KUBECTL, expires_at,
};
use super::crd::{Lab, LabPhase};
use crate::from_plan::{Apply, lab_spec};
use crate::runtime::{Error, NoopObserver};
use kube::api::{Api, Patch, PatchParams};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the Labs are looked at.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// Lifetime of a Lab that names none and whose topology names none either.
const DEFAULT_LIFETIME: u64 = 4 * 3600;

/// What the operator decides for one Lab (pure: [`decide`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Past its expiry: remove it.
    Expire,
    /// Applied with kubectl, not made yet (or left half-made): make it.
    Realize,
    /// Being made here, or made, or someone else's.
    Leave,
}

/// What to do with `lab` at `now`; `busy`: the operator is making it already.
pub fn decide(lab: &Lab, now: u64, busy: bool) -> Decision {
    if expires_at(lab).is_some_and(|e| e <= now) {
        return Decision::Expire;
    }
    let applied = lab.spec.owner == OWNER_KUBECTL
        && !lab
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(ANNOTATION_MADE_BY));
    let phase = lab.status.as_ref().and_then(|s| s.phase);
    match phase {
        _ if !applied || busy || lab.metadata.deletion_timestamp.is_some() => Decision::Leave,
        None | Some(LabPhase::Pending) | Some(LabPhase::Creating) => Decision::Realize,
        _ => Decision::Leave,
    }
}

/// The operator of one namespace.
pub struct Operator {
    rt: Kubernetes,
    /// The lab image nodes run.
    image: String,
    /// The longest lifetime a Lab may have (seconds).
    max_lifetime: u64,
    /// Labs being made or removed here, with what cancels their making.
    busy: Mutex<BTreeMap<String, CancellationToken>>,
    /// When each Lab was last finished here: the watched Labs may lag behind a status just
    /// written, and a Lab just made must not look half-made.
    finished: Mutex<BTreeMap<String, std::time::Instant>>,
}

/// How long after finishing a Lab its watched status is not trusted to say "half-made".
const SETTLE: Duration = Duration::from_secs(10);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Operator {
    pub fn new(rt: Kubernetes, image: String, max_lifetime: u64) -> Arc<Self> {
        Arc::new(Operator {
            rt,
            image,
            max_lifetime,
            busy: Mutex::new(BTreeMap::new()),
            finished: Mutex::new(BTreeMap::new()),
        })
    }

    fn labs(&self) -> Api<Lab> {
        Api::namespaced(self.rt.client().clone(), self.rt.namespace())
    }

    /// Runs until `stop` fires.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            if let Err(e) = self.clone().pass().await {
                tracing::warn!(error = %e, "Lab operator pass");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(INTERVAL) => {}
            }
        }
    }

    /// One look at every Lab; what it starts runs in the background.
    pub async fn pass(self: Arc<Self>) -> Result<(), Error> {
        let labs: Vec<Lab> = self
            .rt
            .cache()
            .await?
            .labs
            .state()
            .iter()
            .map(|l| (**l).clone())
            .collect();
        let now = now();
        self.finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, t| t.elapsed() < SETTLE);
        let names: Vec<String> = labs
            .iter()
            .filter_map(|l| l.metadata.name.clone())
            .collect();
        {
            // A Lab deleted while being made stops being made.
            let busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            for (lab, token) in busy.iter() {
                if !names.contains(lab) {
                    token.cancel();
                }
            }
        }
        for lab in labs {
            let Some(name) = lab.metadata.name.clone() else {
                continue;
            };
            let settling = self
                .finished
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&name)
                .is_some_and(|t| t.elapsed() < SETTLE);
            let busy = settling
                || self
                    .busy
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains_key(&name);
            let decision = decide(&lab, now, busy);
            if decision == Decision::Leave || (decision == Decision::Expire && busy) {
                if decision == Decision::Expire {
                    self.cancel(&name);
                } else if lab.status.as_ref().and_then(|s| s.phase) == Some(LabPhase::Ready)
                    && let Err(e) = self.rt.set_left(&lab, now).await
                {
                    tracing::debug!(lab = name, error = %e, "time left");
                }
                continue;
            }
            let token = CancellationToken::new();
            self.busy
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone(), token.clone());
            let me = self.clone();
            tokio::spawn(async move {
                match decision {
                    Decision::Expire => {
                        tracing::info!(lab = name, "lab expired; removing it");
                        if let Err(e) = me.rt.down(&name).await {
                            tracing::warn!(lab = name, error = %e, "removing an expired lab");
                        }
                    }
                    _ => me.make(lab, &token).await,
                }
                me.finished
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.clone(), std::time::Instant::now());
                me.busy
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&name);
            });
        }
        Ok(())
    }

    fn cancel(&self, lab: &str) {
        if let Some(t) = self.busy.lock().unwrap_or_else(|p| p.into_inner()).get(lab) {
            t.cancel();
        }
    }

    /// Plans and realizes a Lab applied with kubectl; on failure, its status says why and
    /// nothing it owned is left.
    async fn make(&self, lab: Lab, cancel: &CancellationToken) {
        let name = lab.metadata.name.clone().unwrap_or_default();
        // Claimed first, on the version of the Lab this operator saw: of two operators on one
        // namespace, only one makes it (the other's write conflicts).
        let mut claim = lab.clone();
        claim.status = Some(super::crd::LabStatus {
            phase: Some(LabPhase::Creating),
            ..lab.status.clone().unwrap_or_default()
        });
        match self
            .labs()
            .replace_status(&name, &kube::api::PostParams::default(), &claim)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::debug!(lab = name, "made by another operator");
                return;
            }
            Err(e) => {
                tracing::warn!(lab = name, error = %e, "claiming a Lab");
                return;
            }
        }
        // What an earlier, interrupted making left.
        if let Err(e) = self.rt.delete_owned(&name).await {
            tracing::warn!(lab = name, error = %e, "clearing a half-made lab");
            return;
        }
        let result = match self.plan(&lab) {
            Ok((spec, annotations)) => {
                let patch = serde_json::json!({"metadata": {"annotations": annotations}});
                if let Err(e) = self
                    .labs()
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::warn!(lab = name, error = %e, "annotating a Lab");
                }
                self.rt.realize(&lab, &spec, &NoopObserver, cancel).await
            }
            Err(message) => self.rt.fail(&name, "InvalidTopology", &message).await,
        };
        match result {
            Ok(()) => tracing::info!(lab = name, "lab ready"),
            Err(e) => {
                tracing::warn!(lab = name, error = %e, "lab failed");
                if let Err(e) = self.rt.delete_owned(&name).await {
                    tracing::warn!(lab = name, error = %e, "removing a failed lab's objects");
                }
            }
        }
    }

    /// The lab spec of a Lab and the annotations that describe it, or why there is none.
    fn plan(&self, lab: &Lab) -> Result<(crate::spec::LabSpec, BTreeMap<String, String>), String> {
        let name = lab.metadata.name.clone().unwrap_or_default();
        if let Some(p) = v6lab_core::values::dns_label_problem(&name, 40) {
            return Err(format!("the Lab's name `{name}` cannot name a lab: {p}"));
        }
        let file = format!(
            "Lab {}/{name} (spec.topology)",
            lab.metadata.namespace.as_deref().unwrap_or_default()
        );
        let (src, plan) = v6lab_core::plan_source(&file, lab.spec.topology.as_bytes())
            .map_err(|(src, d)| d.render(&src.text))?;
        let created = lab
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| u64::try_from(t.0.as_second()).ok())
            .unwrap_or_else(now);
        let lifetime = lab
            .spec
            .lifetime_seconds
            .or(Some(plan.lifetime_secs).filter(|l| *l > 0))
            .unwrap_or(DEFAULT_LIFETIME);
        if lifetime > self.max_lifetime {
            return Err(format!(
                "spec.lifetimeSeconds {lifetime} is longer than this cluster allows ({}): ask for less",
                self.max_lifetime
            ));
        }
        let expires = created + lifetime;
        let apply = if lab.spec.complete {
            Apply::Complete
        } else {
            Apply::Exercises
        };
        let mut spec = lab_spec(&plan, &src.text, &name, &self.image, Some(expires), apply);
        spec.owner = OWNER_KUBECTL.to_string();
        let annotations = BTreeMap::from([
            (ANNOTATION_TOPOLOGY.to_string(), spec.topology.clone()),
            (
                ANNOTATION_TOPOLOGY_HASH.to_string(),
                spec.topology_hash.clone(),
            ),
            (ANNOTATION_NODES.to_string(), spec.node_count.to_string()),
            (ANNOTATION_EXPIRES.to_string(), expires.to_string()),
        ]);
        Ok((spec, annotations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::crd::{LabResourceSpec, LabStatus};

    fn lab(owner: &str, phase: Option<LabPhase>, expires: Option<u64>, made: bool) -> Lab {
        let mut l = Lab::new(
            "l",
            LabResourceSpec {
                topology: String::new(),
                lifetime_seconds: None,
                owner: owner.into(),
                complete: false,
            },
        );
        let mut a = BTreeMap::new();
        if let Some(e) = expires {
            a.insert(ANNOTATION_EXPIRES.to_string(), e.to_string());
        }
        if made {
            a.insert(ANNOTATION_MADE_BY.to_string(), "v6lab".to_string());
        }
        l.metadata.annotations = Some(a);
        l.status = phase.map(|p| LabStatus {
            phase: Some(p),
            ..Default::default()
        });
        l
    }

    #[test]
    fn applied_labs_are_made_once_and_every_lab_ends_at_its_expiry() {
        use Decision::*;
        let k = OWNER_KUBECTL;
        assert_eq!(decide(&lab(k, None, Some(100), false), 50, false), Realize);
        assert_eq!(decide(&lab(k, None, Some(100), false), 50, true), Leave);
        assert_eq!(
            decide(&lab(k, Some(LabPhase::Creating), None, false), 50, false),
            Realize
        );
        assert_eq!(
            decide(&lab(k, Some(LabPhase::Ready), None, false), 50, false),
            Leave
        );
        assert_eq!(
            decide(&lab(k, Some(LabPhase::Failed), None, false), 50, false),
            Leave
        );
        // Made by `v6lab up` or a controller: only its end is the operator's.
        assert_eq!(decide(&lab("cli", None, Some(100), true), 50, false), Leave);
        assert_eq!(
            decide(
                &lab("cli", Some(LabPhase::Ready), Some(100), true),
                100,
                false
            ),
            Expire
        );
        assert_eq!(
            decide(&lab(k, Some(LabPhase::Creating), Some(10), false), 50, true),
            Expire
        );
    }
}
