//! What functions and containers are made of: an [`Application`] of a [`Kind`], its status
//! and privacy, and the rules every value obeys (sizes, scale bounds, timeouts, names,
//! descriptions, endpoints), so that both services apply the same ones.

use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_core::validate;
use nuage_proto::applications::v1 as wire;
use nuage_proto::common::v1 as pb;
use nuage_proto::runner::v1 as runner;
use std::collections::BTreeMap;
use uuid::Uuid;

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
/// A host name label: an endpoint's `<namespace><suffix>-<application>` must fit in one.
pub const MAX_DNS_LABEL: usize = 63;
/// Length of the random part of a namespace's endpoints.
pub const ENDPOINT_SUFFIX_LENGTH: usize = 8;
/// What an endpoint suffix is made of: lowercase letters and digits, as on Scaleway.
const ENDPOINT_SUFFIX_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// What makes a function a function and a container a container: the few fields of its own,
/// stored as text columns of its table, and the names it goes by.
pub trait Kind: Clone + std::fmt::Debug + PartialEq + Eq + Send + Sync + 'static {
    /// Its name in messages (`function`).
    const NOUN: &'static str;
    /// Its table (`functions`).
    const TABLE: &'static str;
    /// Its own columns, all text, in the order of [`Kind::values`].
    const COLUMNS: &'static [&'static str];
    /// Those of its own columns an update may change.
    const CHANGEABLE: &'static [&'static str];
    /// What the runner is told it runs.
    const RUNNER_KIND: runner::Kind;
    /// What its error message says when a new version did not start, before the reason.
    const START_FAILED: &'static str;

    /// Returns its own values, in the order of [`Kind::COLUMNS`].
    fn values(&self) -> Vec<String>;

    /// Returns the kind stored as `values`, in the order of [`Kind::COLUMNS`].
    fn from_values(values: Vec<String>) -> Self;

    /// Sets its own fields of `message`.
    fn into_proto(self, message: &mut wire::Application);

    /// Returns how many requests one instance takes at once, when its kind says (else the
    /// service's setting).
    fn concurrency(&self) -> Option<u32> {
        None
    }

    /// Returns its mvCPU, when it was set apart from its memory.
    fn cpu_limit(&self) -> Option<u32> {
        None
    }

    /// Sets what only its kind tells the runner (a container's port, command and probe).
    fn fill_spec(&self, _spec: &mut runner::Spec) {}

    /// Returns whether the router runs it in process (a WebAssembly function) rather than
    /// sending its requests to instances.
    fn runs_in_router(&self) -> bool {
        false
    }
}

/// A function or container as stored. Values were validated on the way in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application<K: Kind> {
    /// Its id.
    pub id: Uuid,
    /// The owning tenant.
    pub organization_id: Uuid,
    /// The owning tenant's project.
    pub project_id: Uuid,
    /// The region it lives in.
    pub region: String,
    /// The namespace it belongs to.
    pub namespace_id: Uuid,
    /// Its name, unique in its namespace.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its own variables (the namespace's come first, these override them).
    pub environment_variables: BTreeMap<String, String>,
    /// Instances kept when idle.
    pub min_scale: u32,
    /// Most instances.
    pub max_scale: u32,
    /// MB.
    pub memory_limit: u32,
    /// Request timeout.
    pub timeout_ms: u64,
    /// Who may call it.
    pub privacy: Privacy,
    /// The sandbox it asked for; `None`: the installation's default.
    pub sandbox: Option<Sandbox>,
    /// Where it answers.
    pub endpoint: String,
    /// Where it is in its life.
    pub status: ApplicationStatus,
    /// Why it is in `error`, else empty.
    pub error_message: String,
    /// Whether a change since the last deploy needs a redeploy.
    pub redeploy_due: bool,
    /// Its tags.
    pub tags: nuage_core::validate::Tags,
    /// Its secret variables, sealed.
    pub secrets: nuage_core::secrets::SecretVariables,
    /// Unix microseconds.
    pub created_at: i64,
    /// Unix microseconds.
    pub updated_at: i64,
    /// Unix microseconds of the last time a deploy ended ready; 0 before the first.
    pub ready_at: i64,
    /// What only its kind has (a function's runtime and handler, a container's image).
    pub kind: K,
}

