//! The `nuage` command line, shared by the `nuage` binary and the test suite's copy of it.

use crate::{Config, Overrides, Role};
use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nuage",
    version,
    about = "Multi-tenant serverless control plane (Scaleway Functions API)"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs nuage: every role by default, or the ones `--roles` names.
    Serve {
        /// REST API listener [default: 127.0.0.1:8080].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Internal gRPC listener; port 0 picks one [default: 127.0.0.1:0].
        #[arg(long)]
        grpc_listen: Option<SocketAddr>,
        /// Roles to run, comma-separated [default: all].
        #[arg(long, value_delimiter = ',')]
        roles: Option<Vec<Role>>,
    },
    /// Manages tenants and API keys; prints JSON.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// Options of every command, accepted before or after the subcommand's name
/// (`nuage admin tenant create --name x --data-dir D`).
#[derive(Args)]
struct Common {
    /// Configuration file [default: ./nuage.toml, if present].
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory [default: ./.nuage].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// `sqlite://...` or `postgres://...` [default: SQLite in the data dir].
    #[arg(long, global = true)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Tenants (organizations).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Creates an organization, its default project and an API key.
    Create {
        /// The organization's name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Creates an API key for an organization.
    Create {
        /// The organization id.
        #[arg(long)]
        organization: uuid::Uuid,
    },
    /// Revokes an API key; requests using it fail within 10 seconds.
    Revoke {
        /// The access key (SCW...).
        access_key: String,
    },
}

fn load(common: &Common, overrides: Overrides) -> anyhow::Result<Config> {
    Config::load(
        common.config.as_deref(),
        Overrides {
            data_dir: common.data_dir.clone(),
            database_url: common.database_url.clone(),
            ..overrides
        },
    )
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let common = cli.common;
    match cli.command {
        Command::Serve {
            listen,
            grpc_listen,
            roles,
        } => {
            let config = load(
                &common,
                Overrides {
                    listen,
                    grpc_listen,
                    roles,
                    ..Overrides::default()
                },
            )?;
            let stop = crate::shutdown_signal()?;
            let server = crate::start(config.clone()).await?;
            if let Some(api) = server.endpoints().api {
                print_welcome(&config, api, server.bootstrap_key());
            }
            stop.await;
            server.shutdown().await
        }
        Command::Admin { command } => {
            let config = load(&common, Overrides::default())?;
            let output = match command {
                AdminCommand::Tenant {
                    command: TenantCommand::Create { name },
                } => crate::admin::key_json(&crate::admin::create_tenant(&config, &name).await?),
                AdminCommand::Key {
                    command: KeyCommand::Create { organization },
                } => crate::admin::key_json(&crate::admin::create_key(&config, organization).await?),
                AdminCommand::Key {
                    command: KeyCommand::Revoke { access_key },
                } => {
                    crate::admin::revoke_key(&config, &access_key).await?;
                    serde_json::json!({"access_key": access_key, "revoked": true})
                }
            };
            println!("{output}");
            Ok(())
        }
    }
}

fn print_welcome(config: &Config, api: SocketAddr, key: Option<&nuage_iam::NewApiKey>) {
    let credentials = config.data_dir.join("credentials.json");
    let region = config.gateway.regions.first().map_or("fr-par", String::as_str);
    let text = match key {
        Some(key) => format!(
            "nuage is ready on http://{api}\nA default tenant was created; its key is in {}.\nTry:\n  curl -H 'X-Auth-Token: {}' http://{api}/functions/v1alpha2/regions/{region}/namespaces",
            credentials.display(),
            key.secret_key.expose()
        ),
        None => format!(
            "nuage is ready on http://{api}\nTry:\n  curl -H \"X-Auth-Token: $(sed -n 's/.*\"secret_key\": \"\\(.*\\)\".*/\\1/p' {})\" http://{api}/functions/v1alpha2/regions/{region}/namespaces",
            credentials.display()
        ),
    };
    // A closed stdout (a pipe whose reader went away) must not stop a server that is up.
    if let Err(error) = writeln!(std::io::stdout().lock(), "{text}") {
        tracing::warn!(%error, "the welcome text could not be printed; nuage keeps serving");
    }
}

/// Parses the command line and runs it; returns the process exit code.
pub fn main() -> ExitCode {
    // Colours only for a person at a terminal: not in a file, a pipe or a log collector.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("NUAGE_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let ran = runtime.block_on(run(cli));
    // What still runs on a blocking thread once nuage stopped (a key pair being made for the
    // tokens stock takes seconds) is not waited for: it ends with the process.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{AdminCommand, Cli, Command, TenantCommand};
    use clap::Parser;
    use std::path::Path;

    #[test]
    fn common_options_are_taken_before_or_after_the_subcommand() {
        for arguments in [
            &["nuage", "admin", "tenant", "create", "--name", "x", "--data-dir", "d"][..],
            &["nuage", "admin", "--data-dir", "d", "tenant", "create", "--name", "x"],
            &["nuage", "--data-dir", "d", "admin", "tenant", "create", "--name", "x"],
        ] {
            let cli = Cli::try_parse_from(arguments).unwrap_or_else(|error| panic!("{arguments:?}: {error}"));
            assert_eq!(cli.common.data_dir.as_deref(), Some(Path::new("d")), "{arguments:?}");
            assert!(matches!(
                cli.command,
                Command::Admin {
                    command: AdminCommand::Tenant {
                        command: TenantCommand::Create { ref name }
                    }
                } if name == "x"
            ));
        }
        let cli = Cli::try_parse_from([
            "nuage",
            "serve",
            "--database-url",
            "sqlite://x.db",
            "--config",
            "c.toml",
        ])
        .unwrap();
        assert_eq!(cli.common.database_url.as_deref(), Some("sqlite://x.db"));
        assert_eq!(cli.common.config.as_deref(), Some(Path::new("c.toml")));
    }
}
