//! The one error table shared by gRPC and HTTP, the error every service returns, and the one
//! HTTP rendering of errors.
//!
//! A service turns its own error enum into an [`ApiError`]; that travels to the gateway inside
//! a `tonic::Status` (prost-encoded in its details) and becomes a Scaleway-style JSON body there
//! ([`ApiError::to_response`]). The router answers its own failures with the same bodies
//! ([`ErrorResponse`]), so a client reads one set of error types from nuage.

use http::StatusCode;
use nuage_proto::common::v1 as pb;
use prost::Message;
use serde_json::{Map, Value, json};
use tonic::Code;

/// The closed set of error classes. Every failure a client can see is one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed or a value breaks a rule.
    InvalidArgument,
    /// The resource does not exist, or belongs to another tenant.
    NotFound,
    /// A resource with the same identity exists.
    AlreadyExists,
    /// The resource is not in a state that allows the operation.
    FailedPrecondition,
    /// No valid credentials.
    Unauthenticated,
    /// Credentials are valid but do not allow the operation.
    PermissionDenied,
    /// A rate limit or quota is exhausted.
    ResourceExhausted,
    /// A dependency is down; retrying later may work.
    Unavailable,
    /// A bug or an unexpected failure; its detail is logged, never shown.
    Internal,
}

impl ErrorCode {
    /// Returns the gRPC status code for this class.
    pub fn grpc_code(self) -> Code {
        match self {
            Self::InvalidArgument => Code::InvalidArgument,
            Self::NotFound => Code::NotFound,
            Self::AlreadyExists => Code::AlreadyExists,
            Self::FailedPrecondition => Code::FailedPrecondition,
            Self::Unauthenticated => Code::Unauthenticated,
            Self::PermissionDenied => Code::PermissionDenied,
            Self::ResourceExhausted => Code::ResourceExhausted,
            Self::Unavailable => Code::Unavailable,
            Self::Internal => Code::Internal,
        }
    }

    /// Returns the HTTP status for this class (Scaleway's choices: 409 for conflicts, 412 for
    /// preconditions, 429 for rate limits).
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgument => 400,
            Self::NotFound => 404,
            Self::AlreadyExists => 409,
            Self::FailedPrecondition => 412,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::ResourceExhausted => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }

    /// Returns Scaleway's error `type` for this class (reference C.5); a few errors of a class
    /// have a more exact one (`transient_state`, `quotas_exceeded`).
    pub fn http_type(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_arguments",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::FailedPrecondition => "precondition_failed",
            Self::Unauthenticated => "denied_authentication",
            Self::PermissionDenied => "permissions_denied",
            Self::ResourceExhausted => "too_many_requests",
            Self::Unavailable => "service_unavailable",
            Self::Internal => "internal_error",
        }
    }

    /// Returns the class for a gRPC code that arrived without nuage details.
    pub fn from_grpc(code: Code) -> Self {
        match code {
            Code::InvalidArgument | Code::OutOfRange => Self::InvalidArgument,
            Code::NotFound => Self::NotFound,
            Code::AlreadyExists => Self::AlreadyExists,
            Code::FailedPrecondition | Code::Aborted => Self::FailedPrecondition,
            Code::Unauthenticated => Self::Unauthenticated,
            Code::PermissionDenied => Self::PermissionDenied,
            Code::ResourceExhausted => Self::ResourceExhausted,
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => Self::Unavailable,
            _ => Self::Internal,
        }
    }

    fn to_proto(self) -> pb::ErrorCode {
        match self {
            Self::InvalidArgument => pb::ErrorCode::InvalidArgument,
            Self::NotFound => pb::ErrorCode::NotFound,
            Self::AlreadyExists => pb::ErrorCode::AlreadyExists,
            Self::FailedPrecondition => pb::ErrorCode::FailedPrecondition,
            Self::Unauthenticated => pb::ErrorCode::Unauthenticated,
            Self::PermissionDenied => pb::ErrorCode::PermissionDenied,
            Self::ResourceExhausted => pb::ErrorCode::ResourceExhausted,
            Self::Unavailable => pb::ErrorCode::Unavailable,
            Self::Internal => pb::ErrorCode::Internal,
        }
    }

    fn from_proto(code: pb::ErrorCode) -> Option<Self> {
        Some(match code {
            pb::ErrorCode::Unspecified => return None,
            pb::ErrorCode::InvalidArgument => Self::InvalidArgument,
            pb::ErrorCode::NotFound => Self::NotFound,
            pb::ErrorCode::AlreadyExists => Self::AlreadyExists,
            pb::ErrorCode::FailedPrecondition => Self::FailedPrecondition,
            pb::ErrorCode::Unauthenticated => Self::Unauthenticated,
            pb::ErrorCode::PermissionDenied => Self::PermissionDenied,
            pb::ErrorCode::ResourceExhausted => Self::ResourceExhausted,
            pb::ErrorCode::Unavailable => Self::Unavailable,
            pb::ErrorCode::Internal => Self::Internal,
        })
    }
}

