//! gRPC clients of the services the gateway calls.

use nuage_core::internal::InternalAuth;
use nuage_core::transport::{Authed, Transport};
use nuage_proto::containers::v1::containers_client::ContainersClient;
use nuage_proto::containers::v1::containers_server;
use nuage_proto::crons::v1::crons_client::CronsClient;
use nuage_proto::crons::v1::crons_server;
use nuage_proto::functions::v1::functions_client::FunctionsClient;
use nuage_proto::functions::v1::functions_server;
use nuage_proto::iam::v1::iam_client::IamClient;
use nuage_proto::iam::v1::iam_server;
use nuage_proto::logs::v1::logs_client::LogsClient;
use nuage_proto::logs::v1::logs_server;
use nuage_proto::namespaces::v1::namespaces_client::NamespacesClient;
use nuage_proto::namespaces::v1::namespaces_server;
use nuage_proto::tokens::v1::tokens_client::TokensClient;
use nuage_proto::tokens::v1::tokens_server;
use nuage_proto::triggers::v1::triggers_client::TriggersClient;
use nuage_proto::triggers::v1::triggers_server;
use tonic_health::pb::health_client::HealthClient;

/// One client per service; cheap to clone.
#[derive(Clone, Debug)]
pub struct ServiceClients {
    /// iam.
    pub iam: IamClient<Authed>,
    /// namespaces.
    pub namespaces: NamespacesClient<Authed>,
    /// functions.
    pub functions: FunctionsClient<Authed>,
    /// containers.
    pub containers: ContainersClient<Authed>,
    /// crons.
    pub crons: CronsClient<Authed>,
    /// triggers (served by the crons role).
    pub triggers: TriggersClient<Authed>,
    /// tokens.
    pub tokens: TokensClient<Authed>,
    /// logs.
    pub logs: LogsClient<Authed>,
    /// The health endpoints of each, with the gRPC service name to ask about.
    pub health: Vec<(String, HealthClient<Authed>)>,
}

/// How the gateway reaches each service.
#[derive(Clone, Debug)]
pub struct ServiceTransports {
    /// iam.
    pub iam: Transport,
    /// namespaces.
    pub namespaces: Transport,
    /// functions.
    pub functions: Transport,
    /// containers.
    pub containers: Transport,
    /// crons, and triggers, which the crons role serves too.
    pub crons: Transport,
    /// tokens.
    pub tokens: Transport,
    /// logs.
    pub logs: Transport,
}

impl ServiceClients {
    /// Returns clients of every service, reached through `transports`.
    pub fn new(transports: ServiceTransports, auth: InternalAuth) -> Self {
        let authed = |transport: &Transport| nuage_core::transport::authed(transport.clone(), auth.clone());
        let health = |name: &str, transport: &Transport| (name.to_owned(), HealthClient::new(authed(transport)));
        Self {
            iam: IamClient::new(authed(&transports.iam)),
            namespaces: NamespacesClient::new(authed(&transports.namespaces)),
            functions: FunctionsClient::new(authed(&transports.functions)),
            containers: ContainersClient::new(authed(&transports.containers)),
            crons: CronsClient::new(authed(&transports.crons)),
            triggers: TriggersClient::new(authed(&transports.crons)),
            tokens: TokensClient::new(authed(&transports.tokens)),
            // A page of 100 lines of 64 KiB is over gRPC's default 4 MiB.
            logs: LogsClient::new(authed(&transports.logs)).max_decoding_message_size(16 * 1024 * 1024),
            health: vec![
                health(iam_server::SERVICE_NAME, &transports.iam),
                health(namespaces_server::SERVICE_NAME, &transports.namespaces),
                health(functions_server::SERVICE_NAME, &transports.functions),
                health(containers_server::SERVICE_NAME, &transports.containers),
                health(crons_server::SERVICE_NAME, &transports.crons),
                health(triggers_server::SERVICE_NAME, &transports.crons),
                health(tokens_server::SERVICE_NAME, &transports.tokens),
                health(logs_server::SERVICE_NAME, &transports.logs),
            ],
        }
    }
}
