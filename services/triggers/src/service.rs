//! The triggers gRPC service: each RPC validates, calls the store, maps.

use crate::config::NatsConfig;
use crate::model::{
    NatsSource, Trigger, TriggerStatus, check_description, check_name, check_reference, check_subject,
    credentials_context,
};
use crate::reconciler::Reconciler;
use crate::store::{Scope, TriggerStore};
use crate::subscriber::Subscriber;
use nuage_applications::Owners;
use nuage_core::clock::now_micros;
use nuage_core::error::Reason;
use nuage_core::ids::{optional_id, parse_id};
use nuage_core::validate::Tags;
use nuage_core::{ApiError, Caller, Page};
use nuage_proto::triggers::v1::{self as pb, triggers_server::Triggers};
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The services triggers calls: the owners of functions and containers, to check that a
/// trigger's application is the caller's.
pub type Peers = Owners;

/// What an installation without an SQS endpoint answers to an SQS trigger.
const NO_SQS: &str = "no SQS endpoint is configured on this installation: only NATS triggers are served";

/// Longest `.creds` content, in bytes.
const MAX_CREDENTIALS_BYTES: usize = 16 * 1024;
/// Most server URLs one trigger names.
const MAX_SERVER_URLS: usize = 10;

/// Serves `nuage.triggers.v1.Triggers`.
#[derive(Debug, Clone)]
pub struct TriggersService {
    store: TriggerStore,
    reconciler: Reconciler,
    subscriber: Subscriber,
    peers: Peers,
    nats: NatsConfig,
    /// Seals tenants' NATS credentials at rest.
    sealing: [u8; 32],
}

impl TriggersService {
    /// Returns a service over `store`; `nats` says which accounts and servers can be read,
    /// `sealing` seals the credentials tenants give for their own servers.
    pub fn new(
        store: TriggerStore,
        reconciler: Reconciler,
        subscriber: Subscriber,
        peers: Peers,
        (nats, sealing): (NatsConfig, [u8; 32]),
    ) -> Self {
        Self {
            store,
            reconciler,
            subscriber,
            peers,
            nats,
            sealing,
        }
    }

    /// Returns the NATS source a create request names, checked, once its account can be read
    /// on this installation.
    fn source(&self, caller: &Caller, nats: Option<pb::NatsInput>) -> Result<NatsSource, ApiError> {
        let nats = nats.ok_or_else(|| ApiError::required("scw_nats_config"))?;
        check_subject("scw_nats_config.subject", &nats.subject)?;
        let account_id = check_reference("scw_nats_config.mnq_nats_account_id", &nats.account_id)?;
        let mnq_region = check_reference("scw_nats_config.mnq_region", &nats.mnq_region)?;
        let mnq_project_id = if nats.mnq_project_id.is_empty() {
            caller.project_id.to_string()
        } else {
            check_reference("scw_nats_config.mnq_project_id", &nats.mnq_project_id)?
        };
        if self.nats.server(&account_id, caller.organization_id).is_none() {
            if self.nats.accounts.contains_key(&account_id) {
                return Err(ApiError {
                    help_message: Some("no NATS account of yours has this id".to_owned()),
                    ..ApiError::not_found("nats_account", account_id)
                });
            }
            return Err(ApiError::invalid_argument(
                "scw_nats_config.mnq_nats_account_id",
                Reason::Constraint,
                "no NATS server is configured on this installation for this account (nor a default one)",
            ));
        }
        Ok(NatsSource {
            subject: nats.subject,
            account_id,
            mnq_project_id,
            mnq_region,
            server_urls: Vec::new(),
            credentials: String::new(),
        })
    }

    /// Returns the servers a tenant names as its own (`nats_config.server_urls`), checked
    /// against what the operator allows.
    async fn tenant_servers(&self, urls: Vec<String>) -> Result<Vec<String>, ApiError> {
        const ARGUMENT: &str = "nats_config.server_urls";
        if urls.is_empty() {
            return Err(ApiError::required(ARGUMENT));
        }
        if urls.len() > MAX_SERVER_URLS {
            return Err(ApiError::invalid_argument(
                ARGUMENT,
                Reason::Constraint,
                format!("at most {MAX_SERVER_URLS} servers"),
            ));
        }
        for (index, url) in urls.iter().enumerate() {
            self.nats
                .tenant_server(url)
                .await
                .map_err(|help| ApiError::invalid_argument(format!("{ARGUMENT}.{index}"), Reason::Constraint, help))?;
        }
        Ok(urls)
    }

    /// Returns `credentials` (a `.creds` file's content; empty: none) sealed for trigger `id`.
    fn seal_credentials(&self, id: Uuid, credentials: &str) -> Result<String, ApiError> {
        if credentials.is_empty() {
            return Ok(String::new());
        }
        if credentials.len() > MAX_CREDENTIALS_BYTES || !credentials.contains("-----BEGIN NATS USER JWT-----") {
            return Err(ApiError::invalid_argument(
                "nats_config.credentials_file_content",
                Reason::Format,
                format!(
                    "must be the content of a NATS `.creds` file (a user JWT and its nkey seed), at most \
                     {MAX_CREDENTIALS_BYTES} bytes"
                ),
            ));
        }
        Ok(nuage_core::seal::seal(
            &self.sealing,
            &credentials_context(id),
            credentials.as_bytes(),
        ))
    }
}