/// Why an argument was refused, in Scaleway's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The argument is missing.
    Required,
    /// The argument does not parse.
    Format,
    /// The argument parses but breaks a rule.
    Constraint,
    /// Anything else.
    Unknown,
}

impl Reason {
    /// Returns the wire name (`required`, `format`, `constraint`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Format => "format",
            Self::Constraint => "constraint",
            Self::Unknown => "unknown",
        }
    }
}

/// One refused argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The argument as the client named it.
    pub argument_name: String,
    /// `required`, `format`, `constraint` or `unknown`.
    pub reason: String,
    /// What is wrong and what would be accepted.
    pub help_message: String,
}

/// An error a client may see, with everything needed to build a typed Scaleway error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The class.
    pub code: ErrorCode,
    /// A short lowercase sentence for people.
    pub message: String,
    /// The kind of resource concerned, if any (`namespace`).
    pub resource: Option<String>,
    /// The id of the resource concerned, if any.
    pub resource_id: Option<String>,
    /// Advice for the client, if any.
    pub help_message: Option<String>,
    /// Refused arguments (for `InvalidArgument`).
    pub violations: Vec<Violation>,
    /// The state a resource is stuck in (for transient-state conflicts).
    pub current_state: Option<String>,
    /// The exhausted quota (for `ResourceExhausted` on a tenant's limit).
    pub quota: Option<Quota>,
}

