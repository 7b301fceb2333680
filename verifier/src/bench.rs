//! `vellum-verify bench`: the `--full` verification (schema check, leaf
//! hashes, every tile, root) over an in-memory log of N events of about
//! 500 bytes, against raw SHA-256 of the same bytes in the same run. No
//! network: this measures the verifier, not the log.

use std::sync::Arc;
use std::time::Instant;

use vellum_spec::hash::{leaf_hash, Hash};
use vellum_spec::merkle::MemoryTree;
use vellum_spec::tile::{push_bundle_entry, TileId, TILE_HEIGHT, TILE_WIDTH};

use crate::prefetch::{Prefetch, Source};
use crate::report::Failure;
use crate::tree::TreeCheck;

/// An in-memory log: entry bundles, level-0 tiles and the tree.
struct MemLog {
    bundles: Vec<Vec<u8>>,
    level0: Vec<Vec<u8>>,
    tree: MemoryTree,
}

impl MemLog {
    fn tile(&self, id: TileId) -> Vec<u8> {
        if id.level == 0 {
            return self.level0[id.index as usize].clone();
        }
        Self::build_tile(&self.tree, id)
    }

    fn build_tile(tree: &MemoryTree, id: TileId) -> Vec<u8> {
        let h = id.level * TILE_HEIGHT;
        let mut t = Vec::with_capacity(id.width as usize * 32);
        for j in 0..id.width as u64 {
            t.extend_from_slice(
                &tree
                    .node(h, id.index * TILE_WIDTH + j)
                    .map(|n| n.0)
                    .unwrap_or([0; 32]),
            );
        }
        t
    }
}

impl Source for MemLog {
    fn level0(&self, k: u64, w: usize) -> Result<(Vec<u8>, Vec<u8>), Failure> {
        let id = TileId {
            level: 0,
            index: k,
            width: w as u16,
        };
        Ok((self.bundles[k as usize].clone(), self.tile(id)))
    }
}

/// A canonical, schema-valid event of about 500 bytes.
fn event(i: u64) -> Vec<u8> {
    format!(
        r#"{{"agent":"agent-{a:04}","args_hash":"sha256:{h}","event_id":"{i:032x}","gateway":"gw-prod-1","latency_ms":{l},"logged_at":"2026-11-22T10:{m:02}:{s:02}.{ms:03}Z","owner":"payments","principal":"svc-billing","provenance":"untrusted","reason":"under daily limit","result":{{"status":200}},"risk":{r},"rule":"payments.limit.daily","seq":{q},"session":"sess-{sess:06}","target":"api.pay.example/v2/transfers","tool":"payments.transfer","ts":"2026-11-22T10:{m:02}:{s:02}.{ms:03}Z","verdict":"allow"}}"#,
        a = i % 1000,
        h = leaf_hash(&i.to_be_bytes()).to_hex(),
        l = i % 900,
        m = (i / 60_000) % 60,
        s = (i / 1000) % 60,
        ms = i % 1000,
        r = i % 100,
        q = i / 5000,
        sess = i % 5000,
    )
    .into_bytes()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs the benchmark and prints the figures.
pub fn run(entries: u64, runs: usize, threads: usize) -> Result<(), Failure> {
    eprintln!("building an in-memory log of {entries} events...");
    let mut bundles = Vec::new();
    let mut leaves: Vec<Hash> = Vec::with_capacity(entries as usize);
    let mut bytes = 0u64;
    let mut cur = Vec::new();
    for i in 0..entries {
        let e = event(i);
        bytes += e.len() as u64;
        leaves.push(leaf_hash(&e));
        push_bundle_entry(&mut cur, &e).map_err(|e| Failure::Operational(e.to_string()))?;
        if (i + 1) % TILE_WIDTH == 0 || i + 1 == entries {
            bundles.push(std::mem::take(&mut cur));
        }
    }
    let tree = MemoryTree::new(leaves);
    let root = tree
        .root(entries)
        .map_err(|e| Failure::Operational(e.to_string()))?;
    let level0 = (0..bundles.len() as u64)
        .map(|k| {
            let width = (entries - k * TILE_WIDTH).min(TILE_WIDTH) as u16;
            MemLog::build_tile(
                &tree,
                TileId {
                    level: 0,
                    index: k,
                    width,
                },
            )
        })
        .collect();
    let log = Arc::new(MemLog {
        bundles,
        level0,
        tree,
    });
    println!(
        "{entries} events, {:.0} bytes each on average, {:.1} MB",
        bytes as f64 / entries as f64,
        bytes as f64 / 1e6
    );
    let (mut sha, mut one, mut many) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        // Raw SHA-256 of the same entry bytes (one core).
        let t = Instant::now();
        let mut acc = 0u8;
        for b in &log.bundles {
            for e in vellum_spec::tile::parse_bundle(b)
                .map_err(|e| Failure::Operational(e.to_string()))?
            {
                acc ^= vellum_spec::hash::sha256(e)[0];
            }
        }
        std::hint::black_box(acc);
        sha.push(entries as f64 / t.elapsed().as_secs_f64());
        for (n, out) in [(1usize, &mut one), (threads, &mut many)] {
            let t = Instant::now();
            let mut check = TreeCheck::new();
            let tiles = check.tiles_to(entries);
            let src = log.clone();
            let mut fetch = |id: TileId| Ok(src.tile(id));
            if n == 1 {
                // Everything on this thread: one core.
                // The bundle is read in place (a download hands over the
                // bytes it read; copying them here would be the bench's
                // cost, not the verifier's).
                for (k, w) in tiles.iter() {
                    let tile = log.tile(TileId {
                        level: 0,
                        index: k,
                        width: w as u16,
                    });
                    let d = crate::tree::digest(k, w, &log.bundles[k as usize], tile)?;
                    check.push(d, &mut fetch)?;
                }
            } else {
                for d in Prefetch::start(log.clone(), tiles, n) {
                    check.push(d?, &mut fetch)?;
                }
            }
            let got = check.finish(&mut fetch)?;
            if got != root {
                return Err(Failure::check("root", "benchmark tree root mismatch"));
            }
            out.push(entries as f64 / t.elapsed().as_secs_f64());
        }
    }
    let (s, o, m) = (median(sha), median(one), median(many));
    println!("medians of {runs} runs:");
    let label = |l: &str| format!("  {l:<36}");
    println!(
        "{}{s:>12.0} entries/s",
        label("raw SHA-256 of the entries, 1 core:")
    );
    println!(
        "{}{o:>12.0} entries/s  ({:.2}× SHA-256)",
        label("--full verification, 1 core:"),
        o / s
    );
    println!(
        "{}{m:>12.0} entries/s  ({:.2}× SHA-256)",
        label(&format!("--full verification, {threads} threads:")),
        m / s
    );
    Ok(())
}
