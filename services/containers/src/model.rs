//! What makes a container a container: the image it runs, and how it listens, scales and is
//! checked (v1beta1's `port`, `max_concurrency`, `protocol`, `local_storage_limit`, `command`,
//! `args`, `health_check`, `scaling_option`, `cpu_limit`).

use nuage_applications::{Application, Kind};
use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_proto::applications::v1 as wire;
use nuage_proto::common::v1 as common;
use nuage_proto::runner::v1 as runner;
use serde::{Deserialize, Serialize};

/// A container as stored.
pub type Container = Application<ContainerKind>;

/// The port a container listens on when none is asked for, as on Scaleway.
pub const DEFAULT_PORT: u32 = 8080;
/// Local storage when none is asked for (MB), as on Scaleway.
pub const DEFAULT_LOCAL_STORAGE_LIMIT: u32 = 1000;
/// Checks when none are asked for: 30 tries, 10 s apart, of a TCP connection (Scaleway's).
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 30;
/// See [`DEFAULT_FAILURE_THRESHOLD`].
pub const DEFAULT_CHECK_INTERVAL_MS: u64 = 10_000;
/// Most requests one instance may be asked to take at once.
pub const MAX_CONCURRENCY: u32 = 1000;
/// Most tries of a health check.
pub const MAX_FAILURE_THRESHOLD: u32 = 100;
/// Shortest and longest time between two tries of a health check.
pub const CHECK_INTERVALS_MS: (u64, u64) = (100, 3_600_000);
/// Most local storage (MB).
pub const MAX_LOCAL_STORAGE_LIMIT: u32 = 10_000;
/// Most words in `command` or `args`, and most bytes in one.
const MAX_WORDS: (usize, usize) = (64, 4096);

/// A container's own fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerKind {
    /// The image it runs (`[registry/]repository[:tag][@digest]`).
    pub registry_image: String,
    /// How it listens, scales and is checked.
    pub settings: Settings,
}

/// How a container listens, scales and is checked; stored as JSON in its `settings` column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The port its code listens on.
    pub port: u32,
    /// Requests one instance takes at once.
    pub max_concurrency: u32,
    /// `http1`.
    pub protocol: String,
    /// MB.
    pub local_storage_limit: u32,
    /// Replaces the image's entrypoint when not empty.
    pub command: Vec<String>,
    /// Replaces the image's cmd when not empty.
    pub args: Vec<String>,
    /// What must answer before an instance takes traffic.
    pub health_check: HealthCheck,
    /// What it scales on.
    pub scaling: Scaling,
    /// mvCPU of its own; `None`: the one that comes with its memory.
    pub cpu_limit: Option<u32>,
}

/// What must answer before an instance takes traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthCheck {
    /// Tries before the instance counts as failed.
    pub failure_threshold: u32,
    /// Time between two tries.
    pub interval_ms: u64,
    /// An HTTP GET of this path must answer 2xx or 3xx; `None`: a TCP connection is enough.
    pub http_path: Option<String>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            interval_ms: DEFAULT_CHECK_INTERVAL_MS,
            http_path: None,
        }
    }
}

/// What a container scales on. Only concurrent requests are acted on here: the other two are
/// kept and shown, and their answer says they are not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// More instances once one takes this many requests at once (its `max_concurrency`).
    ConcurrentRequests(u32),
    /// A CPU percentage: not measured by this backend.
    CpuUsage(u32),
    /// A memory percentage: not measured by this backend.
    MemoryUsage(u32),
}

impl Default for Settings {
    fn default() -> Self {
        Self::with_concurrency(50)
    }
}

impl Settings {
    /// Returns the default settings of a container whose instances take `concurrency` requests.
    pub fn with_concurrency(concurrency: u32) -> Self {
        Self {
            port: DEFAULT_PORT,
            max_concurrency: concurrency,
            protocol: "http1".to_owned(),
            local_storage_limit: DEFAULT_LOCAL_STORAGE_LIMIT,
            command: Vec::new(),
            args: Vec::new(),
            health_check: HealthCheck::default(),
            scaling: Scaling::ConcurrentRequests(concurrency),
            cpu_limit: None,
        }
    }