/// Returns the caller, region and trigger a request about one trigger names.
fn named(request: pb::GetTriggerRequest) -> Result<(Caller, String, Uuid), ApiError> {
    let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
    let id = parse_id("trigger_id", &request.trigger_id)?;
    Ok((caller, request.region, id))
}

/// Returns the destination a request gives (`/` and `post` when it gives none).
fn destination(destination: Option<pb::Destination>) -> Result<(String, String), ApiError> {
    match destination {
        None => Ok(("/".to_owned(), "post".to_owned())),
        Some(destination) => {
            nuage_core::validate::destination("destination_config", &destination.http_path, &destination.http_method)?;
            Ok((destination.http_path, destination.http_method))
        }
    }
}

/// Returns `trigger` as the wire has it.
fn to_proto(trigger: Trigger) -> pb::Trigger {
    let status = match trigger.status {
        TriggerStatus::Creating => pb::TriggerStatus::Creating,
        TriggerStatus::Ready => pb::TriggerStatus::Ready,
        TriggerStatus::Error => pb::TriggerStatus::Error,
        TriggerStatus::Deleting => pb::TriggerStatus::Deleting,
    };
    pb::Trigger {
        id: trigger.id.to_string(),
        application_id: trigger.application_id.to_string(),
        namespace_id: trigger.namespace_id.to_string(),
        project_id: trigger.project_id.to_string(),
        name: trigger.name,
        description: trigger.description,
        status: status as i32,
        error_message: trigger.error_message,
        input_type: if trigger.source.server_urls.is_empty() {
            pb::TriggerInputType::ScwNats
        } else {
            pb::TriggerInputType::Nats
        } as i32,
        nats: Some(pb::NatsInput {
            subject: trigger.source.subject,
            account_id: trigger.source.account_id,
            mnq_project_id: trigger.source.mnq_project_id,
            mnq_region: trigger.source.mnq_region,
            server_urls: trigger.source.server_urls,
            // Write-only.
            credentials: String::new(),
        }),
        destination: Some(pb::Destination {
            http_path: trigger.http_path,
            http_method: trigger.http_method,
        }),
        tags: trigger.tags.into_values(),
        region: trigger.region,
        organization_id: trigger.organization_id.to_string(),
        created_at: trigger.created_at,
        updated_at: trigger.updated_at,
    }
}

fn answer(trigger: Trigger) -> Response<pb::TriggerResponse> {
    Response::new(pb::TriggerResponse {
        trigger: Some(to_proto(trigger)),
    })
}

/// Returns the scope of a list: at most one of an application, a namespace and a project.
fn scope(request: &pb::ListTriggersRequest) -> Result<Scope, ApiError> {
    let given = [
        optional_id("application_id", request.application_id.as_deref())?.map(Scope::Application),
        optional_id("namespace_id", request.namespace_id.as_deref())?.map(Scope::Namespace),
        optional_id("project_id", request.project_id.as_deref())?.map(Scope::Project),
    ];
    let mut given = given.into_iter().flatten();
    let scope = given.next().unwrap_or(Scope::All);
    if given.next().is_some() {
        return Err(ApiError::invalid_argument(
            "namespace_id",
            Reason::Constraint,
            "give at most one of the application, namespace_id and project_id",
        ));
    }
    Ok(scope)
}

#[tonic::async_trait]
impl Triggers for TriggersService {
    async fn create_trigger(
        &self,
        request: Request<pb::CreateTriggerRequest>,
    ) -> Result<Response<pb::TriggerResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let input_type = request.input_type();
        let id = Uuid::new_v4();
        let source = match input_type {
            pb::TriggerInputType::ScwNats => self.source(&caller, request.nats)?,
            pb::TriggerInputType::Nats => {
                let nats = request.nats.ok_or_else(|| ApiError::required("nats_config"))?;
                check_subject("nats_config.subject", &nats.subject)?;
                NatsSource {
                    server_urls: self.tenant_servers(nats.server_urls).await?,
                    credentials: self.seal_credentials(id, &nats.credentials)?,
                    subject: nats.subject,
                    account_id: String::new(),
                    mnq_project_id: String::new(),
                    mnq_region: String::new(),
                }
            }
            pb::TriggerInputType::ScwSqs | pb::TriggerInputType::Sqs => {
                let argument = if input_type == pb::TriggerInputType::Sqs {
                    "sqs_config"
                } else {
                    "scw_sqs_config"
                };
                return Err(ApiError::invalid_argument(argument, Reason::Constraint, NO_SQS).into());
            }
            pb::TriggerInputType::Unspecified => {
                return Err(ApiError::invalid_argument(
                    "scw_nats_config",
                    Reason::Required,
                    "give the source of the trigger's messages: scw_nats_config",
                )
                .into());
            }
        };
        let name = check_name(&request.name)?;
        let description = check_description(request.description.as_deref().unwrap_or_default())?;
        let (http_path, http_method) = destination(request.destination)?;
        let tags = Tags::parse("tags", request.tags.map(|tags| tags.values).unwrap_or_default())?;
        let application = self
            .peers
            .live(&caller, &request.region, &request.application_id)
            .await?;
        let now = now_micros();
        let trigger = Trigger {
            id,
            organization_id: caller.organization_id,
            region: request.region,
            project_id: application.project_id,
            namespace_id: application.namespace_id,
            application_id: application.id,
            name,
            description,
            source,
            http_path,
            http_method,
            tags,
            status: TriggerStatus::Creating,
            error_message: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert(&trigger).await?;
        self.subscriber.wake();
        Ok(answer(trigger))
    }

