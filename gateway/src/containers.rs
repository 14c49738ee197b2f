//! Containers: the shared application handlers over the containers service (`/containers`,
//! `/namespaces/{id}/containers`). A container has nothing the handlers of functions lack but
//! its image, which the shared handlers pass on; and, as functions, its deployment history.

use crate::GatewayState;
use crate::owner::Owner;
use axum::Router;
use nuage_core::transport::Authed;
use nuage_proto::containers::v1::containers_client::ContainersClient;

/// The containers service, as the application handlers call it.
pub(crate) struct Containers;

impl Owner for Containers {
    const NOUN: &'static str = "container";
    const PLURAL: &'static str = "containers";
    const ID_PARAM: &'static str = "container_id";
    const FUNCTION: bool = false;
    type Client = ContainersClient<Authed>;

    fn client(state: &GatewayState) -> Self::Client {
        state.clients().containers.clone()
    }

    crate::owner::forward_to_client! {
        create: create_container,
        get: get_container,
        list: list_containers,
        update: update_container,
        delete: delete_container,
        deploy: deploy_container,
        list_deployments: list_container_deployments,
        rollback: rollback_container,
    }
}

pub(crate) fn routes<V: crate::version::Version>() -> Router<GatewayState> {
    crate::applications::routes::<Containers, V>().merge(crate::deployments::routes::<Containers, V>())
}
