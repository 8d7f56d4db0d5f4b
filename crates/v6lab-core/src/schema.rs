//! The topology's JSON Schema, generated from its types (`v6lab schema`).

use crate::topology::Topology;
use serde_json::Value;
use std::sync::OnceLock;

/// The JSON Schema (draft 2020-12) of topology files.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut s = schemars::schema_for!(Topology).to_value();
        if let Some(o) = s.as_object_mut() {
            o.insert(
                "$id".into(),
                Value::String("https://v6lab.dev/schema/topology.json".into()),
            );
        }
        s
    })
}
