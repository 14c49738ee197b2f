//! Configuration of the runner.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How instances are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sandbox {
    /// bubblewrap when installed, else plain processes (with a warning).
    Auto,
    /// bubblewrap; start-up fails without it.
    Bubblewrap,
    /// gVisor (`runsc`): a user-space kernel between instances and the host; start-up fails
    /// without it.
    Gvisor,
    /// Plain processes: no isolation. For development machines only.
    None,
}

/// A sandbox a function or container may ask for by name (`sandbox` in v1beta1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxKind {
    /// bubblewrap (`bwrap`): Scaleway's "sandbox v1", the host kernel's full syscall interface
    /// behind namespaces and a syscall filter.
    Bubblewrap,
    /// gVisor (`runsc`): Scaleway's "sandbox v2", a user-space kernel between the instance and
    /// the host.
    Gvisor,
}

impl SandboxKind {
    /// Every kind, the one `auto` prefers first.
    pub const ALL: [Self; 2] = [Self::Bubblewrap, Self::Gvisor];

    /// Returns its name in `nuage.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bubblewrap => "bubblewrap",
            Self::Gvisor => "gvisor",
        }
    }

    /// Returns the program it runs.
    pub fn program(self) -> &'static str {
        match self {
            Self::Bubblewrap => "bwrap",
            Self::Gvisor => "runsc",
        }
    }

    /// Returns Scaleway's name of it: `v1` or `v2`.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::Bubblewrap => "v1",
            Self::Gvisor => "v2",
        }
    }

    /// Returns the kind a spec names, `None` for the default.
    pub fn from_proto(sandbox: nuage_proto::common::v1::Sandbox) -> Option<Self> {
        use nuage_proto::common::v1::Sandbox;
        match sandbox {
            Sandbox::Unspecified => None,
            Sandbox::V1 => Some(Self::Bubblewrap),
            Sandbox::V2 => Some(Self::Gvisor),
        }
    }
}

/// What an instance can reach beyond its own loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Egress {
    /// Nothing: the instance's namespace has no route at all.
    None,
    /// Public addresses, through a user-mode network stack (`pasta`); the host's loopback and
    /// addresses, its networks, link-local and private ranges stay unreachable.
    Public,
}

/// The `[runner]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunnerConfig {
    /// Where instances run: `local` (sandboxed processes on this machine) or `kubernetes`
    /// (pods of a cluster: see `[runner.kubernetes]`).
    pub backend: String,
    /// How local instances are isolated when their function or container asks for no
    /// sandbox of its own.
    pub sandbox: Sandbox,
    /// The sandboxes a function or container may ask for (`v1`: `bubblewrap`, `v2`: `gvisor`);
    /// one not listed is refused. Unset: those installed (none with `sandbox = "none"`). Each
    /// listed must be installed, and `sandbox`, when it names one, must be listed.
    pub sandboxes: Option<Vec<SandboxKind>>,
    /// Where images are unpacked; default `<data-dir>/runner`.
    pub work_dir: Option<PathBuf>,
    /// The OCI image layouts the builder writes; default `<data-dir>/registry` (the builder's).
    pub registry_dir: Option<PathBuf>,
    /// The host of the installation's own registry, whose images are those layouts (set by
    /// the process from `namespaces.registry_host`, not read from the file): an image of any
    /// other host is pulled from that host, never read from a layout of the same path.
    #[serde(skip)]
    pub registry_host: Option<String>,
    /// Speak plain HTTP to the installation's registry and to those of `tenant_registries` (a
    /// registry on loopback); any other is spoken to over HTTPS.
    pub registry_insecure: bool,
    /// Registries (`host[:port]`) a tenant's image may name although their addresses are not
    /// public: a registry of the operator's on a private network. Any other registry but the
    /// installation's own must resolve to public addresses only, none of them the
    /// installation's registry's: the runner never pulls from the platform's loopback or
    /// private network on a tenant's word.
    pub tenant_registries: Vec<String>,
    /// How long a registry may keep a pull waiting (ms): to open a connection (a fifth of it)
    /// or between two reads. Past it, the start fails saying so.
    pub registry_timeout_ms: u64,
    /// Seconds an instance has to answer on its port before it counts as failed.
    pub start_timeout_seconds: u64,
    /// Cap memory with cgroups when they are writable.
    pub memory_limits: bool,
    /// Lines a second (and burst) of one instance's stdout, and as many of its stderr, shipped
    /// to the logs service; more are dropped and counted, so that a flood cannot crowd out
    /// other applications' lines.
    pub log_lines_per_second: u32,
    /// The unprivileged host user and group instances run as (never root).
    pub instance_uid: u32,
    /// See `instance_uid`.
    pub instance_gid: u32,
    /// Processes and threads one instance may run at once (cgroup `pids.max`).
    pub max_processes: u32,
    /// Files one instance may hold open.
    pub max_open_files: u32,
    /// What instances can reach beyond their own loopback.
    pub egress: Egress,
    /// The cluster instances run in with `backend = "kubernetes"`.
    pub kubernetes: KubernetesConfig,
}

