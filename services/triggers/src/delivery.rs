//! Delivers one message to an application: an HTTP POST of its payload through the router's
//! internal listener (as crons fire), the subject in `X-Nats-Subject`, tried again with a
//! growing wait when it fails, a bounded number of times.

use crate::config::TriggersConfig;
use async_nats::Message;
use nuage_clients::Invoker;
use nuage_clients::invoker::{Call, Outcome};
use std::time::Duration;
use uuid::Uuid;

/// The header that names the subject a delivered message was published on.
pub const SUBJECT_HEADER: &str = "x-nats-subject";
/// The body's type when the message does not say (a NATS payload is bytes).
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// How messages are delivered.
#[derive(Debug, Clone)]
pub struct Delivery {
    invoker: Invoker,
    attempts: u32,
    backoff: Duration,
    max_backoff: Duration,
}

/// A message that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    /// How many tries were made.
    pub attempts: u32,
    /// The last try's outcome.
    pub last: Outcome,
}

impl Delivery {
    /// Returns deliveries through `invoker`, tried as `config` says.
    pub fn new(invoker: Invoker, config: &TriggersConfig) -> Self {
        Self {
            invoker,
            attempts: config.delivery_attempts.max(1),
            backoff: Duration::from_millis(config.backoff_ms),
            max_backoff: Duration::from_millis(config.max_backoff_ms.max(config.backoff_ms)),
        }
    }

    /// Delivers `message`, published on `subject` (as the trigger's owner names it), to
    /// `application_id`, trying again after failures; returns how many tries it took, or why
    /// it was given up.
    /// `(path, method)` says where in the application it goes.
    pub async fn deliver(
        &self,
        application_id: Uuid,
        (path, method): (&str, &str),
        message: &Message,
        subject: &str,
    ) -> Result<u32, Undelivered> {
        let content_type = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get("Content-Type"))
            .map_or(DEFAULT_CONTENT_TYPE, |value| value.as_str());
        let mut wait = self.backoff;
        let mut attempt = 1;
        loop {
            let call = Call {
                method,
                path,
                content_type,
                headers: &[(SUBJECT_HEADER, subject)],
                body: message.payload.clone(),
            };
            let outcome = self.invoker.post(application_id, call).await;
            if outcome.succeeded {
                return Ok(attempt);
            }
            if attempt >= self.attempts {
                return Err(Undelivered {
                    attempts: attempt,
                    last: outcome,
                });
            }
            tracing::debug!(%application_id, subject, attempt, error = %outcome.error, "delivery failed; trying again");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.max_backoff);
            attempt += 1;
        }
    }
}
