//! Functions: the shared application handlers over the functions service (`/functions`,
//! `/namespaces/{id}/functions`), and what only functions have: `/runtimes` and the upload and
//! download URLs of their source archives.

use crate::GatewayState;
use crate::applications::ApplicationId;
use crate::error::{HttpError, invalid, required};
use crate::extract::{QueryParams, Scope};
use crate::owner::Owner;
use crate::version::Version;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nuage_core::error::Reason;
use nuage_core::transport::Authed;
use nuage_proto::applications::v1 as wire;
use nuage_proto::functions::v1 as pb;
use nuage_proto::functions::v1::functions_client::FunctionsClient;
use serde::Serialize;
use std::collections::BTreeMap;

/// The functions service, as the application handlers call it.
pub(crate) struct Functions;

impl Owner for Functions {
    const NOUN: &'static str = "function";
    const PLURAL: &'static str = "functions";
    const ID_PARAM: &'static str = "function_id";
    const FUNCTION: bool = true;
    type Client = FunctionsClient<Authed>;

    fn client(state: &GatewayState) -> Self::Client {
        state.clients().functions.clone()
    }

    crate::owner::forward_to_client! {
        create: create_function,
        get: get_function,
        list: list_functions,
        update: update_function,
        delete: delete_function,
        deploy: deploy_function,
        list_deployments: list_function_deployments,
        rollback: rollback_function,
    }
}

pub(crate) fn routes<V: Version>() -> Router<GatewayState> {
    crate::applications::routes::<Functions, V>()
        .merge(crate::deployments::routes::<Functions, V>())
        .route("/functions/{function_id}/upload-url", get(upload_url::<V>))
        .route("/functions/{function_id}/download-url", get(download_url))
        .route("/runtimes", get(runtimes::<V>))
}

/// The v1alpha2 `ListFunctionRuntimesResponse`: runtime names.
#[derive(Debug, Serialize)]
pub(crate) struct RuntimesJson {
    runtimes: Vec<String>,
}

impl From<pb::ListRuntimesResponse> for RuntimesJson {
    fn from(response: pb::ListRuntimesResponse) -> Self {
        Self {
            runtimes: response.runtimes,
        }
    }
}

async fn runtimes<V: Version>(State(state): State<GatewayState>, scope: Scope) -> Result<Json<V::Runtimes>, HttpError> {
    let response = state
        .clients()
        .functions
        .clone()
        .list_runtimes(scope.grpc(pb::ListRuntimesRequest {}))
        .await?
        .into_inner();
    Ok(Json(response.into()))
}

/// The v1alpha2 `UploadURL` and `DownloadURL`: a URL and the headers to send with it, each a
/// list of values.
#[derive(Debug, Serialize)]
struct PresignedJson {
    url: String,
    headers: BTreeMap<String, Vec<String>>,
}

impl From<pb::PresignedUrl> for PresignedJson {
    fn from(presigned: pb::PresignedUrl) -> Self {
        Self {
            url: presigned.url,
            headers: presigned
                .headers
                .into_iter()
                .map(|(name, value)| (name, vec![value]))
                .collect(),
        }
    }
}

async fn upload_url<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    ApplicationId(id, _): ApplicationId<Functions>,
    query: QueryParams,
) -> Result<Json<PresignedJson>, HttpError> {
    let content_length = match query.get("content_length").filter(|raw| !raw.is_empty()) {
        // v1beta1 needs the size, which the presigned URL then signs.
        None if V::STRICT => return Err(required("content_length")),
        None => 0,
        Some(raw) => match raw.parse::<u64>() {
            Ok(0) => {
                return Err(invalid("content_length", Reason::Constraint, "must be at least 1 byte"));
            }
            Ok(length) => length,
            Err(_) => {
                return Err(invalid(
                    "content_length",
                    Reason::Format,
                    format!("`{raw}` is not a positive whole number of bytes"),
                ));
            }
        },
    };
    let request = pb::GetUploadUrlRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        function_id: id.to_string(),
        content_length,
    };
    let response = state
        .clients()
        .functions
        .clone()
        .get_upload_url(scope.grpc(request))
        .await?;
    Ok(Json(response.into_inner().into()))
}

async fn download_url(
    State(state): State<GatewayState>,
    scope: Scope,
    ApplicationId(id, _): ApplicationId<Functions>,
) -> Result<Json<PresignedJson>, HttpError> {
    let request = wire::GetApplicationRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        application_id: id.to_string(),
    };
    let response = state
        .clients()
        .functions
        .clone()
        .get_download_url(scope.grpc(request))
        .await?;
    Ok(Json(response.into_inner().into()))
}
