//! What the list handlers share: reading the page and the `order_by` a query asks for,
//! starting the gRPC list request that every service takes the same way (the caller, the
//! region, the page and its order), to which each handler adds its own filters, and answering
//! the page a service gives back as the APIs' list JSON, `{"<items>": [...], "total_count": n}`;
//! and gathering every page of a list where the gateway needs all of it (containers v1 merges
//! the lists of two services).

use crate::error::HttpError;
use crate::extract::{QueryParams, Scope};
use nuage_proto::applications::v1 as wire;
use nuage_proto::crons::v1 as crons;
use nuage_proto::logs::v1 as logs;
use nuage_proto::namespaces::v1 as namespaces;
use nuage_proto::tokens::v1 as tokens;
use nuage_proto::triggers::v1 as triggers;
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use std::future::Future;

/// The page of a list and the order it is sorted in, as a service's list request takes them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListQuery {
    pub page: u32,
    pub page_size: u32,
    /// The service's order value.
    pub order_by: i32,
}

impl QueryParams {
    /// Returns the service's value of the `order_by` asked for, one of `orders` (its API
    /// name and the service's value, the default first).
    pub fn order<E: Copy + Into<i32>>(&self, orders: &[(&str, E)]) -> Result<i32, HttpError> {
        let names: Vec<&str> = orders.iter().map(|(name, _)| *name).collect();
        let chosen = self.choice("order_by", &names)?;
        let position = names.iter().position(|name| *name == chosen).unwrap_or_default();
        Ok(orders[position].1.into())
    }

    /// Returns the page and order of a list, checking `order_by` (one of `orders`, as
    /// [`QueryParams::order`] reads it) first, then `page` and `page_size`.
    pub fn list<E: Copy + Into<i32>>(&self, orders: &[(&str, E)]) -> Result<ListQuery, HttpError> {
        let order_by = self.order(orders)?;
        let (page, page_size) = self.page()?;
        Ok(ListQuery {
            page,
            page_size,
            order_by,
        })
    }
}

/// Page size of the lists gathered whole.
const GATHER: u32 = 100;

/// A gRPC list request: the caller, the region and a [`ListQuery`], then filters of its own,
/// which start unset.
pub(crate) trait ListRequest: Default {
    /// Returns the request of `scope`'s caller in its region for the page `list`, unfiltered.
    fn of(scope: &Scope, list: ListQuery) -> Self;
}

/// Implements [`ListRequest`] for list requests, which all name these fields alike.
macro_rules! list_requests {
    ($($request:ty),* $(,)?) => {$(
        impl ListRequest for $request {
            fn of(scope: &Scope, list: ListQuery) -> Self {
                Self {
                    caller: Some(scope.caller.to_proto()),
                    region: scope.region.clone(),
                    page: list.page,
                    page_size: list.page_size,
                    order_by: list.order_by,
                    ..Self::default()
                }
            }
        }
    )*};
}

list_requests!(
    wire::ListApplicationsRequest,
    wire::ListDomainsRequest,
    crons::ListCronsRequest,
    namespaces::ListNamespacesRequest,
    tokens::ListTokensRequest,
    triggers::ListTriggersRequest,
);

impl Scope {
    /// Returns the list request of this request's caller and region for the page `list`; the
    /// caller adds the request's filters.
    pub(crate) fn list_request<R: ListRequest>(&self, list: ListQuery) -> R {
        R::of(self, list)
    }
}

/// A page of a list as the APIs answer it: `{"<items>": [...], "total_count": n}`, or
/// `{"total_count": n, "<items>": [...]}` where the spec orders it so (functions v1beta1's
/// `ListTriggersResponse`).
pub(crate) struct ListJson<T> {
    key: &'static str,
    items: Vec<T>,
    total_count: u64,
    count_first: bool,
}

impl<T> ListJson<T> {
    /// Returns the page `items` under `key`, of `total_count` matches in all.
    pub fn new(key: &'static str, items: Vec<T>, total_count: u64) -> Self {
        Self {
            key,
            items,
            total_count,
            count_first: false,
        }
    }

