//! gRPC contracts between nuage services, generated at build time from `proto/nuage`.
//!
//! Prost types stop at each service's `convert.rs`; nothing else should build them by hand.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Declares `pub mod <name> { pub mod v1 { ... } }` holding package `nuage.<name>.v1`.
macro_rules! packages {
    ($($(#[$doc:meta])* $name:ident => $package:literal;)*) => {
        $(
            $(#[$doc])*
            pub mod $name {
                /// Version 1.
                pub mod v1 {
                    tonic::include_proto!($package);
                }
            }
        )*
    };
}

packages! {
    /// Messages shared by every service.
    common => "nuage.common.v1";
    /// Messages functions and containers share.
    applications => "nuage.applications.v1";
    /// Identity: organizations, projects, API keys.
    iam => "nuage.iam.v1";
    /// Namespaces.
    namespaces => "nuage.namespaces.v1";
    /// Functions.
    functions => "nuage.functions.v1";
    /// Containers.
    containers => "nuage.containers.v1";
    /// Crons.
    crons => "nuage.crons.v1";
    /// Triggers (NATS subjects delivered to applications).
    triggers => "nuage.triggers.v1";
    /// The builder.
    builder => "nuage.builder.v1";
    /// The runner.
    runner => "nuage.runner.v1";
    /// Namespace key pairs and tokens.
    tokens => "nuage.tokens.v1";
    /// Logs.
    logs => "nuage.logs.v1";
}
