//! Proto <-> model for namespaces. Prost types stop here.

use crate::model::{Namespace, NamespaceOrder, NamespaceStatus};
use nuage_proto::namespaces::v1 as pb;

/// Returns the wire form of a namespace.
pub(crate) fn namespace_to_proto(namespace: Namespace) -> pb::Namespace {
    pb::Namespace {
        id: namespace.id.to_string(),
        name: namespace.name.as_str().to_owned(),
        environment_variables: namespace
            .environment_variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        organization_id: namespace.organization_id.to_string(),
        project_id: namespace.project_id.to_string(),
        status: status_to_proto(namespace.status) as i32,
        registry_namespace_id: namespace.registry_namespace_id,
        registry_endpoint: namespace.registry_endpoint,
        error_message: namespace.error_message,
        description: namespace.description.as_str().to_owned(),
        region: namespace.region,
        created_at: namespace.created_at,
        updated_at: namespace.updated_at,
        endpoint_suffix: namespace.endpoint_suffix,
        secret_environment_variables: namespace.secrets.to_proto(&namespace.id.to_string()),
        tags: namespace.tags.into_values(),
    }
}

fn status_to_proto(status: NamespaceStatus) -> pb::NamespaceStatus {
    match status {
        NamespaceStatus::Pending => pb::NamespaceStatus::Pending,
        NamespaceStatus::Ready => pb::NamespaceStatus::Ready,
        NamespaceStatus::Deleting => pb::NamespaceStatus::Deleting,
        NamespaceStatus::Error => pb::NamespaceStatus::Error,
    }
}

/// Returns the sort order a request asks for; unknown values fall back to the default.
pub(crate) fn order_from_proto(order: i32) -> NamespaceOrder {
    match pb::NamespaceOrder::try_from(order).unwrap_or(pb::NamespaceOrder::CreatedAtAsc) {
        pb::NamespaceOrder::CreatedAtAsc => NamespaceOrder::CreatedAtAsc,
        pb::NamespaceOrder::CreatedAtDesc => NamespaceOrder::CreatedAtDesc,
        pb::NamespaceOrder::NameAsc => NamespaceOrder::NameAsc,
        pb::NamespaceOrder::NameDesc => NamespaceOrder::NameDesc,
    }
}
