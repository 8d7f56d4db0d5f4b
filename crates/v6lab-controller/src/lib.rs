//! The v6lab controller (`v6lab serve`): desired labs in a store, kept equal to the runtime by a
//! reconcile loop; classes of student labs with lifetimes; tokens; events; an HTTP API.

pub mod access;
pub mod api;
pub mod api_types;
pub mod auth;
pub mod controller;
pub mod metrics;
pub mod reconcile;
pub mod ssh;
pub mod store;
pub mod tls;
pub mod variation;
pub mod web;
