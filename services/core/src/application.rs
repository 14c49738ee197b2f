//! Rules that functions and containers share: sizes, scale bounds, timeouts, names, privacy,
//! status, sort orders and endpoints. Both services apply them; neither owns them.

use crate::error::{ApiError, Reason};
use crate::transport::Authed;
use crate::validate;
use nuage_proto::common::v1 as pb;
use nuage_proto::namespaces::v1::namespaces_client::NamespacesClient;
use nuage_proto::namespaces::v1::{GetNamespaceRequest, Namespace, NamespaceStatus};
use nuage_proto::tokens::v1::KeyPairRequest;
use nuage_proto::tokens::v1::tokens_client::TokensClient;
use serde::{Deserialize, Serialize};

/// Memory sizes (MB) and the mvCPU each comes with.
pub const MEMORY_LIMITS: [(u32, u32); 7] = [
    (128, 70),
    (256, 140),
    (512, 280),
    (1024, 560),
    (2048, 1120),
    (3072, 1680),
    (4096, 2240),
];
/// Memory when none is asked for (MB).
pub const DEFAULT_MEMORY_LIMIT: u32 = 256;
/// Instances kept when idle, when none is asked for.
pub const DEFAULT_MIN_SCALE: u32 = 0;
/// Most instances, when none is asked for.
pub const DEFAULT_MAX_SCALE: u32 = 20;
/// Request timeout when none is asked for: 300 s.
pub const DEFAULT_TIMEOUT_MS: u64 = 300_000;
/// Shortest timeout: 1 s.
pub const MIN_TIMEOUT_MS: u64 = 1_000;
/// Longest timeout: 15 min.
pub const MAX_TIMEOUT_MS: u64 = 900_000;
/// Longest description.
pub const MAX_DESCRIPTION_LENGTH: usize = 255;
/// A host name label: an endpoint's `<namespace><suffix>-<application>` must fit in one.
pub const MAX_DNS_LABEL: usize = 63;
/// Length of the random part of a namespace's endpoints.
pub const ENDPOINT_SUFFIX_LENGTH: usize = 8;
/// What an endpoint suffix is made of: lowercase letters and digits, as on Scaleway.
const ENDPOINT_SUFFIX_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Where endpoints answer when nothing else says: the router's default listener.
pub const DEFAULT_ENDPOINT_BASE_URL: &str = "http://127.0.0.1:8081";

/// The `[applications]` section of `nuage.toml`: settings functions and containers share.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApplicationsConfig {
    /// Where function and container endpoints answer when no `domain` is set: each gets the
    /// path `/<label>` under it (see [`endpoint_label`]), which works without wildcard DNS.
    /// Default: the router's address (`http://<router.listen>`, the bound one when it runs in
    /// this process).
    pub endpoint_base_url: Option<String>,
    /// When set, endpoints are host-based, as Scaleway's: `<scheme>://<label>.<domain>`, with
    /// the scheme of `endpoint_base_url`.
    pub domain: Option<String>,
    /// The installation's cap on `max_scale`.
    pub max_scale_cap: u32,
    /// How long creating or deploying a function or container waits for a new namespace to
    /// become ready (ms). A namespace is `pending` for as long as its key pair takes to make
    /// (seconds, for 4096 bits), and clients that follow the documented quick start create a
    /// function right after the namespace.
    pub namespace_wait_ms: u64,
}

impl Default for ApplicationsConfig {
    fn default() -> Self {
        Self {
            endpoint_base_url: None,
            domain: None,
            max_scale_cap: 50,
            namespace_wait_ms: 30_000,
        }
    }
}

impl ApplicationsConfig {
    /// Returns the endpoint of application `name` in `namespace`, or an error while the
    /// namespace has no endpoint suffix yet (one made before suffixes existed, in the moments
    /// before the namespaces service gives it one): without it, two tenants' namespaces of the
    /// same name would share the endpoint.
    pub fn endpoint(&self, namespace: &Namespace, name: &str) -> Result<String, ApiError> {
        if namespace.endpoint_suffix.is_empty() {
            return Err(ApiError::unavailable(format!(
                "namespace `{}` has no endpoint yet; try again in a moment",
                namespace.name
            )));
        }
        Ok(self.endpoint_of(&endpoint_label(&namespace.name, &namespace.endpoint_suffix, name)))
    }

