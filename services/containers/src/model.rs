//! What makes a container a container: the image it runs.

use nuage_applications::{Application, Kind};
use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_proto::applications::v1 as wire;
use nuage_proto::runner::v1 as runner;

/// A container as stored.
pub type Container = Application<ContainerKind>;

/// A container's own fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerKind {
    /// The image it runs (`[registry/]repository[:tag][@digest]`).
    pub registry_image: String,
}

impl Kind for ContainerKind {
    const NOUN: &'static str = "container";
    const TABLE: &'static str = "containers";
    const COLUMNS: &'static [&'static str] = &["registry_image"];
    const CHANGEABLE: &'static [&'static str] = &["registry_image"];
    const RUNNER_KIND: runner::Kind = runner::Kind::Container;
    const START_FAILED: &'static str = "the container did not start";

    fn values(&self) -> Vec<&str> {
        vec![&self.registry_image]
    }

    fn from_values(values: Vec<String>) -> Self {
        Self {
            registry_image: values.into_iter().next().unwrap_or_default(),
        }
    }

    fn into_proto(self, message: &mut wire::Application) {
        message.registry_image = self.registry_image;
    }
}

/// Checks that `image` parses as an image reference (`[registry/]repository[:tag][@digest]`).
pub fn check_image(image: &str) -> Result<(), ApiError> {
    image
        .parse::<oci_spec::distribution::Reference>()
        .map(drop)
        .map_err(|error| {
            ApiError::invalid_argument(
                "registry_image",
                Reason::Format,
                format!("`{image}` is not an image reference such as `registry.example.com/team/app:1.0`: {error}"),
            )
        })
}
