//! The body types of the router's answers and of the requests it sends to instances.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;

/// Errors of bodies passed through.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every answer, and of every request sent to an instance.
pub type ProxyBody = BoxBody<Bytes, BoxError>;