    /// Returns the endpoint whose path segment or first host label is `label`.
    fn endpoint_of(&self, label: &str) -> String {
        let base = self
            .endpoint_base_url
            .as_deref()
            .unwrap_or(DEFAULT_ENDPOINT_BASE_URL)
            .trim_end_matches('/');
        match self.domain.as_deref().filter(|domain| !domain.is_empty()) {
            Some(domain) => {
                let scheme = base.split_once("://").map_or("https", |(scheme, _)| scheme);
                format!("{scheme}://{label}.{}", domain.trim_matches('.'))
            }
            None => format!("{base}/{label}"),
        }
    }

    /// Returns `caller`'s namespace `namespace_id` once it is ready, so that `kind` ("functions",
    /// "containers") can be created or deployed in it. A `pending` or `creating` namespace is
    /// waited for, up to `namespace_wait_ms`; any other state is a transient-state error.
    pub async fn ready_namespace(
        &self,
        namespaces: &NamespacesClient<Authed>,
        caller: &crate::Caller,
        region: &str,
        namespace_id: &str,
        kind: &str,
    ) -> Result<Namespace, ApiError> {
        const POLL: std::time::Duration = std::time::Duration::from_millis(50);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(self.namespace_wait_ms);
        loop {
            let namespace = namespaces
                .clone()
                .get_namespace(GetNamespaceRequest {
                    caller: Some(caller.to_proto()),
                    region: region.to_owned(),
                    namespace_id: namespace_id.to_owned(),
                })
                .await
                .map_err(|status| ApiError::from_peer("namespaces", &status))?
                .into_inner()
                .namespace
                .ok_or_else(|| ApiError::internal(&"namespaces answered without a namespace"))?;
            let status = namespace.status();
            let becoming_ready = matches!(status, NamespaceStatus::Pending | NamespaceStatus::Creating);
            if status == NamespaceStatus::Ready {
                return Ok(namespace);
            }
            if !becoming_ready || tokio::time::Instant::now() >= deadline {
                let state = status
                    .as_str_name()
                    .trim_start_matches("NAMESPACE_STATUS_")
                    .to_lowercase();
                return Err(ApiError {
                    help_message: Some(format!(
                        "namespace `{}` is {state}; {kind} can be created and deployed once it is ready",
                        namespace.name
                    )),
                    ..ApiError::transient_state("namespace", namespace_id, &state)
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Returns, for each of `applications` whose endpoint is not its namespace's form (made
    /// before endpoint suffixes existed), its id, its endpoint now and the endpoint it gets.
    /// Fails while a namespace has no suffix yet, so that the caller tries again later.
    pub async fn moved_endpoints(
        &self,
        namespaces: &NamespacesClient<Authed>,
        applications: &[Addressed<'_>],
    ) -> Result<Vec<(uuid::Uuid, String, String)>, ApiError> {
        let mut known: std::collections::HashMap<uuid::Uuid, Option<Namespace>> = Default::default();
        let mut moved = Vec::new();
        for application in applications {
            let namespace = match known.entry(application.namespace_id) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(namespace_of(namespaces, application).await?)
                }
            };
            let Some(namespace) = namespace else {
                continue;
            };
            // Fails for a namespace without its suffix yet, whose label could pass for the old one.
            let endpoint = self.endpoint(namespace, application.name)?;
            // Only the label counts: an endpoint under another base URL or domain still answers.
            if label_of(application.endpoint) != label_of(&endpoint) {
                moved.push((application.id, application.endpoint.to_owned(), endpoint));
            }
        }
        Ok(moved)
    }

    /// Checks `0 <= min_scale <= max_scale <= max_scale_cap`.
    pub fn check_scale(&self, min_scale: u32, max_scale: u32) -> Result<(), ApiError> {
        if max_scale > self.max_scale_cap {
            return Err(ApiError::invalid_argument(
                "max_scale",
                Reason::Constraint,
                format!("must be at most {}, got {max_scale}", self.max_scale_cap),
            ));
        }
        if min_scale > max_scale {
            return Err(ApiError::invalid_argument(
                "min_scale",
                Reason::Constraint,
                format!("must not exceed max_scale ({max_scale}), got {min_scale}"),
            ));
        }
        Ok(())
    }
}

/// Returns a fresh endpoint suffix: [`ENDPOINT_SUFFIX_LENGTH`] random lowercase letters and
/// digits. Uniqueness is the database's to enforce; the caller retries on a collision.
pub fn new_endpoint_suffix() -> String {
    use rand::Rng;
    let mut random = rand::rng();
    (0..ENDPOINT_SUFFIX_LENGTH)
        .map(|_| char::from(ENDPOINT_SUFFIX_ALPHABET[random.random_range(0..ENDPOINT_SUFFIX_ALPHABET.len())]))
        .collect()
}

/// Returns what an application's endpoint is reached by, its path segment or first host label:
/// `<namespace name without hyphens><suffix>-<name>`, as on Scaleway. The part before the first
/// hyphen is the namespace's alone (its suffix is unique across tenants), so no two
/// namespaces share an endpoint whatever their names.
pub fn endpoint_label(namespace: &str, suffix: &str, name: &str) -> String {
    format!("{}{suffix}-{name}", namespace.replace('-', ""))
}

/// Returns what an endpoint is reached by: its last path segment (`http://host/label`) or, for
/// host-based endpoints (`https://label.domain`), its first host label.
pub fn label_of(endpoint: &str) -> Option<&str> {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = path.trim_matches('/');
    if path.is_empty() {
        host.split('.').next().filter(|label| !label.is_empty())
    } else {
        path.rsplit('/').next()
    }
}

/// Returns the namespace of `application`, or `None` once it is gone (and its route with it).
async fn namespace_of(
    namespaces: &NamespacesClient<Authed>,
    application: &Addressed<'_>,
) -> Result<Option<Namespace>, ApiError> {
    let owner = crate::Caller {
        organization_id: application.organization_id,
        project_id: application.project_id,
    };
    let request = GetNamespaceRequest {
        caller: Some(owner.to_proto()),
        region: application.region.to_owned(),
        namespace_id: application.namespace_id.to_string(),
    };
    match namespaces.clone().get_namespace(request).await {
        Ok(response) => Ok(response.into_inner().namespace),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
        Err(status) => Err(ApiError::from_peer("namespaces", &status)),
    }
}

/// A stored function or container, as far as its endpoint goes.
#[derive(Debug, Clone)]
pub struct Addressed<'a> {
    /// Its id.
    pub id: uuid::Uuid,
    /// Its tenant.
    pub organization_id: uuid::Uuid,
    /// Its tenant's project.
    pub project_id: uuid::Uuid,
    /// Its region.
    pub region: &'a str,
    /// Its namespace.
    pub namespace_id: uuid::Uuid,
    /// Its name.
    pub name: &'a str,
    /// Its endpoint as stored.
    pub endpoint: &'a str,
}

/// Returns the environment variables a request sets, checked; `None` when it leaves them.
pub fn environment(
    variables: Option<pb::Environment>,
) -> Result<Option<std::collections::BTreeMap<String, String>>, ApiError> {
    variables
        .map(|variables| {
            validate::environment_variables("environment_variables", &variables.values)?;
            Ok(variables.values.into_iter().collect())
        })
        .transpose()
}

/// Returns the mvCPU that comes with `memory_limit` MB, or an error if it is not a size offered.
pub fn cpu_limit(memory_limit: u32) -> Result<u32, ApiError> {
    MEMORY_LIMITS
        .iter()
        .find(|(memory, _)| *memory == memory_limit)
        .map(|(_, cpu)| *cpu)
        .ok_or_else(|| {
            let sizes: Vec<String> = MEMORY_LIMITS.iter().map(|(memory, _)| memory.to_string()).collect();
            ApiError::invalid_argument(
                "memory_limit",
                Reason::Constraint,
                format!("must be one of {} (MB), got {memory_limit}", sizes.join(", ")),
            )
        })
}

/// Checks a timeout in milliseconds: between 1 s and 15 min.
pub fn check_timeout(timeout_ms: u64) -> Result<(), ApiError> {
    if (MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(
            "timeout",
            Reason::Constraint,
            format!("must be between 1s and 900s (1000 to 900000 ms), got {timeout_ms} ms"),
        ))
    }
}

/// Checks an application name: a DNS label that still fits in one as its endpoint's label
/// (`<namespace name without hyphens><suffix>-<name>`).
pub fn check_name(name: &str, namespace: &str) -> Result<(), ApiError> {
    let prefix = namespace.replace('-', "").len() + ENDPOINT_SUFFIX_LENGTH + 1;
    let room = MAX_DNS_LABEL.saturating_sub(prefix);
    validate::dns_label("name", name, room).map_err(|mut error| {
        if name.len() > room
            && let Some(violation) = error.violations.first_mut()
        {
            violation.help_message = format!(
                "must be at most {room} characters in namespace `{namespace}`, so that its endpoint \
                 `{}` fits in a {MAX_DNS_LABEL}-character host name",
                endpoint_label(namespace, &"x".repeat(ENDPOINT_SUFFIX_LENGTH), name)
            );
        }
        error
    })
}

/// Checks a description: at most 255 characters.
pub fn check_description(description: &str) -> Result<(), ApiError> {
    let length = description.chars().count();
    if length > MAX_DESCRIPTION_LENGTH {
        return Err(ApiError::invalid_argument(
            "description",
            Reason::Constraint,
            format!("must be at most {MAX_DESCRIPTION_LENGTH} characters, {length} were given"),
        ));
    }
    Ok(())
}

/// Who may call an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Privacy {
    /// Anyone.
    #[default]
    Public,
    /// Callers with a token the namespace signed.
    Private,
}

impl Privacy {
    /// Returns the stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }

