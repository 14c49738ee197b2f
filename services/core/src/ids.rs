//! Resource ids: UUID v4 strings on the wire.

use crate::error::{ApiError, Reason};
use uuid::Uuid;

/// Returns a fresh random id.
pub fn new_id() -> Uuid {
    Uuid::new_v4()
}

/// Returns the UUID in `value`, or an `InvalidArgument` error naming `argument`.
pub fn parse_id(argument: &str, value: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(value)
        .map_err(|_| ApiError::invalid_argument(argument, Reason::Format, format!("`{value}` is not a valid UUID")))
}

/// Returns the UUID in `value`, which the request must give: an `InvalidArgument` error naming
/// `argument` when it is empty (required) or not a UUID.
pub fn required_id(argument: &str, value: &str) -> Result<Uuid, ApiError> {
    crate::validate::required(argument, value)?;
    parse_id(argument, value)
}

/// Returns the UUID in `value`, or `None` when it is absent or empty (a filter not given);
/// an `InvalidArgument` error naming `argument` when it is not a UUID.
pub fn optional_id(argument: &str, value: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    value
        .filter(|value| !value.is_empty())
        .map(|value| parse_id(argument, value))
        .transpose()
}

/// Splits an image repository (`[host/]path`, without tag or digest) into the registry host it
/// names, if any, and its path: as Docker reads it, the first segment is a host when another
/// follows and it has a `.` or a `:`, or is `localhost`.
pub fn repository_host(repository: &str) -> (Option<&str>, &str) {
    match repository.split_once('/') {
        Some((first, path)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (Some(first), path)
        }
        _ => (None, repository),
    }
}

/// Returns whether registry hosts `a` and `b` (`host[:port]`) are spelled as one: host names
/// are compared without regard to case, and HTTPS's port 443 is the same as none.
pub fn same_registry(a: &str, b: &str) -> bool {
    let canonical = |host: &str| host.strip_suffix(":443").unwrap_or(host).to_ascii_lowercase();
    canonical(a) == canonical(b)
}

#[cfg(test)]
mod repository_tests {
    use super::{repository_host, same_registry};

    #[test]
    fn a_registry_spelled_in_capitals_or_with_its_default_port_is_the_same() {
        assert!(same_registry("Registry.Example", "registry.example:443"));
        assert!(same_registry("127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(!same_registry("registry.example:5000", "registry.example"));
        assert!(!same_registry("localhost:5000", "127.0.0.1:5000"));
    }

    #[test]
    fn hosts_are_read_as_docker_reads_them() {
        assert_eq!(
            repository_host("registry.example/a/b"),
            (Some("registry.example"), "a/b")
        );
        assert_eq!(repository_host("127.0.0.1:9/a"), (Some("127.0.0.1:9"), "a"));
        assert_eq!(repository_host("localhost/a"), (Some("localhost"), "a"));
        assert_eq!(repository_host("team/app"), (None, "team/app"));
        assert_eq!(repository_host("app"), (None, "app"));
    }
}
