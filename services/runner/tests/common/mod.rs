//! What the `kubernetes` backend's tests share.

use nuage_runner::{BackendParts, KubernetesBackend, RunnerConfig};
use std::path::Path;

/// Returns the `kubernetes` backend of `config` for the cluster at `server` (an address that
/// may never answer), with its kubeconfig and its work directories under `directory`.
pub async fn backend_for(mut config: RunnerConfig, server: &str, directory: &Path) -> KubernetesBackend {
    let kubeconfig = directory.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{server}\"}}}}]\n\
             users: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\n\
             current-context: x\n"
        ),
    )
    .unwrap();
    config.backend = "kubernetes".to_owned();
    config.kubernetes.kubeconfig = Some(kubeconfig);
    let parts = BackendParts {
        work_dir: directory.join("work"),
        registry_dir: directory.join("registry"),
        output: tokio::sync::broadcast::channel(16).0,
        logs: None,
        sealing: [1; 32],
    };
    KubernetesBackend::new(&config, parts).await.expect("backend")
}