    /// Returns the privacy stored as `value`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "public" => Some(Self::Public),
            "private" => Some(Self::Private),
            _ => None,
        }
    }

    /// Returns the privacy a request sets, `None` when it leaves it unset.
    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::Privacy::try_from(value) {
            Ok(pb::Privacy::Public) => Some(Self::Public),
            Ok(pb::Privacy::Private) => Some(Self::Private),
            _ => None,
        }
    }

    /// Returns the wire form.
    pub fn to_proto(self) -> pb::Privacy {
        match self {
            Self::Public => pb::Privacy::Public,
            Self::Private => pb::Privacy::Private,
        }
    }
}

/// Where a function or container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplicationStatus {
    /// Stored, never deployed.
    Created,
    /// A deploy is under way.
    Pending,
    /// Deployed and answering.
    Ready,
    /// Being deleted with its crons.
    Deleting,
    /// The last deploy failed; `error_message` says why.
    Error,
}

impl ApplicationStatus {
    /// Returns the stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Deleting => "deleting",
            Self::Error => "error",
        }
    }

    /// Returns the status stored as `value`.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "created" => Self::Created,
            "pending" => Self::Pending,
            "ready" => Self::Ready,
            "deleting" => Self::Deleting,
            "error" => Self::Error,
            _ => return None,
        })
    }

    /// Returns the wire form.
    pub fn to_proto(self) -> pb::ApplicationStatus {
        match self {
            Self::Created => pb::ApplicationStatus::Created,
            Self::Pending => pb::ApplicationStatus::Pending,
            Self::Ready => pb::ApplicationStatus::Ready,
            Self::Deleting => pb::ApplicationStatus::Deleting,
            Self::Error => pb::ApplicationStatus::Error,
        }
    }
}

