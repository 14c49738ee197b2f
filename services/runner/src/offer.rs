//! Which sandboxes this runner provides: the one instances run in when their function or
//! container names none (`runner.sandbox`), and those a spec may name (`runner.sandboxes`,
//! by default those installed). A spec naming one not offered fails to start, so that nothing
//! ever runs in a weaker sandbox than it asked for. The gateway reads the same offer to refuse
//! such a choice at the API.

use crate::config::{RunnerConfig, Sandbox, SandboxKind};
use crate::error::RunnerError;
use nuage_proto::common::v1 as common;
use std::path::PathBuf;

/// Returns `name` from the `PATH` (and the system directories root's `PATH` has).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The sandboxes a runner provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// What instances of a spec naming no sandbox run in; `None`: plain processes (`auto`
    /// where bubblewrap is not offered, or `none`).
    pub default: Option<SandboxKind>,
    /// What a spec may name, the default among them; in [`SandboxKind::ALL`]'s order.
    pub offered: Vec<SandboxKind>,
}

impl Offer {
    /// Returns what `config` offers, where `installed` says whether a sandbox's program is on
    /// this machine (it decides only when `runner.sandboxes` is unset).
    pub fn new(config: &RunnerConfig, installed: impl Fn(SandboxKind) -> bool) -> Self {
        let listed: Vec<SandboxKind> = match (&config.sandboxes, config.sandbox) {
            (Some(listed), _) => listed.clone(),
            (None, Sandbox::None) => Vec::new(),
            (None, _) => SandboxKind::ALL.into_iter().filter(|kind| installed(*kind)).collect(),
        };
        let default = match config.sandbox {
            Sandbox::Bubblewrap => Some(SandboxKind::Bubblewrap),
            Sandbox::Gvisor => Some(SandboxKind::Gvisor),
            Sandbox::Auto => listed
                .contains(&SandboxKind::Bubblewrap)
                .then_some(SandboxKind::Bubblewrap),
            Sandbox::None => None,
        };
        let offered = SandboxKind::ALL
            .into_iter()
            .filter(|kind| listed.contains(kind) || default == Some(*kind))
            .collect();
        Self { default, offered }
    }

    /// Returns what `config` offers on this machine.
    pub fn of_this_machine(config: &RunnerConfig) -> Self {
        Self::new(config, |kind| find_program(kind.program()).is_some())
    }

    /// Returns what `config` offers on a Kubernetes cluster: sandbox v1 is the cluster's
    /// default runtime, v2 needs `runner.kubernetes.gvisor_runtime_class`.
    pub fn of_cluster(config: &RunnerConfig) -> Self {
        let gvisor = config.kubernetes.gvisor_runtime_class.is_some();
        Self::new(config, |kind| kind == SandboxKind::Bubblewrap || gvisor)
    }

    /// Returns what the backend `config` names offers (what the gateway tells tenants).
    pub fn of_backend(config: &RunnerConfig) -> Self {
        if config.backend == "kubernetes" {
            Self::of_cluster(config)
        } else {
            Self::of_this_machine(config)
        }
    }

    /// Returns the sandbox instances of a spec naming `asked` (its wire value) run in (`None`:
    /// plain processes), or why it is not offered.
    pub fn resolve(&self, asked: i32) -> Result<Option<SandboxKind>, RunnerError> {
        let asked = common::Sandbox::try_from(asked).map_err(|_| RunnerError::SandboxNotOffered {
            sandbox: "unknown",
            offered: self.offered_names(SandboxKind::name),
        })?;
        match SandboxKind::from_proto(asked) {
            None => Ok(self.default),
            Some(kind) if self.offered.contains(&kind) => Ok(Some(kind)),
            Some(kind) => Err(RunnerError::SandboxNotOffered {
                sandbox: kind.name(),
                offered: self.offered_names(SandboxKind::name),
            }),
        }
    }

