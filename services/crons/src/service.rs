//! The crons gRPC service: each RPC validates, calls the store, maps.

use crate::model::{Cron, CronStatus, Delivery, MAX_NAME_CHARS, default_name};
use crate::reconciler::Reconciler;
use crate::schedule;
use crate::store::CronStore;
use nuage_applications::Owners;
use nuage_core::clock::now_micros;
use nuage_core::error::Reason;
use nuage_core::ids::{optional_id, parse_id};
use nuage_core::{ApiError, Caller, Page, validate};
use nuage_proto::crons::v1::{self as pb, crons_server::Crons};
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// Largest `args`, as JSON text.
pub const MAX_ARGS_BYTES: usize = 64 * 1024;

/// The services crons calls: the owners of functions and containers, to check that a cron's
/// application is the caller's.
pub type Peers = Owners;

/// Serves `nuage.crons.v1.Crons`.
#[derive(Debug, Clone)]
pub struct CronsService {
    store: CronStore,
    reconciler: Reconciler,
    peers: Peers,
    seconds_schedules: bool,
}

impl CronsService {
    /// Returns a service over `store`; `seconds_schedules` (test-only) accepts 6-field
    /// schedules.
    pub fn new(store: CronStore, reconciler: Reconciler, peers: Peers, seconds_schedules: bool) -> Self {
        Self {
            store,
            reconciler,
            peers,
            seconds_schedules,
        }
    }
}

/// Returns the caller, region and cron a request about one cron names.
fn named(request: pb::GetCronRequest) -> Result<(Caller, String, Uuid), ApiError> {
    let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
    let id = parse_id("cron_id", &request.cron_id)?;
    Ok((caller, request.region, id))
}

/// Checks `args`: a JSON object of at most 64 KiB.
fn check_args(args: &str) -> Result<(), ApiError> {
    if args.len() > MAX_ARGS_BYTES {
        return Err(ApiError::invalid_argument(
            "args",
            Reason::Constraint,
            format!("must be at most {MAX_ARGS_BYTES} bytes of JSON, got {}", args.len()),
        ));
    }
    match serde_json::from_str::<serde_json::Value>(args) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(ApiError::invalid_argument(
            "args",
            Reason::Format,
            "must be a JSON object",
        )),
    }
}

/// Returns a cron name as given, trimmed: at most 100 characters, none of them a control.
fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    validate::short_text("name", name, MAX_NAME_CHARS)?;
    Ok(name.to_owned())
}

fn to_proto(cron: Cron) -> pb::Cron {
    let status = match cron.status {
        CronStatus::Pending => pb::CronStatus::Pending,
        CronStatus::Ready => pb::CronStatus::Ready,
        CronStatus::Deleting => pb::CronStatus::Deleting,
    };
    pb::Cron {
        id: cron.id.to_string(),
        application_id: cron.application_id.to_string(),
        schedule: cron.schedule,
        args: cron.args,
        status: status as i32,
        region: cron.region,
        organization_id: cron.organization_id.to_string(),
        created_at: cron.created_at,
        updated_at: cron.updated_at,
        name: cron.name,
        delivery: cron.delivery.map(Delivery::into_proto),
    }
}

fn answer(cron: Cron) -> Response<pb::CronResponse> {
    Response::new(pb::CronResponse {
        cron: Some(to_proto(cron)),
    })
}

#[tonic::async_trait]
impl Crons for CronsService {
    async fn create_cron(&self, request: Request<pb::CreateCronRequest>) -> Result<Response<pb::CronResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        validate::required("schedule", &request.schedule)?;
        schedule::check(&request.schedule, self.seconds_schedules)?;
        let args = request.args.unwrap_or_else(|| "{}".to_owned());
        check_args(&args)?;
        let name = check_name(request.name.as_deref().unwrap_or_default())?;
        let delivery = request.delivery.map(Delivery::parse).transpose()?;
        let application_id = self
            .peers
            .live(&caller, &request.region, &request.application_id)
            .await?
            .id;
        let now = now_micros();
        let id = Uuid::new_v4();
        let cron = Cron {
            id,
            name: if name.is_empty() { default_name(id) } else { name },
            organization_id: caller.organization_id,
            region: request.region,
            application_id,
            schedule: request.schedule.split_whitespace().collect::<Vec<_>>().join(" "),
            args,
            delivery,
            status: CronStatus::Pending,
            created_at: now,
            updated_at: now,
        };
        self.store.insert(&cron).await?;
        self.reconciler.wake();
        Ok(answer(cron))
    }

    async fn get_cron(&self, request: Request<pb::GetCronRequest>) -> Result<Response<pb::CronResponse>, Status> {
        let (caller, region, id) = named(request.into_inner())?;
        Ok(answer(self.store.get(&caller, &region, id).await?))
    }

    async fn list_crons(
        &self,
        request: Request<pb::ListCronsRequest>,
    ) -> Result<Response<pb::ListCronsResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let page = Page::new(request.page, request.page_size)?;
        let application_id = optional_id("application_id", request.application_id.as_deref())?;
        let newest_first = request.order_by == pb::CronOrder::CreatedAtDesc as i32;
        let (crons, total_count) = self
            .store
            .list(&caller, &request.region, application_id, newest_first, page)
            .await?;
        Ok(Response::new(pb::ListCronsResponse {
            crons: crons.into_iter().map(to_proto).collect(),
            total_count,
        }))
    }

    async fn update_cron(&self, request: Request<pb::UpdateCronRequest>) -> Result<Response<pb::CronResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let id = parse_id("cron_id", &request.cron_id)?;
        let mut cron = self.store.get(&caller, &request.region, id).await?;
        if cron.status == CronStatus::Deleting {
            return Err(ApiError::transient_state("cron", id.to_string(), "deleting").into());
        }
        if let Some(schedule) = request.schedule.filter(|schedule| !schedule.is_empty()) {
            schedule::check(&schedule, self.seconds_schedules)?;
            cron.schedule = schedule.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        if let Some(args) = request.args {
            check_args(&args)?;
            cron.args = args;
        }
        if let Some(name) = request.name {
            let name = check_name(&name)?;
            cron.name = if name.is_empty() { default_name(cron.id) } else { name };
        }
        if let Some(delivery) = request.delivery {
            cron.delivery = Some(Delivery::parse(delivery)?);
        }
        if let Some(application_id) = request.application_id.filter(|id| !id.is_empty()) {
            cron.application_id = self.peers.live(&caller, &request.region, &application_id).await?.id;
        }
        let cron = self
            .store
            .update(&cron)
            .await?
            .ok_or_else(|| ApiError::transient_state("cron", id.to_string(), "deleting"))?;
        // Every replica's scheduler follows the table; this one's looks now.
        self.reconciler.wake();
        Ok(answer(cron))
    }

    async fn delete_cron(&self, request: Request<pb::GetCronRequest>) -> Result<Response<pb::CronResponse>, Status> {
        let (caller, region, id) = named(request.into_inner())?;
        let cron = self.store.mark_deleting(&caller, &region, id).await?;
        self.reconciler.wake();
        Ok(answer(cron))
    }

    async fn delete_application_crons(
        &self,
        request: Request<pb::DeleteApplicationCronsRequest>,
    ) -> Result<Response<pb::DeleteApplicationCronsResponse>, Status> {
        let request = request.into_inner();
        let remaining = self
            .store
            .mark_application_deleting(&request.organization_id, &request.application_id)
            .await?;
        if remaining > 0 {
            self.reconciler.wake();
        }
        Ok(Response::new(pb::DeleteApplicationCronsResponse { remaining }))
    }
}
