//! The `kubernetes` backend pins a version's image to the digest its tag names at deploy time,
//! against a real OCI registry (`NUAGE_TEST_REGISTRY`, plain HTTP, as CI's docker-registry):
//! a tag pushed again afterwards names another manifest, and the pinned reference still the
//! first. The digest is checked against the manifest skopeo reads from the registry, and a
//! manifest deleted from it (pruned) can no longer be pinned by its digest. No
//! cluster is needed (pinning never asks it: the backend's client points nowhere).
//!
//! Without `NUAGE_TEST_REGISTRY` the test says it is skipped and why.

use nuage_core::ErrorCode;
use nuage_runner::{Backend, RunnerConfig};
use oci_client::client::{Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use sha2::{Digest, Sha256};
use std::time::Duration;

mod common;

/// Pushes a one-layer image holding `content` to `reference`.
async fn push(reference: &str, content: &[u8]) {
    let layer = ImageLayer::oci_v1(content.to_vec(), None);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", hex::encode(Sha256::digest(content)))]},
    });
    nuage_clients::registry::client(true, Duration::from_secs(30))
        .push(
            &reference.parse().expect("reference"),
            &[layer],
            Config::oci_v1(serde_json::to_vec(&config).unwrap(), None),
            &RegistryAuth::Anonymous,
            None,
        )
        .await
        .expect("pushed");
}

/// Runs skopeo with `arguments`; returns what it printed.
fn skopeo(arguments: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new("skopeo")
        .args(arguments)
        .output()
        .expect("skopeo runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// Returns the digest of the manifest the registry serves for `reference`, as skopeo reads it.
fn served_digest(reference: &str) -> String {
    let manifest = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]);
    format!("sha256:{}", hex::encode(Sha256::digest(&manifest)))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_versions_image_is_pinned_to_the_digest_its_tag_names_at_deploy_time() {
    let Ok(registry) = std::env::var("NUAGE_TEST_REGISTRY") else {
        println!("SKIPPED: NUAGE_TEST_REGISTRY is not set; this test pins images held by a real OCI registry");
        return;
    };
    let directory = tempfile::tempdir().unwrap();
    let config = RunnerConfig {
        registry_insecure: true,
        registry_host: Some(registry.clone()),
        ..RunnerConfig::default()
    };
    // A cluster that is never asked: pinning speaks to the registry only.
    let backend = common::backend_for(config, "https://127.0.0.1:9", directory.path()).await;

    let repository = format!("pin-{}", uuid::Uuid::new_v4().simple());
    let tagged = format!("{registry}/{repository}:v1");
    push(&tagged, b"first").await;
    let first = served_digest(&tagged);
    // Named without its registry, an image is in the installation's own.
    let pinned = backend.pin(&format!("{repository}:v1")).await.expect("pinned");
    assert_eq!(pinned, format!("{registry}/{repository}@{first}"));

    push(&tagged, b"second").await;
    let second = served_digest(&tagged);
    assert_ne!(first, second, "the tag names another manifest now");
    assert_eq!(
        served_digest(&pinned),
        first,
        "the pinned reference still names the first"
    );
    assert_eq!(
        backend.pin(&tagged).await.unwrap(),
        format!("{registry}/{repository}@{second}")
    );
    // A reference by digest is its own pin.
    assert_eq!(backend.pin(&pinned).await.unwrap(), pinned);

    let missing = backend.pin(&format!("{registry}/{repository}:nope")).await.unwrap_err();
    assert!(missing.to_string().contains(":nope"), "{missing}");

    // The first manifest pruned from the registry: pinning it again, as a rollback to it does,
    // is refused as the application's (answered 409), before any pod would try to pull it.
    skopeo(&["delete", "--tls-verify=false", &format!("docker://{pinned}")]);
    let pruned = backend.pin(&pinned).await.unwrap_err();
    assert_eq!(pruned.code(), ErrorCode::FailedPrecondition, "{pruned}");
    assert!(pruned.to_string().contains(&first), "{pruned}");
    assert_eq!(
        backend.pin(&tagged).await.unwrap(),
        format!("{registry}/{repository}@{second}")
    );
}
