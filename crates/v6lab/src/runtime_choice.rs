//! The runtime every command uses, chosen once at start (`--runtime`, `--namespace`).

use anyhow::{Context, Result};
use std::sync::Arc;
use v6lab_runtime::choice::{RuntimeChoice, connect_to};
use v6lab_runtime::runtime::Runtime;

static RUNTIME: std::sync::OnceLock<RuntimeChoice> = std::sync::OnceLock::new();

/// Sets the runtime every command uses (`--runtime`, once, at start).
pub fn choose_runtime(choice: RuntimeChoice) {
    let _ = RUNTIME.set(choice);
}

/// The runtime chosen with `--runtime` (Docker unless told).
pub fn runtime_choice() -> RuntimeChoice {
    RUNTIME.get().cloned().unwrap_or(RuntimeChoice::Docker)
}

pub async fn connect() -> Result<Arc<dyn Runtime>> {
    let choice = runtime_choice();
    connect_to(&choice).await.context(choice.hint())
}
