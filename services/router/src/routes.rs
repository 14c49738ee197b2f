//! The route table: which function or container answers at which address, and which at which
//! custom domain. Kept in memory and refreshed from the functions and containers services, so a
//! request costs no query.
//!
//! Custom domains come with each reload (`ListRoutes` lists the ready ones), not with the stream
//! of route changes: a domain becomes ready in whichever replica checked it, and a reload is
//! what every router sees alike. A request for a host the table does not know reloads it (as an
//! unknown key does), so a domain answers as soon as it is ready; a deleted one stops answering
//! at the next reload, within `routes_refresh_ms`.

use crate::control::Control;
use nuage_core::transport::Authed;
use nuage_proto::common::v1::{
    ApplicationStatus, DomainRoute, ListRoutesRequest, Privacy, Route as RouteProto, RouteChange,
};
use nuage_proto::containers::v1::containers_client::ContainersClient;
use nuage_proto::functions::v1::functions_client::FunctionsClient;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// What the router knows of one application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The function's or container's id.
    pub application_id: String,
    /// Its namespace (whose key signs its tokens).
    pub namespace_id: String,
    /// What its endpoint is reached by: `<namespace without hyphens><suffix>-<name>`.
    pub key: String,
    /// Where it is in its life.
    pub status: ApplicationStatus,
    /// Why it is in `error`.
    pub error_message: String,
    /// Whether callers need a token.
    pub private: bool,
    /// The one timeout of a request.
    pub timeout: Duration,
    /// Instances kept warm.
    pub min_scale: u32,
    /// Most instances.
    pub max_scale: u32,
    /// Requests one instance takes at once.
    pub concurrency: u32,
    /// A WebAssembly function: the router runs it itself.
    pub wasm: bool,
}

/// Returns what an endpoint is reached by: its last path segment (`http://host/label`) or,
/// for host-based endpoints (`https://label.domain`), its first host label.
pub fn key_of(endpoint: &str) -> Option<String> {
    nuage_applications::label_of(endpoint).map(str::to_owned)
}

fn route(proto: RouteProto) -> Option<Route> {
    Some(Route {
        key: key_of(&proto.endpoint)?,
        status: proto.status(),
        private: proto.privacy() == Privacy::Private,
        application_id: proto.application_id,
        namespace_id: proto.namespace_id,
        error_message: proto.error_message,
        timeout: Duration::from_millis(proto.timeout_ms.max(1)),
        min_scale: proto.min_scale,
        max_scale: proto.max_scale.max(1),
        concurrency: proto.concurrency.max(1),
        wasm: proto.wasm,
    })
}

/// Puts `route` in `table` under its key, unless the key is another application's that is
/// live while this one is being deleted: a function deleted with its namespace keeps its row
/// (and its route, `deleting`) for a while after a namespace of the same name, and a function of
/// the same name in it, were made again.
fn insert(table: &mut HashMap<String, Arc<Route>>, route: Route) {
    if let Some(present) = table.get(&route.key)
        && present.application_id != route.application_id
        && present.status != ApplicationStatus::Deleting
        && route.status == ApplicationStatus::Deleting
    {
        return;
    }
    table.insert(route.key.clone(), Arc::new(route));
}

/// A ready custom domain: the key of its application's route, and that application.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Host {
    key: String,
    application_id: String,
}

/// Routes by key, custom domains by host name, and the changes streamed while a reload lists
/// them.
#[derive(Debug, Default)]
struct Table {
    routes: HashMap<String, Arc<Route>>,
    hosts: HashMap<String, Host>,
    /// `Some` while a reload runs: the changes it must not lose to its older listing.
    streamed: Option<Vec<Route>>,
}

impl Table {
    /// Applies a streamed change.
    fn apply(&mut self, route: Route) {
        if let Some(streamed) = &mut self.streamed {
            streamed.push(route.clone());
        }
        insert(&mut self.routes, route);
    }

    /// Replaces the routes with `listed` and the custom domains with `domains` (of listed
    /// applications), then replays what was streamed since the listing started (a change may
    /// come in while it is on its way, and is newer than it).
    fn replace(&mut self, listed: Vec<Route>, domains: Vec<DomainRoute>) {
        let keys: HashMap<&str, &str> = listed
            .iter()
            .map(|route| (route.application_id.as_str(), route.key.as_str()))
            .collect();
        self.hosts = domains
            .into_iter()
            .filter_map(|domain| {
                let key = keys.get(domain.application_id.as_str())?.to_string();
                let host = Host {
                    key,
                    application_id: domain.application_id,
                };
                Some((domain.hostname, host))
            })
            .collect();
        let mut routes = HashMap::new();
        for route in listed {
            insert(&mut routes, route);
        }
        for route in self.streamed.take().unwrap_or_default() {
            insert(&mut routes, route);
        }
        self.routes = routes;
    }