/// The `[runner.kubernetes]` section: the cluster the `kubernetes` backend runs instances in,
/// and what it needs to know of it to isolate them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// A kubeconfig file to reach the cluster with; unset: the pod's own service account when
    /// the runner runs in the cluster, else `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Prepended to a tenant namespace's id to name its Kubernetes namespace (lowercase
    /// letters, digits and `-`, starting with a letter, at most 26 characters so that the name
    /// keeps the whole id). Installations sharing a cluster need prefixes of their own: the
    /// runner removes what it finds under its prefix that its installation does not run.
    /// deploy/'s admission policies (`admission.yaml`) admit the runner's namespaces by this
    /// prefix (`nuage-`): change both together.
    pub namespace_prefix: String,
    /// The Kubernetes namespace nuage's own pods (the router among them) run in: the only
    /// one whose pods may open connections to instances, and where `pull_secret` is read.
    pub system_namespace: String,
    /// The runner's own ServiceAccount, in `system_namespace`. In each tenant namespace it
    /// makes, right after the namespace, the runner binds `tenant_role` to this account with a
    /// RoleBinding of the same name: every namespaced right it has comes from there
    /// (`deploy/kubernetes/base/rbac.yaml`, whose admission policies admit that binding only).
    pub service_account: String,
    /// The ClusterRole holding the runner's rights inside a tenant namespace, which it may
    /// bind there (and no other).
    pub tenant_role: String,
    /// The labels of the router's pods in `system_namespace`: only they may open connections
    /// to instances.
    pub router_pod_labels: BTreeMap<String, String>,
    /// The RuntimeClass that runs pods in gVisor (`runsc`): Scaleway's "sandbox v2". Unset:
    /// sandbox v2 is not offered, and a function or container asking for it does not start.
    pub gvisor_runtime_class: Option<String>,
    /// A `kubernetes.io/dockerconfigjson` Secret in `system_namespace` holding what pulls the
    /// images; copied into each tenant's Kubernetes namespace and named by its pods.
    pub pull_secret: Option<String>,
    /// The cluster's own ranges (pods, services, nodes) that instances may never reach, beyond
    /// the private, loopback, link-local and shared ranges, which are always refused
    /// (`10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `169.254.0.0/16`, `100.64.0.0/10`,
    /// `127.0.0.0/8`, and `fc00::/7`, `fe80::/10`, `::1/128`).
    pub cluster_cidrs: Vec<String>,
    /// The namespace of the cluster's DNS service, which instances may ask with
    /// `runner.egress = "public"` (they reach nothing else of the cluster).
    pub dns_namespace: String,
    /// The labels of the cluster DNS service's pods.
    pub dns_pod_labels: BTreeMap<String, String>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            namespace_prefix: "nuage-".to_owned(),
            system_namespace: "nuage".to_owned(),
            service_account: "nuage-runner".to_owned(),
            tenant_role: "nuage-runner-tenant".to_owned(),
            router_pod_labels: BTreeMap::from([
                ("app.kubernetes.io/name".to_owned(), "nuage".to_owned()),
                ("app.kubernetes.io/component".to_owned(), "router".to_owned()),
            ]),
            gvisor_runtime_class: None,
            pull_secret: None,
            cluster_cidrs: Vec::new(),
            dns_namespace: "kube-system".to_owned(),
            dns_pod_labels: BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())]),
        }
    }
}

