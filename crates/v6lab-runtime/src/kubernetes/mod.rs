//! The Kubernetes runtime. Its pure core: the `Lab` custom resource ([`crd`]), object names
//! ([`names`]) and the rendering of a [`crate::spec::LabSpec`] into pods, ConfigMaps and the
//! set-up commands of each pod ([`render`](mod@render)), with no IO. Its shell, the only code
//! that talks to an API server: the runtime ([`cluster`]), commands in pods ([`exec`]) and the
//! Lab operator ([`operator`]).
//!
//! The design (what a lab becomes, segments as VXLAN spokes to a switch pod, every difference
//! from Docker) is in docs/kubernetes.md, "Design".

pub mod cluster;
pub mod crd;
pub mod exec;
pub mod names;
pub mod operator;
pub mod render;

pub use cluster::{DEFAULT_NAMESPACE, Kubernetes};
pub use crd::{Lab, LabResourceSpec, LabStatus, crd_yaml};
pub use operator::Operator;
pub use render::{Network, RenderError, Rendered, render};

#[cfg(test)]
mod tests;
