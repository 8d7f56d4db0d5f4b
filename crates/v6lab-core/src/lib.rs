//! The pure core of v6lab: the topology language, its validation, the address plan and the
//! files rendered for each node. Nothing here does IO (beyond what callers hand in) or async.
//!
//! Pipeline: bytes -> [`load::parse`] (encoding, YAML, shape) -> [`build`] (references,
//! families, prefixes, addresses, routes, rendered files) -> a [`plan::Plan`].

pub mod check;
pub mod diagnostic;
pub mod graph;
pub mod load;
pub mod pipeline;
pub mod plan;
pub mod policy;
pub mod render;
pub mod report;
pub mod schema;
pub mod sp;
pub mod structure;
pub mod topology;
pub mod values;
pub mod vary;
pub mod yaml;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use load::Source;
pub use pipeline::{
    build, build_with, plan_source, plan_source_for, plan_source_with, replan, replan_for,
};
pub use plan::Plan;
pub use policy::Policy;