impl KubernetesConfig {
    /// Returns a description of the first invalid setting, if any.
    pub fn validate(&self) -> Result<(), String> {
        let prefix = &self.namespace_prefix;
        let valid_prefix = prefix.len() <= 26
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_prefix {
            return Err(format!(
                "runner.kubernetes.namespace_prefix `{prefix}` must be lowercase letters, digits and `-`, \
                 start with a letter and be at most 26 characters"
            ));
        }
        for (key, name) in [
            ("system_namespace", &self.system_namespace),
            ("service_account", &self.service_account),
            ("tenant_role", &self.tenant_role),
        ] {
            let valid = (1..=63).contains(&name.len())
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                return Err(format!(
                    "runner.kubernetes.{key} `{name}` must be a Kubernetes name: lowercase letters, digits and \
                     `-`, at most 63 characters, starting and ending with a letter or digit"
                ));
            }
        }
        if self.router_pod_labels.is_empty() {
            return Err("runner.kubernetes.router_pod_labels must name at least one label".to_owned());
        }
        for cidr in &self.cluster_cidrs {
            crate::cidr::Cidr::parse(cidr).map_err(|why| format!("runner.kubernetes.cluster_cidrs: `{cidr}` {why}"))?;
        }
        Ok(())
    }
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            backend: "local".to_owned(),
            sandbox: Sandbox::Auto,
            sandboxes: None,
            work_dir: None,
            registry_dir: None,
            registry_host: None,
            registry_insecure: false,
            tenant_registries: Vec::new(),
            registry_timeout_ms: 30_000,
            start_timeout_seconds: 30,
            memory_limits: true,
            log_lines_per_second: 2000,
            instance_uid: 100_000,
            instance_gid: 100_000,
            max_processes: 256,
            max_open_files: 1024,
            egress: Egress::None,
            kubernetes: KubernetesConfig::default(),
        }
    }
}

impl RunnerConfig {
    /// Returns a description of the first invalid setting, if any.
    pub fn validate(&self) -> Result<(), String> {
        match self.backend.as_str() {
            "local" => {}
            "kubernetes" => self.kubernetes.validate()?,
            other => return Err(format!("runner.backend `{other}` is unknown: `local` or `kubernetes`")),
        }
        let Some(listed) = &self.sandboxes else {
            return Ok(());
        };
        let chosen = match self.sandbox {
            Sandbox::None if !listed.is_empty() => {
                return Err(
                    "runner.sandboxes must be empty with runner.sandbox = \"none\": instances run unsandboxed"
                        .to_owned(),
                );
            }
            Sandbox::Bubblewrap => SandboxKind::Bubblewrap,
            Sandbox::Gvisor => SandboxKind::Gvisor,
            Sandbox::Auto | Sandbox::None => return Ok(()),
        };
        if listed.contains(&chosen) {
            Ok(())
        } else {
            Err(format!(
                "runner.sandboxes must list `{}`, the default runner.sandbox",
                chosen.name()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubernetes(section: serde_json::Value) -> Result<RunnerConfig, serde_json::Error> {
        serde_json::from_value(serde_json::json!({"backend": "kubernetes", "kubernetes": section}))
    }

    #[test]
    fn the_kubernetes_section_is_read_and_checked() {
        let config = kubernetes(serde_json::json!({
            "namespace_prefix": "tenant-",
            "gvisor_runtime_class": "gvisor",
            "cluster_cidrs": ["10.96.0.0/12", "fd00:10::/64"],
        }))
        .unwrap();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.kubernetes.namespace_prefix, "tenant-");
        assert_eq!(config.kubernetes.system_namespace, "nuage", "defaults stay");
        assert_eq!(config.kubernetes.service_account, "nuage-runner");
        assert_eq!(config.kubernetes.tenant_role, "nuage-runner-tenant");

        let unknown = kubernetes(serde_json::json!({"namespace": "x"})).unwrap_err();
        assert!(unknown.to_string().contains("unknown field `namespace`"), "{unknown}");

        for (section, complaint) in [
            (
                serde_json::json!({"namespace_prefix": "Nuage-"}),
                "namespace_prefix `Nuage-`",
            ),
            (serde_json::json!({"namespace_prefix": "a".repeat(27)}), "at most 26"),
            (serde_json::json!({"router_pod_labels": {}}), "router_pod_labels"),
            (
                serde_json::json!({"service_account": "Runner"}),
                "runner.kubernetes.service_account `Runner` must be a Kubernetes name",
            ),
            (
                serde_json::json!({"tenant_role": ""}),
                "runner.kubernetes.tenant_role ``",
            ),
            (
                serde_json::json!({"system_namespace": "nuage-"}),
                "system_namespace `nuage-`",
            ),
            (
                serde_json::json!({"cluster_cidrs": ["10.96.0.0"]}),
                "`10.96.0.0` is not a range",
            ),
        ] {
            let error = kubernetes(section).unwrap().validate().unwrap_err();
            assert!(error.contains(complaint), "{error}");
        }
        let other = RunnerConfig {
            backend: "nomad".to_owned(),
            ..RunnerConfig::default()
        };
        assert!(
            other
                .validate()
                .unwrap_err()
                .contains("runner.backend `nomad` is unknown")
        );
    }
}
