//! The build worker: claims jobs, fetches and checks the archive, writes the image, and
//! reports the result to the functions service. Each step goes to the job's log. A failure
//! that may pass (`Unavailable`: the object store, the registry) puts the job back in the
//! queue; any other ends it, its message becoming the function's `error_message`.

use crate::base::{Base, cache_dir};
use crate::checks::{Limits, check_handler, read_archive};
use crate::config::BuilderConfig;
use crate::error::BuilderError;
use crate::image::{Foundation, write_image};
use crate::jobs::{Job, JobStore};
use crate::registry::Registry;
use aws_sdk_s3::primitives::ByteStream;
use nuage_clients::logsink::LogSink;
use nuage_core::transport::Authed;
use nuage_core::{ApiError, ErrorCode};
use nuage_proto::functions::v1::ReportBuildRequest;
use nuage_proto::functions::v1::functions_client::FunctionsClient;
use sha2::{Digest as _, Sha256};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A written image.
struct Built {
    /// Where it is.
    reference: String,
    /// `sha256:...` of its manifest.
    digest: String,
    /// `sha256:...` of the archive it was built from.
    archive_digest: String,
}

/// Builds queued jobs, one at a time per worker.
#[derive(Debug, Clone)]
pub struct Worker {
    jobs: JobStore,
    s3: aws_sdk_s3::Client,
    bucket: String,
    functions: FunctionsClient<Authed>,
    registry: PathBuf,
    config: BuilderConfig,
    limits: Limits,
    registry_push: Option<Registry>,
    /// Images kept per repository (per function).
    keep_images: usize,
    wake: Arc<Notify>,
    logs: Option<LogSink>,
}

impl Worker {
    /// Returns a worker keeping the newest `keep_images` images of each function; call
    /// [`Worker::run`].
    pub fn new(
        jobs: JobStore,
        (s3, bucket): (aws_sdk_s3::Client, String),
        functions: FunctionsClient<Authed>,
        (registry, keep_images): (PathBuf, usize),
        config: BuilderConfig,
    ) -> Self {
        Self {
            keep_images,
            registry_push: Registry::from_config(&config),
            jobs,
            s3,
            bucket,
            functions,
            registry,
            config,
            limits: Limits::default(),
            wake: Arc::new(Notify::new()),
            logs: None,
        }
    }

    /// Sends each build's log to the function's logs through `logs`.
    pub fn with_logs(mut self, logs: Option<LogSink>) -> Self {
        self.logs = logs;
        self
    }

