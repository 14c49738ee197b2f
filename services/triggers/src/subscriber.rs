//! Subscribes triggers to their NATS subjects and delivers what arrives. Every replica follows
//! the triggers table and subscribes every trigger not being deleted, in a queue group of its
//! own (`nuage-trigger-<id>`), so that the server hands each message to one replica only.
//! A trigger turns `ready` once its subscription reached the server, and `error` with a
//! message when the server cannot be reached or login fails, the subscription cannot be sent,
//! the connection drops (until the client is back), or when a message could not be delivered
//! after every try (until the next one is). A subscription the server refuses later (a
//! permissions violation, reported asynchronously) is not seen yet: TODO(#24). A deleted trigger
//! is unsubscribed at once here, and within a look at the table on other replicas.

use crate::config::{NatsCredentials, NatsServer, TriggersConfig};
use crate::delivery::Delivery;
use crate::model::{Trigger, TriggerStatus, credentials_context};
use crate::sources::{Connection, Connections, refuses};
use crate::store::TriggerStore;
use async_nats::Message;
use async_nats::connection::State;
use nuage_clients::LogSink;
use nuage_core::ApiError;
use nuage_core::follow::follow;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_stream::StreamExt;
use uuid::Uuid;

/// How often a subscription looks at its connection's state.
const HEALTH_EVERY: Duration = Duration::from_millis(500);

/// What a subscription is keyed on: a change to any of it subscribes again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    source: crate::model::NatsSource,
    application_id: Uuid,
    destination: (String, String),
}

impl Key {
    fn of(trigger: &Trigger) -> Self {
        Self {
            source: trigger.source.clone(),
            application_id: trigger.application_id,
            destination: (trigger.http_path.clone(), trigger.http_method.clone()),
        }
    }
}

#[derive(Debug)]
struct Subscribed {
    key: Key,
    task: JoinHandle<()>,
}

struct Inner {
    store: TriggerStore,
    delivery: Delivery,
    config: TriggersConfig,
    connections: Connections,
    subscriptions: Mutex<HashMap<Uuid, Subscribed>>,
    stopped: AtomicBool,
    wake: Notify,
    logs: Option<LogSink>,
    /// Opens the credentials tenants give for their own servers.
    sealing: [u8; 32],
}

/// Subscribes every trigger and delivers its messages; call [`Subscriber::run`].
#[derive(Clone)]
pub struct Subscriber {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").finish_non_exhaustive()
    }
}

impl Subscriber {
    /// Returns a subscriber with nothing subscribed yet (call [`Subscriber::run`]); a message
    /// given up leaves a line in its application's logs through `logs`.
    /// `sealing` opens the credentials tenants give for their own servers.
    pub fn new(
        store: TriggerStore,
        delivery: Delivery,
        config: TriggersConfig,
        (logs, sealing): (Option<LogSink>, [u8; 32]),
    ) -> Self {
        let connections = Connections::new(Duration::from_millis(config.nats.connect_timeout_ms.max(1)));
        Self {
            inner: Arc::new(Inner {
                store,
                delivery,
                config,
                connections,
                subscriptions: Mutex::default(),
                stopped: AtomicBool::new(false),
                wake: Notify::new(),
                logs,
                sealing,
            }),
        }
    }

