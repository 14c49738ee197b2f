//! Namespace domain types; their constructors validate, so invalid values cannot exist.

use crate::error::{NamespacesError, required};
use nuage_core::validate;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Longest namespace name. Function host names are `<namespace><suffix>-<function>`, one DNS
/// label of at most 63 characters, so a namespace takes at most about half of it.
pub const MAX_NAME_LENGTH: usize = 34;

/// A namespace name: usable as part of a DNS host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceName(String);

impl NamespaceName {
    /// Returns the name in `value`, or an error naming `name`.
    pub fn parse(value: &str) -> Result<Self, NamespacesError> {
        if value.is_empty() {
            return Err(required("name"));
        }
        validate::dns_label("name", value, MAX_NAME_LENGTH)?;
        Ok(Self(value.to_owned()))
    }

    /// Returns the name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A free-text description, at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Description(String);

impl Description {
    /// Returns the description in `value`, or an error naming `description`.
    pub fn parse(value: &str) -> Result<Self, NamespacesError> {
        validate::description(value)?;
        Ok(Self(value.to_owned()))
    }

    /// Returns the text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid set of environment variables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvironmentVariables(BTreeMap<String, String>);

impl EnvironmentVariables {
    /// Returns the variables in `values`, or an error naming each offending variable.
    pub fn parse(values: std::collections::HashMap<String, String>) -> Result<Self, NamespacesError> {
        validate::environment_variables("environment_variables", &values)?;
        Ok(Self(values.into_iter().collect()))
    }

    /// Returns the variables stored as JSON.
    pub fn from_json(json: &str) -> Result<Self, NamespacesError> {
        serde_json::from_str(json)
            .map(Self)
            .map_err(|error| NamespacesError::Corrupt(error.to_string()))
    }

    /// Returns the variables as a JSON object, for storage.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).expect("a string map serialises")
    }

    /// Returns the variables.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

/// Where a namespace is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceStatus {
    /// Stored; its registry namespace does not exist yet.
    Pending,
    /// Usable.
    Ready,
    /// Being deleted with everything it owns.
    Deleting,
    /// Provisioning failed; `error_message` says why.
    Error,
}

impl NamespaceStatus {
    /// Returns the stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Deleting => "deleting",
            Self::Error => "error",
        }
    }

    /// Returns the status stored as `value`.
    pub fn parse(value: &str) -> Result<Self, NamespacesError> {
        Ok(match value {
            "pending" => Self::Pending,
            "ready" => Self::Ready,
            "deleting" => Self::Deleting,
            "error" => Self::Error,
            other => {
                return Err(NamespacesError::Corrupt(format!("unknown status `{other}`")));
            }
        })
    }
}

/// Sort orders of a namespace list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceOrder {
    /// Oldest first (the default).
    CreatedAtAsc,
    /// Newest first.
    CreatedAtDesc,
    /// By name, A to Z.
    NameAsc,
    /// By name, Z to A.
    NameDesc,
}

impl NamespaceOrder {
    /// Returns the SQL `order by` clause; ids break ties so pages never overlap.
    pub fn sql(self) -> &'static str {
        match self {
            Self::CreatedAtAsc => "created_at asc, id asc",
            Self::CreatedAtDesc => "created_at desc, id desc",
            Self::NameAsc => "name asc, id asc",
            Self::NameDesc => "name desc, id desc",
        }
    }
}

/// A namespace as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Its id.
    pub id: Uuid,
    /// The owning tenant.
    pub organization_id: Uuid,
    /// The owning tenant's project.
    pub project_id: Uuid,
    /// The region it lives in.
    pub region: String,
    /// Its name, unique per organization and region.
    pub name: NamespaceName,
    /// Its description.
    pub description: Description,
    /// Variables given to every function and container in it.
    pub environment_variables: EnvironmentVariables,
    /// Its tags.
    pub tags: nuage_core::validate::Tags,
    /// Its secret variables, sealed.
    pub secrets: nuage_core::secrets::SecretVariables,
    /// Where it is in its life.
    pub status: NamespaceStatus,
    /// Why it is in `error`, else empty.
    pub error_message: String,
    /// Its registry namespace, empty while pending.
    pub registry_namespace_id: String,
    /// Where its images are pushed, empty while pending.
    pub registry_endpoint: String,
    /// What makes its applications' endpoints its own (see
    /// [`nuage_applications::endpoint_label`]); empty only for a namespace made before
    /// suffixes existed, until [`crate::NamespaceStore::fill_endpoint_suffixes`] runs.
    pub endpoint_suffix: String,
    /// Unix microseconds.
    pub created_at: i64,
    /// Unix microseconds.
    pub updated_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_descriptions_are_checked() {
        assert!(NamespaceName::parse("demo-ns").is_ok());
        assert!(NamespaceName::parse("").is_err());
        assert!(NamespaceName::parse("Demo").is_err());
        assert!(Description::parse(&"x".repeat(255)).is_ok());
        assert!(Description::parse(&"x".repeat(256)).is_err());
        let variables = EnvironmentVariables::parse([("A".to_owned(), "1".to_owned())].into()).unwrap();
        assert_eq!(
            EnvironmentVariables::from_json(&variables.to_json()).unwrap(),
            variables
        );
    }
}