/// A tenant's limit on a resource, and how many it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// How many may exist.
    pub limit: u64,
    /// How many exist.
    pub current: u64,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        for violation in &self.violations {
            write!(f, "; `{}`: {}", violation.argument_name, violation.help_message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Returns a bare error of the given class.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            resource: None,
            resource_id: None,
            help_message: None,
            violations: Vec::new(),
            current_state: None,
            quota: None,
        }
    }

    /// Returns the `InvalidArgument` error that `argument`, which the request must give, is
    /// missing.
    pub fn required(argument: impl Into<String>) -> Self {
        Self::invalid_argument(argument, Reason::Required, "is required")
    }

    /// Returns an `InvalidArgument` error naming one argument.
    pub fn invalid_argument(argument: impl Into<String>, reason: Reason, help: impl Into<String>) -> Self {
        Self::invalid_arguments(vec![Violation {
            argument_name: argument.into(),
            reason: reason.as_str().to_owned(),
            help_message: help.into(),
        }])
    }

    /// Returns an `InvalidArgument` error naming several arguments.
    pub fn invalid_arguments(violations: Vec<Violation>) -> Self {
        Self {
            violations,
            ..Self::new(ErrorCode::InvalidArgument, "invalid argument(s)")
        }
    }

    /// Returns a `NotFound` error for one resource.
    pub fn not_found(resource: &str, resource_id: impl Into<String>) -> Self {
        Self {
            resource: Some(resource.to_owned()),
            resource_id: Some(resource_id.into()),
            ..Self::new(ErrorCode::NotFound, format!("{resource} was not found"))
        }
    }

    /// Returns an `AlreadyExists` error with advice.
    pub fn already_exists(resource: &str, resource_id: impl Into<String>, help: impl Into<String>) -> Self {
        Self {
            resource: Some(resource.to_owned()),
            resource_id: Some(resource_id.into()),
            help_message: Some(help.into()),
            ..Self::new(ErrorCode::AlreadyExists, "resource already exists")
        }
    }

    /// Returns a `PermissionDenied` error for an action on a kind of resource.
    pub fn permission_denied(resource: &str, action: &str) -> Self {
        Self {
            resource: Some(resource.to_owned()),
            help_message: Some(action.to_owned()),
            ..Self::new(ErrorCode::PermissionDenied, "insufficient permissions")
        }
    }

    /// Returns an `Unauthenticated` error.
    pub fn unauthenticated() -> Self {
        Self::new(ErrorCode::Unauthenticated, "authentication is denied")
    }

    /// Returns a `FailedPrecondition` error for a resource in a transient state.
    pub fn transient_state(resource: &str, resource_id: impl Into<String>, state: &str) -> Self {
        Self {
            resource: Some(resource.to_owned()),
            resource_id: Some(resource_id.into()),
            current_state: Some(state.to_owned()),
            ..Self::new(ErrorCode::FailedPrecondition, "resource is in a transient state")
        }
    }

    /// Returns a `FailedPrecondition` error on resource `resource_id`, which the client cannot
    /// use as asked for the reason `help` gives (answered 409, naming it).
    pub fn precondition(resource: &str, resource_id: impl Into<String>, help: impl Into<String>) -> Self {
        Self {
            resource: Some(resource.to_owned()),
            resource_id: Some(resource_id.into()),
            help_message: Some(help.into()),
            ..Self::new(ErrorCode::FailedPrecondition, "precondition is not respected")
        }
    }

    /// Returns a `ResourceExhausted` error for a tenant that has `current` of at most `limit`
    /// `resource`s.
    pub fn quota_exceeded(resource: &str, limit: u64, current: u64) -> Self {
        Self {
            resource: Some(resource.to_owned()),
            quota: Some(Quota { limit, current }),
            ..Self::new(ErrorCode::ResourceExhausted, "quota(s) exceeded for this resource")
        }
    }

    /// Returns an `Internal` error. The detail is logged here, once, and never sent on.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// Returns an `Unavailable` error.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// Returns an `Unavailable` error for a dependency that did not answer (in time) or failed,
    /// such as "the object store", whose help message names it. What happened is logged, not
    /// shown: it names the platform's own addresses, which are no tenant's business.
    pub fn dependency(dependency: &str, what: impl std::fmt::Display) -> Self {
        let message = format!("{dependency} did not answer: {what}");
        tracing::warn!(error = %message, "dependency failed");
        Self {
            help_message: Some(format!("{dependency} did not answer in time or failed; retry later")),
            ..Self::unavailable(message)
        }
    }

    /// Returns this error as a gRPC status carrying its details.
    pub fn to_status(&self) -> tonic::Status {
        let detail = pb::ErrorDetail {
            code: self.code.to_proto() as i32,
            message: self.message.clone(),
            resource: self.resource.clone().unwrap_or_default(),
            resource_id: self.resource_id.clone().unwrap_or_default(),
            help_message: self.help_message.clone().unwrap_or_default(),
            violations: self
                .violations
                .iter()
                .map(|v| pb::FieldViolation {
                    argument_name: v.argument_name.clone(),
                    reason: v.reason.clone(),
                    help_message: v.help_message.clone(),
                })
                .collect(),
            current_state: self.current_state.clone().unwrap_or_default(),
            quota: self.quota.map(|quota| pb::Quota {
                limit: quota.limit,
                current: quota.current,
            }),
        };
        tonic::Status::with_details(self.code.grpc_code(), self.to_string(), detail.encode_to_vec().into())
    }

    /// Returns the error a status describes: its nuage details when present, otherwise a
    /// generic error of the matching class (transport failures become `Unavailable`).
    pub fn from_status(status: &tonic::Status) -> Self {
        if let Ok(detail) = pb::ErrorDetail::decode(status.details())
            && let Some(code) = pb::ErrorCode::try_from(detail.code)
                .ok()
                .and_then(ErrorCode::from_proto)
        {
            let non_empty = |s: String| (!s.is_empty()).then_some(s);
            return Self {
                code,
                message: detail.message,
                resource: non_empty(detail.resource),
                resource_id: non_empty(detail.resource_id),
                help_message: non_empty(detail.help_message),
                violations: detail
                    .violations
                    .into_iter()
                    .map(|v| Violation {
                        argument_name: v.argument_name,
                        reason: v.reason,
                        help_message: v.help_message,
                    })
                    .collect(),
                current_state: non_empty(detail.current_state),
                quota: detail.quota.map(|quota| Quota {
                    limit: quota.limit,
                    current: quota.current,
                }),
            };
        }
        // A call cut at its deadline: the transport's message names the service that did not
        // answer (see `transport::Deadline`).
        if status.code() == Code::DeadlineExceeded {
            return Self {
                help_message: Some(format!("{}; retry later", status.message())),
                ..Self::unavailable(status.message())
            };
        }
        match ErrorCode::from_grpc(status.code()) {
            ErrorCode::Internal => Self::new(ErrorCode::Internal, "internal error"),
            // Services put details on every error they return; a bare UNAUTHENTICATED comes from
            // the internal-credential check, so it is a deployment fault, not the client's.
            ErrorCode::Unauthenticated => {
                Self::internal(&format!("internal gRPC credential refused: {}", status.message()))
            }
            ErrorCode::Unavailable => Self::unavailable("service unavailable"),
            code => Self::new(code, status.message()),
        }
    }

    /// Returns the error of a failed call to the service `peer` (such as "builder"): the error
    /// it answered with, or, when it could not be reached at all, an `Unavailable` error whose
    /// help message names it. Services put details on every error they return, so a status
    /// without them that is unavailable or unknown came from the transport: a refused
    /// connection, one that broke mid-call, or a client whose channel was not ready.
    pub fn from_peer(peer: &str, status: &tonic::Status) -> Self {
        let unreachable = status.details().is_empty()
            && matches!(
                status.code(),
                Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
            );
        if !unreachable {
            return Self::from_status(status);
        }
        tracing::warn!(peer, code = ?status.code(), error = %status.message(), "service unreachable");
        let help = if status.code() == Code::DeadlineExceeded {
            format!("the {peer} service did not answer in time; retry later")
        } else {
            format!("the {peer} service cannot be reached; retry later")
        };
        Self {
            help_message: Some(help),
            ..Self::unavailable(format!("the {peer} service is unavailable"))
        }
    }

    /// Returns this error as an HTTP answer in Scaleway's shape (reference C.5). Classes whose
    /// detail is not the client's business (preconditions, authentication, permissions,
    /// unavailable, internal) carry Scaleway's fixed messages, not this error's.
    pub fn to_response(&self) -> ErrorResponse {
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        let answer = ErrorResponse::new(self.code, self.message.clone());
        match self.code {
            ErrorCode::InvalidArgument => answer.with("details", self.violations_json()),
            ErrorCode::NotFound => answer
                .with("resource", text(&self.resource))
                .with("resource_id", text(&self.resource_id)),
            ErrorCode::AlreadyExists => answer
                .with("help_message", text(&self.help_message))
                .with("resource", text(&self.resource))
                .with("resource_id", text(&self.resource_id)),
            // A resource in a transient state is a conflict for Scaleway, not a failed
            // precondition.
            ErrorCode::FailedPrecondition if self.current_state.is_some() => answer
                .with_status(StatusCode::CONFLICT)
                .with_type("transient_state")
                .with("current_state", text(&self.current_state))
                .with("resource", text(&self.resource))
                .with("resource_id", text(&self.resource_id)),
            // A named resource the request cannot use as it is (a deployment whose image is
            // gone): a conflict with that resource, as Scaleway answers a resource in use.
            ErrorCode::FailedPrecondition if self.resource.is_some() => {
                ErrorResponse::new(self.code, "precondition is not respected")
                    .with_status(StatusCode::CONFLICT)
                    .with("help_message", text(&self.help_message))
                    .with("precondition", "unknown_precondition")
                    .with("resource", text(&self.resource))
                    .with("resource_id", text(&self.resource_id))
            }
            ErrorCode::FailedPrecondition => ErrorResponse::new(self.code, "precondition is not respected")
                .with("help_message", text(&self.help_message))
                .with("precondition", "unknown_precondition"),
            ErrorCode::Unauthenticated => ErrorResponse::new(self.code, "authentication is denied")
                .with("method", "api_key")
                .with("reason", "invalid_argument"),
            ErrorCode::PermissionDenied => ErrorResponse::new(self.code, "insufficient permissions").with(
                "details",
                json!([{"action": text(&self.help_message), "resource": text(&self.resource)}]),
            ),
            // Scaleway answers exhausted quotas with 403, not 429.
            ErrorCode::ResourceExhausted => match self.quota {
                Some(quota) => answer
                    .with_status(StatusCode::FORBIDDEN)
                    .with_type("quotas_exceeded")
                    .with(
                        "details",
                        json!([{"current": quota.current, "quota": quota.limit, "resource": text(&self.resource)}]),
                    ),
                None => answer.with("help_message", text(&self.help_message)),
            },
            ErrorCode::Unavailable => {
                let answer = ErrorResponse::new(self.code, "service temporarily unavailable, retry later");
                match &self.help_message {
                    Some(help) => answer.with("help_message", help.as_str()),
                    None => answer,
                }
            }
            ErrorCode::Internal => ErrorResponse::new(self.code, "internal error"),
        }
    }

    /// Returns the refused arguments as the `details` of an `invalid_arguments` body.
    fn violations_json(&self) -> Value {
        self.violations
            .iter()
            .map(|violation| {
                json!({
                    "argument_name": violation.argument_name,
                    "help_message": violation.help_message,
                    "reason": violation.reason,
                })
            })
            .collect()
    }
}