    /// Stops (at shutdown, before the router goes): every subscription is dropped, so other
    /// replicas receive what comes next.
    pub async fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        for (_, subscribed) in self.inner.subscriptions.lock().await.drain() {
            subscribed.task.abort();
        }
    }

    fn stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Asks for a look at the triggers table now: a trigger changed through this replica.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Follows the triggers table until stopped.
    pub async fn run(self) {
        let every = Duration::from_millis(self.inner.config.sync_ms.max(10));
        follow(
            "triggers",
            every,
            &self.inner.wake,
            || self.stopped(),
            |since| self.sync(since),
        )
        .await;
    }

    /// Brings the subscriptions in line with the triggers changed since `since` (0: all).
    async fn sync(&self, since: i64) -> Result<(), ApiError> {
        let triggers = self.inner.store.changed_since(since).await?;
        let mut subscriptions = self.inner.subscriptions.lock().await;
        if self.stopped() {
            return Ok(());
        }
        if since == 0 {
            let live: HashSet<Uuid> = triggers.iter().map(|trigger| trigger.id).collect();
            subscriptions.retain(|id, subscribed| {
                let keep = live.contains(id);
                if !keep {
                    subscribed.task.abort();
                }
                keep
            });
        }
        for trigger in triggers {
            if trigger.status == TriggerStatus::Deleting {
                if let Some(subscribed) = subscriptions.remove(&trigger.id) {
                    subscribed.task.abort();
                    tracing::info!(trigger_id = %trigger.id, "trigger unsubscribed");
                }
                continue;
            }
            let key = Key::of(&trigger);
            if subscriptions
                .get(&trigger.id)
                .is_some_and(|subscribed| subscribed.key == key)
            {
                continue;
            }
            let this = self.clone();
            let id = trigger.id;
            let task = tokio::spawn(async move { this.watch(trigger).await });
            if let Some(previous) = subscriptions.insert(id, Subscribed { key, task }) {
                previous.task.abort();
            }
        }
        Ok(())
    }

    /// Records that trigger `id` is well (`None`) or why it is not; logs changes.
    async fn report(&self, trigger: &Trigger, error: Option<&str>) {
        match self.inner.store.set_status(trigger.id, error).await {
            Ok(true) => match error {
                None => tracing::info!(trigger_id = %trigger.id, subject = %trigger.source.subject, "trigger ready"),
                Some(error) => tracing::warn!(trigger_id = %trigger.id, %error, "trigger in error"),
            },
            Ok(false) => {}
            Err(error) => tracing::warn!(trigger_id = %trigger.id, %error, "cannot record a trigger's status"),
        }
    }

    /// Keeps `trigger` subscribed, delivering its messages, until aborted.
    async fn watch(self, trigger: Trigger) {
        let retry = Duration::from_secs(self.inner.config.reconnect_seconds.max(1));
        let server = match self.server(&trigger).await {
            Ok(server) => server,
            Err(error) => {
                self.report(&trigger, Some(&error)).await;
                return;
            }
        };
        loop {
            match self.inner.connections.client(&server).await {
                Ok(connection) => {
                    let Err(error) = self.subscribed(&trigger, &connection, &server).await;
                    self.report(&trigger, Some(&error)).await;
                }
                Err(error) => self.report(&trigger, Some(&error)).await,
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Returns the server `trigger` reads: its account's, as the operator maps it, or the
    /// tenant's own (still allowed, at the address checked, with its credentials opened).
    async fn server(&self, trigger: &Trigger) -> Result<NatsServer, String> {
        let nats = &self.inner.config.nats;
        if trigger.source.server_urls.is_empty() {
            return nats
                .server(&trigger.source.account_id, trigger.organization_id)
                .ok_or_else(|| {
                    format!(
                        "the NATS account `{}` is no longer configured on this installation",
                        trigger.source.account_id
                    )
                });
        }
        let (mut addresses, mut names) = (Vec::new(), Vec::new());
        for url in &trigger.source.server_urls {
            let server = nats.tenant_server(url).await?;
            addresses.push(server.url);
            names.extend(server.name);
        }
        let content = if trigger.source.credentials.is_empty() {
            None
        } else {
            let opened = nuage_core::seal::open(
                &self.inner.sealing,
                &credentials_context(trigger.id),
                &trigger.source.credentials,
            )
            .map_err(|_| "its NATS credentials cannot be opened on this installation".to_owned())?;
            Some(nuage_core::Secret::new(String::from_utf8_lossy(&opened).into_owned()))
        };
        Ok(NatsServer {
            url: addresses.join(","),
            credentials: NatsCredentials {
                content,
                ..NatsCredentials::default()
            },
            scope: None,
            owner: Some(trigger.id),
            names,
        })
    }

    /// Subscribes `trigger` on `client` and delivers its messages until the subscription
    /// ends; returns why it could not subscribe or why it ended.
    async fn subscribed(
        &self,
        trigger: &Trigger,
        connection: &Connection,
        server: &NatsServer,
    ) -> Result<Infallible, String> {
        let (subject, url, client) = (&trigger.source.subject, &server.url, &connection.client);
        let read = server.subject(subject);
        let refused = |error: &str| format!("the NATS server `{url}` refuses the subscription to `{subject}`: {error}");
        let mut errors = connection.errors.subscribe();
        let mut subscription = client
            .queue_subscribe(read.clone(), format!("nuage-trigger-{}", trigger.id))
            .await
            .map_err(|error| format!("cannot subscribe to `{subject}` on the NATS server `{url}`: {error}"))?;
        // The subscription is sent with the next write: ready once the server has it.
        // The server refuses a subscription with an `-ERR` before it answers the ping of a
        // flush; the client reports it apart, so a second round trip lets it arrive.
        for _ in 0..2 {
            client.flush().await.map_err(|error| {
                format!("the NATS server `{url}` did not take the subscription to `{subject}`: {error}")
            })?;
        }
        while let Ok(error) = errors.try_recv() {
            if refuses(&error, &read) {
                return Err(refused(&error));
            }
        }
        self.report(trigger, None).await;
        let lost = format!("lost the connection to the NATS server `{url}`; reconnecting");
        let limit = Arc::new(Semaphore::new(self.inner.config.concurrent_deliveries.max(1)));
        let failing = Arc::new(AtomicBool::new(false));
        // Dropped with this future when the trigger is deleted: deliveries in flight stop too.
        let mut deliveries = JoinSet::new();
        let mut health = tokio::time::interval(HEALTH_EVERY);
        let mut connected = true;
        loop {
            tokio::select! {
                message = subscription.next() => {
                    let Some(message) = message else {
                        return Err(format!("the NATS server `{url}` ended the subscription to `{subject}`"));
                    };
                    let Ok(permit) = limit.clone().acquire_owned().await else { continue };
                    let this = self.clone();
                    let trigger = trigger.clone();
                    let failing = failing.clone();
                    let subject = server.unscoped(message.subject.as_str()).to_owned();
                    deliveries.spawn(async move {
                        this.deliver(&trigger, &message, &subject, &failing).await;
                        drop(permit);
                    });
                }
                Some(_) = deliveries.join_next(), if !deliveries.is_empty() => {}
                Ok(error) = errors.recv() => {
                    if refuses(&error, &read) {
                        return Err(refused(&error));
                    }
                }
                _ = health.tick() => {
                    let now = client.connection_state() == State::Connected;
                    if now != connected {
                        connected = now;
                        self.report(trigger, (!now).then_some(lost.as_str())).await;
                    }
                }
            }
        }
    }

    /// Delivers one message of `trigger`; a message given up puts the trigger in `error`
    /// (and a line in its application's logs), the next one delivered takes it out.
    async fn deliver(&self, trigger: &Trigger, message: &Message, subject: &str, failing: &AtomicBool) {
        let destination = (trigger.http_path.as_str(), trigger.http_method.as_str());
        match self
            .inner
            .delivery
            .deliver(trigger.application_id, destination, message, subject)
            .await
        {
            Ok(attempts) => {
                tracing::debug!(trigger_id = %trigger.id, subject, attempts, "message delivered");
                if failing.swap(false, Ordering::SeqCst) {
                    self.report(trigger, None).await;
                }
            }
            Err(undelivered) => {
                let error = format!(
                    "a message on `{subject}` was not delivered after {} tries: {}",
                    undelivered.attempts, undelivered.last.error
                );
                if let Some(logs) = &self.inner.logs {
                    let line = format!("trigger {}: {error}", trigger.id);
                    logs.push(
                        &trigger.application_id.to_string(),
                        &trigger.id.to_string(),
                        "trigger",
                        line,
                    );
                }
                failing.store(true, Ordering::SeqCst);
                self.report(trigger, Some(&error)).await;
            }
        }
    }
}
