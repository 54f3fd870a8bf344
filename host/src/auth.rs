//! API tokens and what each role may do: tokens are random, shown once and
//! stored as SHA-256 hashes; roles are admin, submitter and viewer, each bound to a tenant.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, in any tenant (chosen with the `X-Wasmq-Tenant` header), tokens included.
    Admin,
    /// Read, submit and act on jobs of its tenant.
    Submitter,
    /// Read only, in its tenant.
    Viewer,
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read jobs, logs, reports, assets, plugins.
    Read,
    /// Submit jobs and act on them (cancel, pause, priority, delete...).
    Act,
    /// Manage tokens and plugins.
    Administer,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Submitter => "submitter",
            Role::Viewer => "viewer",
        }
    }

    /// True if this role may do `action`.
    pub fn may(self, action: Action) -> bool {
        match self {
            Role::Admin => true,
            Role::Submitter => action != Action::Administer,
            Role::Viewer => action == Action::Read,
        }
    }

    /// True if the role may work in a tenant other than its own.
    pub fn crosses_tenants(self) -> bool {
        self == Role::Admin
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no role.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown role {0:?}; one of admin, submitter, viewer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "submitter" => Ok(Role::Submitter),
            "viewer" => Ok(Role::Viewer),
            other => Err(UnknownRole(other.to_string())),
        }
    }
}

/// True if `tenant` is a valid tenant name: 1-64 of a-z, 0-9, '-' and '_'.
pub fn valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A new random token: `wq_` and 48 hex digits (192 bits).
pub fn generate() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the OS random source");
    format!(
        "wq_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The hash a token is stored and looked up by.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_actions() {
        assert!(Role::Admin.may(Action::Administer));
        assert!(Role::Submitter.may(Action::Act) && !Role::Submitter.may(Action::Administer));
        assert!(Role::Viewer.may(Action::Read) && !Role::Viewer.may(Action::Act));
        assert!(Role::Admin.crosses_tenants() && !Role::Submitter.crosses_tenants());
        for role in [Role::Admin, Role::Submitter, Role::Viewer] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with("wq_") && a.len() == 51);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 64);
    }

    #[test]
    fn tenant_names() {
        assert!(valid_tenant("acme-01"));
        for bad in ["", "Acme", "a b", "a/b", &"x".repeat(65)] {
            assert!(!valid_tenant(bad), "{bad}");
        }
    }
}
