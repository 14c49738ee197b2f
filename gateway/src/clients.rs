//! gRPC clients of the services the gateway calls.

use nuage_core::internal::InternalAuth;
use nuage_proto::iam::v1::iam_client::IamClient;
use nuage_proto::namespaces::v1::namespaces_client::NamespacesClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;

/// A channel whose calls carry the internal credential.
pub(crate) type Authed = InterceptedService<Channel, InternalAuth>;

/// One client per service; cheap to clone (channels multiplex one connection).
#[derive(Clone, Debug)]
pub struct ServiceClients {
    /// iam.
    pub iam: IamClient<Authed>,
    /// namespaces.
    pub namespaces: NamespacesClient<Authed>,
    /// The health endpoints of each, with the gRPC service name to ask about.
    pub health: Vec<(String, HealthClient<Channel>)>,
}

impl ServiceClients {
    /// Returns clients that dial `iam` and `namespaces` (URLs such as `http://127.0.0.1:9090`)
    /// lazily, so a gateway can start before the services it calls.
    pub fn connect_lazy(iam: &str, namespaces: &str, auth: InternalAuth) -> Result<Self, tonic::transport::Error> {
        let iam_channel = Endpoint::from_shared(iam.to_owned())?.connect_lazy();
        let namespaces_channel = Endpoint::from_shared(namespaces.to_owned())?.connect_lazy();
        Ok(Self {
            iam: IamClient::with_interceptor(iam_channel.clone(), auth.clone()),
            namespaces: NamespacesClient::with_interceptor(namespaces_channel.clone(), auth),
            health: vec![
                (
                    nuage_proto::iam::v1::iam_server::SERVICE_NAME.to_owned(),
                    HealthClient::new(iam_channel),
                ),
                (
                    nuage_proto::namespaces::v1::namespaces_server::SERVICE_NAME.to_owned(),
                    HealthClient::new(namespaces_channel),
                ),
            ],
        })
    }
}
