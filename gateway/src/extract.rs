//! Extractors that validate the HTTP surface and name the offending argument on failure:
//! the region and ids in the path, query parameters, and JSON bodies.

use crate::GatewayState;
use crate::error::{HttpError, invalid, required};
use crate::request_id::RequestId;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use nuage_core::Caller;
use nuage_core::error::Reason;
use nuage_core::internal::REQUEST_ID_HEADER;
use nuage_core::pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// The tenant, region and request id of an authenticated API call.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    pub caller: Caller,
    pub region: String,
    pub request_id: String,
}

impl Scope {
    /// Returns a gRPC request carrying `message` and this request's id.
    pub fn grpc<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(value) = self.request_id.parse() {
            request.metadata_mut().insert(REQUEST_ID_HEADER, value);
        }
        request
    }
}

impl FromRequestParts<GatewayState> for Scope {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &GatewayState) -> Result<Self, Self::Rejection> {
        let caller = *parts
            .extensions
            .get::<Caller>()
            .ok_or_else(|| HttpError::Api(nuage_core::ApiError::unauthenticated()))?;
        let region = path_param(parts, state, "region").await?;
        let regions = &state.config().regions;
        if !regions.contains(&region) {
            return Err(invalid(
                "region",
                Reason::Constraint,
                format!("unknown region `{region}`; valid regions are {}", regions.join(", ")),
            ));
        }
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default();
        Ok(Self {
            caller,
            region,
            request_id,
        })
    }
}

pub(crate) async fn path_param(parts: &mut Parts, state: &GatewayState, name: &str) -> Result<String, HttpError> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| invalid(name, Reason::Format, "is not valid UTF-8"))?;
    params
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| required(name))
}

/// Declares an extractor for a UUID path parameter; a malformed one is a 400 naming it.
macro_rules! path_id {
    ($(#[$doc:meta] $name:ident = $param:literal;)*) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct $name(pub Uuid);

        impl FromRequestParts<GatewayState> for $name {
            type Rejection = HttpError;

            async fn from_request_parts(parts: &mut Parts, state: &GatewayState) -> Result<Self, Self::Rejection> {
                let value = path_param(parts, state, $param).await?;
                Ok(Self(nuage_core::ids::parse_id($param, &value)?))
            }
        }
    )*};
}

path_id! {
    /// The `{namespace_id}` path parameter.
    NamespaceId = "namespace_id";
    /// The `{cron_id}` path parameter.
    CronId = "cron_id";
    /// The `{token_id}` path parameter.
    TokenId = "token_id";
    /// The `{trigger_id}` path parameter.
    TriggerId = "trigger_id";
    /// The `{domain_id}` path parameter.
    DomainId = "domain_id";
}

/// Query parameters as name/value pairs; the last of repeated names wins.
#[derive(Debug, Default)]
pub(crate) struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query).map(Self).map_err(|error| {
            invalid(
                "query",
                Reason::Format,
                format!("the query string does not parse: {error}"),
            )
        })
    }
}

impl QueryParams {
    /// Returns the raw value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns the value of `name` as a whole number in `min..=max`, or `default` when absent.
    pub fn number(&self, name: &str, default: u32, min: u32, max: u32) -> Result<u32, HttpError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let value: u32 = raw
            .parse()
            .map_err(|_| invalid(name, Reason::Format, format!("`{raw}` is not a whole number")))?;
        if value < min || value > max {
            return Err(invalid(
                name,
                Reason::Constraint,
                format!("must be between {min} and {max}, got {value}"),
            ));
        }
        Ok(value)
    }

    /// Returns the `page` (from 1) and `page_size` of a list, in that order of checks.
    pub fn page(&self) -> Result<(u32, u32), HttpError> {
        let page = self.number("page", 1, 1, u32::MAX)?;
        let page_size = self.number("page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)?;
        Ok((page, page_size))
    }

    /// Returns the value of `name` as one of `allowed`, or the first of them when absent.
    pub fn choice<'a>(&self, name: &str, allowed: &[&'a str]) -> Result<&'a str, HttpError> {
        let Some(raw) = self.get(name).filter(|raw| !raw.is_empty()) else {
            return Ok(allowed[0]);
        };
        allowed
            .iter()
            .find(|candidate| **candidate == raw)
            .copied()
            .ok_or_else(|| {
                invalid(
                    name,
                    Reason::Constraint,
                    format!("`{raw}` is not one of {}", allowed.join(", ")),
                )
            })
    }

    /// Returns the value of `name` as a UUID, if given and not empty.
    pub fn uuid(&self, name: &str) -> Result<Option<Uuid>, HttpError> {
        match self.get(name).filter(|raw| !raw.is_empty()) {
            None => Ok(None),
            Some(raw) => Ok(Some(nuage_core::ids::parse_id(name, raw)?)),
        }
    }
}

/// A JSON request body. Any content type is accepted (curl sends a form type by default); an
/// empty body reads as `{}`; errors name the offending field.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<GatewayState> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &GatewayState) -> Result<Self, Self::Rejection> {
        let bytes = read_limited(request.into_body(), state.config().max_body_bytes).await?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        parse_json(bytes).map(Self)
    }
}

/// How much of an oversized body is read and thrown away before answering 413. Answering
/// while a client is still sending makes it see a reset connection instead of the answer.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// Returns the body if it is at most `limit` bytes, else a 413 (after draining it, bounded).
async fn read_limited(body: axum::body::Body, limit: usize) -> Result<Vec<u8>, HttpError> {
    use tokio_stream::StreamExt;
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| invalid("body", Reason::Format, "the request body could not be read"))?;
        total = total.saturating_add(chunk.len());
        if total <= limit {
            bytes.extend_from_slice(&chunk);
        } else if total > DRAIN_LIMIT {
            break;
        }
    }
    if total > limit {
        Err(HttpError::PayloadTooLarge { limit })
    } else {
        Ok(bytes)
    }
}

/// Returns `bytes` parsed as `T`, or an error naming the field that did not fit.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, HttpError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(invalid(
            "body",
            Reason::Format,
            "the request body must be a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let argument = if path == "." || path.is_empty() || inner.is_syntax() || inner.is_eof() {
            "body".to_owned()
        } else {
            path
        };
        invalid(&argument, Reason::Format, strip_position(&inner))
    })?;
    deserializer
        .end()
        .map_err(|_| invalid("body", Reason::Format, "unexpected data after the JSON object"))?;
    Ok(value)
}

/// Returns serde's message without its "at line 1 column 9" suffix for type errors, which
/// adds nothing once the field is named; syntax errors keep it.
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if error.is_data()
        && let Some(at) = text.rfind(" at line ")
    {
        return text[..at].to_owned();
    }
    text
}
