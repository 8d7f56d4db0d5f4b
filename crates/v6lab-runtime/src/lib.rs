//! Runtimes realize a [`spec::LabSpec`] on a container engine and find it again by label.
//!
//! The spec is pure data derived from a plan ([`from_plan`]); [`runtime::Runtime`] is what
//! the rest of v6lab asks of an engine. The Docker runtime ([`docker::Docker`], with its
//! netlink, image and firewall code under `docker/`) is a thin shell: it creates what the spec
//! says, labels every object and removes every object it can find by label or name prefix.
//! Only `docker/` talks to the Docker engine. [`fake::Fake`] is a runtime in memory for tests.

pub mod choice;
pub mod docker;
pub mod exercise;
pub mod fake;
pub mod from_plan;
pub mod image;
pub mod kubernetes;
pub mod names;
mod readiness;
pub mod runtime;
pub mod spec;
