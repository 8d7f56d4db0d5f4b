//! The Kubernetes runtime's pure core: the `Lab` custom resource ([`crd`]), object names
//! ([`names`]) and the rendering of a [`crate::spec::LabSpec`] into pods, ConfigMaps and the
//! set-up commands of each pod ([`render`](mod@render)). No IO: nothing here talks to an API server.
//!
//! The design (what a lab becomes, segments as VXLAN spokes to a switch pod, every difference
//! from Docker) is in docs/kubernetes.md, "Design".

pub mod crd;
pub mod names;
pub mod render;

pub use crd::{Lab, LabResourceSpec, LabStatus, crd_yaml};
pub use render::{Network, RenderError, Rendered, render};

#[cfg(test)]
mod tests;
