//! What a release removes from the cluster: the versions that are neither current nor run by
//! an instance, then the namespaces left with no version (their tenant namespace was deleted,
//! or nothing of it is deployed any more). A namespace whose versions could not all be listed
//! is never removed.

use crate::backend::Current;
use std::collections::HashSet;

/// A version found in the cluster: its Kubernetes namespace and name, its application and
/// version ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The Kubernetes namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub name: String,
    /// Its application.
    pub application_id: String,
    /// Its version.
    pub version: String,
}

/// What to remove.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Versions, by namespace and name.
    pub versions: Vec<(String, String)>,
    /// Namespaces; each must still have no version starting when it is removed.
    pub namespaces: Vec<String>,
}

/// Returns what to remove of `found` (the versions of the namespaces `looked`, all listed)
/// given the `current` versions and those `live` (by namespace and name: draining, or
/// starting).
pub fn plan(found: &[Found], looked: &[String], current: &Current, live: &HashSet<(String, String)>) -> Plan {
    let mut plan = Plan::default();
    let mut kept: HashSet<&str> = live.iter().map(|(namespace, _)| namespace.as_str()).collect();
    for version in found {
        let is_current = current.versions.get(&version.application_id) == Some(&version.version);
        if is_current || live.contains(&(version.namespace.clone(), version.name.clone())) {
            kept.insert(&version.namespace);
        } else {
            plan.versions.push((version.namespace.clone(), version.name.clone()));
        }
    }
    plan.namespaces = looked
        .iter()
        .filter(|namespace| !kept.contains(namespace.as_str()))
        .cloned()
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(namespace: &str, name: &str, application_id: &str, version: &str) -> Found {
        Found {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            application_id: application_id.to_owned(),
            version: version.to_owned(),
        }
    }

    #[test]
    fn a_namespace_goes_with_its_last_version_and_only_once_it_has_none_left() {
        let found = [
            // A deleted tenant namespace: its applications are current no more.
            found("nuage-gone", "v-a1", "a", "1"),
            found("nuage-gone", "v-b1", "b", "1"),
            // A redeployed application: its old version goes, its namespace stays.
            found("nuage-live", "v-c1", "c", "1"),
            found("nuage-live", "v-c2", "c", "2"),
            // An old version still draining keeps its namespace.
            found("nuage-draining", "v-d1", "d", "1"),
            // Not current in a namespace whose listing failed: the version goes, the
            // namespace (not looked at whole) does not.
            found("nuage-unlisted", "v-e1", "e", "1"),
        ];
        let looked: Vec<String> = [
            "nuage-gone",
            "nuage-live",
            "nuage-draining",
            "nuage-empty",
            "nuage-starting",
        ]
        .map(str::to_owned)
        .to_vec();
        let current = Current {
            versions: [("c", "2"), ("d", "2")]
                .map(|(application, version)| (application.to_owned(), version.to_owned()))
                .into(),
            ..Current::default()
        };
        // A version draining, and one starting in a namespace that has no Deployment yet.
        let live = HashSet::from([
            ("nuage-draining".to_owned(), "v-d1".to_owned()),
            ("nuage-starting".to_owned(), "v-f1".to_owned()),
        ]);
        let plan = plan(&found, &looked, &current, &live);
        let versions: Vec<(&str, &str)> = plan.versions.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            versions,
            [
                ("nuage-gone", "v-a1"),
                ("nuage-gone", "v-b1"),
                ("nuage-live", "v-c1"),
                ("nuage-unlisted", "v-e1")
            ]
        );
        assert_eq!(plan.namespaces, ["nuage-gone", "nuage-empty"]);
    }
}
