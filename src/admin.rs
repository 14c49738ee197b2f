//! `nuage admin`: tenant and API key management against the same database as the server,
//! safe to run while it serves. Output is one JSON object.

use crate::config::Config;
use anyhow::Context;
use nuage_core::{Database, MasterKey};
use nuage_iam::{IamStore, NewApiKey};
use serde_json::{Value, json};
use uuid::Uuid;

/// Returns the JSON describing a new key: the only time its secret is shown.
pub fn key_json(key: &NewApiKey) -> Value {
    json!({
        "organization_id": key.organization_id,
        "project_id": key.project_id,
        "access_key": key.access_key.as_str(),
        "secret_key": key.secret_key.expose(),
    })
}

/// Returns the master key from config, or from its file (created on first use).
pub fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    match &config.master_key {
        Some(hex) => Ok(MasterKey::from_hex(hex.expose())?),
        None => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating data dir `{}`", config.data_dir.display()))?;
            Ok(MasterKey::load_or_create(&config.master_key_file())?)
        }
    }
}

/// Returns the iam store over `database`.
pub fn open_iam(config: &Config, database: Database) -> anyhow::Result<IamStore> {
    Ok(IamStore::new(database, &master_key(config)?))
}

async fn store(config: &Config) -> anyhow::Result<IamStore> {
    std::fs::create_dir_all(&config.data_dir)?;
    let url = config.database_url();
    let database = Database::connect(&url)
        .await
        .with_context(|| format!("connecting to `{}`", nuage_core::db::redact_url(&url)))?;
    database.migrate().await?;
    open_iam(config, database)
}

/// Creates an organization with its default project and a first API key.
pub async fn create_tenant(config: &Config, name: &str) -> anyhow::Result<NewApiKey> {
    Ok(store(config).await?.create_tenant(name).await?)
}

/// Creates another API key for an organization.
pub async fn create_key(config: &Config, organization_id: Uuid) -> anyhow::Result<NewApiKey> {
    Ok(store(config).await?.create_key(organization_id).await?)
}

/// Revokes an API key.
pub async fn revoke_key(config: &Config, access_key: &str) -> anyhow::Result<()> {
    Ok(store(config).await?.revoke_key(access_key).await?)
}
