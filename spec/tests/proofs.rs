//! Proof generation and verification for every (m, n) up to 300, random
//! larger trees, and tampering: every altered proof, root or leaf fails.

mod common;
use vellum_spec::hash::{leaf_hash, Hash};
use vellum_spec::merkle::*;

const N: u64 = 300;

fn flip(h: &Hash) -> Hash {
    let mut h = *h;
    h.0[7] ^= 0x10;
    h
}

#[test]
fn inclusion_every_index_every_size_to_300() {
    let full = common::tree_with_size(N, 1);
    let leaves = full.leaves().to_vec();
    for n in 1..=N {
        let root = reference_root(&leaves[..n as usize]);
        assert_eq!(tree_root(n, &full).unwrap(), root, "root {n}");
        for i in 0..n {
            let p = prove_inclusion(i, n, &full).unwrap();
            let leaf = leaves[i as usize];
            verify_inclusion(i, n, &leaf, &p, &root).unwrap();
            assert!(verify_inclusion(i, n, &flip(&leaf), &p, &root).is_err());
            assert!(verify_inclusion(i, n, &leaf, &p, &flip(&root)).is_err());
            for k in 0..p.len() {
                let mut bad = p.clone();
                bad[k] = flip(&bad[k]);
                assert!(verify_inclusion(i, n, &leaf, &bad, &root).is_err());
            }
            if !p.is_empty() {
                assert!(verify_inclusion(i, n, &leaf, &p[..p.len() - 1], &root).is_err());
            }
            let mut long = p.clone();
            long.push(root);
            assert!(verify_inclusion(i, n, &leaf, &long, &root).is_err());
            if i + 1 < n {
                assert!(verify_inclusion(i + 1, n, &leaf, &p, &root).is_err());
            }
        }
        assert!(prove_inclusion(n, n, &full).is_err());
    }
}

#[test]
fn consistency_every_pair_to_300() {
    let full = common::tree_with_size(N, 2);
    let leaves = full.leaves().to_vec();
    let roots: Vec<Hash> = (0..=N)
        .map(|n| reference_root(&leaves[..n as usize]))
        .collect();
    for n in 0..=N {
        for m in 0..=n {
            let p = prove_consistency(m, n, &full).unwrap();
            let (r1, r2) = (roots[m as usize], roots[n as usize]);
            verify_consistency(m, n, &r1, &r2, &p)
                .unwrap_or_else(|e| panic!("PROOF({m},{n}): {e}"));
            if m > 0 {
                assert!(verify_consistency(m, n, &flip(&r1), &r2, &p).is_err());
            }
            if m > 0 && m < n {
                assert!(verify_consistency(m, n, &r1, &flip(&r2), &p).is_err());
                for k in 0..p.len() {
                    let mut bad = p.clone();
                    bad[k] = flip(&bad[k]);
                    assert!(
                        verify_consistency(m, n, &r1, &r2, &bad).is_err(),
                        "({m},{n}) k={k}"
                    );
                }
                assert!(verify_consistency(m, n, &r1, &r2, &p[1..]).is_err());
                // A fork: same old tree, different new leaf.
                if n > m {
                    let mut forked = leaves[..n as usize].to_vec();
                    forked[n as usize - 1] = leaf_hash(b"fork");
                    let fr = reference_root(&forked);
                    assert!(verify_consistency(m, n, &r1, &fr, &p).is_err());
                }
            }
        }
        assert!(prove_consistency(n + 1, n, &full).is_err());
    }
}

#[test]
fn random_large_trees() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(9162);
    for _ in 0..6 {
        let n: u64 = rng.gen_range(1_000..70_000);
        let t = common::tree_with_size(n, n);
        let root = tree_root(n, &t).unwrap();
        assert_eq!(root, reference_root(t.leaves()));
        for _ in 0..200 {
            let i = rng.gen_range(0..n);
            let p = prove_inclusion(i, n, &t).unwrap();
            verify_inclusion(i, n, &t.leaves()[i as usize], &p, &root).unwrap();
            let m = rng.gen_range(1..=n);
            let old = tree_root(m, &t).unwrap();
            let c = prove_consistency(m, n, &t).unwrap();
            verify_consistency(m, n, &old, &root, &c).unwrap();
            if m < n && !c.is_empty() {
                let mut bad = c.clone();
                let k = rng.gen_range(0..bad.len());
                bad[k] = flip(&bad[k]);
                assert!(verify_consistency(m, n, &old, &root, &bad).is_err());
            }
        }
    }
}
