//! Triggers: NATS subjects whose every message is delivered to a function or a container.
//!
//! Owns the `triggers` table. Serves `nuage.triggers.v1.Triggers`: create, read, list, update
//! and delete triggers (a trigger's application must be a function or container of the caller,
//! asked of those services over gRPC), and the cascade from a deleted application. Its
//! [`Subscriber`] subscribes every trigger to its subject on the NATS server its account maps
//! to (the operator's `[triggers.nats]`), in a queue group per trigger so that each message
//! reaches one replica, and POSTs each message to the application through the router's
//! internal listener, as crons fire, with retries. Its [`Reconciler`] removes deleted
//! triggers. A tenant's own server (containers v1 `nats_config.server_urls`) is connected to
//! at the address checked when its name resolved, its certificate checked against that name
//! (`tls`). SQS triggers are refused: no SQS endpoint can be configured. The crons role
//! serves it, beside crons: both call applications on their own.

mod config;
mod delivery;
mod model;
mod reconciler;
mod service;
mod sources;
mod store;
mod subscriber;
mod tls;

pub use config::{NatsAccount, NatsConfig, NatsCredentials, TriggersConfig};
pub use delivery::SUBJECT_HEADER;
pub use reconciler::Reconciler;
pub use service::{Peers, TriggersService};
pub use store::TriggerStore;
pub use subscriber::Subscriber;

use delivery::Delivery;
use nuage_clients::{Invoker, LogSink};
use nuage_core::Database;
use nuage_core::served::Served;
use nuage_proto::triggers::v1::triggers_server::TriggersServer;
use std::time::Duration;

/// Returns the triggers service over `database`, with its subscriber (the handle: stop it
/// before the router goes) delivering through `invoker` and its reconciler running. A message
/// given up leaves a line in its application's logs through `logs`. `sealing` seals (and
/// opens) the credentials tenants give for their own NATS servers.
pub fn serve(
    config: &TriggersConfig,
    database: Database,
    (peers, invoker, logs): (Peers, Invoker, Option<LogSink>),
    sealing: [u8; 32],
) -> Served<TriggersServer<TriggersService>, Subscriber> {
    let store = TriggerStore::new(database);
    let delivery = Delivery::new(invoker, config);
    let subscriber = Subscriber::new(store.clone(), delivery, config.clone(), (logs, sealing));
    let subscribing = tokio::spawn(subscriber.clone().run());
    // Deleted triggers stay visible as `deleting` while every replica's subscriber catches up.
    let linger = Duration::from_millis(config.sync_ms.saturating_mul(2)) + Duration::from_secs(1);
    let reconciler = Reconciler::new(store.clone(), linger);
    let reconciling = tokio::spawn(reconciler.clone().run());
    let service = TriggersService::new(
        store,
        reconciler,
        subscriber.clone(),
        peers,
        (config.nats.clone(), sealing),
    );
    Served::new(TriggersServer::new(service))
        .with_background([subscribing, reconciling])
        .with_handle(subscriber)
}