    /// Returns the route of the application whose ready custom domain is `hostname`.
    fn by_host(&self, hostname: &str) -> Option<Arc<Route>> {
        let host = self.hosts.get(hostname)?;
        self.routes
            .get(&host.key)
            .filter(|route| route.application_id == host.application_id)
            .cloned()
    }
}

/// The route table.
#[derive(Debug, Clone)]
pub struct Routes {
    table: Arc<RwLock<Table>>,
    functions: FunctionsClient<Authed>,
    containers: ContainersClient<Authed>,
    refreshing: Arc<tokio::sync::Mutex<Instant>>,
    /// Where reloads run (a request that misses asks for one from a worker).
    control: Control,
}

impl Routes {
    /// Returns an empty table filled from `functions` and `containers`, called on `control`.
    pub fn new(functions: FunctionsClient<Authed>, containers: ContainersClient<Authed>, control: Control) -> Self {
        Self {
            table: Arc::default(),
            functions,
            containers,
            refreshing: Arc::new(tokio::sync::Mutex::new(Instant::now() - Duration::from_secs(60))),
            control,
        }
    }

    /// Returns the route reached by `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Route>> {
        self.table.read().expect("routes lock").routes.get(key).cloned()
    }

    /// Returns the route of the application whose ready custom domain is `hostname`
    /// (lower-case, without a port).
    pub fn by_host(&self, hostname: &str) -> Option<Arc<Route>> {
        self.table.read().expect("routes lock").by_host(hostname)
    }

    /// Returns the route of an application by its id (a scan: for the internal path, which
    /// crons use, not for every request).
    pub fn by_id(&self, application_id: &str) -> Option<Arc<Route>> {
        self.table
            .read()
            .expect("routes lock")
            .routes
            .values()
            .find(|route| route.application_id == application_id)
            .cloned()
    }

    /// Returns every route.
    pub fn all(&self) -> Vec<Arc<Route>> {
        self.table
            .read()
            .expect("routes lock")
            .routes
            .values()
            .cloned()
            .collect()
    }

    /// Reloads the table now. Only through [`Routes::refresh_soon`], which runs one reload at a
    /// time: the journal of streamed changes belongs to that one reload.
    async fn refresh(&self) -> Result<(), tonic::Status> {
        self.table.write().expect("routes lock").streamed = Some(Vec::new());
        let listed = self.list().await;
        let mut table = self.table.write().expect("routes lock");
        match listed {
            Ok((listed, domains)) => table.replace(listed, domains),
            Err(status) => {
                table.streamed = None;
                return Err(status);
            }
        }
        Ok(())
    }

    /// Lists every route and ready custom domain of the functions and containers services.
    async fn list(&self) -> Result<(Vec<Route>, Vec<DomainRoute>), tonic::Status> {
        let functions = self
            .functions
            .clone()
            .list_routes(ListRoutesRequest {})
            .await?
            .into_inner();
        let containers = self
            .containers
            .clone()
            .list_routes(ListRoutesRequest {})
            .await?
            .into_inner();
        let routes = functions
            .routes
            .into_iter()
            .chain(containers.routes)
            .filter_map(route)
            .collect();
        Ok((
            routes,
            functions.domains.into_iter().chain(containers.domains).collect(),
        ))
    }

    /// Reloads the table unless a reload started after this call did (callers that arrive
    /// during a reload share the next one); one reload at a time.
    pub async fn refresh_soon(&self) {
        let asked = Instant::now();
        let routes = self.clone();
        self.control
            .run(async move {
                let mut last_started = routes.refreshing.lock().await;
                if *last_started >= asked {
                    return;
                }
                *last_started = Instant::now();
                if let Err(status) = routes.refresh().await {
                    tracing::warn!(%status, "cannot load the route table");
                }
            })
            .await;
    }

    /// Applies changes as the functions and containers services stream them, forever (a
    /// privacy switch reaches the table before the next request does).
    pub async fn follow(self) {
        let functions = {
            let routes = self.clone();
            async move {
                loop {
                    if let Ok(stream) = routes.functions.clone().watch_routes(ListRoutesRequest {}).await {
                        routes.apply_all(stream.into_inner()).await;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let containers = async move {
            loop {
                if let Ok(stream) = self.containers.clone().watch_routes(ListRoutesRequest {}).await {
                    self.apply_all(stream.into_inner()).await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::join!(functions, containers);
    }

    async fn apply_all(&self, mut stream: tonic::Streaming<RouteChange>) {
        // Changes missed while the stream was down are in the next full reload.
        self.refresh_soon().await;
        while let Ok(Some(change)) = stream.message().await {
            if let Some(route) = change.route.and_then(route) {
                self.table.write().expect("routes lock").apply(route);
            }
        }
    }

    /// Reloads the table every `interval`, forever.
    pub async fn run(self, interval: Duration) {
        loop {
            self.refresh_soon().await;
            tokio::time::sleep(interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Route, Table, insert, key_of};
    use nuage_proto::common::v1::{ApplicationStatus, DomainRoute};
    use std::collections::HashMap;
    use std::time::Duration;

    fn route(application_id: &str, status: ApplicationStatus) -> Route {
        Route {
            application_id: application_id.to_owned(),
            namespace_id: String::new(),
            key: "ns-f".to_owned(),
            status,
            error_message: String::new(),
            private: false,
            timeout: Duration::from_secs(1),
            min_scale: 0,
            max_scale: 1,
            concurrency: 1,
            wasm: false,
        }
    }

    #[test]
    fn a_live_application_keeps_its_key_from_a_deleted_one_of_the_same_name() {
        let mut table = HashMap::new();
        // Listed in either order, the live one answers.
        insert(&mut table, route("new", ApplicationStatus::Ready));
        insert(&mut table, route("old", ApplicationStatus::Deleting));
        assert_eq!(table["ns-f"].application_id, "new");
        let mut table = HashMap::new();
        insert(&mut table, route("old", ApplicationStatus::Deleting));
        insert(&mut table, route("new", ApplicationStatus::Ready));
        assert_eq!(table["ns-f"].application_id, "new");
        // An application's own changes always apply, deletion included.
        insert(&mut table, route("new", ApplicationStatus::Deleting));
        assert_eq!(table["ns-f"].status, ApplicationStatus::Deleting);
    }

    #[test]
    fn a_reload_keeps_the_changes_streamed_while_it_listed() {
        let mut table = Table::default();
        table.apply(route("old", ApplicationStatus::Deleting));
        // A reload starts listing; the new application turns ready meanwhile.
        table.streamed = Some(Vec::new());
        table.apply(route("new", ApplicationStatus::Ready));
        // The listing, older, has the deleted one only.
        table.replace(vec![route("old", ApplicationStatus::Deleting)], Vec::new());
        assert_eq!(table.routes["ns-f"].application_id, "new");
        assert_eq!(table.routes["ns-f"].status, ApplicationStatus::Ready);
        // Once it ended, a reload is the truth again.
        table.replace(Vec::new(), Vec::new());
        assert!(table.routes.is_empty(), "{:?}", table.routes);
    }

    #[test]
    fn a_custom_domain_leads_to_its_application_only() {
        let domain = |hostname: &str, application_id: &str| DomainRoute {
            hostname: hostname.to_owned(),
            application_id: application_id.to_owned(),
        };
        let mut table = Table::default();
        table.replace(
            vec![route("app", ApplicationStatus::Ready)],
            vec![domain("api.example.com", "app"), domain("gone.example.com", "missing")],
        );
        assert_eq!(table.by_host("api.example.com").unwrap().application_id, "app");
        // A domain whose application is not listed leads nowhere.
        assert!(table.by_host("gone.example.com").is_none());
        assert!(table.by_host("other.example.com").is_none());
        // Another application took the key (the first was deleted and made again under its
        // name): the domain does not lead to it.
        table.apply(route("new", ApplicationStatus::Ready));
        assert!(table.by_host("api.example.com").is_none());
        // A reload without the domain (deleted) forgets it.
        table.replace(vec![route("app", ApplicationStatus::Ready)], Vec::new());
        assert!(table.by_host("api.example.com").is_none());
    }

    #[test]
    fn keys_come_from_the_path_or_the_first_host_label() {
        assert_eq!(key_of("http://127.0.0.1:8081/ns-f").as_deref(), Some("ns-f"));
        assert_eq!(key_of("http://127.0.0.1:8081/base/ns-f/").as_deref(), Some("ns-f"));
        assert_eq!(key_of("https://ns-f.functions.example.com").as_deref(), Some("ns-f"));
        assert_eq!(key_of("https://ns-f.functions.example.com/").as_deref(), Some("ns-f"));
    }
}
