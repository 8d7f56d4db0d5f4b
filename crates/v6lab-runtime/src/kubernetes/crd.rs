//! The `Lab` custom resource (`labs.v6lab.dev`, `v1alpha1`): one running copy of a topology.
//!
//! The spec is what is wanted (the topology text, its lifetime, who manages it); the status is what
//! the runtime made of it (phase, each node's pod and addresses, each segment's VNI, expiry).

use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A lab: the topology (YAML text) to realize, for how long, and for whom.
#[derive(CustomResource, Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "v6lab.dev",
    version = "v1alpha1",
    kind = "Lab",
    plural = "labs",
    shortname = "v6l",
    namespaced,
    status = "LabStatus",
    doc = "A v6lab lab: one running copy of a topology, its pods and segments.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Nodes","type":"string","jsonPath":".status.ready"}"#,
    printcolumn = r#"{"name":"Left","type":"string","jsonPath":".status.left"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","priority":1,"jsonPath":".status.expires"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LabResourceSpec {
    /// The topology source (YAML), as `v6lab validate` reads it.
    pub topology: String,
    /// Seconds the lab lives after it is created; absent: until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_seconds: Option<u64>,
    /// Who manages the lab: `kubectl` (the default: the Lab operator makes it), or `cli` and
    /// `controller-...` for labs made by `v6lab up` and a controller.
    #[serde(default = "kubectl")]
    pub owner: String,
    /// Apply every part, the exercises solved (a trainer's reference lab), instead of leaving
    /// the exercises' parts to the student.
    #[serde(default)]
    pub complete: bool,
}

fn kubectl() -> String {
    "kubectl".to_string()
}

/// Where a lab is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LabPhase {
    /// Accepted, nothing created yet.
    Pending,
    /// Pods and segments being created.
    Creating,
    /// Every node is ready.
    Ready,
    /// Creation failed; see the conditions.
    Failed,
    /// Past its expiry, being removed.
    Expired,
}

/// What the runtime made of a lab.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<LabPhase>,
    /// Ready nodes out of all, `2/3` (for `kubectl get labs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    #[serde(default)]
    pub nodes: Vec<NodeStatus>,
    #[serde(default)]
    pub segments: Vec<SegmentStatus>,
    /// When the lab expires (RFC 3339), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Time left before the lab expires (`2h15m`, `40s`), kept to the minute by the Lab
    /// operator (for `kubectl get labs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<String>,
    #[serde(default)]
    pub conditions: Vec<LabCondition>,
}

/// One node of a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The node's name in the topology.
    pub name: String,
    /// Its pod's name.
    pub pod: String,
    /// Its lab addresses (`interface address/len`), as planned.
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// One segment of a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentStatus {
    pub name: String,
    /// Its switch pod's name.
    pub switch: String,
    /// First VNI of the segment's block: member number `m` uses `vni + m`.
    pub vni: u32,
}

/// A condition in the Kubernetes style (`type`, `status`, `reason`, `message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// The CustomResourceDefinition of [`Lab`] as YAML (what `v6lab kubernetes crd` prints and
/// `deploy/kubernetes/crd.yaml` holds).
pub fn crd_yaml() -> String {
    serde_saphyr::to_string(&Lab::crd()).expect("a CRD always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crd_matches_the_generated_one() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/kubernetes/crd.yaml"
        );
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == crd_yaml(),
            "deploy/kubernetes/crd.yaml is stale: run `v6lab kubernetes crd > deploy/kubernetes/crd.yaml`"
        );
    }

    #[test]
    fn crd_names_group_scope_and_columns() {
        let crd = Lab::crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("labs.v6lab.dev"));
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, "Lab");
        assert_eq!(crd.spec.names.short_names, Some(vec!["v6l".to_string()]));
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        let cols: Vec<_> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(cols, ["Phase", "Nodes", "Left", "Expires", "Age"]);
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let yaml = crd_yaml();
        // apiextensions v1 on Kubernetes 1.20 rejects or drops these; the schema must not need them.
        assert!(!yaml.contains("x-kubernetes-validations"));
        assert!(!yaml.contains("$ref"));
    }

    #[test]
    fn a_lab_round_trips_through_json() {
        let lab = Lab::new(
            "l1",
            LabResourceSpec {
                topology: "name: t\n".into(),
                lifetime_seconds: Some(3600),
                owner: "controller".into(),
                complete: false,
            },
        );
        let json = serde_json::to_value(&lab).unwrap();
        assert_eq!(json["apiVersion"], "v6lab.dev/v1alpha1");
        assert_eq!(json["spec"]["lifetimeSeconds"], 3600);
        let back: Lab = serde_json::from_value(json).unwrap();
        assert_eq!(back.spec, lab.spec);
    }
}