/// Returns the SQL `order by` clause of a function or container list; ids break ties so
/// pages never overlap.
pub fn order_sql(order: i32) -> &'static str {
    match pb::ApplicationOrder::try_from(order).unwrap_or(pb::ApplicationOrder::CreatedAtAsc) {
        pb::ApplicationOrder::CreatedAtAsc => "created_at asc, id asc",
        pb::ApplicationOrder::CreatedAtDesc => "created_at desc, id desc",
        pb::ApplicationOrder::NameAsc => "name asc, id asc",
        pb::ApplicationOrder::NameDesc => "name desc, id desc",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_come_with_their_cpu() {
        assert_eq!(cpu_limit(128).unwrap(), 70);
        assert_eq!(cpu_limit(4096).unwrap(), 2240);
        assert_eq!(cpu_limit(100).unwrap_err().violations[0].argument_name, "memory_limit");
    }

    #[test]
    fn scale_timeout_and_names() {
        let config = ApplicationsConfig::default();
        assert!(config.check_scale(0, 50).is_ok());
        assert!(config.check_scale(0, 51).is_err());
        assert_eq!(
            config.check_scale(3, 2).unwrap_err().violations[0].argument_name,
            "min_scale"
        );
        assert!(check_timeout(999).is_err() && check_timeout(1000).is_ok() && check_timeout(900_001).is_err());
        // 34 + 8 + 1 + 20 = 63; hyphens in the namespace name leave room.
        assert!(check_name(&"a".repeat(20), &"n".repeat(34)).is_ok());
        assert!(check_name(&"a".repeat(21), &"n".repeat(34)).is_err());
        assert!(check_name(&"a".repeat(21), &format!("{}-n", "n".repeat(32))).is_ok());
    }

    fn namespace(name: &str, suffix: &str) -> Namespace {
        Namespace {
            name: name.to_owned(),
            endpoint_suffix: suffix.to_owned(),
            ..Namespace::default()
        }
    }

    #[test]
    fn endpoints_carry_the_namespace_suffix_and_are_path_based_unless_a_domain_is_set() {
        let mut config = ApplicationsConfig::default();
        let shop = namespace("my-shop", "k3x9q2ab");
        assert_eq!(
            config.endpoint(&shop, "hello").unwrap(),
            "http://127.0.0.1:8081/myshopk3x9q2ab-hello"
        );
        config.domain = Some("functions.example.com".to_owned());
        config.endpoint_base_url = Some("https://x".to_owned());
        assert_eq!(
            config.endpoint(&shop, "hello-world").unwrap(),
            "https://myshopk3x9q2ab-hello-world.functions.example.com"
        );
        // A namespace without its suffix yet gets no endpoint rather than a shared one.
        let error = config.endpoint(&namespace("shop", ""), "hello").unwrap_err();
        assert_eq!(error.code, crate::ErrorCode::Unavailable);
    }

    #[test]
    fn endpoint_suffixes_are_eight_random_lowercase_letters_and_digits() {
        let suffixes: std::collections::HashSet<String> = (0..1000).map(|_| new_endpoint_suffix()).collect();
        assert_eq!(suffixes.len(), 1000, "suffixes repeat");
        for suffix in &suffixes {
            assert_eq!(suffix.len(), ENDPOINT_SUFFIX_LENGTH);
            assert!(
                suffix.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{suffix}"
            );
        }
        // Every label is a valid DNS label, and its namespace part has no hyphen.
        let label = endpoint_label("a-b-c", "0a1b2c3d", "fn-1");
        assert_eq!(label, "abc0a1b2c3d-fn-1");
        assert!(validate::dns_label("label", &label, MAX_DNS_LABEL).is_ok());
    }
}

