//! Recently verified agent keys, so an agent's every request does not cost a database
//! lookup of its key.
//!
//! At fleet scale most requests are heartbeats, diagnostics polls and health reports:
//! without the cache each one reads `agent_keys` before doing its own work. An entry is
//! not renewed by being used (that would trust a key for ever without looking again),
//! so each agent's key is looked up about once per `ttl`. An entry lives `ttl` (by the
//! broker's clock); rotating, revoking or deleting through this broker drops the
//! agent's entries at once, so the trade-off is only across replicas: another replica
//! keeps accepting a revoked key for at most `ttl`. Unknown keys are never cached, so a
//! new key works at once everywhere.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Duration, Utc};

use crate::ids::AgentId;
use crate::store::PakHash;

/// Most keys kept; past it, expired entries go, and if that is not enough, all of them
/// (the next requests look their keys up again).
const MAX_KEYS: usize = 200_000;

#[derive(Debug, Default)]
struct Keys {
    by_hash: HashMap<PakHash, (AgentId, DateTime<Utc>)>,
    /// Bumped by every [`KeyCache::forget_agent`]: a lookup that began before a key
    /// changed must not put the old key back.
    generation: u64,
}

#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    keys: Mutex<Keys>,
}

impl KeyCache {
    fn keys(&self) -> MutexGuard<'_, Keys> {
        // A map of lookups holds no invariant a panicking holder could break.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The agent whose key hashes to `hash`, if it was verified within `ttl` before
    /// `now` (and not after it: a clock stepped back does not extend an entry).
    pub(crate) fn get(&self, hash: &PakHash, now: DateTime<Utc>, ttl: Duration) -> Option<AgentId> {
        let keys = self.keys();
        let (agent, at) = keys.by_hash.get(hash)?;
        (*at <= now && now - *at < ttl).then_some(*agent)
    }

    /// Taken before looking a key up in the store, for [`Self::put`].
    pub(crate) fn generation(&self) -> u64 {
        self.keys().generation
    }

    /// Notes that `hash` was verified as `agent`'s key at `now`, by a lookup that began
    /// at `generation`; nothing is kept if a key was forgotten since.
    pub(crate) fn put(
        &self,
        hash: PakHash,
        agent: AgentId,
        now: DateTime<Utc>,
        ttl: Duration,
        generation: u64,
    ) {
        let mut keys = self.keys();
        if keys.generation != generation {
            return;
        }
        if keys.by_hash.len() >= MAX_KEYS {
            keys.by_hash
                .retain(|_, (_, at)| *at <= now && now - *at < ttl);
            if keys.by_hash.len() >= MAX_KEYS {
                keys.by_hash.clear();
            }
        }
        keys.by_hash.insert(hash, (agent, now));
    }

    /// Forgets every key of `agent` (its key changed or it is gone).
    pub(crate) fn forget_agent(&self, agent: AgentId) {
        let mut keys = self.keys();
        keys.generation += 1;
        keys.by_hash.retain(|_, (owner, _)| *owner != agent);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn entries_live_for_the_ttl_and_go_with_their_agent() {
        let cache = KeyCache::default();
        let ttl = Duration::seconds(10);
        let (a, b) = (AgentId::new(), AgentId::new());
        cache.put([1; 32], a, t(0), ttl, cache.generation());
        cache.put([2; 32], b, t(0), ttl, cache.generation());
        assert_eq!(cache.get(&[1; 32], t(9), ttl), Some(a));
        assert_eq!(cache.get(&[1; 32], t(10), ttl), None, "expired");
        assert_eq!(cache.get(&[1; 32], t(-1), ttl), None, "clock stepped back");
        assert_eq!(cache.get(&[3; 32], t(1), ttl), None, "never verified");
        cache.forget_agent(a);
        assert_eq!(cache.get(&[1; 32], t(1), ttl), None);
        assert_eq!(cache.get(&[2; 32], t(1), ttl), Some(b));
    }

    #[test]
    fn a_lookup_older_than_a_key_change_is_not_kept() {
        let cache = KeyCache::default();
        let ttl = Duration::seconds(10);
        let a = AgentId::new();
        let before = cache.generation();
        // The key is rotated while the lookup of the old key is under way.
        cache.forget_agent(a);
        cache.put([1; 32], a, t(0), ttl, before);
        assert_eq!(cache.get(&[1; 32], t(0), ttl), None);
    }
}
