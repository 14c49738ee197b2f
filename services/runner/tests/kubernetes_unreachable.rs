//! The `kubernetes` backend with a cluster that does not answer: a start fails at once, saying
//! what it was doing and which tenant namespace it was making, as a failed start the tenant
//! reads in its application's `error_message`; and one asking for sandbox v2 without a gVisor
//! RuntimeClass is refused before anything is asked of the cluster.

use nuage_core::{ApiError, ErrorCode};
use nuage_proto::common::v1::Sandbox;
use nuage_proto::runner::v1::{Kind, Spec};
use nuage_runner::{Backend, KubernetesBackend, RunnerConfig, RunnerError};

#[tokio::test(flavor = "multi_thread")]
async fn a_start_against_an_unreachable_cluster_fails_saying_what_it_was_doing() {
    // A port nothing listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let directory = tempfile::tempdir().unwrap();
    let kubeconfig = directory.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"https://127.0.0.1:{port}\"}}}}]\n\
             users: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\n\
             current-context: x\n"
        ),
    )
    .unwrap();
    let mut config = RunnerConfig {
        backend: "kubernetes".to_owned(),
        ..RunnerConfig::default()
    };
    config.kubernetes.kubeconfig = Some(kubeconfig);
    let output = tokio::sync::broadcast::channel(16).0;
    let backend = KubernetesBackend::new(&config, output, None, [1; 32])
        .await
        .expect("backend");
    let spec = Spec {
        application_id: "app".to_owned(),
        version: "v1".to_owned(),
        organization_id: "org".to_owned(),
        namespace_id: "0c8e2a44-1b7d-4e55-8b9a-55d3c1f2e7a0".to_owned(),
        kind: Kind::Container.into(),
        image: "registry.example/app@sha256:00".to_owned(),
        ..Spec::default()
    };
    let started = tokio::time::timeout(std::time::Duration::from_secs(20), backend.start(&spec, "one"))
        .await
        .expect("a refused connection fails at once");
    let error = started.unwrap_err();
    assert!(matches!(error, RunnerError::Kubernetes { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("applying namespace nuage-0c8e2a44-1b7d-4e55-8b9a-55d3c1f2e7a0: "),
        "{error}"
    );
    assert_eq!(ApiError::from(error).code, ErrorCode::FailedPrecondition);

    let v2 = Spec {
        sandbox: Sandbox::V2.into(),
        ..spec
    };
    let refused = backend.start(&v2, "two").await.unwrap_err();
    assert!(
        matches!(refused, RunnerError::SandboxNotOffered { sandbox: "gvisor", .. }),
        "{refused:?}"
    );
}
