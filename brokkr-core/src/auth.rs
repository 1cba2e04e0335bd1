//! Pre-authentication keys (PAKs) and who a caller is.
//!
//! A PAK looks like `brokkr_<role>_<43 base62 characters>` (32 random bytes). Only its
//! SHA-256 is stored; agents are looked up by that hash (an index, not a scan), and the
//! admin key's hash is compared in constant time.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::ids::AgentId;
use crate::store::PakHash;
use crate::{Error, Result};

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Principal {
    /// An operator (or the host orchestrator) with the admin key.
    Admin,
    /// One agent, which may touch only its own data.
    Agent(AgentId),
}

impl Principal {
    /// The kind of principal, for logs and metrics (never the key).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Agent(_) => "agent",
        }
    }

    /// `Ok` for the admin, `Forbidden` otherwise.
    pub fn require_admin(&self) -> Result<()> {
        match self {
            Self::Admin => Ok(()),
            Self::Agent(_) => Err(Error::Forbidden("admin only".into())),
        }
    }

    /// `Ok` for the admin or for `agent` itself, `Forbidden` for any other agent.
    pub fn require_admin_or(&self, agent: AgentId) -> Result<()> {
        match self {
            Self::Admin => Ok(()),
            Self::Agent(own) if *own == agent => Ok(()),
            Self::Agent(_) => Err(Error::Forbidden(
                "agents may only act for themselves".into(),
            )),
        }
    }

    /// `Ok` only for `agent` itself (agent-only operations such as heartbeats).
    pub fn require_agent(&self, agent: AgentId) -> Result<()> {
        match self {
            Self::Agent(own) if *own == agent => Ok(()),
            Self::Agent(_) => Err(Error::Forbidden(
                "agents may only act for themselves".into(),
            )),
            Self::Admin => Err(Error::Forbidden("only the agent itself may do this".into())),
        }
    }
}

/// The role a key is issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The admin key.
    Admin,
    /// An agent key.
    Agent,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Agent => "agent",
        }
    }
}

/// A freshly generated key. Shown once; `Debug` does not reveal it.
#[derive(Clone, PartialEq, Eq)]
pub struct Pak(String);

impl fmt::Debug for Pak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pak(<redacted>)")
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl Pak {
    /// A new random key for `role`.
    pub fn generate(role: Role) -> Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::Unavailable(format!("no randomness for a key: {e}")))?;
        Ok(Self(format!("brokkr_{}_{}", role.as_str(), base62(&bytes))))
    }

    /// The key as text (to show the user once).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored form.
    pub fn hash(&self) -> PakHash {
        hash_pak(&self.0)
    }
}

/// SHA-256 of a presented key.
pub fn hash_pak(pak: &str) -> PakHash {
    Sha256::digest(pak.as_bytes()).into()
}

/// Whether a presented key has the shape of a PAK of `role` (cheap rejection of junk
/// before any lookup).
pub fn looks_like(pak: &str, role: Role) -> bool {
    pak.strip_prefix("brokkr_")
        .and_then(|rest| rest.strip_prefix(role.as_str()))
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|key| {
            (40..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Why a key given by configuration (the admin key) is too weak to accept, if it is:
/// its random part must use at least 10 different characters, none of them in more
/// than a quarter of its places (`brokkr_admin_aaaa...` or a repeated word would pass
/// [`looks_like`] and fall to a guess).
pub fn weak_key(pak: &str) -> Option<&'static str> {
    let random = pak.rsplit('_').next().unwrap_or_default();
    let mut counts = std::collections::HashMap::<u8, usize>::new();
    for b in random.bytes() {
        *counts.entry(b).or_default() += 1;
    }
    if counts.len() < 10 {
        return Some("uses fewer than 10 different characters");
    }
    if counts.values().any(|&n| n * 4 > random.len()) {
        return Some("repeats one character in more than a quarter of its places");
    }
    None
}

/// Compares two hashes in time independent of where they differ.
pub fn constant_time_eq(a: &PakHash, b: &PakHash) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 bytes as base62, big-endian, always 43 characters.
fn base62(bytes: &[u8; 32]) -> String {
    let mut digits = bytes.to_vec();
    let mut out = Vec::with_capacity(43);
    for _ in 0..43 {
        let mut remainder = 0u32;
        for d in &mut digits {
            let value = (remainder << 8) | u32::from(*d);
            *d = (value / 62) as u8;
            remainder = value % 62;
        }
        out.push(BASE62[remainder as usize]);
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_well_formed_and_hash_stably() {
        let a = Pak::generate(Role::Agent).unwrap();
        let b = Pak::generate(Role::Agent).unwrap();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("brokkr_agent_"));
        assert_eq!(a.expose().len(), "brokkr_agent_".len() + 43);
        assert!(looks_like(a.expose(), Role::Agent));
        assert!(!looks_like(a.expose(), Role::Admin));
        assert!(!looks_like("brokkr_agent_short", Role::Agent));
        assert_eq!(a.hash(), hash_pak(a.expose()));
        assert!(constant_time_eq(&a.hash(), &hash_pak(a.expose())));
        assert!(!constant_time_eq(&a.hash(), &b.hash()));
        assert_eq!(format!("{a:?}"), "Pak(<redacted>)");
    }

    #[test]
    fn principals_reach_only_what_is_theirs() {
        let me = AgentId::new();
        let other = AgentId::new();
        assert!(Principal::Admin.require_admin().is_ok());
        assert!(Principal::Agent(me).require_admin().is_err());
        assert!(Principal::Agent(me).require_admin_or(me).is_ok());
        assert!(matches!(
            Principal::Agent(me).require_admin_or(other),
            Err(Error::Forbidden(_))
        ));
        assert!(Principal::Admin.require_agent(me).is_err());
        assert!(Principal::Agent(me).require_agent(me).is_ok());
    }

    #[test]
    fn weak_admin_keys_are_told_apart() {
        let generated = Pak::generate(Role::Admin).unwrap();
        assert_eq!(weak_key(generated.expose()), None);
        assert_eq!(
            weak_key("brokkr_admin_0123456789abcdefghijABCDEFGHIJ0123456789abc"),
            None
        );
        assert!(weak_key(&format!("brokkr_admin_{}", "A".repeat(43))).is_some());
        assert!(weak_key(&format!("brokkr_admin_{}", "fuzz".repeat(11))).is_some());
        assert!(weak_key(&format!("brokkr_admin_{}0123456789", "a".repeat(33))).is_some());
    }
}
