//! The one configuration of nuage: defaults, then `nuage.toml`, then `NUAGE_*` environment
//! variables (`__` separates sections: `NUAGE_GATEWAY__REGIONS`), then command-line flags.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use nuage_applications::ApplicationsConfig;
use nuage_builder::BuilderConfig;
use nuage_containers::ContainersConfig;
use nuage_core::Secret;
use nuage_core::storage::StorageConfig;
use nuage_crons::CronsConfig;
use nuage_functions::FunctionsConfig;
use nuage_gateway::GatewayConfig;
use nuage_logs::LogsConfig;
use nuage_namespaces::NamespacesConfig;
use nuage_router::RouterConfig;
use nuage_runner::RunnerConfig;
use nuage_tokens::TokensConfig;
use nuage_triggers::TriggersConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A part of nuage that a process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The REST API.
    Gateway,
    /// Organizations, projects, API keys.
    Iam,
    /// Namespaces.
    Namespaces,
    /// Functions and the runtimes they run in.
    Functions,
    /// Containers.
    Containers,
    /// Crons, and triggers (NATS subjects delivered to applications): both call applications
    /// on their own.
    Crons,
    /// Builds function images.
    Builder,
    /// Runs instances of functions and containers.
    Runner,
    /// Answers function and container endpoints.
    Router,
    /// Namespace key pairs and the tokens they sign.
    Tokens,
    /// Log lines of functions, containers, builds and crons.
    Logs,
}

impl Role {
    /// Every role, in start-up order.
    pub const ALL: [Role; 11] = [
        Role::Iam,
        Role::Logs,
        Role::Tokens,
        Role::Namespaces,
        Role::Functions,
        Role::Containers,
        Role::Crons,
        Role::Builder,
        Role::Runner,
        Role::Router,
        Role::Gateway,
    ];

    /// Returns the name used in `--roles` and in `services.<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Iam => "iam",
            Role::Namespaces => "namespaces",
            Role::Functions => "functions",
            Role::Containers => "containers",
            Role::Crons => "crons",
            Role::Builder => "builder",
            Role::Runner => "runner",
            Role::Router => "router",
            Role::Tokens => "tokens",
            Role::Logs => "logs",
        }
    }

    /// The roles that serve gRPC (every one but the gateway and the router, which serve HTTP).
    pub const SERVICES: [Role; 9] = [
        Role::Iam,
        Role::Logs,
        Role::Tokens,
        Role::Namespaces,
        Role::Functions,
        Role::Containers,
        Role::Crons,
        Role::Builder,
        Role::Runner,
    ];
}

/// Where the gateway reaches services that this process does not run (split mode), and how
/// long a call to any service may take.
///
/// Each gRPC service is one URL or, when it runs as several replicas, their URLs separated by
/// commas (`"http://10.0.0.5:9090,http://10.0.0.6:9090"`, also as `NUAGE_SERVICES__IAM`): calls
/// go to the replicas in turn; one a replica refused or did not accept within 2 s goes on to
/// the next, and a replica that failed is tried after the others for a while (0.5 s, doubling
/// up to 30 s). A call whose replica went away while holding it goes on to the next replica
/// when it only reads (or, like `SubmitBuild`, may be repeated); any other fails (503) rather
/// than risk being done twice. Connections are pinged after 2 s of silence, so a host cut off
/// is noticed within 4 s.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceUrls {
    /// iam's gRPC URL, e.g. `http://iam:9090` (or its replicas' URLs, separated by commas).
    pub iam: Option<String>,
    /// namespaces' gRPC URL.
    pub namespaces: Option<String>,
    /// functions' gRPC URL.
    pub functions: Option<String>,
    /// containers' gRPC URL.
    pub containers: Option<String>,
    /// crons' gRPC URL.
    pub crons: Option<String>,
    /// builder's gRPC URL.
    pub builder: Option<String>,
    /// runner's gRPC URL.
    pub runner: Option<String>,
    /// tokens' gRPC URL.
    pub tokens: Option<String>,
    /// logs' gRPC URL. Producers of lines (runner, builder, crons, router) without it, nor the
    /// logs role, keep their lines to themselves (with a warning).
    pub logs: Option<String>,
    /// The router's internal listener (`router.internal_listen`), an HTTP URL such as
    /// `http://router:8082`: crons fire through it. One URL.
    pub router: Option<String>,
    /// How long a call to a service (in this process or another) waits for its answer when
    /// the caller sets no deadline of its own (ms): past it, the call fails naming the service
    /// and an API request answers 503. Calls that wait by design (a deploy's roll-out, a wait
    /// for a namespace to become ready) set their own.
    pub deadline_ms: u64,
}