    /// Returns the offered sandboxes' names as `name` gives them, comma-separated, or `none`.
    pub fn offered_names(&self, name: impl Fn(SandboxKind) -> &'static str) -> String {
        if self.offered.is_empty() {
            return "none".to_owned();
        }
        self.offered
            .iter()
            .map(|kind| name(*kind))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sandbox: Sandbox, sandboxes: Option<Vec<SandboxKind>>) -> RunnerConfig {
        RunnerConfig {
            sandbox,
            sandboxes,
            ..RunnerConfig::default()
        }
    }

    #[test]
    fn unset_the_offer_is_what_is_installed_and_auto_prefers_bubblewrap() {
        let both = Offer::new(&config(Sandbox::Auto, None), |_| true);
        assert_eq!(both.default, Some(SandboxKind::Bubblewrap));
        assert_eq!(both.offered, SandboxKind::ALL);
        let gvisor_only = Offer::new(&config(Sandbox::Auto, None), |kind| kind == SandboxKind::Gvisor);
        assert_eq!(gvisor_only.default, None, "auto without bubblewrap: plain processes");
        assert_eq!(gvisor_only.offered, [SandboxKind::Gvisor]);
        let none = Offer::new(&config(Sandbox::None, None), |_| true);
        assert_eq!((none.default, none.offered.len()), (None, 0));
    }

    #[test]
    fn a_listed_offer_holds_whatever_is_installed_and_always_holds_the_default() {
        let listed = Offer::new(&config(Sandbox::Gvisor, Some(vec![SandboxKind::Gvisor])), |_| true);
        assert_eq!(listed.default, Some(SandboxKind::Gvisor));
        assert_eq!(listed.offered, [SandboxKind::Gvisor]);
        assert!(matches!(
            listed.resolve(common::Sandbox::V1.into()),
            Err(RunnerError::SandboxNotOffered {
                sandbox: "bubblewrap",
                ..
            })
        ));
        assert_eq!(
            listed.resolve(common::Sandbox::V2.into()).unwrap(),
            Some(SandboxKind::Gvisor)
        );
        assert_eq!(
            listed.resolve(common::Sandbox::Unspecified.into()).unwrap(),
            Some(SandboxKind::Gvisor)
        );
        assert!(listed.resolve(7).is_err(), "an unknown value is no default");
        // Not installed: still offered, so that the runner fails at start rather than quietly.
        let missing = Offer::new(&config(Sandbox::Gvisor, None), |_| false);
        assert_eq!(missing.offered, [SandboxKind::Gvisor]);
    }

    #[test]
    fn a_cluster_offers_v1_and_v2_only_with_a_gvisor_runtime_class() {
        let mut cluster = RunnerConfig {
            backend: "kubernetes".to_owned(),
            ..RunnerConfig::default()
        };
        let without = Offer::of_backend(&cluster);
        assert_eq!(without.default, Some(SandboxKind::Bubblewrap));
        assert_eq!(without.offered, [SandboxKind::Bubblewrap]);
        cluster.kubernetes.gvisor_runtime_class = Some("gvisor".to_owned());
        assert_eq!(Offer::of_backend(&cluster).offered, SandboxKind::ALL);
    }

    #[test]
    fn the_default_must_be_listed_and_none_lists_nothing() {
        assert!(
            config(Sandbox::Gvisor, Some(vec![SandboxKind::Bubblewrap]))
                .validate()
                .is_err()
        );
        assert!(
            config(Sandbox::None, Some(vec![SandboxKind::Gvisor]))
                .validate()
                .is_err()
        );
        assert!(config(Sandbox::None, Some(Vec::new())).validate().is_ok());
        assert!(
            config(Sandbox::Auto, Some(vec![SandboxKind::Gvisor]))
                .validate()
                .is_ok()
        );
        assert!(
            config(Sandbox::Bubblewrap, Some(SandboxKind::ALL.to_vec()))
                .validate()
                .is_ok()
        );
    }
}
