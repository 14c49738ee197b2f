//! Proto <-> model for iam.

use nuage_core::Caller;
use nuage_proto::iam::v1 as pb;

/// Returns the answer to a successful verification.
pub(crate) fn verify_token_response(caller: Caller, access_key: String) -> pb::VerifyTokenResponse {
    pb::VerifyTokenResponse {
        caller: Some(caller.to_proto()),
        access_key,
    }
}