    /// Applies `changes`, checking each value given; fields not given keep their value.
    pub fn apply(&mut self, changes: wire::ContainerChanges) -> Result<(), ApiError> {
        if let Some(port) = changes.port {
            if !(1..=65_535).contains(&port) {
                return Err(constraint("port", format!("must be between 1 and 65535, got {port}")));
            }
            self.port = port;
        }
        if let Some(protocol) = changes.protocol.filter(|protocol| !protocol.is_empty()) {
            match protocol.as_str() {
                "http1" => self.protocol = protocol,
                "h2c" => {
                    return Err(constraint(
                        "protocol",
                        "`h2c` is not offered by this installation, whose routers speak HTTP/1.1 to \
                         instances; use `http1`",
                    ));
                }
                other => return Err(constraint("protocol", format!("`{other}` is not one of http1, h2c"))),
            }
        }
        if let Some(limit) = changes.local_storage_limit {
            if !(1..=MAX_LOCAL_STORAGE_LIMIT).contains(&limit) {
                return Err(constraint(
                    "local_storage_limit",
                    format!("must be between 1 and {MAX_LOCAL_STORAGE_LIMIT} (MB), got {limit}"),
                ));
            }
            self.local_storage_limit = limit;
        }
        if let Some(command) = changes.command {
            self.command = words("command", command.values)?;
        }
        if let Some(args) = changes.args {
            self.args = words("args", args.values)?;
        }
        if let Some(check) = changes.health_check {
            self.health_check = health_check(check)?;
        }
        if let Some(cpu) = changes.cpu_limit {
            if !(70..=8_000).contains(&cpu) {
                return Err(constraint(
                    "cpu_limit",
                    format!("must be between 70 and 8000 (mvCPU), got {cpu}"),
                ));
            }
            self.cpu_limit = Some(cpu);
        }
        let rule = changes.scaling_option.and_then(|option| option.rule);
        if let Some(concurrency) = changes.max_concurrency {
            self.max_concurrency = concurrency_in_range("max_concurrency", concurrency)?;
            if let Scaling::ConcurrentRequests(_) = self.scaling {
                self.scaling = Scaling::ConcurrentRequests(self.max_concurrency);
            }
        }
        match rule {
            None => {}
            Some(wire::scaling_option::Rule::ConcurrentRequestsThreshold(threshold)) => {
                let threshold = concurrency_in_range("scaling_option.concurrent_requests_threshold", threshold)?;
                self.max_concurrency = threshold;
                self.scaling = Scaling::ConcurrentRequests(threshold);
            }
            Some(wire::scaling_option::Rule::CpuUsageThreshold(percent)) => {
                self.scaling = Scaling::CpuUsage(percent_in_range("scaling_option.cpu_usage_threshold", percent)?);
            }
            Some(wire::scaling_option::Rule::MemoryUsageThreshold(percent)) => {
                self.scaling =
                    Scaling::MemoryUsage(percent_in_range("scaling_option.memory_usage_threshold", percent)?);
            }
        }
        Ok(())
    }

    /// Returns the wire form.
    pub fn to_proto(&self) -> wire::ContainerSettings {
        use wire::scaling_option::Rule;
        wire::ContainerSettings {
            port: self.port,
            max_concurrency: self.max_concurrency,
            protocol: self.protocol.clone(),
            local_storage_limit: self.local_storage_limit,
            command: self.command.clone(),
            args: self.args.clone(),
            health_check: Some(common::HealthCheck {
                failure_threshold: self.health_check.failure_threshold,
                interval_ms: self.health_check.interval_ms,
                http_path: self.health_check.http_path.clone(),
            }),
            scaling_option: Some(wire::ScalingOption {
                rule: Some(match self.scaling {
                    Scaling::ConcurrentRequests(value) => Rule::ConcurrentRequestsThreshold(value),
                    Scaling::CpuUsage(value) => Rule::CpuUsageThreshold(value),
                    Scaling::MemoryUsage(value) => Rule::MemoryUsageThreshold(value),
                }),
            }),
        }
    }
}

fn constraint(argument: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_argument(argument, Reason::Constraint, message)
}