    /// Returns the empty list under `key`: what a filter on another tenant finds.
    pub fn empty(key: &'static str) -> Self {
        Self::new(key, Vec::new(), 0)
    }

    /// Returns this page with `total_count` before the items.
    pub fn count_first(self) -> Self {
        Self {
            count_first: true,
            ..self
        }
    }
}

impl<T: Serialize> Serialize for ListJson<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut list = serializer.serialize_struct("List", 2)?;
        if self.count_first {
            list.serialize_field("total_count", &self.total_count)?;
        }
        list.serialize_field(self.key, &self.items)?;
        if !self.count_first {
            list.serialize_field("total_count", &self.total_count)?;
        }
        list.end()
    }
}

/// A gRPC list response: a page of items and how many match in all.
pub(crate) trait ListResponse {
    /// What the list holds.
    type Item;

    /// Returns the page's items and the count of every match.
    fn into_page(self) -> (Vec<Self::Item>, u64);
}

/// Implements [`ListResponse`] for list responses, each naming its items after what they are.
macro_rules! list_responses {
    ($($response:ty => $items:ident: $item:ty),* $(,)?) => {$(
        impl ListResponse for $response {
            type Item = $item;

            fn into_page(self) -> (Vec<$item>, u64) {
                (self.$items, self.total_count)
            }
        }
    )*};
}

list_responses!(
    wire::ListApplicationsResponse => applications: wire::Application,
    wire::ListDeploymentsResponse => deployments: wire::Deployment,
    wire::ListDomainsResponse => domains: wire::Domain,
    crons::ListCronsResponse => crons: crons::Cron,
    logs::ListLogsResponse => logs: logs::LogEntry,
    namespaces::ListNamespacesResponse => namespaces: namespaces::Namespace,
    tokens::ListTokensResponse => tokens: tokens::Token,
    triggers::ListTriggersResponse => triggers: triggers::Trigger,
);

/// Returns the page a service answers to a list call (`call`, its request sent), each item
/// as `json` renders it, under `key`.
pub(crate) async fn listed<R: ListResponse, T>(
    key: &'static str,
    call: impl Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    json: impl FnMut(R::Item) -> T,
) -> Result<ListJson<T>, HttpError> {
    let (items, total_count) = call.await?.into_inner().into_page();
    Ok(ListJson::new(key, items.into_iter().map(json).collect(), total_count))
}

/// Returns every item of a list of the caller's, in the service's default order, asking for
/// one page after the other: `filtered` adds the list's filters to the caller's request of a
/// page, `call` sends it to the service through (a clone of) `client`.
pub(crate) async fn every_page<R: ListRequest, P: ListResponse, C: Clone, F>(
    scope: &Scope,
    filtered: impl Fn(R) -> R,
    client: C,
    call: impl Fn(C, tonic::Request<R>) -> F,
) -> Result<Vec<P::Item>, HttpError>
where
    F: Future<Output = Result<tonic::Response<P>, tonic::Status>>,
{
    let mut all = Vec::new();
    for page in 1.. {
        let list = ListQuery {
            page,
            page_size: GATHER,
            order_by: 0,
        };
        let request = scope.grpc(filtered(scope.list_request(list)));
        let (items, _) = call(client.clone(), request).await?.into_inner().into_page();
        let count = items.len();
        all.extend(items);
        if count < GATHER as usize {
            break;
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::ListJson;

    #[test]
    fn a_list_shows_its_items_then_its_count_unless_asked_for_the_count_first() {
        let page = ListJson::new("crons", vec![1, 2], 7);
        assert_eq!(
            serde_json::to_string(&page).unwrap(),
            r#"{"crons":[1,2],"total_count":7}"#
        );
        let page = ListJson::new("triggers", vec![3], 1).count_first();
        assert_eq!(
            serde_json::to_string(&page).unwrap(),
            r#"{"total_count":1,"triggers":[3]}"#
        );
        let empty: ListJson<u8> = ListJson::empty("namespaces");
        assert_eq!(
            serde_json::to_string(&empty).unwrap(),
            r#"{"namespaces":[],"total_count":0}"#
        );
    }
}
