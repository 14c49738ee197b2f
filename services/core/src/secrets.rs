//! Secret environment variables of namespaces, functions and containers: write-only values,
//! kept sealed under a key derived from the master key (each bound to its owner and name, so a
//! sealed value copied elsewhere does not open), with an argon2id hash that is all a tenant
//! ever reads back (as Scaleway shows them, and as the Serverless plugin checks them).
//!
//! Values are opened only where an instance is started, and reach it as environment
//! variables; they are never logged, listed in clear or given to a build.

use crate::error::{ApiError, Reason, Violation};
use crate::seal::{self, SealError};
use crate::validate::{MAX_ENVIRONMENT_NAME_LENGTH, MAX_ENVIRONMENT_VARIABLES};
use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the sealing key is derived for (`MasterKey::derive`).
pub const SEALING_PURPOSE: &str = "secret-environment-variables";

/// One secret as stored: its value sealed, and the hash shown to its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSecret {
    /// An argon2id PHC string of the value.
    pub hashed_value: String,
    /// The value, sealed (see [`seal::seal`]) for `<owner>/<name>`.
    pub sealed: String,
}

/// A change a request asks for: `Some(value)` sets the secret, `None` removes it.
pub type SecretChange = (String, Option<String>);

/// The secrets of one owner (a namespace, function or container), by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretVariables(BTreeMap<String, StoredSecret>);

fn context(owner: &str, name: &str) -> String {
    format!("{owner}/{name}")
}

impl SecretVariables {
    /// Returns the secrets stored as `json` (`{"NAME": {"hashed_value", "sealed"}}`).
    pub fn from_json(json: &str) -> Result<Self, String> {
        serde_json::from_str(json)
            .map(Self)
            .map_err(|error| format!("stored secrets do not parse: {error}"))
    }

    /// Returns the stored form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Returns the secrets as stored, by name.
    pub fn stored(&self) -> &BTreeMap<String, StoredSecret> {
        &self.0
    }

    /// Returns their wire form, by name, for `owner` (its id).
    pub fn to_proto(&self, owner: &str) -> Vec<nuage_proto::common::v1::StoredSecret> {
        self.0
            .iter()
            .map(|(name, secret)| nuage_proto::common::v1::StoredSecret {
                key: name.clone(),
                hashed_value: secret.hashed_value.clone(),
                sealed_value: secret.sealed.clone(),
                owner_id: owner.to_owned(),
            })
            .collect()
    }

    /// Applies `changes` for `owner` (its id), as [`SealedChanges::prepare`] then
    /// [`SecretVariables::merge`] do, on this thread (for tests).
    #[cfg(test)]
    fn apply(&mut self, sealing: &[u8; 32], owner: &str, changes: Vec<SecretChange>) -> Result<(), ApiError> {
        check(&changes)?;
        self.merge(&SealedChanges::seal(sealing, owner, changes)?)
    }

    /// Sets and removes what `changes` say; if more secrets than allowed would be set, says so
    /// and changes nothing. Cheap: the values were hashed and sealed already.
    pub fn merge(&mut self, changes: &SealedChanges) -> Result<(), ApiError> {
        let mut next = self.0.clone();
        for (name, secret) in &changes.0 {
            match secret {
                Some(secret) => next.insert(name.clone(), secret.clone()),
                None => next.remove(name),
            };
        }
        if next.len() > MAX_ENVIRONMENT_VARIABLES {
            return Err(ApiError::invalid_argument(
                ARGUMENT,
                Reason::Constraint,
                format!(
                    "at most {MAX_ENVIRONMENT_VARIABLES} secret environment variables are allowed, {} would be set",
                    next.len()
                ),
            ));
        }
        self.0 = next;
        Ok(())
    }
}

/// The argument secrets arrive in.
const ARGUMENT: &str = "secret_environment_variables";

