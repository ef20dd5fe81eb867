//! The Kubernetes components a benchmark examines.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node component whose command line and files the checks read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// kube-apiserver.
    Apiserver,
    /// kube-controller-manager.
    ControllerManager,
    /// kube-scheduler.
    Scheduler,
    /// etcd.
    Etcd,
    /// The kubelet.
    Kubelet,
    /// kube-proxy.
    Proxy,
}

impl Component {
    /// Every component.
    pub const ALL: [Component; 6] = [
        Component::Apiserver,
        Component::ControllerManager,
        Component::Scheduler,
        Component::Etcd,
        Component::Kubelet,
        Component::Proxy,
    ];

    /// The name used in benchmark files (`apiserver`, `controller-manager`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Component::Apiserver => "apiserver",
            Component::ControllerManager => "controller-manager",
            Component::Scheduler => "scheduler",
            Component::Etcd => "etcd",
            Component::Kubelet => "kubelet",
            Component::Proxy => "proxy",
        }
    }

    /// The executable's name.
    pub fn binary(self) -> &'static str {
        match self {
            Component::Apiserver => "kube-apiserver",
            Component::ControllerManager => "kube-controller-manager",
            Component::Scheduler => "kube-scheduler",
            Component::Etcd => "etcd",
            Component::Kubelet => "kubelet",
            Component::Proxy => "kube-proxy",
        }
    }

    /// The component whose executable (or hyperkube sub-command) is `name`.
    pub fn from_binary(name: &str) -> Option<Component> {
        let base = name.rsplit('/').next().unwrap_or(name);
        Component::ALL.into_iter().find(|c| c.binary() == base)
    }

    /// Components that may legitimately be absent from a node of their role
    /// (kube-proxy often runs as a DaemonSet, not from the node's disk).
    pub fn optional(self) -> bool {
        matches!(self, Component::Proxy)
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.binary())
    }
}