/// A function or container about to run, as its environment is made from.
#[derive(Debug, Clone)]
pub struct Runnable<'a> {
    /// Its tenant.
    pub organization_id: uuid::Uuid,
    /// Its tenant's project.
    pub project_id: uuid::Uuid,
    /// Its region.
    pub region: &'a str,
    /// Its namespace.
    pub namespace_id: uuid::Uuid,
    /// Its id.
    pub id: uuid::Uuid,
    /// Its name.
    pub name: &'a str,
    /// Its memory (MB).
    pub memory_limit: u32,
    /// Who may call it.
    pub privacy: Privacy,
    /// Its own variables.
    pub variables: &'a std::collections::BTreeMap<String, String>,
}

/// Returns the environment `application` runs with as version `version`: its namespace's
/// variables, overridden by its own, overridden by the platform's `SCW_*`.
pub async fn runtime_environment(
    namespaces: &NamespacesClient<Authed>,
    tokens: &TokensClient<Authed>,
    application: &Runnable<'_>,
    version: &str,
) -> Result<std::collections::HashMap<String, String>, String> {
    let owner = crate::Caller {
        organization_id: application.organization_id,
        project_id: application.project_id,
    };
    let namespace = namespaces
        .clone()
        .get_namespace(GetNamespaceRequest {
            caller: Some(owner.to_proto()),
            region: application.region.to_owned(),
            namespace_id: application.namespace_id.to_string(),
        })
        .await
        .map_err(|status| format!("its namespace could not be read: {}", status.message()))?
        .into_inner();
    let mut environment: std::collections::HashMap<String, String> = namespace
        .namespace
        .map(|namespace| namespace.environment_variables)
        .unwrap_or_default();
    environment.extend(application.variables.clone());
    // The namespace's public key, so that code that checks tokens itself keeps working.
    let public_key = tokens
        .clone()
        .get_public_key(KeyPairRequest {
            namespace_id: application.namespace_id.to_string(),
        })
        .await
        .map_err(|status| format!("its namespace's key could not be read: {}", status.message()))?
        .into_inner()
        .pem;
    environment.extend(platform_environment(&Platform {
        public: application.privacy == Privacy::Public,
        public_key: &public_key,
        namespace_id: application.namespace_id,
        application_id: application.id,
        name: application.name,
        memory_limit: application.memory_limit,
        version,
    }));
    Ok(environment)
}

