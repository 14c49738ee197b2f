//! The `kubernetes` backend itself: applies the objects [`super::objects`] makes (server-side
//! apply, as the runner's own field manager), scales each version's Deployment to the
//! instances the router holds, finds ready pods through the EndpointSlices of the version's
//! headless Service, follows their logs (opening a dropped stream again where it stopped),
//! and removes versions nothing runs any more, then the namespaces left with none (a tenant
//! namespace deleted in nuage goes so, with everything in it).
//!
//! The router's contract with the runner is per instance (start one and answer once it
//! answers, stop that one), so an instance here is a claim on one ready pod (see
//! [`super::claims`]): a start adds a replica and waits, within `start_timeout_seconds`, for a
//! ready pod no other instance holds (the router holds the request of a scale from zero until
//! then); a stop marks its pod to go first (`controller.kubernetes.io/pod-deletion-cost`) and
//! removes a replica. A watch loop per version (a list every [`WATCH_INTERVAL`]) tells an
//! instance that ended on its own: pod gone, being deleted, failed, or its container
//! restarted (out of memory, say). A redeploy is a new Deployment beside the old one, which
//! keeps serving until the router has drained its instances; then [`Backend::release`]
//! removes it. Pods outlive the runner: a runner that stops leaves them running, and the next
//! one's [`Backend::recover`] finds the current versions' pods by their labels and hands back
//! those an instance held, under that instance's id (kept in the pod's `nuage.dev/instance`
//! annotation), so that the router's view stays true. A WebAssembly function has no pods:
//! its image is pulled from the registry and unpacked in the runner's work directory (as the
//! local backend does) only to read the component the router runs.
//!
//! Its rights are those of `deploy/kubernetes/base/rbac.yaml`, no more: cluster-wide it only
//! applies, lists and deletes its namespaces and makes in each, right after the namespace, the
//! RoleBinding that gives it its rights inside (see [`Objects::role_binding`]); everything else
//! it asks of one tenant namespace at a time. Server-side apply needs `patch`, and `create`
//! for an object that is new.

use super::claims::{Claims, INSTANCE_ANNOTATION, PodState, not_ready_reason, ready_pods};
use super::cleanup::{self, Found};
use super::logs::Resume;
use super::naming;
use super::objects::{IDS_ANNOTATION, Objects, open_secrets, port};
use crate::backend::{Adopted, Backend, BackendParts, Component, Current, Running};
use crate::config::{Egress, RunnerConfig};
use crate::error::RunnerError;
use crate::images::{Images, RegistryAuth};
use crate::output::{LogShipping, Tail, pump};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use nuage_proto::runner::v1::{OutputLine, Spec, Stream};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};
use tokio_util::compat::FuturesAsyncReadCompatExt;

/// The field manager of everything the runner applies.
const MANAGER: &str = "nuage-runner";
/// How often a version's pods are looked at for instances that ended.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// How long one request to the Kubernetes API may wait for its answer.
const API_TIMEOUT: Duration = Duration::from_secs(30);
/// The pod deletion cost of a pod given up: the ReplicaSet removes it before any other.
const GIVEN_UP: &str = "-2147483648";
/// How long a RoleBinding just made may take to be honoured: the API server's authorizer
/// learns of it through a watch, so the first requests it allows may still be refused.
const BINDING_PATIENCE: Duration = Duration::from_secs(10);
/// How long a log stream that dropped waits before it is opened again, at first; each
/// failure doubles it, up to [`LOG_RETRY_MAX`].
const LOG_RETRY_FIRST: Duration = Duration::from_millis(500);
/// The longest wait before a dropped log stream is opened again.
const LOG_RETRY_MAX: Duration = Duration::from_secs(30);

/// Runs instances as pods of a Kubernetes cluster.
#[derive(Clone)]
pub struct KubernetesBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KubernetesBackend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KubernetesBackend")
            .field("objects", &self.inner.objects)
            .finish_non_exhaustive()
    }
}

struct Inner {
    client: Client,
    logs_client: Client,
    objects: Objects,
    config: RunnerConfig,
    sealing: [u8; 32],
    /// The images of WebAssembly functions, pulled and unpacked to read their component.
    images: Images,
    start_timeout: Duration,
    output: broadcast::Sender<OutputLine>,
    logs: Option<LogShipping>,
    /// The tenant namespaces whose objects this process applied.
    namespaces: tokio::sync::Mutex<HashSet<String>>,
    /// The tenant namespaces this process knows hold the runner's RoleBinding.
    bound: Mutex<HashSet<String>>,
    /// The versions with instances or starts, by Kubernetes namespace and name.
    versions: Mutex<HashMap<(String, String), Arc<Version>>>,
}

