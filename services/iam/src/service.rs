//! The iam gRPC service.

use crate::convert;
use crate::store::IamStore;
use nuage_core::ApiError;
use nuage_proto::iam::v1::{self as pb, iam_server::Iam};
use tonic::{Request, Response, Status};

/// Serves `nuage.iam.v1.Iam`.
#[derive(Debug, Clone)]
pub struct IamService {
    store: IamStore,
}

impl IamService {
    /// Returns a service over `store`.
    pub fn new(store: IamStore) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl Iam for IamService {
    async fn verify_token(
        &self,
        request: Request<pb::VerifyTokenRequest>,
    ) -> Result<Response<pb::VerifyTokenResponse>, Status> {
        let secret = request.into_inner().secret_key;
        let (caller, access_key) = self.store.verify(&secret).await.map_err(ApiError::from)?;
        Ok(Response::new(convert::verify_token_response(caller, access_key)))
    }
}
