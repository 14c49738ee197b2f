//! What the list handlers share: reading the page and the `order_by` a query asks for, and
//! starting the gRPC list request that every service takes the same way (the caller, the
//! region, the page and its order), to which each handler adds its own filters.

use crate::error::HttpError;
use crate::extract::{QueryParams, Scope};
use nuage_proto::applications::v1 as wire;
use nuage_proto::crons::v1 as crons;
use nuage_proto::namespaces::v1 as namespaces;
use nuage_proto::tokens::v1 as tokens;
use nuage_proto::triggers::v1 as triggers;

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
