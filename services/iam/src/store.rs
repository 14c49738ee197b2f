//! All SQL of iam.

use crate::error::IamError;
use crate::model::{AccessKey, NewApiKey, SecretKey};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use nuage_core::clock::now_micros;
use nuage_core::secret::keyed_digest;
use nuage_core::{Caller, Database, MasterKey};
use sqlx::Row;
use uuid::Uuid;

/// Organizations, projects and API keys in the database.
#[derive(Clone)]
pub struct IamStore {
    database: Database,
    digest_key: [u8; 32],
}

impl std::fmt::Debug for IamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamStore").finish_non_exhaustive()
    }
}

impl IamStore {
    /// Returns a store; API key digests are keyed with a key derived from `master_key`.
    pub fn new(database: Database, master_key: &MasterKey) -> Self {
        Self {
            database,
            digest_key: master_key.derive("api-key-digest"),
        }
    }

    fn digest(&self, secret: &SecretKey) -> String {
        keyed_digest(&self.digest_key, secret.expose().as_bytes())
    }

    /// Returns the caller a secret key belongs to, and its access key.
    ///
    /// One indexed lookup by keyed digest, then one argon2id verification: callers are
    /// expected to cache the answer for a short time.
    pub async fn verify(&self, secret: &str) -> Result<(Caller, String), IamError> {
        let secret = SecretKey::parse(secret).ok_or(IamError::Unauthenticated)?;
        let row = sqlx::query(
            "select access_key, organization_id, project_id, secret_hash from api_keys \
             where secret_digest = $1 and revoked_at is null",
        )
        .bind(self.digest(&secret))
        .fetch_optional(self.database.pool())
        .await?
        .ok_or(IamError::Unauthenticated)?;
        let hash: String = row.try_get("secret_hash")?;
        let exposed = secret.expose();
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| Argon2::default().verify_password(exposed.as_bytes(), &parsed).is_ok())
                .map_err(|error| IamError::Hash(error.to_string()))
        })
        .await
        .map_err(|error| IamError::Hash(error.to_string()))??;
        if !matches {
            return Err(IamError::Unauthenticated);
        }
        let organization_id: String = row.try_get("organization_id")?;
        let project_id: String = row.try_get("project_id")?;
        let caller = Caller {
            organization_id: parse_stored_id(&organization_id)?,
            project_id: parse_stored_id(&project_id)?,
        };
        Ok((caller, row.try_get("access_key")?))
    }

    /// Returns whether no organization exists yet (a fresh installation).
    pub async fn is_empty(&self) -> Result<bool, IamError> {
        let row = sqlx::query("select count(*) as n from organizations")
            .fetch_one(self.database.pool())
            .await?;
        Ok(row.try_get::<i64, _>("n")? == 0)
    }

    /// Creates an organization, its default project and a first API key.
    pub async fn create_tenant(&self, name: &str) -> Result<NewApiKey, IamError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 255 {
            return Err(IamError::InvalidName(
                "a tenant name must be 1 to 255 characters".to_owned(),
            ));
        }
        let organization_id = Uuid::new_v4();
        let project_id = Uuid::new_v4();
        let now = now_micros();
        let key = NewApiKey {
            organization_id,
            project_id,
            access_key: AccessKey::generate(),
            secret_key: SecretKey::generate(),
        };
        let hash = hash_secret(&key.secret_key).await?;
        let mut transaction = self.database.pool().begin().await?;
        sqlx::query("insert into organizations (id, name, created_at, updated_at) values ($1, $2, $3, $3)")
            .bind(organization_id.to_string())
            .bind(name)
            .bind(now)
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "insert into projects (id, organization_id, name, created_at, updated_at) values ($1, $2, $3, $4, $4)",
        )
        .bind(project_id.to_string())
        .bind(organization_id.to_string())
        .bind("default")
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        self.insert_key(&mut transaction, &key, &hash, now).await?;
        transaction.commit().await?;
        Ok(key)
    }

    /// Creates another API key for an existing organization, in its default project.
    pub async fn create_key(&self, organization_id: Uuid) -> Result<NewApiKey, IamError> {
        let row = sqlx::query("select id from projects where organization_id = $1 order by created_at asc limit 1")
            .bind(organization_id.to_string())
            .fetch_optional(self.database.pool())
            .await?
            .ok_or_else(|| IamError::OrganizationNotFound(organization_id.to_string()))?;
        let project_id: String = row.try_get("id")?;
        let key = NewApiKey {
            organization_id,
            project_id: parse_stored_id(&project_id)?,
            access_key: AccessKey::generate(),
            secret_key: SecretKey::generate(),
        };
        let hash = hash_secret(&key.secret_key).await?;
        let mut transaction = self.database.pool().begin().await?;
        self.insert_key(&mut transaction, &key, &hash, now_micros()).await?;
        transaction.commit().await?;
        Ok(key)
    }

    async fn insert_key(
        &self,
        transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
        key: &NewApiKey,
        hash: &str,
        now: i64,
    ) -> Result<(), IamError> {
        sqlx::query(
            "insert into api_keys (access_key, organization_id, project_id, secret_digest, secret_hash, \
             description, revoked_at, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, null, $7, $7)",
        )
        .bind(key.access_key.as_str())
        .bind(key.organization_id.to_string())
        .bind(key.project_id.to_string())
        .bind(self.digest(&key.secret_key))
        .bind(hash)
        .bind("")
        .bind(now)
        .execute(&mut **transaction)
        .await?;
        Ok(())
    }

    /// Revokes an API key; requests using it fail once caches expire. Revoking twice is fine.
    pub async fn revoke_key(&self, access_key: &str) -> Result<(), IamError> {
        let now = now_micros();
        let result = sqlx::query(
            "update api_keys set revoked_at = coalesce(revoked_at, $1), updated_at = $1 where access_key = $2",
        )
        .bind(now)
        .bind(access_key)
        .execute(self.database.pool())
        .await?;
        if result.rows_affected() == 0 {
            return Err(IamError::KeyNotFound(access_key.to_owned()));
        }
        Ok(())
    }
}