/// One version with instances or starts in progress.
#[derive(Debug)]
struct Version {
    namespace: String,
    name: String,
    application_id: String,
    port: u16,
    claims: Mutex<Claims>,
    /// Held while its replicas are written, so that two writes never land out of order.
    scaling: tokio::sync::Mutex<()>,
}

/// Returns whether `error` says the object is not there.
fn not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Returns whether `error` says the object a create would make is there already.
fn already_exists(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409 && status.reason == "AlreadyExists")
}

/// Returns whether `error` says the request is not allowed.
fn forbidden(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 403)
}

/// Runs `call`, and again while it is refused (403) for `patience` (zero: once): a
/// RoleBinding just made may not be honoured at once.
async fn authorized<T, F, Fut>(patience: Duration, mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = Duration::from_millis(100);
    loop {
        match call().await {
            Err(error) if forbidden(&error) && tokio::time::Instant::now() + pause <= deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            answer => return answer,
        }
    }
}

fn failed(doing: impl Into<String>) -> impl FnOnce(kube::Error) -> RunnerError {
    let doing = doing.into();
    move |source| RunnerError::Kubernetes {
        doing,
        source: Box::new(source),
    }
}

impl KubernetesBackend {
    /// Returns the backend, connected as `config.kubernetes.kubeconfig` says (else as the
    /// environment says: in the cluster, or `$KUBECONFIG`); WebAssembly functions' images
    /// are unpacked under `parts.work_dir`, as the local backend's. Fails when the cluster
    /// cannot be reached or a sandbox offered has no RuntimeClass.
    pub async fn new(config: &RunnerConfig, parts: BackendParts) -> Result<Self, RunnerError> {
        let objects = Objects::new(config);
        if objects.offer().default == Some(crate::config::SandboxKind::Gvisor)
            && config.kubernetes.gvisor_runtime_class.is_none()
        {
            return Err(RunnerError::SandboxMissing {
                setting: "runner.sandbox",
                sandbox: "gvisor",
                program: "a RuntimeClass (runner.kubernetes.gvisor_runtime_class)",
            });
        }
        let client_config = match &config.kubernetes.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)
                    .map_err(|error| RunnerError::KubernetesSetup(format!("reading {}: {error}", path.display())))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                    .await
                    .map_err(|error| RunnerError::KubernetesSetup(format!("{}: {error}", path.display())))?
            }
            None => kube::Config::infer()
                .await
                .map_err(|error| RunnerError::KubernetesSetup(error.to_string()))?,
        };
        // Requests get an answer within `API_TIMEOUT`; log streams (which may stay quiet for
        // as long as an instance prints nothing) have a client without one.
        let mut api_config = client_config.clone();
        api_config.read_timeout = Some(API_TIMEOUT);
        api_config.reset_reader_on_write = true;
        let client = Client::try_from(api_config).map_err(|error| RunnerError::KubernetesSetup(error.to_string()))?;
        let logs_client =
            Client::try_from(client_config).map_err(|error| RunnerError::KubernetesSetup(error.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                logs_client,
                objects,
                config: config.clone(),
                sealing: parts.sealing,
                images: parts.images(config),
                start_timeout: Duration::from_secs(config.start_timeout_seconds.max(1)),
                output: parts.output,
                logs: parts.logs,
                namespaces: tokio::sync::Mutex::default(),
                bound: Mutex::default(),
                versions: Mutex::default(),
            }),
        })
    }
}

/// What the runner applies: an object of a tenant namespace, which server-side apply sends
/// whole.
trait Applied:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Applied for K where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug
{
}

impl Inner {
    /// Applies `object` (server-side, taking over fields another manager set), again while
    /// it is refused for `patience` (see [`authorized`]).
    async fn apply_within<K: Applied>(&self, object: &K, patience: Duration) -> Result<(), RunnerError> {
        let name = object.meta().name.clone().unwrap_or_default();
        let namespace = object.meta().namespace.clone().unwrap_or_default();
        let api = Api::<K>::namespaced(self.client.clone(), &namespace);
        let (parameters, patch) = (PatchParams::apply(MANAGER).force(), Patch::Apply(object));
        authorized(patience, || api.patch(&name, &parameters, &patch))
            .await
            .map_err(failed(format!("applying {} {namespace}/{name}", K::kind(&()))))?;
        Ok(())
    }

