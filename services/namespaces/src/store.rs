//! All SQL of the namespaces service.

use crate::error::NamespacesError;
use crate::model::{Description, EnvironmentVariables, Namespace, NamespaceName, NamespaceOrder, NamespaceStatus};
use nuage_applications::new_endpoint_suffix;
use nuage_core::clock::now_micros;
use nuage_core::db::{Engine, OwnedTable, PageQuery, is_unique_violation};
use nuage_core::secrets::SecretVariables;
use nuage_core::validate::Tags;
use nuage_core::{Caller, Database, Page};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

const COLUMNS: &str = "id, organization_id, project_id, region, name, description, environment_variables, \
                       status, error_message, registry_namespace_id, registry_endpoint, created_at, updated_at, \
                       endpoint_suffix, tags, secrets";

/// The namespaces table, as a read of one namespace of a tenant sees it.
const NAMESPACES: OwnedTable<'static, Namespace, NamespacesError> = OwnedTable {
    table: "namespaces",
    columns: COLUMNS,
    decode,
    not_found: |id| NamespacesError::NotFound(id.to_string()),
};

/// How many fresh endpoint suffixes one namespace tries before giving up. With 36^8 suffixes a
/// second try is already rare; more than a few means something else is wrong.
const SUFFIX_ATTEMPTS: usize = 8;

/// Namespaces in the database. Every tenant-facing query filters by organization and region.
#[derive(Debug, Clone)]
pub struct NamespaceStore {
    database: Database,
}

/// The fields a new namespace starts with.
#[derive(Debug, Clone)]
pub struct NewNamespace {
    /// Its id (its secrets are sealed for it).
    pub id: Uuid,
    /// Its secret variables.
    pub secrets: SecretVariables,
    /// Its name.
    pub name: NamespaceName,
    /// Its description.
    pub description: Description,
    /// Its variables.
    pub environment_variables: EnvironmentVariables,
    /// Its tags.
    pub tags: Tags,
}

/// How many namespaces an organization may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// In all, across regions.
    pub namespaces: u64,
    /// Still `pending` (waiting for their key pair).
    pub pending: u64,
}

/// A sparse change: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct NamespaceChanges {
    /// A new description.
    pub description: Option<Description>,
    /// A new, complete set of variables.
    pub environment_variables: Option<EnvironmentVariables>,
    /// A new, complete list of tags.
    pub tags: Option<Tags>,
    /// The new, complete set of secrets (already merged).
    pub secrets: Option<SecretVariables>,
}

impl NamespaceStore {
    /// Returns a store over `database`.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Stores a new `pending` namespace, unless the organization already has as many
    /// namespaces, or as many pending ones, as `limits` allow.
    pub async fn insert(
        &self,
        caller: &Caller,
        region: &str,
        new: NewNamespace,
        limits: Limits,
    ) -> Result<Namespace, NamespacesError> {
        let now = now_micros();
        let mut namespace = Namespace {
            id: new.id,
            secrets: new.secrets,
            organization_id: caller.organization_id,
            project_id: caller.project_id,
            region: region.to_owned(),
            name: new.name,
            description: new.description,
            environment_variables: new.environment_variables,
            tags: new.tags,
            status: NamespaceStatus::Pending,
            error_message: String::new(),
            registry_namespace_id: String::new(),
            registry_endpoint: String::new(),
            endpoint_suffix: new_endpoint_suffix(),
            created_at: now,
            updated_at: now,
        };
        let mut attempts = 0;
        loop {
            let error = match self.insert_within(&namespace, limits).await {
                Ok(true) => return Ok(namespace),
                Ok(false) => {
                    let current = self.count(caller.organization_id).await?;
                    return Err(if current >= limits.namespaces {
                        NamespacesError::QuotaExceeded {
                            limit: limits.namespaces,
                            current,
                        }
                    } else {
                        NamespacesError::Backlog { limit: limits.pending }
                    });
                }
                Err(error) if is_unique_violation(&error) => error,
                Err(error) => return Err(error.into()),
            };
            // Either the name is taken in this organization and region, or (rarely) another
            // namespace drew the same endpoint suffix: then draw again.
            if let Some(existing_id) = self.find_id_by_name(caller, region, namespace.name.as_str()).await? {
                return Err(NamespacesError::NameTaken {
                    name: namespace.name.as_str().to_owned(),
                    existing_id: existing_id.to_string(),
                });
            }
            attempts += 1;
            if attempts == SUFFIX_ATTEMPTS {
                return Err(error.into());
            }
            namespace.endpoint_suffix = new_endpoint_suffix();
        }
    }