/// What the platform tells an application about itself.
#[derive(Debug, Clone)]
pub struct Platform<'a> {
    /// Whether anyone may call it.
    pub public: bool,
    /// Its namespace's public key (PKCS#1 PEM), to check tokens itself.
    pub public_key: &'a str,
    /// Its namespace.
    pub namespace_id: uuid::Uuid,
    /// Its id.
    pub application_id: uuid::Uuid,
    /// Its name.
    pub name: &'a str,
    /// Its memory (MB).
    pub memory_limit: u32,
    /// The deployment running.
    pub version: &'a str,
}

/// Returns the `SCW_*` variables an application receives, as Scaleway sets them; they override
/// the namespace's and the application's own (`PORT` is the runner's).
pub fn platform_environment(platform: &Platform<'_>) -> Vec<(String, String)> {
    [
        ("SCW_PUBLIC", platform.public.to_string()),
        ("SCW_PUBLIC_KEY", platform.public_key.to_owned()),
        ("SCW_NAMESPACE_ID", platform.namespace_id.to_string()),
        ("SCW_APPLICATION_ID", platform.application_id.to_string()),
        ("SCW_APPLICATION_NAME", platform.name.to_owned()),
        ("SCW_APPLICATION_MEMORY", platform.memory_limit.to_string()),
        ("SCW_APPLICATION_VERSION", platform.version.to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// Route changes as the functions and containers services stream them to routers.
pub type RouteStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::RouteChange, tonic::Status>> + Send>>;

/// Streams what `changes` carries from now on (a router that lags reloads its table anyway).
pub fn route_stream(changes: &tokio::sync::broadcast::Sender<pb::Route>) -> RouteStream {
    use tokio_stream::StreamExt;
    let stream = tokio_stream::wrappers::BroadcastStream::new(changes.subscribe())
        .filter_map(|route| route.ok().map(|route| Ok(pb::RouteChange { route: Some(route) })));
    Box::pin(stream)
}