    /// Applies `object` (server-side, taking over fields another manager set).
    async fn apply<K: Applied>(&self, object: &K) -> Result<(), RunnerError> {
        self.apply_within(object, Duration::ZERO).await
    }

    /// Makes, unless this process knows it is there, the RoleBinding that gives the runner
    /// its rights in the tenant namespace `namespace`; returns how long to wait for the
    /// first request it allows to be allowed (zero when it was there already). It is created,
    /// never patched (the runner may only create RoleBindings): one that is there is left as
    /// it is.
    async fn bind(&self, namespace: &str) -> Result<Duration, RunnerError> {
        if self.bound.lock().expect("bound lock").contains(namespace) {
            return Ok(Duration::ZERO);
        }
        let binding = self.objects.role_binding(namespace);
        let made = Api::<RoleBinding>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &binding)
            .await;
        let patience = match made {
            Ok(_) => BINDING_PATIENCE,
            Err(error) if already_exists(&error) => Duration::ZERO,
            Err(error) => {
                let name = binding.metadata.name.unwrap_or_default();
                return Err(failed(format!("making the RoleBinding {namespace}/{name}"))(error));
            }
        };
        self.bound.lock().expect("bound lock").insert(namespace.to_owned());
        Ok(patience)
    }

    /// Makes the tenant namespace of `spec` (see [`Inner::ensure_namespace`]) and counts a
    /// start on its version, both under the namespaces' lock: the clean-up, which takes it
    /// too, never removes a namespace between the two.
    async fn enter(self: &Arc<Self>, spec: &Spec) -> Result<Arc<Version>, RunnerError> {
        let mut applied = self.namespaces.lock().await;
        let namespace = self.ensure_namespace(spec, &mut applied).await?;
        Ok(self.begin(&namespace, spec))
    }

    /// Makes the tenant namespace of `spec`, the runner's RoleBinding in it (before anything
    /// inside it), its NetworkPolicy and pull secret, unless `applied` (those this process
    /// made) holds it.
    async fn ensure_namespace(&self, spec: &Spec, applied: &mut HashSet<String>) -> Result<String, RunnerError> {
        let objects = self.objects.namespace(spec)?;
        let name = objects.namespace.metadata.name.clone().unwrap_or_default();
        if applied.contains(&name) {
            return Ok(name);
        }
        Api::<Namespace>::all(self.client.clone())
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&objects.namespace),
            )
            .await
            .map_err(failed(format!("applying namespace {name}")))?;
        let patience = self.bind(&name).await?;
        self.apply_within::<NetworkPolicy>(&objects.network_policy, patience)
            .await?;
        if let Some(pull_secret) = &self.config.kubernetes.pull_secret {
            let system = &self.config.kubernetes.system_namespace;
            let source = Api::<Secret>::namespaced(self.client.clone(), system)
                .get(pull_secret)
                .await
                .map_err(failed(format!("reading the pull secret {system}/{pull_secret}")))?;
            self.apply(&self.objects.pull_secret(&source, &name)).await?;
        }
        applied.insert(name.clone());
        Ok(name)
    }

    /// Returns how the registry of image `reference` is asked: with the user and password
    /// the pull secret holds for it, else anonymously.
    async fn registry_auth(&self, reference: &str) -> Result<RegistryAuth, RunnerError> {
        let parsed = crate::images::parse_reference(reference)?;
        Ok(match self.pull_credentials(parsed.registry()).await {
            Some((username, password)) => RegistryAuth::Basic(username, password),
            None => RegistryAuth::Anonymous,
        })
    }

    /// Returns the user and password the pull secret holds for `registry`, if any.
    async fn pull_credentials(&self, registry: &str) -> Option<(String, String)> {
        let name = self.config.kubernetes.pull_secret.as_ref()?;
        let system = &self.config.kubernetes.system_namespace;
        let secret = match Api::<Secret>::namespaced(self.client.clone(), system).get(name).await {
            Ok(secret) => secret,
            Err(error) => {
                tracing::warn!(%error, "cannot read the pull secret {system}/{name}: pinning anonymously");
                return None;
            }
        };
        let config = secret.data?.remove(".dockerconfigjson")?;
        docker_credentials(&config.0, registry)
    }

    /// Returns the kept state of the version of `spec`, made (with its watch loop) when it
    /// has none; counts a start on it.
    fn begin(self: &Arc<Self>, namespace: &str, spec: &Spec) -> Arc<Version> {
        let name = naming::version(spec);
        let mut versions = self.versions.lock().expect("versions lock");
        let version = versions
            .entry((namespace.to_owned(), name.clone()))
            .or_insert_with(|| {
                let version = Arc::new(Version {
                    namespace: namespace.to_owned(),
                    name,
                    application_id: spec.application_id.clone(),
                    port: port(spec),
                    claims: Mutex::default(),
                    scaling: tokio::sync::Mutex::default(),
                });
                tokio::spawn(self.clone().watch(version.clone()));
                version
            })
            .clone();
        version.claims.lock().expect("claims lock").begin();
        version
    }

    /// Writes the replicas `version` needs now.
    async fn rescale(&self, version: &Version) -> Result<(), RunnerError> {
        let _writing = version.scaling.lock().await;
        let replicas = version.claims.lock().expect("claims lock").replicas();
        Api::<Deployment>::namespaced(self.client.clone(), &version.namespace)
            .patch_scale(
                &version.name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}})),
            )
            .await
            .map_err(failed(format!("scaling {}/{}", version.namespace, version.name)))?;
        Ok(())
    }

    /// Applies the objects of the version of `spec` with the replicas `version` needs.
    async fn apply_version(&self, version: &Version, spec: &Spec) -> Result<(), RunnerError> {
        let secrets = open_secrets(spec, &self.sealing)?;
        let _writing = version.scaling.lock().await;
        let replicas = version.claims.lock().expect("claims lock").replicas();
        let objects = self.objects.version(spec, replicas, &secrets)?;
        self.apply(&objects.secret).await?;
        self.apply(&objects.service).await?;
        self.apply(&objects.deployment).await
    }

    /// Returns the ready pods of `version`.
    async fn ready(&self, version: &Version) -> Result<Vec<super::claims::ReadyPod>, RunnerError> {
        let slices = Api::<EndpointSlice>::namespaced(self.client.clone(), &version.namespace)
            .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={}", version.name)))
            .await
            .map_err(failed(format!(
                "listing the endpoints of {}/{}",
                version.namespace, version.name
            )))?;
        Ok(ready_pods(&slices.items, version.port))
    }

    /// Returns the pods of `version` as they are.
    async fn pods(&self, version: &Version) -> Result<Vec<PodState>, RunnerError> {
        let selector = format!(
            "{}={}",
            naming::APPLICATION,
            naming::label_value(&version.application_id)
        );
        let pods = Api::<Pod>::namespaced(self.client.clone(), &version.namespace)
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(failed(format!(
                "listing the pods of {}/{}",
                version.namespace, version.name
            )))?;
        Ok(pods.items.iter().map(PodState::of).collect())
    }

    /// Waits until a ready pod of `version` is free and claims it for `instance_id`.
    async fn claim(
        &self,
        version: &Version,
        instance_id: &str,
    ) -> Result<(super::claims::ReadyPod, oneshot::Receiver<String>), RunnerError> {
        let deadline = tokio::time::Instant::now() + self.start_timeout;
        let mut pause = Duration::from_millis(100);
        loop {
            let ready = self.ready(version).await?;
            if !ready.is_empty() {
                let restarts: HashMap<String, i32> = self
                    .pods(version)
                    .await?
                    .into_iter()
                    .map(|pod| (pod.name, pod.restarts))
                    .collect();
                let claimed = version.claims.lock().expect("claims lock").claim(
                    &ready,
                    |pod| restarts.get(pod).copied(),
                    instance_id,
                );
                if let Some(claimed) = claimed {
                    self.annotate(version, &claimed.0.pod, Some(instance_id), None).await;
                    return Ok(claimed);
                }
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(RunnerError::PodNotReady {
                    seconds: self.start_timeout.as_secs(),
                    why: self.why_not_ready(version).await,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Says what keeps the pods of `version` from being ready, as their status tells.
    async fn why_not_ready(&self, version: &Version) -> String {
        let pods = Api::<Pod>::namespaced(self.client.clone(), &version.namespace)
            .list(&ListParams::default().labels(&format!(
                "{}={}",
                naming::APPLICATION,
                naming::label_value(&version.application_id)
            )))
            .await;
        let reasons: Vec<String> = pods
            .map(|pods| pods.items)
            .unwrap_or_default()
            .iter()
            .filter_map(not_ready_reason)
            .collect();
        if reasons.is_empty() {
            "no pod of it became ready".to_owned()
        } else {
            reasons.join("; ")
        }
    }

    /// Names on `pod` the instance that holds it (`None`: none) and, when given, its
    /// deletion cost.
    async fn annotate(&self, version: &Version, pod: &str, instance_id: Option<&str>, cost: Option<&str>) {
        let mut annotations = serde_json::json!({ INSTANCE_ANNOTATION: instance_id });
        if let Some(cost) = cost {
            annotations["controller.kubernetes.io/pod-deletion-cost"] = cost.into();
        }
        let patched = Api::<Pod>::namespaced(self.client.clone(), &version.namespace)
            .patch(
                pod,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "metadata": { "annotations": annotations } })),
            )
            .await;
        if let Err(error) = patched
            && !not_found(&error)
        {
            tracing::warn!(pod, %error, "cannot annotate an instance's pod");
        }
    }

    /// Gives up the pod of a stopped instance: it goes first when the replicas drop.
    async fn give_up(&self, version: &Version, pod: &str) {
        self.annotate(version, pod, None, Some(GIVEN_UP)).await;
        version.claims.lock().expect("claims lock").release(pod);
        if let Err(error) = self.rescale(version).await {
            tracing::warn!(pod, %error, "cannot scale down after an instance stopped");
        }
    }

    /// Follows the logs of `pod` into the runner's output, as a local instance's are, from
    /// `since` seconds ago (`None`: from the pod's start; a pod held a second time ships its
    /// earlier lines again), until `done` is sent or dropped. A stream that drops while the
    /// pod lives is opened again where it stopped (see [`Resume`]); one whose pod is gone
    /// ends.
    fn follow(
        &self,
        version: &Version,
        (pod, instance_id): (&str, &str),
        since: Option<i64>,
        mut done: oneshot::Receiver<()>,
    ) {
        let api = Api::<Pod>::namespaced(self.logs_client.clone(), &version.namespace);
        let pod = pod.to_owned();
        let spec = Spec {
            application_id: version.application_id.clone(),
            ..Spec::default()
        };
        // The lines, their timestamps taken off, reach the output through a pipe that
        // outlives every stream.
        let (reader, mut lines) = tokio::io::simplex(64 * 1024);
        // Kubernetes merges the two streams: every line counts as stdout.
        let (output, logs) = (self.output.clone(), self.logs.clone());
        pump(
            reader,
            Stream::Stdout,
            &spec,
            instance_id,
            output,
            Tail::default(),
            logs,
        );
        let from = since.and_then(|seconds| {
            k8s_openapi::jiff::Timestamp::now()
                .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
                .ok()
        });
        tokio::spawn(async move {
            let mut resume = Resume::from(from);
            let mut pause = LOG_RETRY_FIRST;
            loop {
                let parameters = LogParams {
                    container: Some("instance".to_owned()),
                    follow: true,
                    timestamps: true,
                    since_time: resume.since_time(),
                    ..LogParams::default()
                };
                resume.reopened();
                let opened = tokio::select! {
                    opened = api.log_stream(&pod, &parameters) => opened,
                    _ = &mut done => return,
                };
                match opened {
                    Ok(stream) => {
                        let mut stream = tokio::io::BufReader::new(stream.compat());
                        tokio::select! {
                            read = copy_lines(&mut stream, &mut resume, &mut lines) => {
                                if read.is_err() { return }
                                pause = LOG_RETRY_FIRST;
                            }
                            _ = &mut done => return,
                        }
                    }
                    Err(error) if not_found(&error) => return,
                    Err(error) => tracing::warn!(%pod, %error, "cannot follow an instance's logs; trying again"),
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = &mut done => return,
                }
                pause = (pause * 2).min(LOG_RETRY_MAX);
            }
        });
    }

    /// Tells the instances of `version` that ended on their own, every [`WATCH_INTERVAL`],
    /// until it has neither instances nor starts (then it is forgotten).
    async fn watch(self: Arc<Self>, version: Arc<Version>) {
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            {
                let mut versions = self.versions.lock().expect("versions lock");
                if version.claims.lock().expect("claims lock").is_idle() {
                    versions.remove(&(version.namespace.clone(), version.name.clone()));
                    return;
                }
            }
            let pods = match self.pods(&version).await {
                Ok(pods) => pods,
                Err(error) => {
                    tracing::warn!(%error, "cannot look at instances' pods");
                    continue;
                }
            };
            let ended = version.claims.lock().expect("claims lock").ended(&pods);
            if ended.is_empty() {
                continue;
            }
            for (claim, reason) in ended {
                tracing::info!(instance_id = %claim.instance_id, pod_of = %version.name, %reason, "an instance's pod ended");
                let _ = claim.ended.send(reason);
            }
            if let Err(error) = self.rescale(&version).await {
                tracing::warn!(%error, "cannot scale down after instances ended");
            }
        }
    }

    /// Returns the instance `instance_id` holding `pod` of `version`: answers at `address`,
    /// its output followed, stops when told to, and says why it ended.
    fn running(
        self: &Arc<Self>,
        version: Arc<Version>,
        (instance_id, pod, since): (&str, String, Option<i64>),
        address: String,
        ended: oneshot::Receiver<String>,
    ) -> Running {
        let (stop, stopped) = oneshot::channel::<()>();
        let (following, done) = oneshot::channel::<()>();
        self.follow(&version, (&pod, instance_id), since, done);
        let (exited_tx, exited) = oneshot::channel();
        let inner = self.clone();
        tokio::spawn(async move {
            // Its output is followed as long as it lives.
            let _following = following;
            let reason = tokio::select! {
                reason = ended => reason.unwrap_or_else(|_| "stopped".to_owned()),
                _ = stopped => {
                    inner.give_up(&version, &pod).await;
                    "stopped".to_owned()
                }
            };
            let _ = exited_tx.send(reason);
        });
        Running { address, stop, exited }
    }

    /// Removes the objects of the version `name` in `namespace`.
    async fn remove(&self, namespace: &str, name: &str) {
        let parameters = DeleteParams::background();
        let deployment = Api::<Deployment>::namespaced(self.client.clone(), namespace)
            .delete(name, &parameters)
            .await
            .map(drop);
        let service = Api::<Service>::namespaced(self.client.clone(), namespace)
            .delete(name, &parameters)
            .await
            .map(drop);
        let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .delete(name, &parameters)
            .await
            .map(drop);
        for result in [deployment, service, secret] {
            if let Err(error) = result
                && !not_found(&error)
            {
                tracing::warn!(namespace, name, %error, "cannot remove a version's objects");
            }
        }
    }

    /// Returns the Deployments this installation's runner made, each with its application
    /// and version: those of the namespaces it made (labelled as nuage's, of its prefix:
    /// another installation sharing the cluster has a prefix of its own), listed one
    /// namespace at a time, as the runner may list Deployments only where it bound its role.
    /// A namespace whose Deployments cannot be listed is left out, saying so. Returns the
    /// namespaces whose Deployments were all listed too.
    async fn deployments(&self) -> Result<(Vec<(Deployment, String, String)>, Vec<String>), RunnerError> {
        let ours = ListParams::default().labels(&format!("{}={}", naming::MANAGED_BY, naming::MANAGER));
        let namespaces = Api::<Namespace>::all(self.client.clone())
            .list(&ours)
            .await
            .map_err(failed("listing the runner's namespaces"))?;
        let prefix = &self.config.kubernetes.namespace_prefix;
        let (mut listed, mut looked) = (Vec::new(), Vec::new());
        for namespace in namespaces.items {
            let Some(name) = namespace.metadata.name.filter(|name| name.starts_with(prefix.as_str())) else {
                continue;
            };
            // One being deleted goes with its versions.
            if namespace.metadata.deletion_timestamp.is_some() {
                continue;
            }
            // Its RoleBinding too, should a runner have stopped between making the namespace
            // and making it.
            let deployments = Api::<Deployment>::namespaced(self.client.clone(), &name);
            let found = match self.bind(&name).await {
                Ok(patience) => authorized(patience, || deployments.list(&ours))
                    .await
                    .map_err(failed(format!("listing the deployments of {name}"))),
                Err(error) => Err(error),
            };
            match found {
                Ok(found) => {
                    listed.extend(found.items);
                    looked.push(name);
                }
                Err(error) => tracing::warn!(%error, "cannot list the versions of a tenant namespace"),
            }
        }
        let versions = listed
            .into_iter()
            .filter_map(|deployment| {
                let ids = deployment.metadata.annotations.as_ref()?.get(IDS_ANNOTATION)?.clone();
                let mut parts = ids.splitn(4, '/').skip(2);
                let (application_id, version) = (parts.next()?.to_owned(), parts.next()?.to_owned());
                Some((deployment, application_id, version))
            })
            .collect();
        Ok((versions, looked))
    }

    /// Returns the versions with instances or starts, by namespace and name.
    fn live(&self) -> HashSet<(String, String)> {
        self.versions
            .lock()
            .expect("versions lock")
            .iter()
            .filter(|(_, version)| !version.claims.lock().expect("claims lock").is_idle())
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Deletes the tenant namespaces `candidates` (see [`cleanup::plan`]) that still have no
    /// version starting or running here, under the namespaces' lock, which a start holds from
    /// making its namespace to counting its start.
    async fn remove_namespaces(&self, candidates: Vec<String>) {
        let mut applied = self.namespaces.lock().await;
        let busy: HashSet<String> = self.live().into_iter().map(|(namespace, _)| namespace).collect();
        let api = Api::<Namespace>::all(self.client.clone());
        for namespace in candidates {
            if busy.contains(&namespace) {
                continue;
            }
            match api.delete(&namespace, &DeleteParams::background()).await {
                Ok(_) => tracing::info!(%namespace, "removed a namespace with no version left"),
                Err(error) if not_found(&error) => {}
                Err(error) => {
                    tracing::warn!(%namespace, %error, "cannot remove a namespace with no version left");
                    continue;
                }
            }
            applied.remove(&namespace);
            self.bound.lock().expect("bound lock").remove(&namespace);
        }
    }
}

impl Backend for KubernetesBackend {
    async fn start(&self, spec: &Spec, instance_id: &str) -> Result<Running, RunnerError> {
        let inner = &self.inner;
        // Refused before anything is made: a sandbox not offered is never swapped for another.
        inner.objects.runtime_class(spec)?;
        let version = inner.enter(spec).await?;
        let claimed = async {
            inner.apply_version(&version, spec).await?;
            inner.claim(&version, instance_id).await
        }
        .await;
        let (ready, ended) = match claimed {
            Ok(claimed) => claimed,
            Err(error) => {
                version.claims.lock().expect("claims lock").abandon();
                if let Err(error) = inner.rescale(&version).await {
                    tracing::warn!(%error, "cannot scale down after a failed start");
                }
                return Err(error);
            }
        };
        tracing::info!(pod = %ready.pod, namespace = %version.namespace, "instance holds a pod");
        Ok(inner.running(version, (instance_id, ready.pod, None), ready.address, ended))
    }

    async fn component(&self, spec: &Spec) -> Result<Component, RunnerError> {
        // A WebAssembly function has no pods: the router runs it from its image, read here
        // from the registry (no cluster is asked).
        let reference = self.inner.objects.image(spec);
        let auth = self.inner.registry_auth(&reference).await?;
        let image = self.inner.images.get(&reference, &auth).await?;
        let public_egress = self.inner.config.egress == Egress::Public;
        Component::read(&image, spec, &self.inner.sealing, public_egress).await
    }

    async fn pin(&self, image: &str) -> Result<String, RunnerError> {
        // A reference by digest is checked too: a rollback to an image pruned from the
        // registry is refused here, before any pod is asked to pull it.
        let reference = self.inner.objects.image_reference(image);
        let auth = self.inner.registry_auth(&reference).await?;
        self.inner.images.pin(&reference, &auth).await
    }

    async fn release(&self, current: Current) {
        for copy in self.inner.images.release(current.images.clone()).await {
            tracing::info!(copy = %copy.display(), "removed an unused component image");
        }
        let (deployments, looked) = match self.inner.deployments().await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "cannot list versions to remove");
                return;
            }
        };
        let found: Vec<Found> = deployments
            .into_iter()
            .map(|(deployment, application_id, version)| Found {
                namespace: deployment.metadata.namespace.unwrap_or_default(),
                name: deployment.metadata.name.unwrap_or_default(),
                application_id,
                version,
            })
            .collect();
        // A version with instances (draining) or a start (a deployment in progress) stays.
        let plan = cleanup::plan(&found, &looked, &current, &self.inner.live());
        for (namespace, name) in &plan.versions {
            tracing::info!(%namespace, %name, "removing a version nothing runs");
            self.inner.remove(namespace, name).await;
        }
        self.inner.remove_namespaces(plan.namespaces).await;
    }

    fn outlives_runner(&self) -> bool {
        true
    }

    async fn recover(&self, current: Current) -> Vec<Adopted> {
        let inner = &self.inner;
        let deployments = match inner.deployments().await {
            Ok((deployments, _)) => deployments,
            Err(error) => {
                tracing::warn!(%error, "cannot list the versions running; none are recovered");
                return Vec::new();
            }
        };
        let mut adopted = Vec::new();
        for (deployment, application_id, version_id) in deployments {
            if current.versions.get(&application_id) != Some(&version_id) {
                continue;
            }
            let namespace = deployment.metadata.namespace.clone().unwrap_or_default();
            let spec = Spec {
                application_id: application_id.clone(),
                version: version_id.clone(),
                port: deployment_port(&deployment),
                ..Spec::default()
            };
            let version = inner.begin(&namespace, &spec);
            let pods: HashMap<String, PodState> = inner
                .pods(&version)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|pod| (pod.name.clone(), pod))
                .collect();
            for ready in inner.ready(&version).await.unwrap_or_default() {
                // Only pods an instance held: the router knows them by that instance's id.
                let Some(pod) = pods.get(&ready.pod) else { continue };
                let Some(instance_id) = pod.instance.clone() else {
                    continue;
                };
                let ended = version
                    .claims
                    .lock()
                    .expect("claims lock")
                    .adopt(&ready.pod, &instance_id, pod.restarts);
                // Its earlier lines were shipped by the runner before this one.
                let held = (instance_id.as_str(), ready.pod, Some(1));
                let running = inner.running(version.clone(), held, ready.address, ended);
                adopted.push(Adopted {
                    application_id: application_id.clone(),
                    version: version_id.clone(),
                    instance_id,
                    running,
                });
            }
            // The count `begin` made was no start; pods no instance held go.
            version.claims.lock().expect("claims lock").abandon();
            if let Err(error) = inner.rescale(&version).await {
                tracing::warn!(%error, "cannot scale a recovered version to its instances");
            }
        }
        adopted
    }
}