    async fn get_trigger(
        &self,
        request: Request<pb::GetTriggerRequest>,
    ) -> Result<Response<pb::TriggerResponse>, Status> {
        let (caller, region, id) = named(request.into_inner())?;
        Ok(answer(self.store.get(&caller, &region, id).await?))
    }

    async fn list_triggers(
        &self,
        request: Request<pb::ListTriggersRequest>,
    ) -> Result<Response<pb::ListTriggersResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let page = Page::new(request.page, request.page_size)?;
        let scope = scope(&request)?;
        let newest_first = request.order_by == pb::TriggerOrder::CreatedAtDesc as i32;
        let (triggers, total_count) = self
            .store
            .list(&caller, &request.region, scope, newest_first, page)
            .await?;
        Ok(Response::new(pb::ListTriggersResponse {
            triggers: triggers.into_iter().map(to_proto).collect(),
            total_count,
        }))
    }

    async fn update_trigger(
        &self,
        request: Request<pb::UpdateTriggerRequest>,
    ) -> Result<Response<pb::TriggerResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let id = parse_id("trigger_id", &request.trigger_id)?;
        let mut trigger = self.store.get(&caller, &request.region, id).await?;
        if trigger.status == TriggerStatus::Deleting {
            return Err(ApiError::transient_state("trigger", id.to_string(), "deleting").into());
        }
        if request.sqs_config {
            return Err(ApiError::invalid_argument(
                "sqs_config",
                Reason::Constraint,
                "this trigger reads a NATS subject: it has no SQS keys to change",
            )
            .into());
        }
        if let Some(name) = request.name {
            trigger.name = check_name(&name)?;
        }
        if let Some(description) = request.description {
            trigger.description = check_description(&description)?;
        }
        if let Some(given) = request.destination {
            // Unset parts are unchanged.
            let path = Some(given.http_path).filter(|path| !path.is_empty());
            let method = Some(given.http_method).filter(|method| !method.is_empty() && method != "unknown_http_method");
            if let Some(path) = path {
                trigger.http_path = path;
            }
            if let Some(method) = method {
                trigger.http_method = method;
            }
            nuage_core::validate::destination("destination_config", &trigger.http_path, &trigger.http_method)?;
        }
        if let Some(tags) = request.tags {
            trigger.tags = Tags::parse("tags", tags.values)?;
        }
        if let Some(nats) = request.nats {
            let own = !trigger.source.server_urls.is_empty();
            if !own && (nats.server_urls.is_some() || nats.credentials.is_some()) {
                return Err(ApiError::invalid_argument(
                    "nats_config",
                    Reason::Constraint,
                    "this trigger reads an account the operator maps: it has no servers or credentials of its own",
                )
                .into());
            }
            if let Some(subject) = nats.subject.filter(|subject| !subject.is_empty()) {
                let argument = if own {
                    "nats_config.subject"
                } else {
                    "scw_nats_config.subject"
                };
                check_subject(argument, &subject)?;
                trigger.source.subject = subject;
            }
            if let Some(urls) = nats.server_urls {
                trigger.source.server_urls = self.tenant_servers(urls.values).await?;
            }
            if let Some(credentials) = nats.credentials {
                trigger.source.credentials = self.seal_credentials(trigger.id, &credentials)?;
            }
        }
        let trigger = self
            .store
            .update(&trigger)
            .await?
            .ok_or_else(|| ApiError::transient_state("trigger", id.to_string(), "deleting"))?;
        Ok(answer(trigger))
    }

    async fn delete_trigger(
        &self,
        request: Request<pb::GetTriggerRequest>,
    ) -> Result<Response<pb::TriggerResponse>, Status> {
        let (caller, region, id) = named(request.into_inner())?;
        let trigger = self.store.mark_deleting(&caller, &region, id).await?;
        self.subscriber.wake();
        self.reconciler.wake();
        Ok(answer(trigger))
    }

    async fn delete_application_triggers(
        &self,
        request: Request<pb::DeleteApplicationTriggersRequest>,
    ) -> Result<Response<pb::DeleteApplicationTriggersResponse>, Status> {
        let request = request.into_inner();
        let remaining = self
            .store
            .mark_application_deleting(&request.organization_id, &request.application_id)
            .await?;
        if remaining > 0 {
            self.subscriber.wake();
            self.reconciler.wake();
        }
        Ok(Response::new(pb::DeleteApplicationTriggersResponse { remaining }))
    }
}
