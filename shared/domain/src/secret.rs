//! The host secret: shown once at creation, stored only as a hash, compared
//! in constant time.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ids::hex_lower;

/// A host secret as the host holds it. `Debug` never prints it.
#[derive(Clone)]
pub struct HostSecret(String);

impl HostSecret {
    /// A fresh secret with 160 random bits. A plain SHA-256 of it is a safe
    /// hash to store: there is nothing to brute-force in 2^160.
    pub fn generate() -> Self {
        Self(hex_lower(&rand::random::<[u8; 20]>()))
    }

    /// Wraps a secret a client presented. Any string is accepted; a wrong
    /// one simply does not match.
    pub fn presented(s: &str) -> Self {
        Self(s.to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash(hex_lower(&Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for HostSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostSecret(…)")
    }
}

/// What the directory stores in place of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(String);

impl SecretHash {
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `secret` hashes to this, in time independent of where the
    /// two differ.
    pub fn matches(&self, secret: &HostSecret) -> bool {
        let presented = secret.hash();
        self.0.as_bytes().ct_eq(presented.0.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_secret_matches() {
        let secret = HostSecret::generate();
        let hash = secret.hash();
        assert!(hash.matches(&HostSecret::presented(secret.expose())));
        assert!(!hash.matches(&HostSecret::presented("")));
        assert!(!hash.matches(&HostSecret::presented(&format!("{}x", secret.expose()))));
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }
}
