//! gRPC contracts between nuage services, generated at build time from `proto/nuage`.
//!
//! Prost types stop at each service's `convert.rs`; nothing else should build them by hand.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Messages shared by every service.
pub mod common {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("nuage.common.v1");
    }
}

/// Identity: organizations, projects, API keys.
pub mod iam {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("nuage.iam.v1");
    }
}

/// Namespaces.
pub mod namespaces {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("nuage.namespaces.v1");
    }
}

/// Functions.
pub mod functions {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("nuage.functions.v1");
    }
}

/// Containers.
pub mod containers {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("nuage.containers.v1");
    }
}

/// Crons.
pub mod crons {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("nuage.crons.v1");
    }
}

/// The builder.
pub mod builder {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("nuage.builder.v1");
    }
}

/// The runner.
pub mod runner {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("nuage.runner.v1");
    }
}

/// Namespace key pairs and tokens.
pub mod tokens {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("nuage.tokens.v1");
    }
}

/// Logs.
pub mod logs {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("nuage.logs.v1");
    }
}
