//! A small bounded cache for immutable objects read from the bucket
//! (tiles, bundles): a fixed number of slots, least recently used out.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// At most `cap` values; the least recently used is dropped first.
pub struct Lru<K, V> {
    cap: usize,
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    tick: u64,
    map: HashMap<K, (Arc<V>, u64)>,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An empty cache of `cap` slots (at least one).
    pub fn new(cap: usize) -> Lru<K, V> {
        Lru {
            cap: cap.max(1),
            inner: Mutex::new(Inner {
                tick: 0,
                map: HashMap::new(),
            }),
        }
    }

    /// The value for `k`, if cached.
    pub fn get(&self, k: &K) -> Option<Arc<V>> {
        let mut g = self.inner.lock().ok()?;
        g.tick += 1;
        let t = g.tick;
        let e = g.map.get_mut(k)?;
        e.1 = t;
        Some(e.0.clone())
    }

    /// Caches `v` under `k`, dropping the least recently used if full.
    pub fn put(&self, k: K, v: Arc<V>) {
        let Ok(mut g) = self.inner.lock() else {
            return;
        };
        g.tick += 1;
        let t = g.tick;
        if g.map.len() >= self.cap && !g.map.contains_key(&k) {
            // O(cap) per eviction; caps are a few thousand slots, and an
            // eviction follows a request to the object store, which costs
            // far more.
            if let Some(old) = g
                .map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            {
                g.map.remove(&old);
            }
        }
        g.map.insert(k, (v, t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_goes_first() {
        let c = Lru::new(2);
        c.put(1, Arc::new("a"));
        c.put(2, Arc::new("b"));
        assert!(c.get(&1).is_some());
        c.put(3, Arc::new("c"));
        assert!(c.get(&2).is_none());
        assert!(c.get(&1).is_some() && c.get(&3).is_some());
    }
}