impl<K: Kind> Application<K> {
    /// Returns its mvCPU: its own, or the one that comes with its memory size.
    pub fn cpu_limit(&self) -> u32 {
        self.kind
            .cpu_limit()
            .unwrap_or_else(|| cpu_limit(self.memory_limit).unwrap_or_default())
    }

    /// Returns its wire form.
    pub fn into_proto(self) -> wire::Application {
        let mut message = wire::Application {
            id: self.id.to_string(),
            cpu_limit: self.cpu_limit(),
            name: self.name,
            namespace_id: self.namespace_id.to_string(),
            status: self.status.to_proto().into(),
            environment_variables: self.environment_variables.into_iter().collect(),
            min_scale: self.min_scale,
            max_scale: self.max_scale,
            memory_limit: self.memory_limit,
            endpoint: self.endpoint,
            timeout_ms: self.timeout_ms,
            error_message: self.error_message,
            privacy: self.privacy.to_proto().into(),
            sandbox: Sandbox::to_proto(self.sandbox).into(),
            description: self.description,
            region: self.region,
            organization_id: self.organization_id.to_string(),
            project_id: self.project_id.to_string(),
            redeploy_due: self.redeploy_due,
            created_at: self.created_at,
            updated_at: self.updated_at,
            secret_environment_variables: self.secrets.to_proto(&self.id.to_string()),
            tags: self.tags.into_values(),
            ready_at: self.ready_at,
            ..wire::Application::default()
        };
        self.kind.into_proto(&mut message);
        message
    }

    /// Returns what a router needs of it; one instance takes `concurrency` requests at once
    /// unless its kind says otherwise.
    pub fn route(&self, concurrency: u32) -> pb::Route {
        let concurrency = self.kind.concurrency().unwrap_or(concurrency);
        pb::Route {
            application_id: self.id.to_string(),
            namespace_id: self.namespace_id.to_string(),
            endpoint: self.endpoint.clone(),
            status: self.status.to_proto().into(),
            error_message: self.error_message.clone(),
            privacy: self.privacy.to_proto().into(),
            timeout_ms: self.timeout_ms,
            min_scale: self.min_scale,
            max_scale: self.max_scale,
            concurrency,
            wasm: self.kind.runs_in_router(),
        }
    }
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

/// The sandbox a function or container asks to run in, by Scaleway's names. Which ones an
/// installation offers is the gateway's to check (it knows the runner's offer); the runner
/// refuses to start one it does not offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    /// bubblewrap.
    V1,
    /// gVisor.
    V2,
}

impl Sandbox {
    /// Returns the stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }

    /// Returns the sandbox stored as `value`: `Some(None)` for the default (empty), `None`
    /// for a value that is none.
    pub fn parse(value: &str) -> Option<Option<Self>> {
        match value {
            "" => Some(None),
            "v1" => Some(Some(Self::V1)),
            "v2" => Some(Some(Self::V2)),
            _ => None,
        }
    }

    /// Returns the sandbox a request names, `None` when it names none (the default on
    /// create, unchanged on update).
    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::Sandbox::try_from(value) {
            Ok(pb::Sandbox::V1) => Some(Self::V1),
            Ok(pb::Sandbox::V2) => Some(Self::V2),
            _ => None,
        }
    }

    /// Returns the wire form of `sandbox` (`None`: unspecified, the default).
    pub fn to_proto(sandbox: Option<Self>) -> pb::Sandbox {
        match sandbox {
            None => pb::Sandbox::Unspecified,
            Some(Self::V1) => pb::Sandbox::V1,
            Some(Self::V2) => pb::Sandbox::V2,
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
    fn timeouts_and_names() {
        assert!(check_timeout(999).is_err() && check_timeout(1000).is_ok() && check_timeout(900_001).is_err());
        // 34 + 8 + 1 + 20 = 63; hyphens in the namespace name leave room.
        assert!(check_name(&"a".repeat(20), &"n".repeat(34)).is_ok());
        assert!(check_name(&"a".repeat(21), &"n".repeat(34)).is_err());
        assert!(check_name(&"a".repeat(21), &format!("{}-n", "n".repeat(32))).is_ok());
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
