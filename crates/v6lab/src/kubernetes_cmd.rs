//! `v6lab kubernetes`: what the Kubernetes runtime needs installed in a cluster.

use anyhow::Result;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum KubernetesCommand {
    /// Print the CustomResourceDefinition of `Lab` (labs.v6lab.dev) as YAML, for
    /// `kubectl apply -f -` (deploy/kubernetes/crd.yaml holds the same).
    Crd,
}

pub fn run(command: KubernetesCommand) -> Result<ExitCode> {
    match command {
        KubernetesCommand::Crd => print!("{}", v6lab_runtime::kubernetes::crd_yaml()),
    }
    Ok(ExitCode::SUCCESS)
}
