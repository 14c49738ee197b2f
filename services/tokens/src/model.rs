//! A tenant's token as stored (v1beta1 `/tokens`).

use uuid::Uuid;

/// Longest token description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// A stored token. Its id is the `jti` of the JWT, which is not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Its id, and its JWT's `jti`.
    pub id: Uuid,
    /// The owning tenant.
    pub organization_id: Uuid,
    /// The region it lives in.
    pub region: String,
    /// The namespace whose key signs it.
    pub namespace_id: Uuid,
    /// The function or container it opens; `None`: every one of the namespace.
    pub application_id: Option<Uuid>,
    /// Free text.
    pub description: String,
    /// Unix seconds; `None`: never expires.
    pub expires_at: Option<i64>,
    /// Unix microseconds; `Some` once deleted (revoked).
    pub revoked_at: Option<i64>,
    /// Unix microseconds.
    pub created_at: i64,
    /// Unix microseconds.
    pub updated_at: i64,
}
