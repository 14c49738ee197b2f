//! The specs of applications' current versions, kept in the database so that instances can be
//! started again after a restart without a redeploy.

use crate::backend::Current;
use nuage_core::clock::now_micros;
use nuage_core::{ApiError, Database};
use nuage_proto::common::v1::StoredSecret;
use nuage_proto::runner::v1::Spec;
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// Specs in the database.
#[derive(Debug, Clone)]
pub struct SpecStore {
    database: Database,
}

/// A secret of a spec as the runner stores it: sealed, as it came.
#[derive(Debug, Serialize, Deserialize)]
struct SealedSecret {
    key: String,
    owner_id: String,
    sealed_value: String,
}

impl From<&StoredSecret> for SealedSecret {
    fn from(secret: &StoredSecret) -> Self {
        Self {
            key: secret.key.clone(),
            owner_id: secret.owner_id.clone(),
            sealed_value: secret.sealed_value.clone(),
        }
    }
}

impl SealedSecret {
    fn into_proto(self) -> StoredSecret {
        StoredSecret {
            key: self.key,
            owner_id: self.owner_id,
            sealed_value: self.sealed_value,
            hashed_value: String::new(),
        }
    }
}

/// A spec's `command`, `args` and `probe`, as stored.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Process {
    command: Vec<String>,
    args: Vec<String>,
    /// `failure_threshold`, `interval_ms`, `http_path`.
    probe: Option<(u32, u64, Option<String>)>,
}

impl Process {
    fn of(spec: &Spec) -> Self {
        Self {
            command: spec.command.clone(),
            args: spec.args.clone(),
            probe: spec
                .probe
                .as_ref()
                .map(|probe| (probe.failure_threshold, probe.interval_ms, probe.http_path.clone())),
        }
    }

    fn into_spec(self, spec: &mut Spec) {
        spec.command = self.command;
        spec.args = self.args;
        spec.probe =
            self.probe.map(
                |(failure_threshold, interval_ms, http_path)| nuage_proto::common::v1::HealthCheck {
                    failure_threshold,
                    interval_ms,
                    http_path,
                },
            );
    }
}

impl SpecStore {
    /// Returns a store over `database`.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Records `spec` as its application's current version.
    pub async fn put(&self, spec: &Spec) -> Result<(), ApiError> {
        let environment = serde_json::to_string(&spec.environment).map_err(|error| ApiError::internal(&error))?;
        // Secrets stay sealed at rest: the runner opens them only to start an instance.
        let secrets: Vec<SealedSecret> = spec.secrets.iter().map(SealedSecret::from).collect();
        let secrets = serde_json::to_string(&secrets).map_err(|error| ApiError::internal(&error))?;
        let process = serde_json::to_string(&Process::of(spec)).map_err(|error| ApiError::internal(&error))?;
        sqlx::query(
            "insert into runner_applications (application_id, version, kind, image, environment, memory_limit_mb, \
             port, cpu_limit_mcpu, updated_at, secrets, process, sandbox, organization_id, namespace_id) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             on conflict (application_id) do update set version = excluded.version, kind = excluded.kind, \
             image = excluded.image, environment = excluded.environment, \
             memory_limit_mb = excluded.memory_limit_mb, port = excluded.port, \
             cpu_limit_mcpu = excluded.cpu_limit_mcpu, updated_at = excluded.updated_at, \
             secrets = excluded.secrets, process = excluded.process, sandbox = excluded.sandbox, \
             organization_id = excluded.organization_id, namespace_id = excluded.namespace_id",
        )
        .bind(&spec.application_id)
        .bind(&spec.version)
        .bind(spec.kind)
        .bind(&spec.image)
        .bind(environment)
        .bind(i64::from(spec.memory_limit_mb))
        .bind(i64::from(spec.port))
        .bind(i64::from(spec.cpu_limit_mcpu))
        .bind(now_micros())
        .bind(secrets)
        .bind(process)
        .bind(i64::from(spec.sandbox))
        .bind(&spec.organization_id)
        .bind(&spec.namespace_id)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Returns the current spec of `application_id`.
    pub async fn get(&self, application_id: &str) -> Result<Option<Spec>, ApiError> {
        let row = sqlx::query(
            "select application_id, version, kind, image, environment, memory_limit_mb, port, cpu_limit_mcpu, \
             secrets, process, sandbox, organization_id, namespace_id from runner_applications where application_id = $1",
        )
        .bind(application_id)
        .fetch_optional(self.database.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let environment: String = row.try_get("environment")?;
        let secrets: String = row.try_get("secrets")?;
        let secrets: Vec<SealedSecret> = serde_json::from_str(&secrets).map_err(|error| ApiError::internal(&error))?;
        let process: String = row.try_get("process")?;
        let process: Process = serde_json::from_str(&process).map_err(|error| ApiError::internal(&error))?;
        let mut spec = Spec {
            secrets: secrets.into_iter().map(SealedSecret::into_proto).collect(),
            application_id: row.try_get("application_id")?,
            version: row.try_get("version")?,
            kind: i32::try_from(row.try_get::<i64, _>("kind")?).unwrap_or_default(),
            image: row.try_get("image")?,
            environment: serde_json::from_str(&environment).map_err(|error| ApiError::internal(&error))?,
            memory_limit_mb: u32::try_from(row.try_get::<i64, _>("memory_limit_mb")?).unwrap_or_default(),
            port: u32::try_from(row.try_get::<i64, _>("port")?).unwrap_or_default(),
            cpu_limit_mcpu: u32::try_from(row.try_get::<i64, _>("cpu_limit_mcpu")?).unwrap_or_default(),
            sandbox: i32::try_from(row.try_get::<i64, _>("sandbox")?).unwrap_or_default(),
            organization_id: row.try_get("organization_id")?,
            namespace_id: row.try_get("namespace_id")?,
            ..Spec::default()
        };
        process.into_spec(&mut spec);
        Ok(Some(spec))
    }

    /// Returns every application's current version and the images they run.
    pub async fn current(&self) -> Result<Current, ApiError> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("select application_id, version, image from runner_applications")
                .fetch_all(self.database.pool())
                .await?;
        let mut current = Current::default();
        for (application_id, version, image) in rows {
            current.images.insert(image);
            current.versions.insert(application_id, version);
        }
        Ok(current)
    }

    /// Forgets `application_id`.
    pub async fn remove(&self, application_id: &str) -> Result<(), ApiError> {
        sqlx::query("delete from runner_applications where application_id = $1")
            .bind(application_id)
            .execute(self.database.pool())
            .await?;
        Ok(())
    }
}