fn parse_stored_id(value: &str) -> Result<Uuid, IamError> {
    Uuid::try_parse(value).map_err(|error| IamError::Database(sqlx::Error::Decode(Box::new(error))))
}

async fn hash_secret(secret: &SecretKey) -> Result<String, IamError> {
    let exposed = secret.expose();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(exposed.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| IamError::Hash(error.to_string()))
    })
    .await
    .map_err(|error| IamError::Hash(error.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (IamStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::migrated_in(dir.path()).await.unwrap();
        let key = MasterKey::from_hex(&"11".repeat(32)).unwrap();
        (IamStore::new(database, &key), dir)
    }

    #[tokio::test]
    async fn keys_verify_until_revoked_and_only_hashes_are_stored() {
        let (store, _dir) = store().await;
        assert!(store.is_empty().await.unwrap());
        let key = store.create_tenant("acme").await.unwrap();
        assert!(!store.is_empty().await.unwrap());
        let (caller, access_key) = store.verify(&key.secret_key.expose()).await.unwrap();
        assert_eq!(caller.organization_id, key.organization_id);
        assert_eq!(access_key, key.access_key.as_str());

        let stored: String = sqlx::query("select secret_hash from api_keys")
            .fetch_one(store.database.pool())
            .await
            .unwrap()
            .get("secret_hash");
        assert!(stored.starts_with("$argon2id$"));
        assert!(!stored.contains(&key.secret_key.expose()));

        let second = store.create_key(key.organization_id).await.unwrap();
        store.revoke_key(key.access_key.as_str()).await.unwrap();
        assert!(matches!(
            store.verify(&key.secret_key.expose()).await,
            Err(IamError::Unauthenticated)
        ));
        assert!(store.verify(&second.secret_key.expose()).await.is_ok());
        assert!(matches!(
            store.verify(&Uuid::new_v4().to_string()).await,
            Err(IamError::Unauthenticated)
        ));
        assert!(matches!(store.verify("garbage").await, Err(IamError::Unauthenticated)));
        assert!(matches!(
            store.revoke_key("SCWNOPE").await,
            Err(IamError::KeyNotFound(_))
        ));
        assert!(matches!(
            store.create_key(Uuid::new_v4()).await,
            Err(IamError::OrganizationNotFound(_))
        ));
    }
}
