//! What the `kubernetes` backend's tests share.

use nuage_runner::{KubernetesBackend, RunnerConfig};
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
    let output = tokio::sync::broadcast::channel(16).0;
    let (work_dir, layouts) = (directory.join("work"), directory.join("registry"));
    KubernetesBackend::new(&config, work_dir, layouts, output, None, [1; 32])
        .await
        .expect("backend")
}
