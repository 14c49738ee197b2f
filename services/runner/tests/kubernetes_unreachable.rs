//! The `kubernetes` backend with a cluster that does not answer: a start fails at once, saying
//! what it was doing and which tenant namespace it was making, as a failed start the tenant
//! reads in its application's `error_message`; and one asking for sandbox v2 without a gVisor
//! RuntimeClass is refused before anything is asked of the cluster.

use nuage_core::{ApiError, ErrorCode};
use nuage_proto::common::v1::Sandbox;
use nuage_proto::runner::v1::{Kind, Spec};
use nuage_runner::{Backend, RunnerConfig, RunnerError};

mod common;

#[tokio::test(flavor = "multi_thread")]
async fn a_start_against_an_unreachable_cluster_fails_saying_what_it_was_doing() {
    // A port nothing listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let directory = tempfile::tempdir().unwrap();
    let server = format!("https://127.0.0.1:{port}");
    let backend = common::backend_for(RunnerConfig::default(), &server, directory.path()).await;
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
