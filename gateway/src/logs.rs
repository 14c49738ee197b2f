//! `GET /logs?application_id=...`: the lines of one of the caller's functions or containers,
//! a page at a time (Scaleway v1alpha2 `ListLogs`), or, beyond the spec, followed live as
//! NDJSON (`follow=true`), optionally from `since` (RFC 3339) on. v1beta1 has the same lines
//! at `GET /functions/{id}/logs` and `GET /containers/{id}/logs`: no longer in Scaleway's spec,
//! but what the Serverless plugin (0.2.1 to 0.5.0) calls, with the same answer.

use crate::GatewayState;
use crate::applications::{ApplicationId, resolve};
use crate::error::{HttpError, invalid};
use crate::extract::{QueryParams, Scope};
use crate::list::listed;
use crate::owner::Owner;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_proto::logs::v1 as pb;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

/// `order_by` values, the default first.
const ORDERS: [&str; 2] = ["timestamp_desc", "timestamp_asc"];

pub(crate) fn routes() -> axum::Router<GatewayState> {
    axum::Router::new().route("/logs", get(list))
}

/// Returns `GET /<kind>s/{id}/logs` for `O`'s applications (v1beta1).
pub(crate) fn application_routes<O: Owner>() -> axum::Router<GatewayState> {
    let path = format!("/{}/{{{}}}/logs", O::PLURAL, O::ID_PARAM);
    axum::Router::new().route(&path, get(list_of::<O>))
}

/// The v1alpha2 `Log`.
#[derive(Debug, Serialize)]
struct LogJson {
    id: String,
    message: String,
    timestamp: String,
}

impl From<pb::LogEntry> for LogJson {
    fn from(entry: pb::LogEntry) -> Self {
        let timestamp = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(entry.timestamp) * 1000)
            .ok()
            .and_then(|at| at.format(&Rfc3339).ok())
            .unwrap_or_default();
        Self {
            id: entry.id,
            message: entry.message,
            timestamp,
        }
    }
}

/// What a `GET /logs` asks for.
struct LogsQuery {
    application_id: String,
    ascending: bool,
    page: u32,
    page_size: u32,
    /// Unix microseconds; 0 for from the start.
    since: i64,
    follow: bool,
}

impl LogsQuery {
    /// Reads and checks the query of application `application_id`'s lines, naming the first
    /// parameter that does not fit.
    fn read(query: &QueryParams, application_id: String) -> Result<Self, HttpError> {
        let ascending = query.choice("order_by", &ORDERS)? == "timestamp_asc";
        let (page, page_size) = query.page()?;
        let since = match query.get("since").filter(|value| !value.is_empty()) {
            None => 0,
            Some(value) => {
                let when = time::OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
                    invalid(
                        "since",
                        Reason::Format,
                        format!("`{value}` is not an RFC 3339 date such as 2030-01-02T00:00:00Z"),
                    )
                })?;
                i64::try_from(when.unix_timestamp_nanos() / 1000).unwrap_or(0).max(1)
            }
        };
        let follow = match query.get("follow").unwrap_or_default() {
            "" | "false" => false,
            "true" => true,
            other => {
                return Err(invalid(
                    "follow",
                    Reason::Format,
                    format!("`{other}` is not true or false"),
                ));
            }
        };
        Ok(Self {
            application_id,
            ascending,
            page,
            page_size,
            since,
            follow,
        })
    }
}

async fn list(State(state): State<GatewayState>, scope: Scope, query: QueryParams) -> Result<Response, HttpError> {
    let Some(application_id) = query.uuid("application_id")? else {
        return Err(invalid(
            "application_id",
            Reason::Required,
            "is required: the id of one of your functions or containers",
        ));
    };
    let query = LogsQuery::read(&query, application_id.to_string())?;
    // Another tenant's application is missing, exactly as one that does not exist.
    if resolve(&state, &scope, &query.application_id).await?.is_none() {
        return Err(HttpError::Api(ApiError::not_found(
            "application",
            &query.application_id,
        )));
    }
    answer(&state, &scope, query).await
}

/// `GET /<kind>s/{id}/logs`: the lines of one of the caller's applications of `O`'s kind;
/// another tenant's, or one of the other kind, is not found.
async fn list_of<O: Owner>(
    State(state): State<GatewayState>,
    scope: Scope,
    ApplicationId(id, _): ApplicationId<O>,
    query: QueryParams,
) -> Result<Response, HttpError> {
    let query = LogsQuery::read(&query, id.to_string())?;
    crate::applications::fetch::<O>(&state, &scope, id).await?;
    answer(&state, &scope, query).await
}

/// Answers `query`: a page of lines, or the lines followed live.
async fn answer(state: &GatewayState, scope: &Scope, query: LogsQuery) -> Result<Response, HttpError> {
    if query.follow {
        return follow(state, scope, query).await;
    }
    let request = pb::ListLogsRequest {
        application_id: query.application_id,
        page: query.page,
        page_size: query.page_size,
        ascending: query.ascending,
        since: query.since,
    };
    let mut client = state.clients().logs.clone();
    let page = listed("logs", client.list_logs(scope.grpc(request)), LogJson::from).await?;
    Ok(Json(page).into_response())
}

/// Streams the lines of `query`'s application as NDJSON, from `since` on, until the client
/// goes away or the server stops.
async fn follow(state: &GatewayState, scope: &Scope, query: LogsQuery) -> Result<Response, HttpError> {
    let request = pb::FollowLogsRequest {
        application_id: query.application_id,
        since: query.since,
    };
    let mut lines = state
        .clients()
        .logs
        .clone()
        .follow_logs(scope.grpc(request))
        .await?
        .into_inner();
    let stopping = state.stopping();
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::convert::Infallible>>(64);
    tokio::spawn(async move {
        // A server that stops ends the stream rather than waiting on it.
        let stopped = async move {
            match stopping {
                Some(mut stopping) => {
                    let _ = stopping.wait_for(|stop| *stop).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(stopped);
        loop {
            let entry = tokio::select! {
                entry = lines.message() => entry,
                () = &mut stopped => return,
            };
            let Ok(Some(entry)) = entry else { return };
            let mut line = serde_json::to_vec(&LogJson::from(entry)).unwrap_or_default();
            line.push(b'\n');
            // The client went away: drop the stream, which ends the follow.
            if sender.send(Ok(line.into())).await.is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
    let mut response = Body::from_stream(stream).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(response)
}
