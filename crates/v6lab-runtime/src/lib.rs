//! Runtimes realize a [`spec::LabSpec`] on a container engine and find it again by label.
//!
//! The spec is pure data derived from a plan ([`from_plan`]); the Docker runtime
//! ([`docker::Docker`]) is a thin shell: it creates what the spec says, labels every object
//! and removes every object it can find by label or name prefix.

pub mod docker;
pub mod exercise;
pub mod fake;
pub mod from_plan;
pub mod images;
pub mod names;
pub mod netlink;
pub mod runtime;
pub mod spec;