fn concurrency_in_range(argument: &str, value: u32) -> Result<u32, ApiError> {
    if (1..=MAX_CONCURRENCY).contains(&value) {
        Ok(value)
    } else {
        Err(constraint(
            argument,
            format!("must be between 1 and {MAX_CONCURRENCY}, got {value}"),
        ))
    }
}

fn percent_in_range(argument: &str, value: u32) -> Result<u32, ApiError> {
    if (1..=100).contains(&value) {
        Ok(value)
    } else {
        Err(constraint(
            argument,
            format!("must be a percentage between 1 and 100, got {value}"),
        ))
    }
}

fn words(argument: &str, values: Vec<String>) -> Result<Vec<String>, ApiError> {
    let (most, longest) = MAX_WORDS;
    if values.len() > most {
        return Err(constraint(
            argument,
            format!("must have at most {most} items, got {}", values.len()),
        ));
    }
    for (index, value) in values.iter().enumerate() {
        if value.len() > longest || value.contains('\0') {
            return Err(constraint(
                &format!("{argument}[{index}]"),
                format!("must be at most {longest} bytes with no NUL byte"),
            ));
        }
    }
    Ok(values)
}

/// Checks a health check; a threshold or interval of 0 takes the default.
fn health_check(mut check: common::HealthCheck) -> Result<HealthCheck, ApiError> {
    if check.failure_threshold == 0 {
        check.failure_threshold = DEFAULT_FAILURE_THRESHOLD;
    }
    if check.interval_ms == 0 {
        check.interval_ms = DEFAULT_CHECK_INTERVAL_MS;
    }
    if !(1..=MAX_FAILURE_THRESHOLD).contains(&check.failure_threshold) {
        return Err(constraint(
            "health_check.failure_threshold",
            format!(
                "must be between 1 and {MAX_FAILURE_THRESHOLD}, got {}",
                check.failure_threshold
            ),
        ));
    }
    let (shortest, longest) = CHECK_INTERVALS_MS;
    if !(shortest..=longest).contains(&check.interval_ms) {
        return Err(constraint(
            "health_check.interval",
            format!(
                "must be between {}s and {}s, got {} ms",
                shortest as f64 / 1000.0,
                longest / 1000,
                check.interval_ms
            ),
        ));
    }
    if let Some(path) = &check.http_path
        && (!path.starts_with('/') || path.len() > 1024 || path.bytes().any(|byte| byte <= b' ' || byte == 0x7f))
    {
        return Err(ApiError::invalid_argument(
            "health_check.http.path",
            Reason::Format,
            "must be an absolute path such as `/healthz`, at most 1024 bytes, with no space or control character",
        ));
    }
    Ok(HealthCheck {
        failure_threshold: check.failure_threshold,
        interval_ms: check.interval_ms,
        http_path: check.http_path,
    })
}

impl Kind for ContainerKind {
    const NOUN: &'static str = "container";
    const TABLE: &'static str = "containers";
    const COLUMNS: &'static [&'static str] = &["registry_image", "settings"];
    const CHANGEABLE: &'static [&'static str] = &["registry_image", "settings"];
    const RUNNER_KIND: runner::Kind = runner::Kind::Container;
    const START_FAILED: &'static str = "the container did not start";

    fn values(&self) -> Vec<String> {
        let settings = serde_json::to_string(&self.settings).expect("settings serialize");
        vec![self.registry_image.clone(), settings]
    }

    fn from_values(values: Vec<String>) -> Self {
        let mut values = values.into_iter();
        let registry_image = values.next().unwrap_or_default();
        // Written by `values`; a row from before settings existed holds `{}`: the defaults.
        let settings = values
            .next()
            .and_then(|settings| serde_json::from_str(&settings).ok())
            .unwrap_or_default();
        Self {
            registry_image,
            settings,
        }
    }

    fn into_proto(self, message: &mut wire::Application) {
        message.registry_image = self.registry_image;
        message.container = Some(self.settings.to_proto());
    }

    fn concurrency(&self) -> Option<u32> {
        Some(self.settings.max_concurrency.max(1))
    }

    fn cpu_limit(&self) -> Option<u32> {
        self.settings.cpu_limit
    }

    fn fill_spec(&self, spec: &mut runner::Spec) {
        let settings = &self.settings;
        spec.port = settings.port;
        spec.command.clone_from(&settings.command);
        spec.args.clone_from(&settings.args);
        spec.probe = Some(common::HealthCheck {
            failure_threshold: settings.health_check.failure_threshold,
            interval_ms: settings.health_check.interval_ms,
            http_path: settings.health_check.http_path.clone(),
        });
    }
}