impl Default for ServiceUrls {
    fn default() -> Self {
        Self {
            iam: None,
            namespaces: None,
            functions: None,
            containers: None,
            crons: None,
            builder: None,
            runner: None,
            tokens: None,
            logs: None,
            router: None,
            deadline_ms: 60_000,
        }
    }
}

impl ServiceUrls {
    /// Returns [`ServiceUrls::deadline_ms`].
    pub fn deadline(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.deadline_ms.max(1))
    }

    /// Returns the configured URL of `role`'s service.
    pub fn get(&self, role: Role) -> Option<&str> {
        match role {
            Role::Iam => self.iam.as_deref(),
            Role::Namespaces => self.namespaces.as_deref(),
            Role::Functions => self.functions.as_deref(),
            Role::Containers => self.containers.as_deref(),
            Role::Crons => self.crons.as_deref(),
            Role::Builder => self.builder.as_deref(),
            Role::Runner => self.runner.as_deref(),
            Role::Tokens => self.tokens.as_deref(),
            Role::Router => self.router.as_deref(),
            Role::Logs => self.logs.as_deref(),
            Role::Gateway => None,
        }
    }
}

/// Everything `nuage serve` and `nuage admin` read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Holds the SQLite database, the master key, `endpoints.json` and `credentials.json`.
    pub data_dir: PathBuf,
    /// The REST API listener.
    pub listen: SocketAddr,
    /// The internal gRPC listener (port 0 picks a free port).
    pub grpc_listen: SocketAddr,
    /// A plain HTTP listener for probes, whatever the roles: `GET /healthz` answers 200 only
    /// while every role of this process serves (started, not shutting down, its database
    /// answering), 503 otherwise; `GET /livez` answers 200 while the process runs. Unset: none.
    pub health_listen: Option<SocketAddr>,
    /// Connections the gRPC listener serves at once (every process of nuage that calls this
    /// one holds a few); one more is closed.
    pub grpc_max_connections: usize,
    /// Seconds of silence after which the gRPC listener pings a peer; one that does not answer
    /// within 20 s is disconnected.
    pub grpc_keepalive_seconds: u64,
    /// Milliseconds a peer of the gRPC listener has, from connecting, to send its whole HTTP/2
    /// client preface (the fixed octets and its SETTINGS frame) and acknowledge the server's
    /// SETTINGS; a slower one is disconnected.
    pub grpc_preface_timeout_ms: u64,
    /// `sqlite://...` or `postgres://...`; default: `nuage.db` in the data dir.
    pub database_url: Option<String>,
    /// How long a call to the database waits for a connection, and on PostgreSQL for a
    /// statement, before it fails (ms).
    pub database_timeout_ms: u64,
    /// The roles this process runs; default: all of them.
    pub roles: Vec<Role>,
    /// The master key as 64 hex characters; default: read from `master_key_file`.
    pub master_key: Option<Secret>,
    /// The file holding the master key; default: `master.key` in the data dir, created on
    /// first start.
    pub master_key_file: Option<PathBuf>,
    /// The secret internal gRPC calls carry. Required when roles are split across
    /// processes; a single process makes its own.
    pub internal_secret: Option<Secret>,
    /// A file holding `internal_secret`.
    pub internal_secret_file: Option<PathBuf>,
    /// Seconds to let in-flight requests finish after SIGINT/SIGTERM.
    pub shutdown_grace_seconds: u64,
    /// gRPC URLs of services run elsewhere.
    pub services: ServiceUrls,
    /// The REST gateway.
    pub gateway: GatewayConfig,
    /// The namespaces service.
    pub namespaces: NamespacesConfig,
    /// Settings functions and containers share (endpoints, scale cap).
    pub applications: ApplicationsConfig,
    /// The functions service.
    pub functions: FunctionsConfig,
    /// The containers service.
    pub containers: ContainersConfig,
    /// Where source archives are stored.
    pub storage: StorageConfig,
    /// The builder.
    pub builder: BuilderConfig,
    /// The runner.
    pub runner: RunnerConfig,
    /// The router.
    pub router: RouterConfig,
    /// The crons service and its scheduler.
    pub crons: CronsConfig,
    /// The triggers service (run by the crons role): NATS servers, deliveries.
    pub triggers: TriggersConfig,
    /// The logs service (retention).
    pub logs: LogsConfig,
    /// Namespace key pairs.
    pub tokens: TokensConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./.nuage"),
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            grpc_listen: "127.0.0.1:0".parse().expect("valid address"),
            health_listen: None,
            grpc_max_connections: 10_000,
            grpc_keepalive_seconds: 60,
            grpc_preface_timeout_ms: 10_000,
            database_url: None,
            database_timeout_ms: 30_000,
            roles: Role::ALL.to_vec(),
            master_key: None,
            master_key_file: None,
            internal_secret: None,
            internal_secret_file: None,
            shutdown_grace_seconds: 30,
            services: ServiceUrls::default(),
            gateway: GatewayConfig::default(),
            namespaces: NamespacesConfig::default(),
            applications: ApplicationsConfig::default(),
            functions: FunctionsConfig::default(),
            containers: ContainersConfig::default(),
            storage: StorageConfig::default(),
            builder: BuilderConfig::default(),
            runner: RunnerConfig::default(),
            router: RouterConfig::default(),
            crons: CronsConfig::default(),
            triggers: TriggersConfig::default(),
            logs: LogsConfig::default(),
            tokens: TokensConfig::default(),
        }
    }
}