    /// Inserts `namespace` unless its organization already has as many namespaces, or pending
    /// ones, as `limits` allow, and returns whether it did. The counts and the insert are one
    /// step, so concurrent creates cannot all pass the check: one statement, under SQLite's
    /// single writer; on PostgreSQL, within a transaction holding a lock on the organization.
    async fn insert_within(&self, namespace: &Namespace, limits: Limits) -> Result<bool, sqlx::Error> {
        let mut transaction = self.database.pool().begin().await?;
        if self.database.engine() == Engine::Postgres {
            sqlx::query("select count(*) from (select pg_advisory_xact_lock(hashtext($1))) as locked")
                .bind(namespace.organization_id.to_string())
                .execute(&mut *transaction)
                .await?;
        }
        let inserted = sqlx::query(&format!(
            "insert into namespaces ({COLUMNS}) select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 \
             where (select count(*) from namespaces where organization_id = $2) < $17 \
             and (select count(*) from namespaces where organization_id = $2 and status = 'pending') < $18"
        ))
        .bind(namespace.id.to_string())
        .bind(namespace.organization_id.to_string())
        .bind(namespace.project_id.to_string())
        .bind(&namespace.region)
        .bind(namespace.name.as_str())
        .bind(namespace.description.as_str())
        .bind(namespace.environment_variables.to_json())
        .bind(namespace.status.as_str())
        .bind(&namespace.error_message)
        .bind(&namespace.registry_namespace_id)
        .bind(&namespace.registry_endpoint)
        .bind(namespace.created_at)
        .bind(namespace.updated_at)
        .bind(&namespace.endpoint_suffix)
        .bind(namespace.tags.to_json())
        .bind(namespace.secrets.to_json())
        .bind(i64::try_from(limits.namespaces).unwrap_or(i64::MAX))
        .bind(i64::try_from(limits.pending).unwrap_or(i64::MAX))
        .execute(&mut *transaction)
        .await?
        .rows_affected()
            == 1;
        transaction.commit().await?;
        Ok(inserted)
    }

    /// Returns how many namespaces `organization_id` has, in every region.
    async fn count(&self, organization_id: Uuid) -> Result<u64, NamespacesError> {
        let current: i64 = sqlx::query("select count(*) as n from namespaces where organization_id = $1")
            .bind(organization_id.to_string())
            .fetch_one(self.database.pool())
            .await?
            .try_get("n")?;
        Ok(u64::try_from(current).unwrap_or_default())
    }

