//! Names and labels of the objects the `kubernetes` backend makes, derived from ids alone, so
//! that the runner finds its objects again after a restart by computing their names or
//! selecting their labels.

use nuage_proto::runner::v1::Spec;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The label every object the runner makes carries, with [`MANAGER`] as its value.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`].
pub const MANAGER: &str = "nuage";
/// The label naming the tenant (organization) that owns an object.
pub const ORGANIZATION: &str = "nuage.dev/organization";
/// The label naming the nuage namespace an object belongs to.
pub const NAMESPACE: &str = "nuage.dev/namespace";
/// The label naming the function or container an object runs.
pub const APPLICATION: &str = "nuage.dev/application";
/// The label naming the deployment (the version) an object runs.
pub const DEPLOYMENT: &str = "nuage.dev/deployment";
/// The longest name of a namespace, a Service or a label value (a DNS-1123 label).
const MAX_LABEL: usize = 63;

/// Returns the first `length` hexadecimal digits of the SHA-256 of `raw`.
fn short_hash(raw: &str, length: usize) -> String {
    let mut digest = hex::encode(Sha256::digest(raw.as_bytes()));
    digest.truncate(length);
    digest
}

/// Returns a DNS-1123 label (and DNS-1035 when `prefix` starts with a letter): `prefix`
/// followed by `raw`. When `raw` does not fit as it is (a character outside lowercase letters,
/// digits and `-`, or too long), it is cut and made to fit and a hash of the whole of it is
/// appended, so that two different ids never share a name.
pub fn dns_label(prefix: &str, raw: &str) -> String {
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = format!("{prefix}{clean}");
    let fits = clean == raw && name.len() <= MAX_LABEL && !raw.is_empty() && !name.ends_with('-');
    if fits {
        return name;
    }
    let hash = short_hash(raw, 10);
    let mut kept = name;
    kept.truncate(MAX_LABEL - hash.len() - 1);
    format!("{}-{hash}", kept.trim_end_matches('-'))
}

/// Returns `raw` as a label value: as it is when it is one (at most 63 letters, digits, `-`,
/// `_` or `.`, beginning and ending with a letter or digit), else made to fit as
/// [`dns_label`] does.
pub fn label_value(raw: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let valid = raw.len() <= MAX_LABEL
        && raw.chars().all(allowed)
        && raw.starts_with(|c: char| c.is_ascii_alphanumeric())
        && raw.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid || raw.is_empty() {
        return raw.to_owned();
    }
    let clean: String = raw.chars().map(|c| if allowed(c) { c } else { '-' }).collect();
    let hash = short_hash(raw, 10);
    let mut kept = clean
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned();
    kept.truncate(MAX_LABEL - hash.len() - 1);
    let kept = kept.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if kept.is_empty() {
        hash
    } else {
        format!("{kept}-{hash}")
    }
}

/// Returns the Kubernetes namespace of the nuage namespace `namespace_id`.
pub fn namespace(prefix: &str, namespace_id: &str) -> String {
    dns_label(prefix, namespace_id)
}

/// Returns the name of the Deployment, the headless Service and the Secret of the version of
/// `spec`: one per application and version, so that a new version rolls out beside the one
/// serving.
pub fn version(spec: &Spec) -> String {
    dns_label("app-", &format!("{}-{}", spec.application_id, spec.version))
}

/// The name of the NetworkPolicy of each tenant namespace.
pub const NETWORK_POLICY: &str = "nuage-instances";

/// Returns the labels of a tenant's Kubernetes namespace (and of its NetworkPolicy).
pub fn namespace_labels(spec: &Spec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGER.to_owned()),
        (ORGANIZATION.to_owned(), label_value(&spec.organization_id)),
        (NAMESPACE.to_owned(), label_value(&spec.namespace_id)),
    ])
}

/// Returns the labels that select the pods of the version of `spec` (the Deployment's selector
/// and the Service's).
pub fn selector(spec: &Spec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (APPLICATION.to_owned(), label_value(&spec.application_id)),
        (DEPLOYMENT.to_owned(), label_value(&spec.version)),
    ])
}

/// Returns the labels of every object of the version of `spec`, and of its pods.
pub fn version_labels(spec: &Spec) -> BTreeMap<String, String> {
    let mut labels = namespace_labels(spec);
    labels.extend(selector(spec));
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
    }

    fn spec(application_id: &str, version: &str) -> Spec {
        Spec {
            application_id: application_id.to_owned(),
            version: version.to_owned(),
            organization_id: "4f0b8a3e-3c7e-4c1f-9d1e-0a6c2b7e5d11".to_owned(),
            namespace_id: "0c8e2a44-1b7d-4e55-8b9a-55d3c1f2e7a0".to_owned(),
            ..Spec::default()
        }
    }

    #[test]
    fn a_namespace_keeps_the_whole_id_after_its_prefix() {
        let id = "0c8e2a44-1b7d-4e55-8b9a-55d3c1f2e7a0";
        assert_eq!(namespace("nuage-", id), format!("nuage-{id}"));
        // The longest prefix the configuration accepts still keeps the whole id.
        let prefix = "abcdefghijklmnopqrstuvwxy-";
        assert_eq!(prefix.len(), 26);
        assert_eq!(namespace(prefix, id), format!("{prefix}{id}"));
        assert!(is_dns_label(&namespace(prefix, id)));
    }

    #[test]
    fn ids_that_do_not_fit_get_a_hash_so_that_two_never_share_a_name() {
        let upper = namespace("nuage-", "Team_A");
        let lower = namespace("nuage-", "team-a");
        assert!(is_dns_label(&upper), "{upper}");
        assert_eq!(lower, "nuage-team-a");
        assert_ne!(upper, lower);
        let long = "x".repeat(100);
        let cut = namespace("nuage-", &long);
        assert!(is_dns_label(&cut), "{cut}");
        assert_ne!(cut, namespace("nuage-", &"x".repeat(101)));
        assert!(is_dns_label(&namespace("nuage-", "")));
        assert!(is_dns_label(&namespace("nuage-", "-")));
    }

    #[test]
    fn each_version_has_a_name_of_its_own_that_is_a_service_name() {
        let application = "9b1f3c5e-7a2d-4e8f-b6c1-3d5e7f9a1b2c";
        let first = version(&spec(application, "01931f5e-8f6a-7c3d-9e2b-4a6c8e0f2b4d"));
        let second = version(&spec(application, "01931f5e-8f6a-7c3d-9e2b-4a6c8e0f2b4e"));
        assert!(is_dns_label(&first), "{first}");
        assert!(is_dns_label(&second), "{second}");
        assert_ne!(first, second);
        assert!(first.starts_with("app-9b1f3c5e"), "{first}");
        // Another application's version of the same id is another name too.
        assert_ne!(first, version(&spec("other", "01931f5e-8f6a-7c3d-9e2b-4a6c8e0f2b4d")));
    }

    #[test]
    fn labels_name_the_tenant_the_namespace_the_application_and_the_deployment() {
        let labels = version_labels(&spec("app", "v1"));
        assert_eq!(labels[MANAGED_BY], "nuage");
        assert_eq!(labels[ORGANIZATION], "4f0b8a3e-3c7e-4c1f-9d1e-0a6c2b7e5d11");
        assert_eq!(labels[NAMESPACE], "0c8e2a44-1b7d-4e55-8b9a-55d3c1f2e7a0");
        assert_eq!(labels[APPLICATION], "app");
        assert_eq!(labels[DEPLOYMENT], "v1");
    }

    #[test]
    fn label_values_that_do_not_fit_are_made_to() {
        assert_eq!(label_value("Ab.c_d-1"), "Ab.c_d-1");
        for raw in ["-a", "a b", &"y".repeat(64), "é", "_"] {
            let value = label_value(raw);
            assert!(value.len() <= 63, "{value}");
            assert!(value.starts_with(|c: char| c.is_ascii_alphanumeric()), "{value}");
            assert!(value.ends_with(|c: char| c.is_ascii_alphanumeric()), "{value}");
            assert!(
                value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            );
        }
        assert_ne!(label_value("a b"), label_value("a/b"));
    }
}
