//! The credential that internal gRPC calls carry: services trust only the gateway and each
//! other. All-in-one mode generates one per process; split mode shares one through config.

use crate::secret::Secret;
use subtle::ConstantTimeEq;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Request, Status};

/// The metadata key carrying the request id from the gateway to services.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A shared secret checked on every internal gRPC call, usable as a client or server
/// interceptor.
#[derive(Clone)]
pub struct InternalAuth {
    header: MetadataValue<Ascii>,
}

impl std::fmt::Debug for InternalAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalAuth(***)")
    }
}

impl InternalAuth {
    /// Returns an interceptor for this secret, which must be printable ASCII.
    pub fn new(secret: &Secret) -> Result<Self, String> {
        let header = format!("Bearer {}", secret.expose())
            .parse()
            .map_err(|_| "the internal secret must be printable ASCII".to_owned())?;
        Ok(Self { header })
    }

    /// Returns an interceptor with a fresh random secret, for a single process.
    pub fn random() -> Self {
        let secret: [u8; 32] = rand::random();
        Self::new(&Secret::new(hex::encode(secret))).expect("hex is ASCII")
    }

    /// The `authorization` value internal calls carry (also over HTTP, to the router's
    /// internal listener).
    pub fn authorization(&self) -> &str {
        self.header.to_str().expect("built from a printable string")
    }

    /// Whether `presented`, an `authorization` value, is the credential (constant time).
    pub fn matches(&self, presented: &[u8]) -> bool {
        bool::from(presented.ct_eq(self.header.as_bytes()))
    }

    /// Returns the request if it carries the secret, else UNAUTHENTICATED.
    pub fn check<T>(&self, request: Request<T>) -> Result<Request<T>, Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if self.matches(presented) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("internal credential missing or wrong"))
        }
    }
}

impl tonic::service::Interceptor for InternalAuth {
    /// On a client, adds the credential; on a server, use [`InternalAuth::check`].
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.header.clone());
        Ok(request)
    }
}

/// A server-side interceptor that refuses calls without the credential.
#[derive(Clone, Debug)]
pub struct RequireInternalAuth(pub InternalAuth);

impl tonic::service::Interceptor for RequireInternalAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.0.check(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn only_requests_with_the_secret_pass() {
        let mut client = InternalAuth::random();
        let mut server = RequireInternalAuth(client.clone());
        let signed = client.call(Request::new(())).unwrap();
        assert!(server.call(signed).is_ok());
        assert!(server.call(Request::new(())).is_err());
        let mut other = InternalAuth::random();
        assert!(server.call(other.call(Request::new(())).unwrap()).is_err());
    }
}