    /// Asks for a look at the queue now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Builds forever.
    pub async fn run(self) {
        let idle = Duration::from_millis(self.config.poll_interval_ms.max(10));
        loop {
            match self.jobs.claim(self.config.lease_seconds.max(1) * 1_000_000).await {
                Ok(Some(job)) => {
                    if let Err(error) = self.handle(job).await {
                        tracing::warn!(%error, "build bookkeeping failed; the job will be retried");
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(idle) => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot claim build jobs");
                    tokio::time::sleep(idle).await;
                }
            }
        }
    }

    async fn handle(&self, job: Job) -> Result<(), ApiError> {
        let started = Instant::now();
        let mut log = String::new();
        let _ = writeln!(
            log,
            "build {} of function {} (attempt {})",
            job.id, job.function_id, job.attempts
        );
        if job.attempts > self.config.max_attempts {
            let error = BuilderError::GaveUp {
                attempts: self.config.max_attempts,
            };
            let _ = writeln!(log, "giving up: {error}");
            return self.end(&job, Err(&error), &log).await;
        }
        // The lease is renewed while the build runs; a worker that lost it (cut off longer
        // than the lease) leaves the job to the claim that took it.
        let result = tokio::select! {
            result = self.build(&job, &mut log) => result,
            () = self.lost(&job) => {
                tracing::warn!(job = %job.id, "another claim took this build job over; leaving it");
                return Ok(());
            }
        };
        let _ = writeln!(log, "took {} ms", started.elapsed().as_millis());
        match result {
            Ok(built) => {
                let _ = writeln!(log, "image {} ({})", built.reference, built.digest);
                self.end(&job, Ok(&built), &log).await
            }
            // What may pass (the store did not answer): later.
            Err(error) if error.code() == ErrorCode::Unavailable => {
                let _ = writeln!(log, "will retry: {error}");
                self.ship(&job, &log);
                tracing::warn!(job = %job.id, message = %error, "build will be retried");
                if !self.jobs.retry_later(&job, 2_000_000, &log).await? {
                    tracing::warn!(job = %job.id, "another claim took this build job over; leaving it");
                }
                Ok(())
            }
            // The tenant's input, or this installation, refuses it: retrying cannot help.
            Err(error) => {
                let _ = writeln!(log, "refused: {error}");
                self.end(&job, Err(&error), &log).await
            }
        }
    }

    /// Returns this worker's lease on a job.
    fn lease_micros(&self) -> i64 {
        self.config.lease_seconds.max(1) * 1_000_000
    }

    /// Renews the lease on `job` every third of it; returns once another claim holds the job.
    async fn lost(&self, job: &Job) {
        let every = Duration::from_micros(u64::try_from(self.lease_micros() / 3).unwrap_or(1).max(1));
        loop {
            tokio::time::sleep(every).await;
            match self.jobs.renew(job, self.lease_micros()).await {
                Ok(true) => {}
                Ok(false) => return,
                // The database may come back before the lease runs out.
                Err(error) => tracing::warn!(job = %job.id, %error, "cannot renew a build job's lease"),
            }
        }
    }

    /// Reports how `job` ended and ends it, if this worker's claim still holds it: one whose
    /// lease ran out (cut off meanwhile) leaves both to the claim that took the job over.
    async fn end(&self, job: &Job, result: Result<&Built, &BuilderError>, log: &str) -> Result<(), ApiError> {
        if !self.jobs.renew(job, self.lease_micros()).await? {
            tracing::warn!(job = %job.id, "another claim took this build job over; leaving it");
            return Ok(());
        }
        self.ship(job, log);
        self.report(job, result).await?;
        if !self.jobs.finish(job, result.is_ok(), log).await? {
            tracing::warn!(job = %job.id, "another claim took this build job over before it ended");
        }
        Ok(())
    }

    /// Sends the build's log to the function's logs, a line each.
    fn ship(&self, job: &Job, log: &str) {
        if let Some(logs) = &self.logs {
            for line in log.lines() {
                logs.push(&job.function_id, &job.id, "build", line);
            }
        }
    }

    async fn build(&self, job: &Job, log: &mut String) -> Result<Built, BuilderError> {
        let archive = self.fetch(&job.archive_key).await?.ok_or(BuilderError::NoArchive)?;
        let archive_digest = format!("sha256:{}", hex::encode(Sha256::digest(&archive)));
        let _ = writeln!(log, "fetched the archive: {} bytes, {archive_digest}", archive.len());
        let base = self.base(&job.runtime, log).await?;
        let (limits, runtime, handler) = (self.limits, job.runtime.clone(), job.handler.clone());
        let (registry, repository, tag) = (self.registry.clone(), job.repository.clone(), job.id.clone());
        let keep = self.keep_images;
        let (count, image) = tokio::task::spawn_blocking(move || {
            let entries = read_archive(&archive, &limits)?;
            check_handler(&runtime, &handler, &entries)?;
            let foundation = if runtime == "golang" || runtime.starts_with("go1") {
                Foundation::Compiled(crate::golang::build(&entries, &handler, &registry.join(".go-cache"))?)
            } else if runtime == "wasm" {
                Foundation::Compiled(nuage_wasm::precompile(
                    &handler,
                    crate::checks::component(&handler, &entries)?,
                )?)
            } else {
                base.map_or(Foundation::Runner, |base| Foundation::Base(Box::new(base)))
            };
            let image = write_image(
                &registry,
                (&repository, &tag),
                keep,
                (&runtime, &handler),
                &entries,
                foundation,
            )?;
            Ok::<_, BuilderError>((entries.len(), image))
        })
        .await
        .map_err(BuilderError::Task)??;
        let _ = writeln!(log, "checked {count} entries and the handler `{}`", job.handler);
        let mut reference = image.reference;
        if let Some(registry) = &self.registry_push {
            let pushed = registry
                .push(&self.registry, &job.repository, &job.id, &image.digest)
                .await?;
            let _ = writeln!(log, "pushed {pushed}");
            reference = pushed;
        }
        Ok(Built {
            reference,
            digest: image.digest,
            archive_digest,
        })
    }

    /// Returns the base image of `runtime`, fetched, when `builder.base_images` names one.
    async fn base(&self, runtime: &str, log: &mut String) -> Result<Option<Base>, BuilderError> {
        let Some(reference) = self.config.base_image(runtime) else {
            return Ok(None);
        };
        // The configuration is refused at start-up without a registry.
        let registry = self.registry_push.as_ref().ok_or_else(|| BuilderError::BaseUnusable {
            reference: reference.clone(),
            why: "builder.registry is not set".to_owned(),
        })?;
        let base = registry.pull_base(&reference, &cache_dir(&self.registry)).await?;
        let _ = writeln!(log, "on the base image {reference} ({})", base.digest);
        Ok(Some(base))
    }

    /// Returns the archive at `key`, `None` when there is none.
    async fn fetch(&self, key: &str) -> Result<Option<Vec<u8>>, BuilderError> {
        let object = self.s3.get_object().bucket(&self.bucket).key(key).send().await;
        let object = match object {
            Ok(object) => object,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(BuilderError::ObjectStore(Box::new(error))),
        };
        let body: ByteStream = object.body;
        body.collect()
            .await
            .map(|bytes| Some(bytes.into_bytes().to_vec()))
            .map_err(BuilderError::ReadArchive)
    }

    /// Tells the functions service how the build of `job` ended; a failure's message becomes
    /// the function's `error_message`.
    async fn report(&self, job: &Job, result: Result<&Built, &BuilderError>) -> Result<(), ApiError> {
        let mut request = ReportBuildRequest {
            deployment_id: job.id.clone(),
            function_id: job.function_id.clone(),
            ..Default::default()
        };
        match result {
            Ok(built) => {
                request.succeeded = true;
                request.image_reference = built.reference.clone();
                request.image_digest = built.digest.clone();
                request.archive_digest = built.archive_digest.clone();
            }
            Err(error) => request.error_message = error.to_string(),
        }
        self.functions
            .clone()
            .report_build(request)
            .await
            .map(drop)
            .map_err(|status| ApiError::from_status(&status))
    }
}