    /// Gives every namespace made before endpoint suffixes existed a fresh one, and returns how
    /// many it gave. Idempotent, and safe beside another replica doing the same: a row is
    /// only ever changed while it has no suffix.
    pub async fn fill_endpoint_suffixes(&self) -> Result<u64, NamespacesError> {
        let rows = sqlx::query("select id from namespaces where endpoint_suffix is null")
            .fetch_all(self.database.pool())
            .await?;
        let mut filled = 0;
        for row in rows {
            let id: String = row.try_get("id")?;
            let mut attempts = 0;
            loop {
                let updated =
                    sqlx::query("update namespaces set endpoint_suffix = $1 where id = $2 and endpoint_suffix is null")
                        .bind(new_endpoint_suffix())
                        .bind(&id)
                        .execute(self.database.pool())
                        .await;
                match updated {
                    Ok(result) => {
                        filled += result.rows_affected();
                        break;
                    }
                    Err(error) if is_unique_violation(&error) && attempts + 1 < SUFFIX_ATTEMPTS => attempts += 1,
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Ok(filled)
    }

    async fn find_id_by_name(
        &self,
        caller: &Caller,
        region: &str,
        name: &str,
    ) -> Result<Option<Uuid>, NamespacesError> {
        let row = sqlx::query("select id from namespaces where organization_id = $1 and region = $2 and name = $3")
            .bind(caller.organization_id.to_string())
            .bind(region)
            .bind(name)
            .fetch_optional(self.database.pool())
            .await?;
        row.map(|row| parse_uuid(&row.try_get::<String, _>("id")?)).transpose()
    }

    /// Returns one namespace of the caller in `region`.
    pub async fn get(&self, caller: &Caller, region: &str, id: Uuid) -> Result<Namespace, NamespacesError> {
        self.database.owned(&NAMESPACES, caller, region, id).await
    }

    /// Returns one page of the caller's namespaces in `region` and the count of all matches.
    pub async fn list(
        &self,
        caller: &Caller,
        region: &str,
        name: Option<&str>,
        order: NamespaceOrder,
        page: Page,
    ) -> Result<(Vec<Namespace>, u64), NamespacesError> {
        let query = PageQuery {
            table: "namespaces",
            columns: COLUMNS,
            caller,
            region,
            condition: "$3 = '' or name = $3",
            parameters: &[name.unwrap_or_default()],
            order: order.sql(),
        };
        self.database.page_of(query, page, decode).await
    }

    /// Applies a sparse change; a namespace being deleted cannot change. With `read_at` (the
    /// `updated_at` the change was computed from, as merged secrets are), it applies only if
    /// nobody wrote the namespace since: `Ok(None)` then says to read it again.
    pub async fn update(
        &self,
        caller: &Caller,
        region: &str,
        id: Uuid,
        changes: NamespaceChanges,
        read_at: Option<i64>,
    ) -> Result<Option<Namespace>, NamespacesError> {
        let current = self.get(caller, region, id).await?;
        if current.status == NamespaceStatus::Deleting {
            return Err(NamespacesError::Deleting(id.to_string()));
        }
        let description = changes.description.unwrap_or(current.description);
        let environment_variables = changes.environment_variables.unwrap_or(current.environment_variables);
        let tags = changes.tags.unwrap_or(current.tags);
        let secrets = changes.secrets.unwrap_or(current.secrets);
        // The answer comes from the write itself: a re-read could race with a removal.
        let row = sqlx::query(&format!(
            "update namespaces set description = $1, environment_variables = $2, tags = $3, secrets = $4, \
             updated_at = $5 where organization_id = $6 and region = $7 and id = $8 and status <> 'deleting' \
             and ($9 = 0 or updated_at = $9) returning {COLUMNS}"
        ))
        .bind(description.as_str())
        .bind(environment_variables.to_json())
        .bind(tags.to_json())
        .bind(secrets.to_json())
        .bind(now_micros())
        .bind(caller.organization_id.to_string())
        .bind(region)
        .bind(id.to_string())
        .bind(read_at.unwrap_or(0))
        .fetch_optional(self.database.pool())
        .await?;
        match row {
            Some(row) => decode(&row).map(Some),
            // Written since it was read: the caller reads again.
            None if read_at.is_some_and(|read_at| read_at != current.updated_at) => Ok(None),
            None if read_at.is_some() => match self.get(caller, region, id).await?.status {
                NamespaceStatus::Deleting => Err(NamespacesError::Deleting(id.to_string())),
                _ => Ok(None),
            },
            // Marked deleting (or removed) between the read and the write.
            None => Err(NamespacesError::Deleting(id.to_string())),
        }
    }

    /// Marks a namespace `deleting` and returns it; deleting twice is not an error.
    pub async fn mark_deleting(&self, caller: &Caller, region: &str, id: Uuid) -> Result<Namespace, NamespacesError> {
        // The answer comes from the write itself: once `deleting`, the reconciler may remove the
        // row at any moment, so a re-read could miss it.
        let row = sqlx::query(&format!(
            "update namespaces set status = 'deleting', updated_at = $1 \
             where organization_id = $2 and region = $3 and id = $4 and status <> 'deleting' returning {COLUMNS}"
        ))
        .bind(now_micros())
        .bind(caller.organization_id.to_string())
        .bind(region)
        .bind(id.to_string())
        .fetch_optional(self.database.pool())
        .await?;
        match row {
            Some(row) => decode(&row),
            // Already deleting: answer as it is now, or 404 once it is gone.
            None => self.get(caller, region, id).await,
        }
    }

    /// Returns up to `limit` namespaces in `status` that no reconciler holds, oldest first,
    /// across all tenants (for the reconciler). A deleted namespace still held is being
    /// provisioned: its key pair may yet be made, so it is removed only after.
    pub async fn in_status(&self, status: NamespaceStatus, limit: i64) -> Result<Vec<Namespace>, NamespacesError> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from namespaces where status = $1 and claimed_until < $2 \
             order by updated_at asc limit $3"
        ))
        .bind(status.as_str())
        .bind(now_micros())
        .bind(limit)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Returns up to `limit` pending namespaces nobody holds, across all tenants, in the order
    /// they are to be provisioned: round robin over organizations. Each organization's pending
    /// namespaces are numbered oldest first, those being provisioned included, and the lowest
    /// numbers come first; so an organization with none in progress is served next, however
    /// many another one has waiting.
    pub async fn next_to_provision(&self, limit: i64) -> Result<Vec<Namespace>, NamespacesError> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from (select {COLUMNS}, claimed_until, row_number() over \
             (partition by organization_id order by created_at, id) as position \
             from namespaces where status = 'pending') as queue \
             where claimed_until < $1 order by position, created_at, id limit $2"
        ))
        .bind(now_micros())
        .bind(limit)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Holds pending namespace `id` until `until` (microseconds since the epoch), unless
    /// another holds it; returns whether this call got it. One conditional update, so two
    /// replicas never both get it.
    pub async fn claim(&self, id: Uuid, until: i64) -> Result<bool, NamespacesError> {
        let result = sqlx::query(
            "update namespaces set claimed_until = $1 where id = $2 and status = 'pending' and claimed_until < $3",
        )
        .bind(until)
        .bind(id.to_string())
        .bind(now_micros())
        .execute(self.database.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Moves the end of the hold on namespace `id` to `until`: later, to keep it while working
    /// on it; sooner, to let it be retried (or, once deleted, removed) then.
    pub async fn hold_until(&self, id: Uuid, until: i64) -> Result<(), NamespacesError> {
        sqlx::query("update namespaces set claimed_until = $1 where id = $2")
            .bind(until)
            .bind(id.to_string())
            .execute(self.database.pool())
            .await?;
        Ok(())
    }

    /// Records a pending namespace's registry namespace and makes it `ready`. Returns whether
    /// this call did it (another reconciler, or a delete, may have been first).
    pub async fn mark_ready(
        &self,
        id: Uuid,
        registry_namespace_id: &str,
        registry_endpoint: &str,
    ) -> Result<bool, NamespacesError> {
        let result = sqlx::query(
            "update namespaces set status = 'ready', registry_namespace_id = $1, registry_endpoint = $2, \
             error_message = '', claimed_until = 0, updated_at = $3 where id = $4 and status = 'pending'",
        )
        .bind(registry_namespace_id)
        .bind(registry_endpoint)
        .bind(now_micros())
        .bind(id.to_string())
        .execute(self.database.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Removes a namespace that is `deleting`.
    pub async fn remove_deleted(&self, id: Uuid) -> Result<bool, NamespacesError> {
        Ok(self.database.remove_deleted("namespaces", id).await?)
    }
}

fn parse_uuid(value: &str) -> Result<Uuid, NamespacesError> {
    Uuid::try_parse(value).map_err(|_| NamespacesError::Corrupt(format!("bad id `{value}`")))
}

fn decode(row: &AnyRow) -> Result<Namespace, NamespacesError> {
    let text = |column: &str| row.try_get::<String, _>(column);
    Ok(Namespace {
        id: parse_uuid(&text("id")?)?,
        organization_id: parse_uuid(&text("organization_id")?)?,
        project_id: parse_uuid(&text("project_id")?)?,
        region: text("region")?,
        name: NamespaceName::parse(&text("name")?)?,
        description: Description::parse(&text("description")?)?,
        environment_variables: EnvironmentVariables::from_json(&text("environment_variables")?)?,
        status: NamespaceStatus::parse(&text("status")?)?,
        error_message: text("error_message")?,
        registry_namespace_id: text("registry_namespace_id")?,
        registry_endpoint: text("registry_endpoint")?,
        endpoint_suffix: row.try_get::<Option<String>, _>("endpoint_suffix")?.unwrap_or_default(),
        tags: Tags::from_json(&text("tags")?).map_err(NamespacesError::Corrupt)?,
        secrets: SecretVariables::from_json(&text("secrets")?).map_err(NamespacesError::Corrupt)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (NamespaceStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::migrated_in(dir.path()).await.unwrap();
        (NamespaceStore::new(database), dir)
    }

    const LIMITS: Limits = Limits {
        namespaces: 10,
        pending: 10,
    };

    fn tenant() -> Caller {
        Caller {
            organization_id: Uuid::new_v4(),
            project_id: Uuid::new_v4(),
        }
    }

    fn new(name: &str) -> NewNamespace {
        NewNamespace {
            id: Uuid::new_v4(),
            secrets: SecretVariables::default(),
            tags: Tags::default(),
            name: NamespaceName::parse(name).unwrap(),
            description: Description::default(),
            environment_variables: EnvironmentVariables::default(),
        }
    }

    #[tokio::test]
    async fn names_are_unique_per_tenant_and_region_and_tenants_are_isolated() {
        let (store, _dir) = store().await;
        let (alice, bob) = (tenant(), tenant());
        let first = store.insert(&alice, "fr-par", new("one"), LIMITS).await.unwrap();
        match store.insert(&alice, "fr-par", new("one"), LIMITS).await {
            Err(NamespacesError::NameTaken { existing_id, .. }) => {
                assert_eq!(existing_id, first.id.to_string())
            }
            other => panic!("expected NameTaken, got {other:?}"),
        }
        store.insert(&alice, "nl-ams", new("one"), LIMITS).await.unwrap();
        store.insert(&bob, "fr-par", new("one"), LIMITS).await.unwrap();
        assert!(matches!(
            store.get(&bob, "fr-par", first.id).await,
            Err(NamespacesError::NotFound(_))
        ));
        let (page, total) = store
            .list(&alice, "fr-par", None, NamespaceOrder::NameAsc, Page::default())
            .await
            .unwrap();
        assert_eq!((page.len(), total), (1, 1));
    }

    #[tokio::test]
    async fn pending_namespaces_are_provisioned_round_robin_over_tenants_and_claimed_once() {
        let (store, _dir) = store().await;
        let (alice, bob) = (tenant(), tenant());
        let mut burst = Vec::new();
        for index in 0..4 {
            burst.push(
                store
                    .insert(&alice, "fr-par", new(&format!("a{index}")), LIMITS)
                    .await
                    .unwrap()
                    .id,
            );
        }
        let late = store.insert(&bob, "fr-par", new("b0"), LIMITS).await.unwrap().id;
        let order = |namespaces: Vec<Namespace>| namespaces.into_iter().map(|n| n.id).collect::<Vec<_>>();
        // Each tenant's oldest first, then each one's second...
        assert_eq!(
            order(store.next_to_provision(10).await.unwrap()),
            [burst[0], late, burst[1], burst[2], burst[3]]
        );
        // Alice's first two in progress: Bob's goes before her third.
        let until = now_micros() + 60_000_000;
        assert!(store.claim(burst[0], until).await.unwrap());
        assert!(store.claim(burst[1], until).await.unwrap());
        assert!(!store.claim(burst[1], until).await.unwrap(), "held already");
        assert_eq!(order(store.next_to_provision(2).await.unwrap()), [late, burst[2]]);
        // A hold that ran out (its replica died) is taken again.
        store.hold_until(burst[0], 0).await.unwrap();
        assert_eq!(order(store.next_to_provision(1).await.unwrap()), [burst[0]]);
        assert!(store.claim(burst[0], until).await.unwrap());
        // Ready namespaces leave the queue, and can no longer be claimed.
        assert!(store.mark_ready(late, "r", "host/r").await.unwrap());
        assert!(!store.claim(late, until).await.unwrap());
        assert_eq!(order(store.next_to_provision(10).await.unwrap()), [burst[2], burst[3]]);
    }

    #[tokio::test]
    async fn a_tenant_with_a_full_backlog_is_refused_until_one_is_ready() {
        let (store, _dir) = store().await;
        let (alice, bob) = (tenant(), tenant());
        let limits = Limits {
            namespaces: 10,
            pending: 2,
        };
        let first = store.insert(&alice, "fr-par", new("one"), limits).await.unwrap();
        store.insert(&alice, "fr-par", new("two"), limits).await.unwrap();
        assert!(matches!(
            store.insert(&alice, "fr-par", new("three"), limits).await,
            Err(NamespacesError::Backlog { limit: 2 })
        ));
        store.insert(&bob, "fr-par", new("three"), limits).await.unwrap();
        assert!(store.mark_ready(first.id, "r", "host/r").await.unwrap());
        store.insert(&alice, "fr-par", new("three"), limits).await.unwrap();
    }

    #[tokio::test]
    async fn lifecycle_pending_ready_deleting_gone() {
        let (store, _dir) = store().await;
        let caller = Caller {
            organization_id: Uuid::new_v4(),
            project_id: Uuid::new_v4(),
        };
        let namespace = store.insert(&caller, "fr-par", new("life"), LIMITS).await.unwrap();
        assert_eq!(namespace.status, NamespaceStatus::Pending);
        assert!(store.mark_ready(namespace.id, "r", "host/r").await.unwrap());
        assert!(!store.mark_ready(namespace.id, "r", "host/r").await.unwrap());
        let deleting = store.mark_deleting(&caller, "fr-par", namespace.id).await.unwrap();
        assert_eq!(deleting.status, NamespaceStatus::Deleting);
        let changes = NamespaceChanges {
            description: Some(Description::parse("x").unwrap()),
            ..Default::default()
        };
        assert!(matches!(
            store.update(&caller, "fr-par", namespace.id, changes, None).await,
            Err(NamespacesError::Deleting(_))
        ));
        assert!(store.remove_deleted(namespace.id).await.unwrap());
        assert!(matches!(
            store.get(&caller, "fr-par", namespace.id).await,
            Err(NamespacesError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn endpoint_suffixes_are_unique_across_tenants_and_filled_for_old_rows() {
        let (store, _dir) = store().await;
        let (alice, bob) = (tenant(), tenant());
        let first = store.insert(&alice, "fr-par", new("shop"), LIMITS).await.unwrap();
        let second = store.insert(&bob, "fr-par", new("shop"), LIMITS).await.unwrap();
        assert_eq!(first.endpoint_suffix.len(), 8);
        assert_ne!(first.endpoint_suffix, second.endpoint_suffix);
        assert_eq!(
            store.get(&alice, "fr-par", first.id).await.unwrap().endpoint_suffix,
            first.endpoint_suffix,
            "the suffix is stored"
        );
        // The database refuses a second namespace with the same suffix.
        let taken = sqlx::query("update namespaces set endpoint_suffix = $1 where id = $2")
            .bind(&first.endpoint_suffix)
            .bind(second.id.to_string())
            .execute(store.database.pool())
            .await
            .unwrap_err();
        assert!(is_unique_violation(&taken), "{taken}");
        // Rows from before suffixes existed get one at start-up, once; others keep theirs.
        sqlx::query("update namespaces set endpoint_suffix = null where id = $1")
            .bind(second.id.to_string())
            .execute(store.database.pool())
            .await
            .unwrap();
        assert_eq!(store.get(&bob, "fr-par", second.id).await.unwrap().endpoint_suffix, "");
        assert_eq!(store.fill_endpoint_suffixes().await.unwrap(), 1);
        assert_eq!(store.fill_endpoint_suffixes().await.unwrap(), 0);
        let filled = store.get(&bob, "fr-par", second.id).await.unwrap().endpoint_suffix;
        assert_eq!(filled.len(), 8);
        assert_ne!(filled, first.endpoint_suffix);
        assert_eq!(
            store.get(&alice, "fr-par", first.id).await.unwrap().endpoint_suffix,
            first.endpoint_suffix
        );
    }
}
