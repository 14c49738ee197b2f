//! The client of the router's internal listener, through which what calls an application on
//! its own (a cron firing, a trigger's message) reaches it: an HTTP POST to
//! `<router>/<application id>/`, which skips the privacy check and is never reachable from
//! outside.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a call may wait for its answer (beyond any application's timeout, which the
/// router enforces).
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(3600);
/// The most of an answer read to explain a failure.
const ANSWER_CAP: usize = 64 * 1024;

/// How a call went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the application answered with a success (below 400).
    pub succeeded: bool,
    /// The answer's status, when one came.
    pub http_status: Option<u16>,
    /// How long the call took.
    pub duration_ms: i64,
    /// Why it failed; empty on success.
    pub error: String,
}

/// What to send to an application.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// The HTTP method, in any case (`post`).
    pub method: &'a str,
    /// The path in the application, starting with `/`.
    pub path: &'a str,
    /// The body's `Content-Type`.
    pub content_type: &'a str,
    /// More headers (names in lowercase).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: Bytes,
}

/// Sends calls to the router's internal listener.
#[derive(Debug, Clone)]
pub struct Invoker {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    authorization: String,
}

impl Invoker {
    /// Returns an invoker that reaches the router at `base` (`http://host:port`), presenting
    /// the internal credential `authorization`.
    pub fn new(base: &str, authorization: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: base.trim_end_matches('/').to_owned(),
            authorization: authorization.to_owned(),
        }
    }

    /// POSTs the JSON object `args` to the application and says how it went.
    pub async fn invoke(&self, application_id: Uuid, args: &str) -> Outcome {
        let call = Call {
            method: "POST",
            path: "/",
            content_type: "application/json",
            headers: &[],
            body: Bytes::from(args.to_owned()),
        };
        self.post(application_id, call).await
    }

    /// Sends `call` to the application and says how it went.
    pub async fn post(&self, application_id: Uuid, call: Call<'_>) -> Outcome {
        let started = Instant::now();
        let failed = |http_status, error: String| Outcome {
            succeeded: false,
            http_status,
            duration_ms: elapsed_ms(started),
            error,
        };
        let Ok(method) = hyper::Method::from_bytes(call.method.to_ascii_uppercase().as_bytes()) else {
            return failed(None, format!("`{}` is not an HTTP method", call.method));
        };
        let path = call.path.strip_prefix('/').unwrap_or(call.path);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}/{application_id}/{path}", self.base))
            .header(CONTENT_TYPE, call.content_type)
            .header(AUTHORIZATION, &self.authorization);
        for (name, value) in call.headers {
            request = request.header(*name, *value);
        }
        let request = match request.body(Full::new(call.body)) {
            Ok(request) => request,
            Err(error) => return failed(None, format!("cannot make the request: {error}")),
        };
        // One deadline for the answer and its body (the router enforces the real timeout).
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), ANSWER_CAP).collect().await;
            Ok::<_, hyper_util::client::legacy::Error>((status, body))
        };
        let (status, body) = match tokio::time::timeout(ANSWER_DEADLINE, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => return failed(None, format!("the router could not be reached: {error}")),
            Err(_) => return failed(None, "no answer within an hour".to_owned()),
        };
        if status.as_u16() < 400 {
            return Outcome {
                succeeded: true,
                http_status: Some(status.as_u16()),
                duration_ms: elapsed_ms(started),
                error: String::new(),
            };
        }
        // The router's own answers (not deployed, timeout, crash, overload) explain themselves.
        let explained = body
            .ok()
            .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body.to_bytes()).ok())
            .and_then(|body| {
                let message = body.get("message")?.as_str()?.to_owned();
                let kind = body.get("type").and_then(|kind| kind.as_str()).unwrap_or("error");
                Some(format!("{kind}: {message}"))
            });
        let error = match explained {
            Some(explained) => format!("HTTP {}: {explained}", status.as_u16()),
            None => format!("the application answered HTTP {}", status.as_u16()),
        };
        failed(Some(status.as_u16()), error)
    }
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}
