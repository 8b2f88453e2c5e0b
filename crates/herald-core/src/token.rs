//! API tokens: how a tenant token is stored and looked up (its SHA-256),
//! and what each scope lets it do.

use crate::digest::sha256_hex;

/// Lowercase hex SHA-256 of a token: what the config service stores and
/// what ingest looks a presented token up by.
#[must_use]
pub fn hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// What a tenant token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything the tenant may: read and change its configuration, publish.
    Tenant,
    /// Read the configuration, without credentials.
    Read,
    /// Publish events only.
    Publish,
}

impl Scope {
    #[must_use]
    pub fn may_read_config(self) -> bool {
        matches!(self, Scope::Tenant | Scope::Read)
    }

    #[must_use]
    pub fn may_change_config(self) -> bool {
        self == Scope::Tenant
    }

    #[must_use]
    pub fn may_publish(self) -> bool {
        matches!(self, Scope::Tenant | Scope::Publish)
    }

    /// Whether what the token reads may include credentials (secrets,
    /// custom header values).
    #[must_use]
    pub fn sees_credentials(self) -> bool {
        self != Scope::Read
    }

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Tenant => "tenant",
            Scope::Read => "read",
            Scope::Publish => "publish",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_stored_as_its_sha256() {
        assert_eq!(hash("hrld_x"), sha256_hex(b"hrld_x"),);
        assert_eq!(hash("a").len(), 64);
    }

    #[test]
    fn scopes_allow_what_they_name() {
        let rules = |scope: Scope| {
            (
                scope.may_read_config(),
                scope.may_change_config(),
                scope.may_publish(),
                scope.sees_credentials(),
            )
        };
        assert_eq!(rules(Scope::Tenant), (true, true, true, true));
        assert_eq!(rules(Scope::Read), (true, false, false, false));
        assert_eq!(rules(Scope::Publish), (false, false, true, true));
    }
}