/// An error answer over HTTP in Scaleway's shape (reference C.5): a status, and a JSON object
/// with a string `message`, a `type` and the fields of that type. Keys come sorted, as
/// Scaleway sends them.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorResponse {
    status: StatusCode,
    body: Map<String, Value>,
}

impl ErrorResponse {
    /// Returns the answer to an error of class `code`: the table's status and type, and
    /// `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = Map::new();
        body.insert("message".to_owned(), Value::String(message.into()));
        body.insert("type".to_owned(), Value::String(code.http_type().to_owned()));
        Self { status, body }
    }

    /// Returns this answer with `status`, a more exact one than its class's (such as 413 for a
    /// body too large, or a proxy's 502 and 504).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Returns this answer with a more exact `type` than its class's.
    pub fn with_type(self, kind: &str) -> Self {
        self.with("type", kind)
    }

    /// Returns this answer with the field `name` set to `value`.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.body.insert(name.to_owned(), value.into());
        self
    }

    /// Returns the HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Returns the status and the body, a JSON object.
    pub fn into_parts(mut self) -> (StatusCode, Value) {
        // Sorted already, unless serde_json keeps insertion order (its `preserve_order`).
        self.body.sort_keys();
        (self.status, Value::Object(self.body))
    }
}

/// Returns `error` and its sources, separated by colons: what a log line or a dependency's
/// error message says of a failure whose cause is nested (a connection error inside a client
/// error).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    sources(error).map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

