//! Test helpers shared by the spec's integration tests.
#![allow(dead_code)]

use vellum_spec::hash::{leaf_hash, node_hash, Hash};
use vellum_spec::merkle::{NodeId, NodeReader, ProofError};

/// Every complete node of a tree, level by level: an O(1) node reader.
pub struct MemTree {
    pub levels: Vec<Vec<Hash>>,
}

impl MemTree {
    pub fn from_leaf_hashes(leaves: Vec<Hash>) -> MemTree {
        let mut levels = vec![leaves];
        while levels.last().unwrap().len() > 1 {
            let next: Vec<Hash> = levels
                .last()
                .unwrap()
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            levels.push(next);
        }
        MemTree { levels }
    }

    pub fn with_size(n: u64, seed: u64) -> MemTree {
        MemTree::from_leaf_hashes(
            (0..n)
                .map(|i| leaf_hash(format!("{seed}-{i}").as_bytes()))
                .collect(),
        )
    }
}

impl NodeReader for MemTree {
    fn read_nodes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, ProofError> {
        nodes
            .iter()
            .map(|n| {
                self.levels
                    .get(n.height as usize)
                    .and_then(|l| l.get(n.index as usize))
                    .copied()
                    .ok_or_else(|| ProofError::Read(format!("no node {n:?}")))
            })
            .collect()
    }
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
