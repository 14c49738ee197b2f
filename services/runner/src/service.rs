//! The runner gRPC service: keeps the instances of each application and obeys the router.

use crate::backend::Backend;
use crate::error::RunnerError;
use crate::specs::SpecStore;
use nuage_core::validate::required;
use nuage_core::{ApiError, ErrorCode};
use nuage_proto::runner::v1::{self as pb, InstanceState, event::Change, runner_server::Runner};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, broadcast, oneshot};
use tokio_stream::{Stream, StreamExt, wrappers::BroadcastStream};
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// One instance as the runner keeps it.
#[derive(Debug)]
struct Entry {
    instance: pb::Instance,
    stop: Option<oneshot::Sender<()>>,
    /// Closed once the instance's end was seen to (its processes gone, its files removed).
    ended: Option<oneshot::Receiver<()>>,
}

type Instances = Arc<Mutex<HashMap<String, Vec<Entry>>>>;

/// Serves `nuage.runner.v1.Runner` over a [`Backend`].
#[derive(Debug)]
pub struct RunnerService<B> {
    backend: Arc<B>,
    specs: SpecStore,
    instances: Instances,
    events: broadcast::Sender<pb::Event>,
    output: broadcast::Sender<pb::OutputLine>,
    /// Wakes [`RunnerService::release_unused`]: an instance ended, or a version stopped
    /// being current.
    unused: Arc<Notify>,
}

impl<B> Clone for RunnerService<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            specs: self.specs.clone(),
            instances: self.instances.clone(),
            events: self.events.clone(),
            output: self.output.clone(),
            unused: self.unused.clone(),
        }
    }
}

/// Waits for every receiver to close.
async fn all_closed(receivers: impl Iterator<Item = oneshot::Receiver<()>>) {
    for receiver in receivers {
        let _ = receiver.await;
    }
}

impl<B: Backend> RunnerService<B> {
    /// Returns a service that starts instances with `backend`; `output` carries what they print.
    pub fn new(backend: B, specs: SpecStore, output: broadcast::Sender<pb::OutputLine>) -> Self {
        Self {
            backend: Arc::new(backend),
            specs,
            instances: Arc::default(),
            events: broadcast::channel(1024).0,
            output,
            unused: Arc::new(Notify::new()),
        }
    }

    /// Removes the images that neither a current version nor a live instance uses: at once
    /// (what was left from before a restart), then whenever an instance ended or a version
    /// stopped being current; wakes that come during a pass make one more pass. Runs forever.
    pub async fn release_unused(self) {
        loop {
            match self.specs.current().await {
                Ok(current) => self.backend.release(current).await,
                Err(error) => tracing::warn!(%error, "cannot read the current versions' images; unused ones stay"),
            }
            self.unused.notified().await;
        }
    }

    /// Stops every instance of every application and waits until they are gone; where
    /// instances outlive the runner (pods), leaves them running for the next runner instead.
    pub async fn stop_all(&self) {
        if self.backend.outlives_runner() {
            let kept: Vec<Entry> = self
                .instances
                .lock()
                .expect("instances lock")
                .drain()
                .flat_map(|(_, entries)| entries)
                .collect();
            tracing::info!(instances = kept.len(), "instances keep running for the next runner");
            // Dropping a stop would stop its instance.
            std::mem::forget(kept);
            return;
        }
        let (stops, ended): (Vec<_>, Vec<_>) = self
            .instances
            .lock()
            .expect("instances lock")
            .drain()
            .flat_map(|(_, entries)| entries)
            .map(|mut entry| (entry.stop.take(), entry.ended.take()))
            .unzip();
        drop(stops);
        // The supervisors kill, reap and clean up on their own: wait for them, within reason.
        let all = all_closed(ended.into_iter().flatten());
        if tokio::time::timeout(std::time::Duration::from_secs(10), all)
            .await
            .is_err()
        {
            tracing::warn!("some instances did not end within 10 s of being stopped");
        }
    }

