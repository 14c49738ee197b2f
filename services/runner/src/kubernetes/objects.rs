//! The Kubernetes objects of a deployed version, made from its spec and the runner's
//! configuration alone (nothing here speaks to a cluster): the tenant namespace's Namespace,
//! NetworkPolicy and the RoleBinding that gives the runner its rights there, and the version's
//! Secret, Deployment and headless Service.
//!
//! The runner holds no namespaced right cluster-wide: in each tenant namespace it makes, it
//! first binds its tenant role (`runner.kubernetes.tenant_role`) to its own ServiceAccount,
//! the one binding `deploy/kubernetes/base/admission.yaml` lets it make.
//!
//! Pods carry the isolation local instances have: a non-root user, no privilege escalation,
//! every capability dropped, a read-only root with a memory-backed `/tmp` sized as the local
//! one, seccomp's runtime default, no service account token, no service links, gVisor's
//! RuntimeClass for sandbox v2, and memory and CPU capped as the spec says. The namespace
//! enforces the `restricted` Pod Security Standard on top, and its NetworkPolicy admits
//! connections from the router's pods alone and lets instances reach public addresses only
//! (and the cluster's DNS for them) when `runner.egress = "public"`. Secret variables are
//! opened into the version's Secret, which the pods name: never into the Deployment itself.

use super::naming;
use crate::cidr::Cidr;
use crate::config::{Egress, KubernetesConfig, RunnerConfig, SandboxKind};
use crate::error::RunnerError;
use crate::limits::{memory_mb, tmp_bytes};
use crate::offer::Offer;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    LocalObjectReference, Namespace, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, Secret, SecretKeySelector, SecurityContext, Service, ServicePort, ServiceSpec, TCPSocketAction,
    Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use nuage_proto::runner::v1::Spec;
use std::collections::BTreeMap;

/// The port instances listen on when their spec names none (as on Scaleway).
const DEFAULT_PORT: u16 = 8080;
/// The name of an instance's container, and of its port.
const CONTAINER: &str = "instance";
const PORT_NAME: &str = "http";
/// The annotation keeping a version's ids as they are (labels may hold them made to fit).
pub const IDS_ANNOTATION: &str = "nuage.dev/ids";
/// Ranges no instance may reach, whatever the cluster: private, shared (carrier-grade NAT),
/// link-local (cloud metadata services among them) and loopback.
const REFUSED_V4: [&str; 6] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
];
/// The same for IPv6: unique local, link-local and loopback.
const REFUSED_V6: [&str; 3] = ["fc00::/7", "fe80::/10", "::1/128"];

/// The objects of one tenant namespace, shared by its applications' versions.
#[derive(Debug, Clone)]
pub struct NamespaceObjects {
    /// The namespace.
    pub namespace: Namespace,
    /// The runner's rights in it: made right after it, before anything inside it.
    pub role_binding: RoleBinding,
    /// What may reach its pods, and what they may reach.
    pub network_policy: NetworkPolicy,
}

/// The objects of one deployed version.
#[derive(Debug, Clone)]
pub struct VersionObjects {
    /// Its secret variables, opened.
    pub secret: Secret,
    /// Its pods.
    pub deployment: Deployment,
    /// The headless Service whose EndpointSlices list its ready pods.
    pub service: Service,
}

/// Makes objects as the runner's configuration says.
#[derive(Debug, Clone)]
pub struct Objects {
    kubernetes: KubernetesConfig,
    egress: Egress,
    user: (u32, u32),
    registry_host: Option<String>,
    offer: Offer,
    /// Refused ranges, each family's under its own "everything" range.
    refused: (Vec<String>, Vec<String>),
}

