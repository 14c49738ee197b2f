//! Writes the Kubernetes objects the `kubernetes` backend makes for a few representative
//! versions (a function, a container with its own command and health check, sandbox v2, secret
//! variables, public egress with cluster ranges and a pull secret) as YAML, one file per object,
//! so that CI checks them against the Kubernetes schemas (`deploy/validate`, strict), and
//! checks the Namespaces and the runner's RoleBindings among them against deploy/'s admission
//! policies, and every kind against the rights deploy/'s RBAC gives the runner
//! (`deploy/manifests_test.py`).
//!
//! The files go to `$NUAGE_K8S_OBJECTS_DIR` when it is set, else to a directory of the test's
//! own; either way each file is read back and must hold the object it was made from.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use nuage_proto::common::v1::{HealthCheck, Sandbox, StoredSecret};
use nuage_proto::runner::v1::{Kind, Spec};
use nuage_runner::kubernetes::{Objects, open_secrets};
use nuage_runner::{Egress, RunnerConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::Path;

const SEALING: [u8; 32] = [3; 32];

fn sealed(owner: &str, key: &str, value: &str) -> StoredSecret {
    StoredSecret {
        key: key.to_owned(),
        owner_id: owner.to_owned(),
        sealed_value: nuage_core::seal::seal(&SEALING, &format!("{owner}/{key}"), value.as_bytes()),
        hashed_value: String::new(),
    }
}

fn function() -> Spec {
    Spec {
        application_id: "9b1f3c5e-7a2d-4e8f-b6c1-3d5e7f9a1b2c".to_owned(),
        version: "01931f5e-8f6a-7c3d-9e2b-4a6c8e0f2b4d".to_owned(),
        organization_id: "4f0b8a3e-3c7e-4c1f-9d1e-0a6c2b7e5d11".to_owned(),
        namespace_id: "0c8e2a44-1b7d-4e55-8b9a-55d3c1f2e7a0".to_owned(),
        kind: Kind::Function.into(),
        image: "funcscwnsabc/hello:01931f5e".to_owned(),
        memory_limit_mb: 128,
        cpu_limit_mcpu: 70,
        environment: [("SCW_APPLICATION_ID".to_owned(), "9b1f3c5e".to_owned())].into(),
        secrets: vec![sealed("0c8e2a44", "API_KEY", "k3y")],
        ..Spec::default()
    }
}

fn container() -> Spec {
    Spec {
        application_id: "5d2e8f1a-3b4c-4d6e-8f0a-1b2c3d4e5f60".to_owned(),
        version: "01931f60-0000-7000-8000-000000000001".to_owned(),
        kind: Kind::Container.into(),
        image: "registry.example.com/team/api@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            .to_owned(),
        memory_limit_mb: 2048,
        cpu_limit_mcpu: 1120,
        port: 3000,
        command: vec!["/srv/api".to_owned()],
        args: vec!["--listen".to_owned(), ":3000".to_owned()],
        probe: Some(HealthCheck {
            failure_threshold: 4,
            interval_ms: 5000,
            http_path: Some("/healthz".to_owned()),
        }),
        sandbox: Sandbox::V2.into(),
        ..function()
    }
}

/// Writes `object` to `directory/name.yaml` and returns it read back.
fn write<T: Serialize + DeserializeOwned>(directory: &Path, name: &str, object: &T) -> T {
    let path = directory.join(format!("{name}.yaml"));
    std::fs::write(&path, serde_yaml_ng::to_string(object).expect("serialises")).expect("writes");
    serde_yaml_ng::from_str(&std::fs::read_to_string(&path).expect("reads")).expect("parses back")
}

#[test]
fn generated_objects_are_written_for_the_schema_check() {
    let kept = std::env::var_os("NUAGE_K8S_OBJECTS_DIR");
    let scratch = tempfile::tempdir().expect("temporary directory");
    let directory = kept.as_deref().map_or(scratch.path(), Path::new);
    std::fs::create_dir_all(directory).expect("objects directory");

    let plain = RunnerConfig {
        registry_host: Some("registry.nuage.example".to_owned()),
        ..RunnerConfig::default()
    };
    let mut open = plain.clone();
    open.egress = Egress::Public;
    open.kubernetes.gvisor_runtime_class = Some("gvisor".to_owned());
    open.kubernetes.pull_secret = Some("nuage-registry".to_owned());
    open.kubernetes.cluster_cidrs = vec!["198.18.0.0/15".to_owned(), "fd00:10:96::/112".to_owned()];

    let mut written = 0;
    for (label, config, spec) in [("function", &plain, function()), ("container", &open, container())] {
        let objects = Objects::new(config);
        let secrets = open_secrets(&spec, &SEALING).expect("secrets open");
        let namespace = objects.namespace(&spec).expect("namespace objects");
        let version = objects.version(&spec, 1, &secrets).expect("version objects");
        let read: Namespace = write(directory, &format!("{label}-namespace"), &namespace.namespace);
        assert_eq!(read, namespace.namespace);
        let read: RoleBinding = write(directory, &format!("{label}-rolebinding"), &namespace.role_binding);
        assert_eq!(read, namespace.role_binding);
        let read: NetworkPolicy = write(directory, &format!("{label}-networkpolicy"), &namespace.network_policy);
        assert_eq!(read, namespace.network_policy);
        let read: Secret = write(directory, &format!("{label}-secret"), &version.secret);
        assert_eq!(read, version.secret);
        let read: Deployment = write(directory, &format!("{label}-deployment"), &version.deployment);
        assert_eq!(read, version.deployment);
        let read: Service = write(directory, &format!("{label}-service"), &version.service);
        assert_eq!(read, version.service);
        written += 6;
        if let Some(name) = &config.kubernetes.pull_secret {
            let source = Secret {
                metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(config.kubernetes.system_namespace.clone()),
                    ..Default::default()
                },
                type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
                data: Some(BTreeMap::from([(
                    ".dockerconfigjson".to_owned(),
                    k8s_openapi::ByteString(br#"{"auths":{}}"#.to_vec()),
                )])),
                ..Secret::default()
            };
            let copy = objects.pull_secret(&source, namespace.namespace.metadata.name.as_deref().unwrap());
            let read: Secret = write(directory, &format!("{label}-pullsecret"), &copy);
            assert_eq!(read, copy);
            written += 1;
        }
    }
    // Each file names its kind and API version, as a schema check needs.
    for entry in std::fs::read_dir(directory).expect("lists") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("reads");
        assert!(text.starts_with("apiVersion: "), "{text}");
        assert!(text.contains("\nkind: "), "{text}");
    }
    assert!(written >= 13);
    match kept {
        Some(kept) => println!("{written} objects written to {}", Path::new(&kept).display()),
        None => println!("{written} objects written and read back (set NUAGE_K8S_OBJECTS_DIR to keep them)"),
    }
}
