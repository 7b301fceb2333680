//! Test helpers shared by the spec's integration tests.
#![allow(dead_code)]

use vellum_spec::hash::{leaf_hash, Hash};

pub use vellum_spec::merkle::MemoryTree as MemTree;

/// A tree of `n` distinct leaves derived from `seed`.
pub fn tree_with_size(n: u64, seed: u64) -> MemTree {
    MemTree::new(
        (0..n)
            .map(|i| leaf_hash(format!("{seed}-{i}").as_bytes()))
            .collect(),
    )
}

pub fn b64(s: &str) -> Hash {
    Hash::from_base64(s).unwrap()
}

pub fn hexh(s: &str) -> Hash {
    Hash::from_slice(&hex::decode(s).unwrap()).unwrap()
}

pub fn vector(name: &str) -> serde_json::Value {
    let path = format!("{}/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
