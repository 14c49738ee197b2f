//! The `kubernetes` backend against a real cluster: starts instances (a Deployment scaled to
//! the instances held, each on a ready pod of its own), stops one (its pod goes, the replicas
//! drop), recovers the running ones in a fresh backend as after a runner restart, rolls out a
//! new version beside the old one and removes the old one once nothing runs it, follows a
//! pod's output, and cleans up when the application goes: its Kubernetes namespace too, made
//! again by the next start. A pod of another namespace tries to
//! open a connection to an instance and is refused, while one labelled as the router in
//! nuage's own namespace gets through (the cluster's network plugin must enforce
//! NetworkPolicies).
//!
//! Runs only when `NUAGE_TEST_KUBECONFIG` names a kubeconfig whose cluster may be used
//! (namespaces `nuage-test-*` are made and deleted); the pods run
//! `registry.k8s.io/e2e-test-images/agnhost` (override with `NUAGE_TEST_KUBERNETES_IMAGE`).
//! Without it the test says it is skipped and why. Pod addresses are not dialled: the test may
//! run outside the cluster network.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use nuage_proto::runner::v1::{Kind, OutputLine, Spec};
use nuage_runner::{Backend, BackendParts, Current, KubernetesBackend, RunnerConfig};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

/// Polls `check` until it answers `Some`, within `seconds`.
async fn eventually<T, F: Future<Output = Option<T>>>(seconds: u64, what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {seconds} s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn spec(namespace_id: &str, application_id: &str, version: &str, image: &str) -> Spec {
    Spec {
        application_id: application_id.to_owned(),
        version: version.to_owned(),
        organization_id: uuid::Uuid::new_v4().to_string(),
        namespace_id: namespace_id.to_owned(),
        kind: Kind::Container.into(),
        image: image.to_owned(),
        memory_limit_mb: 128,
        cpu_limit_mcpu: 100,
        port: 8080,
        command: vec!["/agnhost".to_owned()],
        args: vec!["netexec".to_owned(), "--http-port=8080".to_owned()],
        ..Spec::default()
    }
}

async fn replicas(deployments: &Api<Deployment>, name: &str) -> Option<i32> {
    deployments
        .get_opt(name)
        .await
        .ok()?
        .and_then(|deployment| deployment.spec?.replicas)
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_are_pods_scaled_recovered_rolled_out_and_removed() {
    let Some(kubeconfig) = std::env::var_os("NUAGE_TEST_KUBECONFIG") else {
        println!(
            "SKIPPED: NUAGE_TEST_KUBECONFIG is not set; this test needs a Kubernetes cluster to run the \
             `kubernetes` backend against (none is available here)"
        );
        return;
    };
    let image = std::env::var("NUAGE_TEST_KUBERNETES_IMAGE")
        .unwrap_or_else(|_| "registry.k8s.io/e2e-test-images/agnhost:2.53".to_owned());
    let mut config = RunnerConfig {
        backend: "kubernetes".to_owned(),
        start_timeout_seconds: 180,
        ..RunnerConfig::default()
    };
    config.kubernetes.kubeconfig = Some(PathBuf::from(kubeconfig));
    config.kubernetes.namespace_prefix = "nuage-test-".to_owned();
    let run = uuid::Uuid::new_v4().simple().to_string();
    config.kubernetes.system_namespace = format!("nuage-test-system-{}", &run[..8]);
    config.kubernetes.router_pod_labels = [("nuage-test/router".to_owned(), run.clone())].into();
    config.validate().expect("valid config");
    let output = tokio::sync::broadcast::channel::<OutputLine>(1024).0;
    let mut lines = output.subscribe();
    let directory = tempfile::tempdir().unwrap();
    let parts = || BackendParts {
        work_dir: directory.path().join("work"),
        registry_dir: directory.path().join("registry"),
        output: output.clone(),
        logs: None,
        sealing: [5; 32],
    };
    let backend = KubernetesBackend::new(&config, parts())
        .await
        .expect("cluster reachable");
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(config.kubernetes.kubeconfig.as_ref().unwrap()).unwrap(),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();

    let namespace_id = uuid::Uuid::new_v4().to_string();
    let application_id = uuid::Uuid::new_v4().to_string();
    let first = spec(&namespace_id, &application_id, "v1", &image);
    let namespace = format!("nuage-test-{namespace_id}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);

    // Two instances: two ready pods, one each, and two replicas.
    let one = backend.start(&first, "one").await.expect("first instance");
    let two = backend.start(&first, "two").await.expect("second instance");
    assert_ne!(one.address, two.address, "each instance holds a pod of its own");
    let v1_name = eventually(30, "the version's deployment", || async {
        let listed = deployments.list(&ListParams::default()).await.ok()?;
        listed.items.first()?.metadata.name.clone()
    })
    .await;
    assert_eq!(replicas(&deployments, &v1_name).await, Some(2));
    let pod = pods.list(&ListParams::default()).await.unwrap().items.remove(0);
    let container = &pod.spec.as_ref().unwrap().containers[0];
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        pod.metadata.labels.as_ref().unwrap()["nuage.dev/application"],
        application_id
    );

    // Only the router's pods reach an instance: a pod elsewhere is refused.
    let intruder_namespace = format!("nuage-test-intruder-{}", &run[..8]);
    let router = probe(
        &client,
        &config.kubernetes.system_namespace,
        &config.kubernetes.router_pod_labels,
        &image,
        &two.address,
    )
    .await;
    let intruder = probe(&client, &intruder_namespace, &Default::default(), &image, &two.address).await;
    assert_eq!(router, "Succeeded", "the router's pod connects to the instance");
    assert_eq!(intruder, "Failed", "a pod of another namespace is refused");

    // The pods' output reaches the runner's output as a local instance's does.
    eventually(60, "a line of the instances' output", || {
        let line = lines
            .try_recv()
            .ok()
            .filter(|line| line.application_id == application_id);
        async move { line }
    })
    .await;

    // Stopping one gives its pod up: one replica is left.
    drop(one.stop);
    assert_eq!(one.exited.await.unwrap(), "stopped");
    eventually(60, "one replica after a stop", || async {
        (replicas(&deployments, &v1_name).await == Some(1)).then_some(())
    })
    .await;

    // A runner restarting finds the running instance again.
    let restarted = KubernetesBackend::new(&config, parts()).await.unwrap();
    let current = Current {
        versions: [(application_id.clone(), "v1".to_owned())].into(),
        ..Current::default()
    };
    let mut adopted = restarted.recover(current.clone()).await;
    assert_eq!(adopted.len(), 1, "the one running instance");
    assert_eq!(adopted[0].instance_id, "two", "under the id the router knows it by");
    assert_eq!(adopted[0].running.address, two.address);
    let adopted = adopted.remove(0);
    // The first backend lets go of it without scaling (as a process that ended would).
    std::mem::forget(two.stop);

    // A new version rolls out beside the old one, which stays until nothing runs it.
    let second = spec(&namespace_id, &application_id, "v2", &image);
    let three = restarted.start(&second, "three").await.expect("new version's instance");
    let current = Current {
        versions: [(application_id.clone(), "v2".to_owned())].into(),
        ..Current::default()
    };
    restarted.release(current.clone()).await;
    assert!(deployments.get_opt(&v1_name).await.unwrap().is_some(), "still draining");
    drop(adopted.running.stop);
    assert_eq!(adopted.running.exited.await.unwrap(), "stopped");
    restarted.release(current).await;
    eventually(30, "the old version removed", || async {
        deployments.get_opt(&v1_name).await.ok()?.is_none().then_some(())
    })
    .await;

    // The application goes: its last version's objects go with it.
    drop(three.stop);
    assert_eq!(three.exited.await.unwrap(), "stopped");
    restarted.release(Current::default()).await;
    eventually(30, "every version removed", || async {
        deployments
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    // Nothing of the tenant namespace is left (as when it is deleted in nuage): its
    // Kubernetes namespace goes too...
    let namespaces: Api<Namespace> = Api::all(client.clone());
    eventually(180, "the tenant's Kubernetes namespace removed", || async {
        namespaces.get_opt(&namespace).await.ok()?.is_none().then_some(())
    })
    .await;
    // ...and a later deploy makes it again, with everything in it.
    let again = spec(&namespace_id, &application_id, "v3", &image);
    let four = restarted
        .start(&again, "four")
        .await
        .expect("a start after the namespace went");
    drop(four.stop);
    assert_eq!(four.exited.await.unwrap(), "stopped");
    restarted.release(Current::default()).await;
    eventually(180, "the tenant's Kubernetes namespace removed again", || async {
        namespaces.get_opt(&namespace).await.ok()?.is_none().then_some(())
    })
    .await;
    for namespace in [intruder_namespace, config.kubernetes.system_namespace.clone()] {
        Api::<Namespace>::all(client.clone())
            .delete(&namespace, &DeleteParams::default())
            .await
            .expect("test namespace deleted");
    }
}

/// Runs, in `namespace` (made if missing) with `labels`, a pod that opens a TCP connection to
/// `address`; returns how it ended (`Succeeded`: connected, `Failed`: refused or timed out).
async fn probe(
    client: &kube::Client,
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
    image: &str,
    address: &str,
) -> String {
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(namespace).await.unwrap().is_none() {
        let made = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&Default::default(), &made)
            .await
            .expect("probe namespace");
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("probe".to_owned()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_owned()),
            containers: vec![Container {
                name: "probe".to_owned(),
                image: Some(image.to_owned()),
                command: Some(vec!["/agnhost".to_owned()]),
                args: Some(vec![
                    "connect".to_owned(),
                    address.to_owned(),
                    "--timeout=5s".to_owned(),
                ]),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    pods.create(&Default::default(), &pod).await.expect("probe pod");
    let phase = eventually(180, "the probe's end", || async {
        let phase = pods.get("probe").await.ok()?.status?.phase?;
        (phase == "Succeeded" || phase == "Failed").then_some(phase)
    })
    .await;
    pods.delete("probe", &DeleteParams::default())
        .await
        .expect("probe deleted");
    phase
}