/// Checks `changes` before any value is hashed (a hash is costly on purpose, so a request never
/// gets more of them than the secrets it may keep): names, a name given twice, value lengths,
/// and how many values are set. Every violation is reported at once, naming
/// `secret_environment_variables.<name>`.
fn check(changes: &[SecretChange]) -> Result<(), ApiError> {
    let mut violations = Vec::new();
    let mut refuse = |name: &str, reason: Reason, help: String| {
        violations.push(Violation {
            argument_name: if name.is_empty() {
                ARGUMENT.to_owned()
            } else {
                format!("{ARGUMENT}.{name}")
            },
            reason: reason.as_str().to_owned(),
            help_message: help,
        });
    };
    let mut given = std::collections::HashSet::new();
    for (name, value) in changes {
        if !given.insert(name.as_str()) {
            refuse(
                name,
                Reason::Constraint,
                format!("secret name `{name}` is given more than once"),
            );
        } else if !crate::validate::is_environment_name(name) {
            refuse(
                name,
                Reason::Format,
                format!(
                    "secret name `{name}` must match [A-Za-z_][A-Za-z0-9_]* and be at most {MAX_ENVIRONMENT_NAME_LENGTH} characters"
                ),
            );
        } else if name.to_ascii_uppercase().starts_with("SCW_") {
            refuse(
                name,
                Reason::Constraint,
                format!("secret name `{name}` uses the reserved prefix `SCW_`"),
            );
        } else if let Some((reason, help)) = value
            .as_deref()
            .and_then(|value| crate::validate::value_problem(name, value))
        {
            refuse(name, reason, help);
        }
    }
    let set = changes.iter().filter(|(_, value)| value.is_some()).count();
    if set > MAX_ENVIRONMENT_VARIABLES {
        violations.push(Violation {
            argument_name: ARGUMENT.to_owned(),
            reason: Reason::Constraint.as_str().to_owned(),
            help_message: format!(
                "at most {MAX_ENVIRONMENT_VARIABLES} secret environment variables are allowed, {set} were given"
            ),
        });
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_arguments(violations))
    }
}

/// Secret changes for one owner, checked, with each value hashed and sealed: ready to be
/// merged into its secrets (again, if the merge has to be redone on a fresher copy).
#[derive(Debug, Clone, Default)]
pub struct SealedChanges(Vec<(String, Option<StoredSecret>)>);

impl SealedChanges {
    /// Checks `changes`, then hashes and seals their values for `owner` under `sealing` on a
    /// blocking thread: argon2 is slow on purpose and must not hold an async worker.
    pub async fn prepare(sealing: [u8; 32], owner: String, changes: Vec<SecretChange>) -> Result<Self, ApiError> {
        check(&changes)?;
        if changes.iter().all(|(_, value)| value.is_none()) {
            return Ok(Self(changes.into_iter().map(|(name, _)| (name, None)).collect()));
        }
        tokio::task::spawn_blocking(move || Self::seal(&sealing, &owner, changes))
            .await
            .map_err(|error| ApiError::internal(&error))?
    }

    /// Returns whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn seal(sealing: &[u8; 32], owner: &str, changes: Vec<SecretChange>) -> Result<Self, ApiError> {
        changes
            .into_iter()
            .map(|(name, value)| {
                let Some(value) = value else {
                    return Ok((name, None));
                };
                let hashed_value = argon2::Argon2::default()
                    .hash_password(value.as_bytes(), &SaltString::generate(&mut OsRng))
                    .map_err(|error| ApiError::internal(&error))?
                    .to_string();
                let sealed = seal::seal(sealing, &context(owner, &name), value.as_bytes());
                Ok((name, Some(StoredSecret { hashed_value, sealed })))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// Opens the value of secret `name` of `owner`, sealed as [`SealedChanges::prepare`] sealed it.
pub fn open(sealing: &[u8; 32], owner: &str, name: &str, sealed: &str) -> Result<String, SealError> {
    let plain = seal::open(sealing, &context(owner, name), sealed)?;
    String::from_utf8(plain).map_err(|_| SealError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn values_are_sealed_to_their_owner_and_hashed_with_argon2id() {
        let mut secrets = SecretVariables::default();
        secrets
            .apply(
                &KEY,
                "owner-a",
                vec![("TOKEN".into(), Some("s3cret".into())), ("GONE".into(), None)],
            )
            .unwrap();
        let stored = &secrets.stored()["TOKEN"];
        assert!(!stored.sealed.contains("s3cret") && !secrets.to_json().contains("s3cret"));
        assert!(stored.hashed_value.starts_with("$argon2id$"));
        let hash = PasswordHash::new(&stored.hashed_value).unwrap();
        assert!(argon2::Argon2::default().verify_password(b"s3cret", &hash).is_ok());
        assert_eq!(open(&KEY, "owner-a", "TOKEN", &stored.sealed).unwrap(), "s3cret");
        assert!(
            open(&KEY, "owner-b", "TOKEN", &stored.sealed).is_err(),
            "bound to its owner"
        );
        assert_eq!(SecretVariables::from_json(&secrets.to_json()).unwrap(), secrets);
        // A name with no value removes it; bad names change nothing and are all named.
        secrets.apply(&KEY, "owner-a", vec![("TOKEN".into(), None)]).unwrap();
        assert!(secrets.stored().is_empty());
        let error = secrets
            .apply(
                &KEY,
                "owner-a",
                vec![
                    ("OK".into(), Some("v".into())),
                    ("1BAD".into(), Some("v".into())),
                    ("SCW_X".into(), Some("v".into())),
                ],
            )
            .unwrap_err();
        assert_eq!(error.violations.len(), 2);
        assert!(secrets.stored().is_empty());
    }
}