/// Command-line settings that override the other layers when given.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `--grpc-listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_listen: Option<SocketAddr>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--roles`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
}

impl Config {
    /// Returns the configuration from every layer; `file` defaults to `nuage.toml` in the
    /// working directory, which may be absent.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Self> {
        let file = file.map_or_else(|| PathBuf::from("nuage.toml"), Path::to_path_buf);
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            // NUAGE_LOG is the log filter and NUAGE_TEST_* belong to the test suite: neither is
            // a setting.
            .merge(Env::prefixed("NUAGE_").split("__").filter(|key| {
                let key = key.as_str().to_ascii_lowercase();
                key != "log" && !key.starts_with("test_")
            }))
            .merge(Serialized::defaults(overrides))
            .extract()?;
        config.validate()?;
        Ok(config)
    }

    /// Checks settings that depend on each other.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.roles.is_empty() {
            anyhow::bail!(
                "roles must name at least one of gateway, iam, tokens, namespaces, functions, containers, crons, \
                 builder, runner, router, logs"
            );
        }
        self.gateway.validate().map_err(anyhow::Error::msg)?;
        if self.grpc_max_connections == 0 || self.grpc_keepalive_seconds == 0 || self.grpc_preface_timeout_ms == 0 {
            anyhow::bail!("grpc_max_connections, grpc_keepalive_seconds and grpc_preface_timeout_ms must be positive");
        }
        self.router.validate().map_err(anyhow::Error::msg)?;
        self.runner.validate().map_err(anyhow::Error::msg)?;
        self.builder.validate().map_err(anyhow::Error::msg)?;
        self.triggers.validate().map_err(anyhow::Error::msg)?;
        self.applications
            .domains
            .resolver_address()
            .map_err(anyhow::Error::msg)?;
        if self.applications.deployment_history == 0 {
            anyhow::bail!("applications.deployment_history must be at least 1: the deployment that serves");
        }
        self.storage
            .connections
            .validate("storage.connections")
            .map_err(anyhow::Error::msg)?;
        self.validate_peers()?;
        if self.storage.endpoint.is_some() && (self.storage.access_key.is_none() || self.storage.secret_key.is_none()) {
            anyhow::bail!("an external storage.endpoint needs storage.access_key and storage.secret_key");
        }
        if !self.is_all_in_one() && self.internal_secret.is_none() && self.internal_secret_file.is_none() {
            anyhow::bail!("split roles need a shared internal_secret (or internal_secret_file)");
        }
        Ok(())
    }

    /// Checks that every role this process runs can reach the roles it calls, here or at a
    /// URL of `services`, and that those URLs are well formed.
    fn validate_peers(&self) -> anyhow::Result<()> {
        // Who calls whom: the gateway calls every service but the builder; namespaces cascades to
        // functions and containers; those check namespaces and cascade to crons; functions queues
        // builds, which report back and are rolled out by the runner; crons checks functions and
        // containers and fires through the router; the router routes to functions and containers
        // and scales with the runner. The gateway reads logs, and functions and containers delete
        // theirs; producers of lines (runner, builder, crons, router) ship them where logs runs.
        let needs: [(Role, &[Role]); 7] = [
            (
                Role::Gateway,
                &[
                    Role::Iam,
                    Role::Namespaces,
                    Role::Functions,
                    Role::Containers,
                    Role::Crons,
                    Role::Tokens,
                    Role::Logs,
                ],
            ),
            (Role::Namespaces, &[Role::Functions, Role::Containers, Role::Tokens]),
            (
                Role::Functions,
                &[
                    Role::Namespaces,
                    Role::Crons,
                    Role::Builder,
                    Role::Runner,
                    Role::Tokens,
                    Role::Logs,
                ],
            ),
            (Role::Builder, &[Role::Functions]),
            (
                Role::Containers,
                &[Role::Namespaces, Role::Crons, Role::Runner, Role::Tokens, Role::Logs],
            ),
            (Role::Crons, &[Role::Functions, Role::Containers, Role::Router]),
            (
                Role::Router,
                &[Role::Functions, Role::Containers, Role::Runner, Role::Tokens],
            ),
        ];
        for (caller, callees) in needs {
            if !self.runs(caller) {
                continue;
            }
            for callee in callees {
                if !self.runs(*callee) && self.services.get(*callee).is_none() {
                    let name = callee.name();
                    anyhow::bail!(
                        "the {} role needs {name}: run the {name} role too, or set services.{name}",
                        caller.name()
                    );
                }
            }
        }
        for role in Role::SERVICES {
            if let Some(urls) = self.services.get(role)
                && urls.split(',').any(|url| url.trim().is_empty())
            {
                anyhow::bail!(
                    "services.{} has an empty URL: name one URL, or several separated by commas",
                    role.name()
                );
            }
        }
        if self.services.router.as_deref().is_some_and(|url| url.contains(',')) {
            anyhow::bail!("services.router names one URL: the router's internal listener");
        }
        Ok(())
    }

    /// Returns whether this process runs `role`.
    pub fn runs(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Returns whether this process runs every role.
    pub fn is_all_in_one(&self) -> bool {
        Role::ALL.iter().all(|role| self.runs(*role))
    }

    /// Returns the database URL, defaulting to SQLite in the data dir.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("nuage.db").display()))
    }

    /// Returns the master key file path.
    pub fn master_key_file(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order_and_unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "nuage.toml",
                "listen = \"127.0.0.1:9000\"\n[gateway]\nregions = [\"fr-par\"]\n",
            )?;
            jail.set_env("NUAGE_GATEWAY__AUTH_FAILURE_LIMIT", "7");
            jail.set_env("NUAGE_TEST_DATABASE_URL", "postgres://ignored");
            jail.set_env("NUAGE_LOG", "debug");
            let config = Config::load(
                None,
                Overrides {
                    data_dir: Some("/tmp/x".into()),
                    ..Default::default()
                },
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(config.listen.port(), 9000);
            assert_eq!(config.gateway.regions, ["fr-par"]);
            assert_eq!(config.gateway.auth_failure_limit, 7);
            assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
            let overridden = Config::load(
                None,
                Overrides {
                    listen: Some("127.0.0.1:1".parse().unwrap()),
                    ..Default::default()
                },
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(overridden.listen.port(), 1);
            jail.create_file("nuage.toml", "lisen = \"x\"\n")?;
            assert!(Config::load(None, Overrides::default()).is_err());
            Ok(())
        });
    }

    #[test]
    fn the_kubernetes_backend_is_configured_in_its_own_section() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "nuage.toml",
                "[runner]\nbackend = \"kubernetes\"\n[runner.kubernetes]\nnamespace_prefix = \"t-\"\n\
                 gvisor_runtime_class = \"gvisor\"\ncluster_cidrs = [\"10.96.0.0/12\"]\n\
                 router_pod_labels = { \"app\" = \"router\" }\n",
            )?;
            jail.set_env("NUAGE_RUNNER__KUBERNETES__PULL_SECRET", "registry");
            let config = Config::load(None, Overrides::default()).map_err(|e| e.to_string())?;
            let kubernetes = &config.runner.kubernetes;
            assert_eq!(config.runner.backend, "kubernetes");
            assert_eq!(kubernetes.namespace_prefix, "t-");
            assert_eq!(kubernetes.gvisor_runtime_class.as_deref(), Some("gvisor"));
            assert_eq!(kubernetes.pull_secret.as_deref(), Some("registry"));
            assert_eq!(kubernetes.router_pod_labels["app"], "router");
            assert_eq!(kubernetes.system_namespace, "nuage");
            jail.create_file("nuage.toml", "[runner.kubernetes]\nnamespace = \"x\"\n")?;
            let unknown = Config::load(None, Overrides::default()).unwrap_err().to_string();
            assert!(unknown.contains("namespace"), "{unknown}");
            jail.create_file(
                "nuage.toml",
                "[runner]\nbackend = \"kubernetes\"\n[runner.kubernetes]\ncluster_cidrs = [\"10.96.0.0\"]\n",
            )?;
            let invalid = Config::load(None, Overrides::default()).unwrap_err().to_string();
            assert!(invalid.contains("runner.kubernetes.cluster_cidrs"), "{invalid}");
            Ok(())
        });
    }

    #[test]
    fn listener_limits_are_checked_at_start_up() {
        Config::default().validate().unwrap();
        let config = Config {
            grpc_preface_timeout_ms: 0,
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("grpc_preface_timeout_ms")
        );
        let mut config = Config::default();
        config.storage.connections.idle_timeout_seconds = 0;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("storage.connections.idle_timeout_seconds"), "{error}");
        let mut config = Config::default();
        config.router.connections.body_stall_timeout_ms = 0;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("router.connections.body_stall_timeout_ms"), "{error}");
    }

    #[test]
    fn revocations_are_fetched_often_enough_to_refuse_a_deleted_token_within_5_seconds() {
        for (every, valid) in [(10, true), (5000, true), (0, false), (5001, false)] {
            let mut config = Config::default();
            config.router.revocations_refresh_ms = every;
            match config.validate() {
                Ok(()) => assert!(valid, "{every} ms was accepted"),
                Err(error) => {
                    assert!(!valid, "{every} ms: {error}");
                    assert!(error.to_string().contains("router.revocations_refresh_ms"), "{error}");
                }
            }
        }
    }

    /// The configurations `deploy/` ships, each with the `NUAGE_*` variables its units or pods
    /// set, and the processes (roles) it is for: every key and variable must be a setting,
    /// and every process must find the peers it calls.
    #[test]
    fn the_configurations_deploy_ships_load_for_each_of_their_processes() {
        let environment = [
            ("NUAGE_DATA_DIR", "/var/lib/nuage/control"),
            ("NUAGE_DATABASE_URL", "postgres://nuage:password@db:5432/nuage"),
            ("NUAGE_STORAGE__SECRET_KEY", "storage secret"),
            ("NUAGE_BUILDER__REGISTRY_PASSWORD", "registry secret"),
            ("NUAGE_BUILDER__REGISTRY_DIR", "/var/lib/nuage-build/registry"),
            (
                "NUAGE_INTERNAL_SECRET_FILE",
                "/run/credentials/nuage@control.service/internal-secret",
            ),
            (
                "NUAGE_MASTER_KEY_FILE",
                "/run/credentials/nuage@control.service/master-key",
            ),
        ];
        let on_hosts: &[&[Role]] = &[
            &[Role::Gateway],
            &[
                Role::Iam,
                Role::Tokens,
                Role::Namespaces,
                Role::Functions,
                Role::Containers,
                Role::Logs,
                Role::Crons,
            ],
            &[Role::Builder],
            &[Role::Router, Role::Runner],
        ];
        let on_kubernetes: Vec<&[Role]> = Role::ALL.iter().map(std::slice::from_ref).collect();
        let shipped = [
            (include_str!("../deploy/nuage.toml"), on_hosts.to_vec()),
            (include_str!("../deploy/kubernetes/base/nuage.toml"), on_kubernetes),
        ];
        for (text, processes) in shipped {
            figment::Jail::expect_with(|jail| {
                jail.create_file("nuage.toml", text)?;
                for (name, value) in environment {
                    jail.set_env(name, value);
                }
                for roles in &processes {
                    let overrides = Overrides {
                        roles: Some(roles.to_vec()),
                        ..Overrides::default()
                    };
                    let config = Config::load(None, overrides).map_err(|error| format!("{roles:?}: {error:#}"))?;
                    assert!(!config.is_all_in_one());
                    assert!(config.database_url().starts_with("postgres://"));
                    assert_eq!(config.storage.secret_key.as_ref().unwrap().expose(), "storage secret");
                    assert!(config.services.iam.is_some() && config.services.router.is_some());
                }
                // Kubernetes sets NUAGE_IAM_SERVICE_HOST and the like for a Service named
                // nuage-iam unless the pod says `enableServiceLinks: false`: such a variable is
                // read as a setting, and refused.
                jail.set_env("NUAGE_IAM_SERVICE_HOST", "10.0.0.1");
                let refused = Config::load(None, Overrides::default()).unwrap_err().to_string();
                assert!(refused.contains("iam_service_host"), "{refused}");
                Ok(())
            });
        }
    }

    #[test]
    fn split_roles_need_peers_and_a_shared_secret() {
        let config = Config {
            roles: vec![Role::Gateway],
            ..Config::default()
        };
        assert!(config.validate().is_err());
        let config = Config {
            roles: vec![Role::Gateway],
            services: ServiceUrls {
                iam: Some("http://iam".into()),
                namespaces: Some("http://ns".into()),
                functions: Some("http://fn".into()),
                containers: Some("http://ct".into()),
                ..ServiceUrls::default()
            },
            internal_secret: Some(Secret::new("s")),
            ..Config::default()
        };
        assert!(config.validate().unwrap_err().to_string().contains("services.crons"));
        let config = Config {
            services: ServiceUrls {
                crons: Some("http://cr".into()),
                logs: Some("http://l".into()),
                builder: Some("http://b".into()),
                tokens: Some("http://t".into()),
                ..config.services
            },
            ..config
        };
        config.validate().unwrap();
        // A crons replica fires through a router.
        let crons = Config {
            roles: vec![Role::Crons],
            services: ServiceUrls {
                router: None,
                ..config.services.clone()
            },
            ..config.clone()
        };
        assert!(crons.validate().unwrap_err().to_string().contains("services.router"));
        let crons = Config {
            services: ServiceUrls {
                router: Some("http://router:8082".into()),
                ..crons.services.clone()
            },
            ..crons
        };
        crons.validate().unwrap();
        // Replicas of a service are listed with commas; an empty item is a mistake.
        let replicated = Config {
            services: ServiceUrls {
                functions: Some("http://fn-a:9090, http://fn-b:9090".into()),
                ..crons.services.clone()
            },
            ..crons.clone()
        };
        replicated.validate().unwrap();
        let empty = Config {
            services: ServiceUrls {
                functions: Some("http://fn-a:9090,,http://fn-b:9090".into()),
                ..crons.services.clone()
            },
            ..crons.clone()
        };
        assert!(empty.validate().unwrap_err().to_string().contains("services.functions"));
        let routers = Config {
            services: ServiceUrls {
                router: Some("http://r1:8082,http://r2:8082".into()),
                ..crons.services.clone()
            },
            ..crons
        };
        assert!(routers.validate().unwrap_err().to_string().contains("services.router"));
    }
}