/// Returns the user and password a `.dockerconfigjson` holds for `registry` (as `auth`, the
/// base64 of `user:password`, or as `username` and `password`).
fn docker_credentials(config: &[u8], registry: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let config: serde_json::Value = serde_json::from_slice(config).ok()?;
    let entry = config.get("auths")?.as_object()?.iter().find_map(|(host, entry)| {
        let host = host.trim_start_matches("https://").trim_start_matches("http://");
        (host.trim_end_matches('/') == registry).then_some(entry)
    })?;
    if let (Some(username), Some(password)) = (entry.get("username"), entry.get("password")) {
        return Some((username.as_str()?.to_owned(), password.as_str()?.to_owned()));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?)
        .ok()?;
    let (username, password) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))?;
    Some((username, password))
}

/// Returns the port the pods of `deployment` listen on.
fn deployment_port(deployment: &Deployment) -> u32 {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod| pod.containers.first())
        .and_then(|container| container.ports.as_ref())
        .and_then(|ports| ports.first())
        .and_then(|port| u32::try_from(port.container_port).ok())
        .unwrap_or(0)
}

/// Passes the lines of `stream` (a log read with timestamps) that `resume` has not seen to
/// `lines`, until the stream ends; fails when `lines` is closed (nobody reads the output).
async fn copy_lines(
    stream: &mut (impl tokio::io::AsyncBufRead + Unpin),
    resume: &mut Resume,
    lines: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let mut line = Vec::new();
    while let Ok(Some(_)) = crate::output::next_line(stream, &mut line).await {
        if let Some(message) = resume.accept(&line) {
            lines.write_all(message).await?;
            lines.write_all(b"\n").await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::docker_credentials;

    #[test]
    fn pull_secrets_give_the_credentials_of_their_registry_only() {
        let config = br#"{"auths": {
            "https://registry.example.com/": {"auth": "dXNlcjpwYTpzcw=="},
            "other.example:5000": {"username": "robot", "password": "t0ken"}
        }}"#;
        assert_eq!(
            docker_credentials(config, "registry.example.com"),
            Some(("user".to_owned(), "pa:ss".to_owned()))
        );
        assert_eq!(
            docker_credentials(config, "other.example:5000"),
            Some(("robot".to_owned(), "t0ken".to_owned()))
        );
        assert_eq!(docker_credentials(config, "elsewhere.example"), None);
        assert_eq!(docker_credentials(b"not json", "registry.example.com"), None);
    }
}
