//! Functions: a tenant's code in a runtime, inside a namespace.
//!
//! Owns the `functions` and `function_archives` tables and the source archives (and, with
//! containers, the `deployments` history through the applications layer). Serves
//! `nuage.functions.v1.Functions`: what functions share with containers goes through the
//! shared applications layer (`nuage-applications`: create, read, list, update, delete, routes,
//! roll-out, the reconciler that removes `deleting` functions); what only functions have is
//! here: runtimes, presigned upload and download URLs for source archives (in any S3 store),
//! deployments and the builds the builder reports.

mod archive_records;
mod archives;
mod config;
mod leftovers;
mod model;
mod runtimes;
mod service;

pub use archive_records::ArchiveRecords;
pub use archives::{ARCHIVE_CONTENT_TYPE, Archives, Presigned};
pub use config::FunctionsConfig;
pub use leftovers::FunctionLeftovers;
pub use model::{Function, FunctionKind};
pub use runtimes::{Runtimes, detect_runtimes};
pub use service::{FunctionApplications, FunctionsService};

use nuage_applications::{ApplicationsConfig, Peers};
use nuage_core::Database;
use nuage_core::served::Served;
use nuage_core::transport::Authed;
use nuage_proto::builder::v1::builder_client::BuilderClient;
use nuage_proto::functions::v1::functions_server::FunctionsServer;

/// Returns the functions service over `database` and `archives`, offering the runtimes whose
/// toolchain is installed, building through `builder`; its reconciler (deletions, roll-outs
/// whose process died), the check of custom domains, the search for builds that were never
/// queued and the move of endpoints made before suffixes existed run beside it.
pub fn serve(
    config: &FunctionsConfig,
    applications: ApplicationsConfig,
    database: Database,
    archives: Archives,
    peers: Peers,
    builder: BuilderClient<Authed>,
    sealing: [u8; 32],
) -> Served<FunctionsServer<FunctionsService>> {
    let archive_records = ArchiveRecords::new(database.clone());
    let leftovers = FunctionLeftovers {
        builder: builder.clone(),
        archives: archives.clone(),
        archive_records: archive_records.clone(),
    };
    let late_uploads = leftovers.clone();
    let functions = FunctionApplications::new(
        database,
        peers,
        applications,
        leftovers,
        (config.reconcile_interval_seconds, 1),
        sealing,
    );
    let runtimes = detect_runtimes(config.wasm);
    tracing::info!(runtimes = ?runtimes.names(), "runtimes with an installed toolchain");
    let reconciler = functions.reconciler();
    let domains = functions.domains().clone();
    let moves = functions.clone().move_old_endpoints();
    let service = FunctionsService::new(functions, builder, runtimes, archives, archive_records);
    let every = std::time::Duration::from_secs(config.reconcile_interval_seconds.max(1));
    let background = [
        tokio::spawn(reconciler.run()),
        tokio::spawn(domains.run()),
        tokio::spawn(moves),
        tokio::spawn(service.clone().requeue_lost_builds(every)),
        tokio::spawn(late_uploads.sweep_late_uploads(every)),
    ];
    Served::new(FunctionsServer::new(service)).with_background(background)
}
