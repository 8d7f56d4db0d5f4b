//! Which runtime realizes labs (`--runtime`), and connecting to it: the one place that names
//! every runtime, above them all.

use crate::runtime::{Error, Runtime};
use std::sync::Arc;

/// The runtime of this host: the Docker engine (`DOCKER_HOST` or `/var/run/docker.sock`).
pub async fn connect() -> Result<Arc<dyn Runtime>, Error> {
    connect_to(&RuntimeChoice::Docker).await
}

/// Which runtime realizes labs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeChoice {
    /// This host's Docker engine.
    Docker,
    /// A Kubernetes cluster (the usual kubeconfig, or the cluster a pod runs in): labs go to
    /// `namespace`.
    Kubernetes { namespace: String },
}

impl RuntimeChoice {
    /// The largest segment MTU labs of this runtime can have (the plan's cap).
    pub fn segment_mtu(&self) -> Option<u32> {
        match self {
            RuntimeChoice::Docker => None,
            RuntimeChoice::Kubernetes { .. } => {
                Some(crate::kubernetes::render::Network::configured().segment_mtu_max())
            }
        }
    }

    /// What to check when connecting fails.
    pub fn hint(&self) -> &'static str {
        match self {
            RuntimeChoice::Docker => {
                "is the Docker engine running? `bash deploy/setup.sh` installs and starts it"
            }
            RuntimeChoice::Kubernetes { .. } => {
                "is the cluster reachable? v6lab reads KUBECONFIG, ~/.kube/config, or the pod's \
                 service account; `kubectl version` must work with the same settings"
            }
        }
    }
}

/// Connects to the chosen runtime.
pub async fn connect_to(choice: &RuntimeChoice) -> Result<Arc<dyn Runtime>, Error> {
    Ok(match choice {
        RuntimeChoice::Docker => Arc::new(crate::docker::Docker::connect().await?),
        RuntimeChoice::Kubernetes { namespace } => {
            Arc::new(crate::kubernetes::Kubernetes::connect(namespace).await?)
        }
    })
}
