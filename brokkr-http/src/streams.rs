//! A bound on live event streams (`GET /api/v1/events`), per key and in total.
//!
//! Each stream holds a connection and a task for as long as the client likes; without a
//! bound, one key opening thousands of them would use up the process's file descriptors
//! and starve agents' heartbeats. Past the bound the answer is 503 with `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Open streams, counted per key and in total.
#[derive(Debug)]
pub struct StreamSlots {
    per_key: usize,
    total: usize,
    open: Mutex<HashMap<u64, usize>>,
}

/// One open stream; dropping it (the stream ends or the client goes) frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    key: u64,
}

impl StreamSlots {
    /// At most `per_key` streams of one key and `total` in all.
    pub fn new(per_key: usize, total: usize) -> Self {
        Self {
            per_key,
            total,
            open: Mutex::default(),
        }
    }

    /// A slot for a stream of `key`, unless that key or the process is at its bound.
    pub fn try_open(self: &Arc<Self>, key: u64) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let total: usize = open.values().sum();
        let mine = open.get(&key).copied().unwrap_or(0);
        if total >= self.total || mine >= self.per_key {
            return None;
        }
        open.insert(key, mine + 1);
        Some(StreamSlot {
            slots: self.clone(),
            key,
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_key_and_in_total_and_freed_on_drop() {
        let slots = Arc::new(StreamSlots::new(2, 3));
        let a1 = slots.try_open(1).unwrap();
        let _a2 = slots.try_open(1).unwrap();
        assert!(slots.try_open(1).is_none(), "per key");
        let _b1 = slots.try_open(2).unwrap();
        assert!(slots.try_open(3).is_none(), "in total");
        drop(a1);
        assert_eq!(slots.open(), 2);
        assert!(slots.try_open(3).is_some());
    }
}