/// Returns `error`, then its source, then that one's, and so on: where a cause nested in a
/// client's error (a refused connection, a body over its limit) is looked for.
pub fn sources<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |error| error.source())
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        error.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that says `text` and may wrap a cause, as client errors wrap connection errors.
    #[derive(Debug)]
    struct Wrapping(&'static str, Option<Box<Wrapping>>);

    impl std::fmt::Display for Wrapping {
        fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapping {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1
                .as_deref()
                .map(|cause| cause as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn a_nested_cause_is_found_and_told_after_its_wrappers() {
        let refused = Wrapping("connection refused", None);
        let connect = Wrapping("cannot connect", Some(Box::new(refused)));
        let client = Wrapping("transport error", Some(Box::new(connect)));
        let found: Vec<String> = sources(&client).map(ToString::to_string).collect();
        assert_eq!(found, ["transport error", "cannot connect", "connection refused"]);
        assert_eq!(chain(&client), "transport error: cannot connect: connection refused");
        assert_eq!(chain(&Wrapping("alone", None)), "alone");
    }

    #[test]
    fn errors_survive_a_round_trip_through_grpc_status() {
        let error = ApiError::invalid_argument("name", Reason::Format, "must be lowercase");
        let back = ApiError::from_status(&error.to_status());
        assert_eq!(back, error);
        let error = ApiError::not_found("namespace", "abc");
        assert_eq!(ApiError::from_status(&error.to_status()), error);
        let error = ApiError::quota_exceeded("namespaces", 3, 3);
        assert_eq!(ApiError::from_status(&error.to_status()), error);
    }

    #[test]
    fn statuses_without_details_keep_their_class_but_not_internal_text() {
        let status = tonic::Status::internal("database password is hunter2");
        let error = ApiError::from_status(&status);
        assert_eq!(error.code, ErrorCode::Internal);
        assert!(!error.message.contains("hunter2"));
        let status = tonic::Status::unauthenticated("internal credential missing or wrong");
        assert_eq!(ApiError::from_status(&status).code, ErrorCode::Internal);
        let status = tonic::Status::unavailable("connection refused");
        assert_eq!(ApiError::from_status(&status).code, ErrorCode::Unavailable);
    }

    #[test]
    fn a_peer_that_cannot_be_reached_is_named_but_its_own_errors_pass_through() {
        let ready = tonic::Status::unknown("Service was not ready: transport error");
        for status in [tonic::Status::unavailable("tcp connect error"), ready] {
            let error = ApiError::from_peer("builder", &status);
            assert_eq!(error.code, ErrorCode::Unavailable, "{status:?}");
            assert!(error.help_message.unwrap().contains("builder service"), "{status:?}");
        }
        let own = ApiError::not_found("function", "abc");
        assert_eq!(ApiError::from_peer("builder", &own.to_status()), own);
        let own = ApiError::unavailable("the registry is down");
        assert_eq!(ApiError::from_peer("builder", &own.to_status()), own);
        let bare = tonic::Status::internal("database password is hunter2");
        assert_eq!(ApiError::from_peer("builder", &bare).code, ErrorCode::Internal);
    }

    #[test]
    fn http_answers_take_status_and_type_from_the_table_and_keep_details_to_scaleway_fields() {
        let text = |answer: ErrorResponse| {
            let (status, body) = answer.into_parts();
            (status.as_u16(), body.to_string())
        };
        assert_eq!(
            text(ErrorResponse::new(ErrorCode::Unauthenticated, "no entry")),
            (
                401,
                r#"{"message":"no entry","type":"denied_authentication"}"#.to_owned()
            )
        );
        assert_eq!(
            text(ApiError::transient_state("function", "abc", "pending").to_response()),
            (
                409,
                r#"{"current_state":"pending","message":"resource is in a transient state","resource":"function","resource_id":"abc","type":"transient_state"}"#.to_owned()
            )
        );
        assert_eq!(
            text(ApiError::quota_exceeded("namespaces", 3, 3).to_response()),
            (
                403,
                r#"{"details":[{"current":3,"quota":3,"resource":"namespaces"}],"message":"quota(s) exceeded for this resource","type":"quotas_exceeded"}"#.to_owned()
            )
        );
        // What went wrong behind the service is not the client's business.
        assert_eq!(
            text(ApiError::unavailable("the registry at 10.0.0.3 is down").to_response()),
            (
                503,
                r#"{"message":"service temporarily unavailable, retry later","type":"service_unavailable"}"#.to_owned()
            )
        );
    }
}