/// Returns a selector matching `labels` exactly.
fn matching(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

/// Returns the label every namespace carries with its own name, as a selector of `name`.
fn namespace_named(name: &str) -> LabelSelector {
    matching(BTreeMap::from([(
        "kubernetes.io/metadata.name".to_owned(),
        name.to_owned(),
    )]))
}

/// Returns the port an instance of `spec` listens on.
pub fn port(spec: &Spec) -> u16 {
    match u16::try_from(spec.port) {
        Ok(0) | Err(_) => DEFAULT_PORT,
        Ok(port) => port,
    }
}

/// Returns the secret variables of `spec` opened, each name once (a later one overrides an
/// earlier one: the namespace's, then the application's).
pub fn open_secrets(spec: &Spec, sealing: &[u8; 32]) -> Result<BTreeMap<String, String>, RunnerError> {
    Ok(crate::backend::opened_secrets(spec, sealing)?.into_iter().collect())
}

impl Objects {
    /// Returns the maker of objects as `config` says.
    pub fn new(config: &RunnerConfig) -> Self {
        let offer = Offer::of_cluster(config);
        let cluster: Vec<Cidr> = config
            .kubernetes
            .cluster_cidrs
            .iter()
            .filter_map(|cidr| Cidr::parse(cidr).ok())
            .collect();
        let family = |v4: bool, fixed: &[&str]| -> Vec<String> {
            let mut ranges: Vec<String> = fixed.iter().map(|range| (*range).to_owned()).collect();
            ranges.extend(cluster.iter().filter(|cidr| cidr.is_ipv4() == v4).map(Cidr::to_string));
            ranges
        };
        Self {
            kubernetes: config.kubernetes.clone(),
            egress: config.egress,
            user: (config.instance_uid, config.instance_gid),
            registry_host: config.registry_host.clone(),
            refused: (family(true, &REFUSED_V4), family(false, &REFUSED_V6)),
            offer,
        }
    }

    /// Returns the sandboxes offered: sandbox v1 is the cluster's default runtime, v2 needs
    /// `gvisor_runtime_class`.
    pub fn offer(&self) -> &Offer {
        &self.offer
    }

    /// Returns the Kubernetes namespace instances of `spec` run in, or why it has none (a
    /// version deployed before versions named their namespace).
    pub fn namespace_name(&self, spec: &Spec) -> Result<String, RunnerError> {
        if spec.namespace_id.is_empty() || spec.organization_id.is_empty() {
            return Err(RunnerError::Unplaced(spec.application_id.clone()));
        }
        Ok(naming::namespace(&self.kubernetes.namespace_prefix, &spec.namespace_id))
    }

    /// Returns the objects of the tenant namespace of `spec`.
    pub fn namespace(&self, spec: &Spec) -> Result<NamespaceObjects, RunnerError> {
        let name = self.namespace_name(spec)?;
        let mut labels = naming::namespace_labels(spec);
        // Defence in depth: the API server itself refuses any pod less confined than ours.
        labels.insert("pod-security.kubernetes.io/enforce".to_owned(), "restricted".to_owned());
        labels.insert(
            "pod-security.kubernetes.io/enforce-version".to_owned(),
            "latest".to_owned(),
        );
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let role_binding = self.role_binding(&name);
        let network_policy = NetworkPolicy {
            metadata: ObjectMeta {
                name: Some(naming::NETWORK_POLICY.to_owned()),
                namespace: Some(name),
                labels: Some(naming::namespace_labels(spec)),
                ..ObjectMeta::default()
            },
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(namespace_named(&self.kubernetes.system_namespace)),
                        pod_selector: Some(matching(self.kubernetes.router_pod_labels.clone())),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: None,
                }]),
                egress: Some(self.egress_rules()),
            }),
        };
        Ok(NamespaceObjects {
            namespace,
            role_binding,
            network_policy,
        })
    }

    /// Returns the RoleBinding, in the tenant namespace `namespace`, of the runner's tenant
    /// role to the runner's ServiceAccount: named after that account, it binds that role to
    /// that account alone, as the admission policy `nuage-runner-rolebindings` demands.
    pub fn role_binding(&self, namespace: &str) -> RoleBinding {
        let kubernetes = &self.kubernetes;
        RoleBinding {
            metadata: ObjectMeta {
                name: Some(kubernetes.service_account.clone()),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([(
                    naming::MANAGED_BY.to_owned(),
                    naming::MANAGER.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_owned(),
                kind: "ClusterRole".to_owned(),
                name: kubernetes.tenant_role.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".to_owned(),
                name: kubernetes.service_account.clone(),
                namespace: Some(kubernetes.system_namespace.clone()),
                api_group: None,
            }]),
        }
    }

    /// Nothing without egress; with it, public addresses of either family and the cluster's
    /// DNS (on port 53 only).
    fn egress_rules(&self) -> Vec<NetworkPolicyEgressRule> {
        if self.egress == Egress::None {
            return Vec::new();
        }
        let block = |cidr: &str, except: &[String]| NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.to_owned(),
                except: Some(except.to_vec()),
            }),
            ..NetworkPolicyPeer::default()
        };
        let dns_port = |protocol: &str| NetworkPolicyPort {
            port: Some(IntOrString::Int(53)),
            protocol: Some(protocol.to_owned()),
            end_port: None,
        };
        vec![
            NetworkPolicyEgressRule {
                to: Some(vec![
                    block("0.0.0.0/0", &self.refused.0),
                    block("::/0", &self.refused.1),
                ]),
                ports: None,
            },
            NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    namespace_selector: Some(namespace_named(&self.kubernetes.dns_namespace)),
                    pod_selector: Some(matching(self.kubernetes.dns_pod_labels.clone())),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![dns_port("UDP"), dns_port("TCP")]),
            },
        ]
    }

    /// Returns the copy, in the tenant namespace `namespace`, of the pull secret `source`.
    pub fn pull_secret(&self, source: &Secret, namespace: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: source.metadata.name.clone(),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([(
                    naming::MANAGED_BY.to_owned(),
                    naming::MANAGER.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            type_: source.type_.clone(),
            data: source.data.clone(),
            ..Secret::default()
        }
    }

    /// Returns the image reference pods of `spec` pull: one naming no registry is in the
    /// installation's own.
    pub fn image(&self, spec: &Spec) -> String {
        self.image_reference(&spec.image)
    }

    /// Returns `image` with the installation's registry when it names none.
    pub fn image_reference(&self, image: &str) -> String {
        let (repository, _) = crate::images::split_reference(image);
        match (nuage_core::ids::repository_host(repository).0, &self.registry_host) {
            (None, Some(host)) => format!("{host}/{image}"),
            _ => image.to_owned(),
        }
    }

    /// Returns the RuntimeClass pods of `spec` run with, or why the sandbox it asks for is
    /// not offered: never a weaker one instead.
    pub fn runtime_class(&self, spec: &Spec) -> Result<Option<String>, RunnerError> {
        match self.offer.resolve(spec.sandbox)? {
            Some(SandboxKind::Gvisor) => {
                self.kubernetes
                    .gvisor_runtime_class
                    .clone()
                    .map(Some)
                    .ok_or(RunnerError::SandboxMissing {
                        setting: "runner.sandbox",
                        sandbox: SandboxKind::Gvisor.name(),
                        program: "runner.kubernetes.gvisor_runtime_class",
                    })
            }
            _ => Ok(None),
        }
    }

    /// Returns the objects of the version of `spec` with `replicas` pods, its secret variables
    /// `secrets` opened (see [`open_secrets`]).
    pub fn version(
        &self,
        spec: &Spec,
        replicas: i32,
        secrets: &BTreeMap<String, String>,
    ) -> Result<VersionObjects, RunnerError> {
        let namespace = self.namespace_name(spec)?;
        let name = naming::version(spec);
        let metadata = ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace),
            labels: Some(naming::version_labels(spec)),
            annotations: Some(BTreeMap::from([(IDS_ANNOTATION.to_owned(), self.ids(spec))])),
            ..ObjectMeta::default()
        };
        let secret = Secret {
            metadata: metadata.clone(),
            type_: Some("Opaque".to_owned()),
            data: Some(
                secrets
                    .iter()
                    .map(|(key, value)| (key.clone(), ByteString(value.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        };
        let deployment = Deployment {
            metadata: metadata.clone(),
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: matching(naming::selector(spec)),
                // A version's template never changes: a new version is a Deployment of its own.
                revision_history_limit: Some(1),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(naming::version_labels(spec)),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(self.pod(spec, &name, secrets)?),
                },
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        };
        let port = i32::from(port(spec));
        let service = Service {
            metadata,
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".to_owned()),
                selector: Some(naming::selector(spec)),
                ports: Some(vec![ServicePort {
                    name: Some(PORT_NAME.to_owned()),
                    port,
                    target_port: Some(IntOrString::Int(port)),
                    protocol: Some("TCP".to_owned()),
                    ..ServicePort::default()
                }]),
                publish_not_ready_addresses: Some(false),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        Ok(VersionObjects {
            secret,
            deployment,
            service,
        })
    }

    /// The ids of `spec`'s version as they are, `organization/namespace/application/version`.
    fn ids(&self, spec: &Spec) -> String {
        format!(
            "{}/{}/{}/{}",
            spec.organization_id, spec.namespace_id, spec.application_id, spec.version
        )
    }

    /// The pod of the version of `spec`, whose Secret is `secret_name`.
    fn pod(&self, spec: &Spec, secret_name: &str, secrets: &BTreeMap<String, String>) -> Result<PodSpec, RunnerError> {
        let (uid, gid) = (i64::from(self.user.0), i64::from(self.user.1));
        let seccomp = || SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            localhost_profile: None,
        };
        let container = Container {
            name: CONTAINER.to_owned(),
            image: Some(self.image(spec)),
            image_pull_policy: Some("IfNotPresent".to_owned()),
            command: (!spec.command.is_empty()).then(|| spec.command.clone()),
            args: (!spec.args.is_empty()).then(|| spec.args.clone()),
            env: Some(environment(spec, secret_name, secrets)),
            ports: Some(vec![ContainerPort {
                name: Some(PORT_NAME.to_owned()),
                container_port: i32::from(port(spec)),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            }]),
            readiness_probe: Some(readiness(spec)),
            resources: Some(resources(spec)),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                privileged: Some(false),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".to_owned()]),
                    add: None,
                }),
                read_only_root_filesystem: Some(true),
                run_as_non_root: Some(true),
                run_as_user: Some(uid),
                run_as_group: Some(gid),
                seccomp_profile: Some(seccomp()),
                ..SecurityContext::default()
            }),
            volume_mounts: Some(vec![VolumeMount {
                name: "tmp".to_owned(),
                mount_path: "/tmp".to_owned(),
                ..VolumeMount::default()
            }]),
            ..Container::default()
        };
        Ok(PodSpec {
            containers: vec![container],
            automount_service_account_token: Some(false),
            // Kubernetes would otherwise hand every pod the addresses of its namespace's
            // Services as variables: an instance starts from its own environment only.
            enable_service_links: Some(false),
            runtime_class_name: self.runtime_class(spec)?,
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(uid),
                run_as_group: Some(gid),
                seccomp_profile: Some(seccomp()),
                ..PodSecurityContext::default()
            }),
            image_pull_secrets: self
                .kubernetes
                .pull_secret
                .as_ref()
                .map(|name| vec![LocalObjectReference { name: name.clone() }]),
            volumes: Some(vec![Volume {
                name: "tmp".to_owned(),
                empty_dir: Some(EmptyDirVolumeSource {
                    // As the local `/tmp`: memory, counted against the container's own limit.
                    medium: Some("Memory".to_owned()),
                    size_limit: Some(Quantity(tmp_bytes(spec).to_string())),
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        })
    }
}

/// The variables of an instance of `spec`, each name once: `HOME` (`/tmp`, the one writable
/// directory) unless given, the spec's (merged already), its secrets (by reference to the
/// version's Secret `secret_name`, overriding), then `PORT`. The image's own variables are
/// the runtime's to add beneath these.
fn environment(spec: &Spec, secret_name: &str, secrets: &BTreeMap<String, String>) -> Vec<EnvVar> {
    let plain = |name: &str, value: &str| EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    };
    let mut variables: BTreeMap<String, EnvVar> = BTreeMap::new();
    variables.insert("HOME".to_owned(), plain("HOME", "/tmp"));
    for (name, value) in &spec.environment {
        variables.insert(name.clone(), plain(name, value));
    }
    for name in secrets.keys() {
        let reference = EnvVar {
            name: name.clone(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret_name.to_owned(),
                    key: name.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
        };
        variables.insert(name.clone(), reference);
    }
    variables.insert("PORT".to_owned(), plain("PORT", &port(spec).to_string()));
    variables.into_values().collect()
}

/// The readiness probe of an instance of `spec`: its health check's `GET` when it has one,
/// else a TCP connection to its port; as often and as many times as its check says.
fn readiness(spec: &Spec) -> Probe {
    let port = IntOrString::Int(i32::from(port(spec)));
    let check = spec.probe.as_ref();
    let seconds = check.map_or(1, |check| check.interval_ms.div_ceil(1000).clamp(1, 3600) as i32);
    let tries = check.map_or(3, |check| check.failure_threshold.clamp(1, 100) as i32);
    let mut probe = Probe {
        period_seconds: Some(seconds),
        timeout_seconds: Some(seconds),
        failure_threshold: Some(tries),
        success_threshold: Some(1),
        ..Probe::default()
    };
    match check.and_then(|check| check.http_path.clone()) {
        Some(path) => {
            probe.http_get = Some(HTTPGetAction {
                path: Some(path),
                port,
                scheme: Some("HTTP".to_owned()),
                ..HTTPGetAction::default()
            });
        }
        None => probe.tcp_socket = Some(TCPSocketAction { port, host: None }),
    }
    probe
}

/// The memory and CPU of an instance of `spec`, requested as much as capped (a tenant gets
/// what it pays for, never less under pressure).
fn resources(spec: &Spec) -> ResourceRequirements {
    let mut figures = BTreeMap::from([("memory".to_owned(), Quantity(format!("{}Mi", memory_mb(spec))))]);
    if spec.cpu_limit_mcpu > 0 {
        figures.insert("cpu".to_owned(), Quantity(format!("{}m", spec.cpu_limit_mcpu)));
    }
    ResourceRequirements {
        limits: Some(figures.clone()),
        requests: Some(figures),
        ..ResourceRequirements::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuage_proto::common::v1::{HealthCheck, Sandbox, StoredSecret};

    const SEALING: [u8; 32] = [9; 32];

    fn config() -> RunnerConfig {
        RunnerConfig {
            registry_host: Some("registry.example:5000".to_owned()),
            ..RunnerConfig::default()
        }
    }

    fn sealed(owner: &str, key: &str, value: &str) -> StoredSecret {
        StoredSecret {
            key: key.to_owned(),
            owner_id: owner.to_owned(),
            sealed_value: nuage_core::seal::seal(&SEALING, &format!("{owner}/{key}"), value.as_bytes()),
            hashed_value: String::new(),
        }
    }

    pub(crate) fn spec() -> Spec {
        Spec {
            application_id: "9b1f3c5e-7a2d-4e8f-b6c1-3d5e7f9a1b2c".to_owned(),
            version: "01931f5e-8f6a-7c3d-9e2b-4a6c8e0f2b4d".to_owned(),
            organization_id: "4f0b8a3e-3c7e-4c1f-9d1e-0a6c2b7e5d11".to_owned(),
            namespace_id: "0c8e2a44-1b7d-4e55-8b9a-55d3c1f2e7a0".to_owned(),
            image: "funcscwns/app:01931f5e".to_owned(),
            memory_limit_mb: 256,
            cpu_limit_mcpu: 140,
            environment: [("GREETING".to_owned(), "hello".to_owned())].into(),
            secrets: vec![
                sealed("namespace", "TOKEN", "namespace-token"),
                sealed("application", "TOKEN", "s3cr3t-application-token"),
                sealed("application", "DATABASE_URL", "postgres://user:hunter2@db/app"),
            ],
            ..Spec::default()
        }
    }

    fn version(config: &RunnerConfig, spec: &Spec) -> VersionObjects {
        let secrets = open_secrets(spec, &SEALING).expect("secrets open");
        Objects::new(config).version(spec, 2, &secrets).expect("objects")
    }

    fn pod(objects: &VersionObjects) -> &PodSpec {
        objects
            .deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
    }

    #[test]
    fn a_version_runs_in_its_tenant_namespace_under_its_own_name_and_labels() {
        let objects = version(&config(), &spec());
        let namespace = "nuage-0c8e2a44-1b7d-4e55-8b9a-55d3c1f2e7a0";
        for metadata in [
            &objects.deployment.metadata,
            &objects.service.metadata,
            &objects.secret.metadata,
        ] {
            assert_eq!(metadata.namespace.as_deref(), Some(namespace));
            assert_eq!(metadata.name.as_deref(), Some(naming::version(&spec()).as_str()));
            let labels = metadata.labels.as_ref().unwrap();
            assert_eq!(labels["app.kubernetes.io/managed-by"], "nuage");
            assert_eq!(labels["nuage.dev/organization"], spec().organization_id);
            assert_eq!(labels["nuage.dev/application"], spec().application_id);
            assert_eq!(labels["nuage.dev/deployment"], spec().version);
        }
        let deployment = objects.deployment.spec.as_ref().unwrap();
        assert_eq!(deployment.replicas, Some(2));
        let selected = deployment.selector.match_labels.as_ref().unwrap();
        let template = deployment.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert!(selected.iter().all(|(key, value)| template.get(key) == Some(value)));
        let service = objects.service.spec.as_ref().unwrap();
        assert_eq!(service.cluster_ip.as_deref(), Some("None"), "headless");
        assert_eq!(service.selector.as_ref(), Some(selected));
    }

    #[test]
    fn a_version_without_a_namespace_is_refused() {
        let mut unplaced = spec();
        unplaced.namespace_id.clear();
        let error = Objects::new(&config())
            .version(&unplaced, 1, &BTreeMap::new())
            .unwrap_err();
        assert!(error.to_string().contains("deploy it again"), "{error}");
    }

    #[test]
    fn pods_run_as_an_unprivileged_user_with_nothing_to_escalate_to() {
        let objects = version(&config(), &spec());
        let pod = pod(&objects);
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.enable_service_links, Some(false));
        assert_eq!(pod.host_network, None);
        assert_eq!(pod.host_pid, None);
        let pod_security = pod.security_context.as_ref().unwrap();
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(pod_security.run_as_user, Some(100_000));
        assert_eq!(pod_security.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        let container = &pod.containers[0];
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(security.run_as_non_root, Some(true));
        assert_ne!(security.run_as_user, Some(0));
        assert_eq!(security.run_as_user, Some(100_000));
        assert_eq!(security.run_as_group, Some(100_000));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(security.privileged, Some(false));
        assert_eq!(security.read_only_root_filesystem, Some(true));
        let capabilities = security.capabilities.as_ref().unwrap();
        assert_eq!(capabilities.drop.as_deref(), Some(&["ALL".to_owned()][..]));
        assert_eq!(capabilities.add, None);
        assert_eq!(security.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        assert_eq!(
            pod.runtime_class_name, None,
            "sandbox v1 is the cluster's default runtime"
        );
    }

    #[test]
    fn tmp_is_the_only_writable_place_and_is_sized_as_the_local_one() {
        let objects = version(&config(), &spec());
        let pod = pod(&objects);
        let volume = &pod.volumes.as_ref().unwrap()[0];
        let empty_dir = volume.empty_dir.as_ref().unwrap();
        assert_eq!(empty_dir.medium.as_deref(), Some("Memory"));
        // 256 MB of memory: a /tmp of half of it, as the local backend's.
        assert_eq!(empty_dir.size_limit, Some(Quantity((128 * 1024 * 1024).to_string())));
        assert_eq!(tmp_bytes(&spec()), 128 * 1024 * 1024);
        let mounts = pod.containers[0].volume_mounts.as_ref().unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(
            (mounts[0].name.as_str(), mounts[0].mount_path.as_str()),
            ("tmp", "/tmp")
        );
        assert_eq!(mounts[0].read_only, None);
    }

    #[test]
    fn memory_and_cpu_are_requested_and_capped_as_the_spec_says() {
        let objects = version(&config(), &spec());
        let resources = pod(&objects).containers[0].resources.clone().unwrap();
        for figures in [resources.limits.unwrap(), resources.requests.unwrap()] {
            assert_eq!(figures["memory"], Quantity("256Mi".to_owned()));
            assert_eq!(figures["cpu"], Quantity("140m".to_owned()));
        }
        let mut uncapped = spec();
        uncapped.cpu_limit_mcpu = 0;
        uncapped.memory_limit_mb = 0;
        let objects = version(&config(), &uncapped);
        let limits = pod(&objects).containers[0].resources.clone().unwrap().limits.unwrap();
        assert!(!limits.contains_key("cpu"));
        assert_eq!(
            limits["memory"],
            Quantity("64Mi".to_owned()),
            "the local backend's floor"
        );
    }

    #[test]
    fn secret_values_are_in_the_secret_and_never_in_the_deployment() {
        let objects = version(&config(), &spec());
        let deployment = serde_json::to_string(&objects.deployment).unwrap();
        for value in ["s3cr3t-application-token", "hunter2", "namespace-token"] {
            assert!(!deployment.contains(value), "{value} is inline in the deployment");
            assert!(!serde_json::to_string(&objects.service).unwrap().contains(value));
        }
        let data = objects.secret.data.as_ref().unwrap();
        // The application's value overrides the namespace's.
        assert_eq!(data["TOKEN"].0, b"s3cr3t-application-token");
        assert_eq!(data["DATABASE_URL"].0, b"postgres://user:hunter2@db/app");
        let pod = pod(&objects);
        let environment = pod.containers[0].env.as_ref().unwrap();
        let token = environment.iter().find(|variable| variable.name == "TOKEN").unwrap();
        assert_eq!(token.value, None);
        let reference = token.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
        assert_eq!(reference.name, naming::version(&spec()));
        assert_eq!(reference.key, "TOKEN");
        let names: Vec<&str> = environment.iter().map(|variable| variable.name.as_str()).collect();
        assert_eq!(names, ["DATABASE_URL", "GREETING", "HOME", "PORT", "TOKEN"]);
        let port = environment.iter().find(|variable| variable.name == "PORT").unwrap();
        assert_eq!(port.value.as_deref(), Some("8080"));
    }

    #[test]
    fn a_secret_that_does_not_open_fails_the_start() {
        let mut broken = spec();
        broken.secrets[0].sealed_value = "garbage".to_owned();
        assert!(matches!(open_secrets(&broken, &SEALING), Err(RunnerError::Secret(key)) if key == "TOKEN"));
    }

    #[test]
    fn the_spec_says_what_runs_where_it_listens_and_how_it_is_checked() {
        let objects = version(&config(), &spec());
        let container = &pod(&objects).containers[0];
        assert_eq!(
            container.image.as_deref(),
            Some("registry.example:5000/funcscwns/app:01931f5e")
        );
        assert_eq!((container.command.as_ref(), container.args.as_ref()), (None, None));
        let probe = container.readiness_probe.as_ref().unwrap();
        assert_eq!(probe.tcp_socket.as_ref().unwrap().port, IntOrString::Int(8080));
        assert_eq!(probe.http_get, None);

        let mut container_spec = spec();
        container_spec.image = "ghcr.io/team/api@sha256:abcd".to_owned();
        container_spec.port = 3000;
        container_spec.command = vec!["/bin/api".to_owned()];
        container_spec.args = vec!["--serve".to_owned()];
        container_spec.probe = Some(HealthCheck {
            failure_threshold: 5,
            interval_ms: 2500,
            http_path: Some("/health".to_owned()),
        });
        let objects = version(&config(), &container_spec);
        let container = &pod(&objects).containers[0];
        assert_eq!(container.image.as_deref(), Some("ghcr.io/team/api@sha256:abcd"));
        assert_eq!(container.command.as_deref(), Some(&["/bin/api".to_owned()][..]));
        assert_eq!(container.args.as_deref(), Some(&["--serve".to_owned()][..]));
        assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 3000);
        let probe = container.readiness_probe.as_ref().unwrap();
        let get = probe.http_get.as_ref().unwrap();
        assert_eq!(
            (get.path.as_deref(), &get.port),
            (Some("/health"), &IntOrString::Int(3000))
        );
        assert_eq!((probe.period_seconds, probe.failure_threshold), (Some(3), Some(5)));
        let service_port = &objects.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(service_port.port, 3000);
    }

    #[test]
    fn sandbox_v2_runs_in_the_gvisor_runtime_class_and_is_refused_without_one() {
        let mut v2 = spec();
        v2.sandbox = Sandbox::V2.into();
        let error = Objects::new(&config()).version(&v2, 1, &BTreeMap::new()).unwrap_err();
        assert!(
            matches!(error, RunnerError::SandboxNotOffered { sandbox: "gvisor", .. }),
            "{error}"
        );
        let mut config = config();
        config.kubernetes.gvisor_runtime_class = Some("gvisor".to_owned());
        let objects = version(&config, &v2);
        assert_eq!(pod(&objects).runtime_class_name.as_deref(), Some("gvisor"));
        // Sandbox v1 stays on the default runtime.
        let objects = version(&config, &spec());
        assert_eq!(pod(&objects).runtime_class_name, None);
        // And v2 as the installation's default.
        config.sandbox = crate::config::Sandbox::Gvisor;
        let objects = version(&config, &spec());
        assert_eq!(pod(&objects).runtime_class_name.as_deref(), Some("gvisor"));
    }

    #[test]
    fn pull_secrets_are_named_when_configured() {
        let objects = version(&config(), &spec());
        assert_eq!(pod(&objects).image_pull_secrets, None);
        let mut config = config();
        config.kubernetes.pull_secret = Some("registry".to_owned());
        let objects = version(&config, &spec());
        let secrets = pod(&objects).image_pull_secrets.clone().unwrap();
        assert_eq!(secrets[0].name, "registry");
        let source = Secret {
            metadata: ObjectMeta {
                name: Some("registry".to_owned()),
                namespace: Some("nuage".to_owned()),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
            data: Some(BTreeMap::from([(
                ".dockerconfigjson".to_owned(),
                ByteString(b"{}".to_vec()),
            )])),
            ..Secret::default()
        };
        let copy = Objects::new(&config).pull_secret(&source, "nuage-tenant");
        assert_eq!(copy.metadata.namespace.as_deref(), Some("nuage-tenant"));
        assert_eq!(copy.metadata.name.as_deref(), Some("registry"));
        assert_eq!(copy.data, source.data);
        assert_eq!(copy.type_, source.type_);
    }

    #[test]
    fn the_namespace_enforces_the_restricted_pod_security_standard() {
        let objects = Objects::new(&config()).namespace(&spec()).unwrap();
        let labels = objects.namespace.metadata.labels.unwrap();
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(labels["nuage.dev/organization"], spec().organization_id);
        assert_eq!(labels["nuage.dev/namespace"], spec().namespace_id);
        assert_eq!(
            objects.namespace.metadata.name.as_deref(),
            Some("nuage-0c8e2a44-1b7d-4e55-8b9a-55d3c1f2e7a0")
        );
    }

    /// The objects of `file` under `deploy/kubernetes/base`, as JSON.
    fn deployed(file: &str) -> Vec<serde_json::Value> {
        use serde::Deserialize;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/kubernetes/base")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        serde_yaml_ng::Deserializer::from_str(&text)
            .map(|document| serde_json::Value::deserialize(document).expect("YAML"))
            .filter(|object| !object.is_null())
            .collect()
    }

    fn find<'a>(objects: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
        objects
            .iter()
            .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("deploy/ has no {kind} {name}"))
    }

    /// The RoleBinding the runner makes in each tenant namespace is the one deploy/'s RBAC
    /// lets it make and its admission policy admits, with the default configuration (which
    /// deploy/kubernetes/base/nuage.toml keeps). The policy's CEL itself is evaluated on the
    /// very objects the backend makes by deploy/manifests_test.py (`deploy/validate` on the
    /// files tests/kubernetes_objects.rs writes).
    #[test]
    fn the_role_binding_is_the_one_deploys_rbac_and_admission_policies_admit() {
        let objects = Objects::new(&config()).namespace(&spec()).unwrap();
        let namespace = objects.namespace.metadata.name.clone().unwrap();
        let binding = objects.role_binding;
        assert_eq!(binding.metadata.namespace.as_deref(), Some(namespace.as_str()));
        assert_eq!(binding.metadata.name.as_deref(), Some("nuage-runner"));
        assert_eq!(binding.role_ref.api_group, "rbac.authorization.k8s.io");
        assert_eq!(
            (binding.role_ref.kind.as_str(), binding.role_ref.name.as_str()),
            ("ClusterRole", "nuage-runner-tenant")
        );
        let subjects = binding.subjects.clone().unwrap();
        assert_eq!(subjects.len(), 1, "the runner binds its role to itself alone");
        let (account, system) = (&subjects[0].name, subjects[0].namespace.clone().unwrap());
        assert_eq!(
            (subjects[0].kind.as_str(), account.as_str(), system.as_str()),
            ("ServiceAccount", "nuage-runner", "nuage")
        );

        // deploy/: the runner's account in nuage's namespace, the tenant role it may bind.
        let rbac = deployed("rbac.yaml");
        let kustomization = &deployed("kustomization.yaml")[0];
        assert_eq!(kustomization["namespace"], system.as_str());
        find(&rbac, "ServiceAccount", account);
        find(&rbac, "ClusterRole", &binding.role_ref.name);
        let runner = find(&rbac, "ClusterRole", "nuage-runner");
        let binds: Vec<&serde_json::Value> = runner["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|rule| rule["verbs"].as_array().unwrap().contains(&"bind".into()))
            .collect();
        assert_eq!(binds.len(), 1);
        assert_eq!(binds[0]["resourceNames"], serde_json::json!([binding.role_ref.name]));
        let cluster_binding = find(&rbac, "ClusterRoleBinding", "nuage-runner");
        assert_eq!(
            cluster_binding["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": account, "namespace": system}])
        );

        // Its admission policies: the user they hold is the runner's account, and they name
        // what the runner makes.
        let admission = deployed("admission.yaml");
        let user = format!("request.userInfo.username == 'system:serviceaccount:{system}:{account}'");
        for name in ["nuage-runner-namespaces", "nuage-runner-rolebindings"] {
            let policy = find(&admission, "ValidatingAdmissionPolicy", name);
            assert_eq!(policy["spec"]["matchConditions"][0]["expression"], user.as_str());
        }
        let said = |name: &str| {
            find(&admission, "ValidatingAdmissionPolicy", name)["spec"]["validations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|validation| validation["expression"].as_str().unwrap().to_owned())
                .collect::<Vec<String>>()
                .join("\n")
        };
        let bindings = said("nuage-runner-rolebindings");
        for expected in [
            format!(
                "object.metadata.name == '{}'",
                binding.metadata.name.as_deref().unwrap()
            ),
            format!("object.roleRef.name == '{}'", binding.role_ref.name),
            format!("subject.name == '{account}'"),
            format!("subject.namespace == '{system}'"),
            format!(
                "namespaceObject.metadata.name.startsWith('{}')",
                config().kubernetes.namespace_prefix
            ),
        ] {
            assert!(bindings.contains(&expected), "the policy does not say {expected}");
        }
        let namespaces = said("nuage-runner-namespaces");
        let labels = objects.namespace.metadata.labels.unwrap();
        for expected in [
            format!(
                "object.metadata.name.startsWith('{}')",
                config().kubernetes.namespace_prefix
            ),
            format!("labels['{}'] == '{}'", naming::MANAGED_BY, labels[naming::MANAGED_BY]),
            format!(
                "labels['pod-security.kubernetes.io/enforce'] == '{}'",
                labels["pod-security.kubernetes.io/enforce"]
            ),
            format!(
                "labels['pod-security.kubernetes.io/enforce-version'] == '{}'",
                labels["pod-security.kubernetes.io/enforce-version"]
            ),
        ] {
            assert!(namespaces.contains(&expected), "the policy does not say {expected}");
        }
        assert!(namespace.starts_with(&config().kubernetes.namespace_prefix));
    }

    #[test]
    fn only_the_routers_pods_reach_instances_and_instances_reach_nothing_without_egress() {
        let policy = Objects::new(&config()).namespace(&spec()).unwrap().network_policy;
        let policy = policy.spec.unwrap();
        assert_eq!(
            policy.pod_selector,
            Some(LabelSelector::default()),
            "every pod of the namespace"
        );
        assert_eq!(policy.policy_types.unwrap(), ["Ingress", "Egress"]);
        let ingress = policy.ingress.unwrap();
        assert_eq!(ingress.len(), 1);
        let from = ingress[0].from.as_ref().unwrap();
        assert_eq!(from.len(), 1);
        // Both selectors in one peer: the router's pods in nuage's namespace, not either.
        let peer = &from[0];
        let namespace = peer.namespace_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
        assert_eq!(namespace["kubernetes.io/metadata.name"], "nuage");
        let pods = peer.pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
        assert_eq!(pods["app.kubernetes.io/component"], "router");
        assert_eq!(peer.ip_block, None);
        assert_eq!(policy.egress, Some(Vec::new()), "no egress at all, not even DNS");
    }

    #[test]
    fn public_egress_refuses_the_cluster_and_private_ranges_and_allows_dns() {
        let mut config = config();
        config.egress = Egress::Public;
        config.kubernetes.cluster_cidrs = vec!["198.18.0.0/15".to_owned(), "fd00:10::/64".to_owned()];
        let policy = Objects::new(&config).namespace(&spec()).unwrap().network_policy;
        let egress = policy.spec.unwrap().egress.unwrap();
        assert_eq!(egress.len(), 2);
        let blocks: Vec<&IPBlock> = egress[0]
            .to
            .as_ref()
            .unwrap()
            .iter()
            .map(|peer| peer.ip_block.as_ref().unwrap())
            .collect();
        assert_eq!(blocks[0].cidr, "0.0.0.0/0");
        let refused = blocks[0].except.as_ref().unwrap();
        for range in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "198.18.0.0/15",
        ] {
            assert!(refused.contains(&range.to_owned()), "{range} is reachable");
        }
        assert_eq!(blocks[1].cidr, "::/0");
        let refused = blocks[1].except.as_ref().unwrap();
        for range in ["fc00::/7", "fe80::/10", "::1/128", "fd00:10::/64"] {
            assert!(refused.contains(&range.to_owned()), "{range} is reachable");
        }
        assert_eq!(egress[0].ports, None);
        let dns = &egress[1];
        let peer = &dns.to.as_ref().unwrap()[0];
        let namespace = peer.namespace_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
        assert_eq!(namespace["kubernetes.io/metadata.name"], "kube-system");
        let ports: Vec<_> = dns
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|port| (port.port.clone(), port.protocol.clone().unwrap()))
            .collect();
        assert_eq!(
            ports,
            [
                (Some(IntOrString::Int(53)), "UDP".to_owned()),
                (Some(IntOrString::Int(53)), "TCP".to_owned())
            ]
        );
    }
}
