//! Crash safety: kill -9 the log repeatedly while concurrent clients
//! append, restart it, and check that every acknowledged event is present
//! with its original index and leaf hash, that the published checkpoint
//! never went backwards, and that every checkpoint seen before a crash is
//! consistent with every one published after it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::Value;
use vellum_spec::hash::Hash;
use vellum_spec::merkle::verify_consistency;
use vellum_spec::note::Note;
use vellum_spec::Checkpoint;
use vellum_tests::*;

const ROUNDS: usize = 6;
const WRITERS: usize = 8;

#[derive(Clone)]
struct Ack {
    index: u64,
    leaf: Hash,
    event_id: String,
}

#[test]
fn kill9_under_load_loses_nothing_acknowledged() {
    // A small dedup table, so that sorted runs are written and merged
    // while the log is being killed.
    let mut log = Log::start(&["--dedup-table-keys", "2000"]);
    let token = log.token();
    let vkey = log.vkey();
    let acked: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let seen: Arc<Mutex<BTreeMap<u64, Hash>>> = Arc::default();
    let mut rng = rand::thread_rng();
    let mut max_published_before_kill = 0u64;

    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let url = log.url();
        let mut threads = Vec::new();
        for w in 0..WRITERS {
            let (acked, stop, url, token) =
                (acked.clone(), stop.clone(), url.clone(), token.clone());
            threads.push(std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let k = 1 + (n % 20);
                    let ids: Vec<String> =
                        (0..k).map(|j| format!("r{round}-w{w}-{n}-{j}")).collect();
                    let evs: Vec<Value> = ids
                        .iter()
                        .map(|id| event(&format!("w{w}"), Some(id)))
                        .collect();
                    n += 1;
                    let Ok(r) = http
                        .post(format!("{url}/v1/events"))
                        .bearer_auth(&token)
                        .json(&evs)
                        .send()
                    else {
                        break; // the log is gone
                    };
                    if r.status() != 200 {
                        break;
                    }
                    let Ok(v) = r.json::<Value>() else { break };
                    let mut a = acked.lock().unwrap();
                    for (e, id) in v["entries"].as_array().unwrap().iter().zip(&ids) {
                        assert_eq!(e["event_id"].as_str().unwrap(), id);
                        a.push(Ack {
                            index: e["index"].as_u64().unwrap(),
                            leaf: hash_field(&e["leaf_hash"]),
                            event_id: id.clone(),
                        });
                    }
                }
            }));
        }
        // A monitor records every checkpoint it is shown.
        {
            let (seen, stop, url, vkey) = (seen.clone(), stop.clone(), url.clone(), vkey.clone());
            threads.push(std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let Ok(r) = http.get(format!("{url}/checkpoint")).send() else {
                        break;
                    };
                    let Ok(b) = r.bytes() else { break };
                    let note = Note::parse(&b).expect("checkpoint parses");
                    note.verify(std::slice::from_ref(&vkey))
                        .expect("checkpoint signature");
                    let cp = Checkpoint::parse(&note.text).unwrap();
                    let mut s = seen.lock().unwrap();
                    if let Some(prev) = s.get(&cp.size) {
                        assert_eq!(*prev, cp.root, "two roots for size {}", cp.size);
                    }
                    s.insert(cp.size, cp.root);
                    std::thread::sleep(Duration::from_millis(15));
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(400..1500)));
        max_published_before_kill = max_published_before_kill.max(log.checkpoint().0.size);
        log.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().expect("client thread");
        }
        log.spawn();
        let (after, _) = log.checkpoint();
        assert!(
            after.size >= max_published_before_kill,
            "round {round}: checkpoint went back from {max_published_before_kill} to {}",
            after.size
        );
    }

    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 1000,
        "the load was too light to mean much: {}",
        acked.len()
    );
    let max_index = acked.iter().map(|a| a.index).max().unwrap();
    let final_cp = log.wait_checkpoint(max_index + 1);

    // Every acknowledged event is in the log at its index, with its hash.
    let (root, leaves) = recompute_from_tiles(&log, final_cp.size, &token);
    assert_eq!(root, final_cp.root);
    let mut indexes = std::collections::HashSet::new();
    for a in &acked {
        assert!(
            indexes.insert(a.index),
            "index {} acknowledged twice",
            a.index
        );
        let leaf = &leaves[a.index as usize];
        assert_eq!(
            vellum_spec::leaf_hash(leaf),
            a.leaf,
            "leaf hash at {}",
            a.index
        );
        let ev: Value = serde_json::from_slice(leaf).unwrap();
        assert_eq!(ev["event_id"].as_str().unwrap(), a.event_id);
    }
    // The dedup index survived too: resending returns the original index.
    let dedup_dir = if s3_suite() {
        "db/s3/dedup"
    } else {
        "db/dedup"
    };
    let runs = std::fs::read_dir(log.data().join(dedup_dir))
        .unwrap()
        .count();
    assert!(runs >= 1, "no dedup runs were written");
    for a in acked.iter().step_by(acked.len() / 200) {
        let body = serde_json::to_vec(&vec![event("again", Some(&a.event_id))]).unwrap();
        let (s, b) = log.post_events(Some(&token), body);
        assert_eq!(s, 200);
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["entries"][0]["index"].as_u64().unwrap(), a.index);
    }

    // Every checkpoint ever shown is consistent with the final one.
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.len() > ROUNDS,
        "too few checkpoints seen: {}",
        seen.len()
    );
    for (&size, old_root) in &seen {
        let p = log.get_json(
            &format!("/v1/proof/consistency?from={size}&to={}", final_cp.size),
            None,
        );
        verify_consistency(
            size,
            final_cp.size,
            old_root,
            &final_cp.root,
            &proof_field(&p["proof"]),
        )
        .unwrap_or_else(|e| {
            panic!(
                "checkpoint {size} is not consistent with {}: {e}",
                final_cp.size
            )
        });
    }
    eprintln!(
        "crash test: {ROUNDS} kills, {} acknowledged events, {} checkpoints seen, final size {}, {runs} dedup run files",
        acked.len(),
        seen.len(),
        final_cp.size
    );
}