/// Returns the repository (`host/first segment`) of `image` when it is in the installation's own
/// registry (named without a host, or on the host of `namespace`'s `registry_endpoint`, however
/// that host is spelled: see [`nuage_core::ids::same_registry`]) but not
/// in `namespace`'s own repository: such an image is the container's to run only if that
/// repository is one of its owner's other namespaces'.
pub fn foreign_repository(image: &str, namespace: &nuage_proto::namespaces::v1::Namespace) -> Option<String> {
    let (own_host, own_path) = namespace.registry_endpoint.split_once('/')?;
    let repository = image.split('@').next().unwrap_or(image);
    let path = match nuage_core::ids::repository_host(repository) {
        (Some(host), _) if !nuage_core::ids::same_registry(host, own_host) => return None,
        (_, path) => path,
    };
    if path.starts_with(&format!("{own_path}/")) {
        return None;
    }
    let first = path.split('/').next().unwrap_or(path);
    Some(format!("{own_host}/{first}"))
}

/// The error for `image`, in the installation's registry but in no repository of the owner of
/// `namespace`: another tenant's image is not this container's to run.
pub fn not_owned(image: &str, namespace: &nuage_proto::namespaces::v1::Namespace) -> ApiError {
    ApiError::invalid_argument(
        "registry_image",
        Reason::Constraint,
        format!(
            "`{image}` is in this installation's registry but in none of your namespaces' repositories: push it \
             under `{}/`",
            namespace.registry_endpoint
        ),
    )
}

/// Checks that `image` parses as an image reference (`[registry/]repository[:tag][@digest]`).
pub fn check_image(image: &str) -> Result<(), ApiError> {
    image
        .parse::<oci_spec::distribution::Reference>()
        .map(drop)
        .map_err(|error| {
            ApiError::invalid_argument(
                "registry_image",
                Reason::Format,
                format!("`{image}` is not an image reference such as `registry.example.com/team/app:1.0`: {error}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_old_rows_read_as_defaults() {
        let kind = ContainerKind::from_values(vec!["img".into(), "{}".into()]);
        assert_eq!(kind.settings, Settings::default());
        let mut settings = Settings::with_concurrency(10);
        settings
            .apply(wire::ContainerChanges {
                port: Some(3000),
                scaling_option: Some(wire::ScalingOption {
                    rule: Some(wire::scaling_option::Rule::ConcurrentRequestsThreshold(7)),
                }),
                command: Some(wire::Strings {
                    values: vec!["/bin/server".into()],
                }),
                ..Default::default()
            })
            .unwrap();
        assert_eq!((settings.port, settings.max_concurrency), (3000, 7));
        let kind = ContainerKind {
            registry_image: "img".into(),
            settings: settings.clone(),
        };
        assert_eq!(ContainerKind::from_values(kind.values()).settings, settings);
    }

    #[test]
    fn bad_settings_are_named() {
        let refused = |changes: wire::ContainerChanges| {
            Settings::default().apply(changes).unwrap_err().violations[0]
                .argument_name
                .clone()
        };
        assert_eq!(
            refused(wire::ContainerChanges {
                port: Some(0),
                ..Default::default()
            }),
            "port"
        );
        assert_eq!(
            refused(wire::ContainerChanges {
                protocol: Some("h2c".into()),
                ..Default::default()
            }),
            "protocol"
        );
        assert_eq!(
            refused(wire::ContainerChanges {
                health_check: Some(common::HealthCheck {
                    failure_threshold: 3,
                    interval_ms: 1000,
                    http_path: Some("no-slash".into()),
                }),
                ..Default::default()
            }),
            "health_check.http.path"
        );
    }
}
