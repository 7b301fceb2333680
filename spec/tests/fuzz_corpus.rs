//! Replays every fuzz target's checked-in corpus (`fuzz/corpus/<target>`)
//! and every crash the fuzzers found (`fuzz/regressions/<target>`) through
//! the same property functions, on stable Rust: a parser regression fails
//! the ordinary test suite. The fuzzers themselves run with
//! `scripts/fuzz` (nightly, cargo-fuzz).

use std::path::{Path, PathBuf};

use vellum_spec::fuzzing::{FUZZ_VKEY, TARGETS};
use vellum_spec::note::VerifierKey;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

#[test]
fn every_corpus_and_regression_input_keeps_its_properties() {
    for (name, check) in TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} is empty or missing");
        let regressions = inputs(&fuzz_dir().join("regressions").join(name));
        for p in corpus.iter().chain(&regressions) {
            let data = std::fs::read(p).unwrap();
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "{name}: {} breaks a property", p.display());
        }
    }
}

#[test]
fn the_evidence_bundle_seed_verifies() {
    let data = std::fs::read(fuzz_dir().join("corpus/evidence_bundle/seed-0")).unwrap();
    let key = VerifierKey::parse(FUZZ_VKEY).unwrap();
    let mut lines = data.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    let mut check =
        vellum_spec::bundle::BundleCheck::open(lines.next().unwrap(), &key, &[], 0, None).unwrap();
    for l in lines {
        check.record(l).unwrap();
    }
    check.finish().unwrap();
}
