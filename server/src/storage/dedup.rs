//! Keys of the dedup index ([`crate::storage::dedup_index`]) and its in-memory
//! pre-filter.
//!
//! A key is the first 16 bytes of SHA-256(u16 length of gateway ||
//! gateway || event_id):
//! fixed-size, so index nodes stay small, and collision-free in practice
//! (2^-64 at four billion events). The [`Filter`] is a Bloom filter of a
//! fixed size: it answers "certainly new" for most fresh event IDs without
//! reading the index; its memory does not grow with the log, only its
//! false-positive rate does (about 0.4% at 10 million events), and a false
//! positive only costs one index read.

use std::sync::atomic::{AtomicU64, Ordering};

/// A dedup key.
pub type Key = [u8; 16];

/// The key of a gateway's event ID.
pub fn key(gateway: &str, event_id: &str) -> Key {
    let mut buf = Vec::with_capacity(gateway.len() + 2 + event_id.len());
    buf.extend_from_slice(&(gateway.len() as u16).to_be_bytes());
    buf.extend_from_slice(gateway.as_bytes());
    buf.extend_from_slice(event_id.as_bytes());
    let h = vellum_spec::hash::sha256(&buf);
    let mut k = [0u8; 16];
    k.copy_from_slice(&h[..16]);
    k
}

/// Bits in the filter (16 MiB).
const BITS: u64 = 1 << 27;
/// Probes per key.
const PROBES: u64 = 4;

/// A fixed-size Bloom filter over dedup keys, safe to share between threads.
pub struct Filter {
    words: Vec<AtomicU64>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            words: (0..BITS / 64).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Filter {
    fn probes(k: &Key) -> impl Iterator<Item = u64> {
        // The key is a SHA-256 prefix: its halves are independent hashes.
        let h1 = u64::from_le_bytes(k[..8].try_into().expect("8 bytes"));
        let h2 = u64::from_le_bytes(k[8..].try_into().expect("8 bytes")) | 1;
        (0..PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % BITS)
    }

    /// Records a key.
    pub fn insert(&self, k: &Key) {
        for bit in Self::probes(k) {
            self.words[(bit / 64) as usize].fetch_or(1 << (bit % 64), Ordering::Relaxed);
        }
    }

    /// False if the key was certainly never inserted.
    pub fn may_contain(&self, k: &Key) -> bool {
        Self::probes(k).all(|bit| {
            self.words[(bit / 64) as usize].load(Ordering::Relaxed) & (1 << (bit % 64)) != 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let f = Filter::default();
        for i in 0..100_000 {
            f.insert(&key("gw", &format!("in-{i}")));
        }
        for i in 0..100_000 {
            assert!(f.may_contain(&key("gw", &format!("in-{i}"))));
        }
        let fp = (0..100_000)
            .filter(|i| f.may_contain(&key("gw", &format!("out-{i}"))))
            .count();
        assert!(fp < 10, "{fp} false positives");
        assert_ne!(key("a", "b\0c"), key("a\0b", "c"));
    }
}