    /// Makes `spec`, a WebAssembly function's, current once its image holds a component: it
    /// has no instances, the router runs it. Answers with the image, pinned, as every deploy.
    async fn deploy_component(&self, spec: pb::Spec) -> Result<Response<pb::DeployResponse>, Status> {
        self.backend.component(&spec).await.map_err(ApiError::from)?;
        self.specs.put(&spec).await?;
        self.unused.notify_one();
        let _ = self.events.send(pb::Event {
            application_id: spec.application_id.clone(),
            change: Some(Change::Component(spec.version.clone())),
        });
        tracing::info!(application_id = %spec.application_id, version = %spec.version, "component deployed");
        Ok(Response::new(pb::DeployResponse {
            instance: None,
            image: spec.image,
        }))
    }

    /// Returns the current spec of `application_id`, unless it is a WebAssembly function's
    /// (which has no instances).
    async fn instance_spec(&self, application_id: &str) -> Result<pb::Spec, ApiError> {
        let spec = self.spec(application_id).await?;
        if spec.kind() == pb::Kind::Wasm {
            return Err(RunnerError::RunsInRouter(application_id.to_owned()).into());
        }
        Ok(spec)
    }

    async fn spec(&self, application_id: &str) -> Result<pb::Spec, ApiError> {
        self.specs.get(application_id).await?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::FailedPrecondition,
                format!("application {application_id} has no deployed version"),
            )
        })
    }

    /// Keeps again the instances the backend still runs from before this runner started (the
    /// `kubernetes` backend's pods), so that the router finds them instead of starting others.
    pub async fn recover(self) {
        let current = match self.specs.current().await {
            Ok(current) => current,
            Err(error) => {
                tracing::warn!(%error, "cannot read the current versions; running instances are not recovered");
                return;
            }
        };
        for adopted in self.backend.recover(current).await {
            let instance = pb::Instance {
                id: adopted.instance_id,
                application_id: adopted.application_id,
                version: adopted.version,
                address: adopted.running.address.clone(),
                state: InstanceState::Ready.into(),
                started_at: nuage_core::clock::now_micros(),
                exit_reason: String::new(),
            };
            tracing::info!(application_id = %instance.application_id, instance_id = %instance.id, address = %instance.address, "instance recovered");
            self.keep(instance, adopted.running);
        }
    }

    /// Starts one instance of `spec` and keeps it; answers once it answers.
    async fn start(&self, spec: &pb::Spec) -> Result<pb::Instance, ApiError> {
        let id = Uuid::new_v4().to_string();
        let mut instance = pb::Instance {
            id: id.clone(),
            application_id: spec.application_id.clone(),
            version: spec.version.clone(),
            address: String::new(),
            state: InstanceState::Starting.into(),
            started_at: nuage_core::clock::now_micros(),
            exit_reason: String::new(),
        };
        let started = self.backend.start(spec, &id).await.map_err(|error| {
            tracing::warn!(application_id = %spec.application_id, message = %error, "an instance failed to start");
            // A version that never started may have left its image.
            self.unused.notify_one();
            ApiError::from(error)
        })?;
        instance.address = started.address.clone();
        instance.state = InstanceState::Ready.into();
        self.keep(instance.clone(), started);
        tracing::info!(application_id = %spec.application_id, instance_id = %id, address = %instance.address, "instance ready");
        Ok(instance)
    }

    /// Keeps `instance`, ready, until it ends: asked to, or on its own (then the router hears
    /// of it).
    fn keep(&self, instance: pb::Instance, started: crate::backend::Running) {
        let (ended_tx, ended_rx) = oneshot::channel::<()>();
        self.instances
            .lock()
            .expect("instances lock")
            .entry(instance.application_id.clone())
            .or_default()
            .push(Entry {
                instance: instance.clone(),
                stop: Some(started.stop),
                ended: Some(ended_rx),
            });
        let (instances, events, ended) = (self.instances.clone(), self.events.clone(), instance);
        let (exited, unused) = (started.exited, self.unused.clone());
        tokio::spawn(async move {
            let reason = exited.await.unwrap_or_else(|_| "stopped".to_owned());
            drop(ended_tx);
            // Its image may be used by nothing else now.
            unused.notify_one();
            // Still listed: it ended without being asked to.
            let unasked = {
                let mut instances = instances.lock().expect("instances lock");
                let entries = instances.entry(ended.application_id.clone()).or_default();
                let before = entries.len();
                entries.retain(|entry| entry.instance.id != ended.id);
                let unasked = entries.len() < before;
                if entries.is_empty() {
                    instances.remove(&ended.application_id);
                }
                unasked
            };
            if unasked {
                tracing::warn!(application_id = %ended.application_id, instance_id = %ended.id, %reason, "instance ended");
                let mut instance = ended;
                instance.state = InstanceState::Exited.into();
                instance.exit_reason = reason;
                let _ = events.send(pb::Event {
                    application_id: instance.application_id.clone(),
                    change: Some(Change::Exited(instance)),
                });
            }
        });
    }

    fn listed(&self, application_id: &str, version: Option<&str>) -> Vec<pb::Instance> {
        self.instances
            .lock()
            .expect("instances lock")
            .get(application_id)
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| entry.instance.clone())
                    .filter(|instance| version.is_none_or(|version| instance.version == version))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops the instances `pick` selects; returns how many.
    fn stop_where(&self, application_id: &str, pick: impl Fn(&pb::Instance) -> bool) -> u32 {
        let mut instances = self.instances.lock().expect("instances lock");
        let Some(entries) = instances.get_mut(application_id) else {
            return 0;
        };
        let mut stopped = 0;
        entries.retain_mut(|entry| {
            if pick(&entry.instance) {
                drop(entry.stop.take());
                stopped += 1;
                false
            } else {
                true
            }
        });
        if entries.is_empty() {
            instances.remove(application_id);
        }
        stopped
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;
type OutputStream = Pin<Box<dyn Stream<Item = Result<pb::OutputLine, Status>> + Send>>;
type ComponentStream = Pin<Box<dyn Stream<Item = Result<pb::ComponentPart, Status>> + Send>>;

/// Bytes of a component per message (under gRPC's default 4 MiB message limit).
const COMPONENT_PART_BYTES: usize = 1 << 20;

#[tonic::async_trait]
impl<B: Backend> Runner for RunnerService<B> {
    async fn deploy(&self, request: Request<pb::DeployRequest>) -> Result<Response<pb::DeployResponse>, Status> {
        let mut spec = request.into_inner().spec.ok_or_else(|| ApiError::required("spec"))?;
        required("spec.application_id", &spec.application_id)?;
        required("spec.version", &spec.version)?;
        required("spec.image", &spec.image)?;
        // The version runs what its tag names now, in every instance it will ever have.
        spec.image = self.backend.pin(&spec.image).await.map_err(ApiError::from)?;
        if spec.kind() == pb::Kind::Wasm {
            return self.deploy_component(spec).await;
        }
        // The new version becomes current only once an instance of it answered: a version that
        // cannot start leaves the previous one serving.
        let instance = self.start(&spec).await?;
        self.specs.put(&spec).await?;
        // The previous version's image, if no instance of it runs.
        self.unused.notify_one();
        let _ = self.events.send(pb::Event {
            application_id: spec.application_id.clone(),
            change: Some(Change::Deployed(instance.clone())),
        });
        Ok(Response::new(pb::DeployResponse {
            instance: Some(instance),
            image: spec.image,
        }))
    }

    async fn pin_image(&self, request: Request<pb::PinImageRequest>) -> Result<Response<pb::PinImageResponse>, Status> {
        let image = request.into_inner().image;
        required("image", &image)?;
        let image = self.backend.pin(&image).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::PinImageResponse { image }))
    }

    async fn remove(&self, request: Request<pb::RemoveRequest>) -> Result<Response<pb::RemoveResponse>, Status> {
        let application_id = request.into_inner().application_id;
        required("application_id", &application_id)?;
        self.specs.remove(&application_id).await?;
        let stopped = self.stop_where(&application_id, |_| true);
        // Its image goes once its instances have ended (each wakes the release again).
        self.unused.notify_one();
        let _ = self.events.send(pb::Event {
            application_id,
            change: Some(Change::Removed(true)),
        });
        Ok(Response::new(pb::RemoveResponse { stopped }))
    }

    async fn start_instance(
        &self,
        request: Request<pb::StartInstanceRequest>,
    ) -> Result<Response<pb::Instance>, Status> {
        let request = request.into_inner();
        required("application_id", &request.application_id)?;
        let spec = self.instance_spec(&request.application_id).await?;
        if !request.version.is_empty() && request.version != spec.version {
            return Err(ApiError::new(
                ErrorCode::FailedPrecondition,
                format!("version {} is not current (current: {})", request.version, spec.version),
            )
            .into());
        }
        Ok(Response::new(self.start(&spec).await?))
    }

    async fn stop_instance(
        &self,
        request: Request<pb::StopInstanceRequest>,
    ) -> Result<Response<pb::StopInstanceResponse>, Status> {
        let request = request.into_inner();
        self.stop_where(&request.application_id, |instance| instance.id == request.instance_id);
        Ok(Response::new(pb::StopInstanceResponse {}))
    }

    async fn scale(&self, request: Request<pb::ScaleRequest>) -> Result<Response<pb::ScaleResponse>, Status> {
        let request = request.into_inner();
        required("application_id", &request.application_id)?;
        let spec = self.instance_spec(&request.application_id).await?;
        let current = self.listed(&request.application_id, Some(&spec.version));
        let wanted = request.replicas as usize;
        if current.len() > wanted {
            let surplus: std::collections::HashSet<String> =
                current[wanted..].iter().map(|instance| instance.id.clone()).collect();
            self.stop_where(&request.application_id, |instance| surplus.contains(&instance.id));
        } else {
            for _ in current.len()..wanted {
                self.start(&spec).await?;
            }
        }
        Ok(Response::new(pb::ScaleResponse {
            instances: self.listed(&request.application_id, Some(&spec.version)),
        }))
    }

    async fn resolve(&self, request: Request<pb::ResolveRequest>) -> Result<Response<pb::ResolveResponse>, Status> {
        let application_id = request.into_inner().application_id;
        let version = self.specs.get(&application_id).await?.map(|spec| spec.version);
        let instances = match version {
            Some(version) => self.listed(&application_id, Some(&version)),
            None => Vec::new(),
        };
        Ok(Response::new(pb::ResolveResponse { instances }))
    }

    async fn list_instances(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        let application_id = request.into_inner().application_id;
        Ok(Response::new(pb::ResolveResponse {
            instances: self.listed(&application_id, None),
        }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        _request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let stream = BroadcastStream::new(self.events.subscribe()).filter_map(|event| event.ok().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    type StreamOutputStream = OutputStream;

    async fn stream_output(
        &self,
        request: Request<pb::StreamOutputRequest>,
    ) -> Result<Response<Self::StreamOutputStream>, Status> {
        let application_id = request.into_inner().application_id;
        let stream = BroadcastStream::new(self.output.subscribe()).filter_map(move |line| {
            line.ok()
                .filter(|line| application_id.is_empty() || line.application_id == application_id)
                .map(Ok)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type GetComponentStream = ComponentStream;

    async fn get_component(
        &self,
        request: Request<pb::GetComponentRequest>,
    ) -> Result<Response<Self::GetComponentStream>, Status> {
        let application_id = request.into_inner().application_id;
        required("application_id", &application_id)?;
        let spec = self.spec(&application_id).await?;
        if spec.kind() != pb::Kind::Wasm {
            return Err(ApiError::from(RunnerError::NotComponent(application_id)).into());
        }
        let component = self.backend.component(&spec).await.map_err(ApiError::from)?;
        let mut parts: Vec<pb::ComponentPart> = component
            .bytes
            .chunks(COMPONENT_PART_BYTES)
            .map(|chunk| pb::ComponentPart {
                data: chunk.to_vec(),
                ..pb::ComponentPart::default()
            })
            .collect();
        if parts.is_empty() {
            parts.push(pb::ComponentPart::default());
        }
        parts[0].version = spec.version;
        parts[0].environment = component.environment.into_iter().collect();
        parts[0].memory_limit_mb = spec.memory_limit_mb;
        parts[0].public_egress = component.public_egress;
        Ok(Response::new(Box::pin(tokio_stream::iter(parts.into_iter().map(Ok)))))
    }
}
