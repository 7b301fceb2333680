//! Differential tests against independent implementations of the same
//! formats: Cloudflare's `tlog_tiles` (a port of Go's sumdb/tlog) and
//! `signed_note` (a port of Go's sumdb/note).

mod common;
use common::MemTree;
use proptest::prelude::*;
use vellum_spec::hash::Hash;
use vellum_spec::merkle::*;
use vellum_spec::note::{Note, SignerKey, VerifierKey, ALG_ED25519};
use vellum_spec::tile::{parse_tile_path, TileId};

/// Serves `tlog_tiles` stored-hash reads from our in-memory tree.
struct Theirs<'a>(&'a MemTree);

impl tlog_tiles::HashReader for Theirs<'_> {
    fn read_hashes(&self, idx: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        Ok(idx
            .iter()
            .map(|&i| {
                let (level, n) = tlog_tiles::split_stored_hash_index(i);
                tlog_tiles::Hash(self.0.node(level, n).unwrap().0)
            })
            .collect())
    }
}

fn ours(h: &tlog_tiles::Hash) -> Hash {
    Hash(h.0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn same_roots_and_proofs_as_tlog_tiles(n in 1u64..5000, a in any::<u64>(), b in any::<u64>(), seed in any::<u64>()) {
        let t = common::tree_with_size(n, seed);
        let root = tree_root(n, &t).unwrap();
        prop_assert_eq!(root, ours(&tlog_tiles::tree_hash(n, &Theirs(&t)).unwrap()));
        let i = a % n;
        let mine = prove_inclusion(i, n, &t).unwrap();
        let theirs: Vec<Hash> = tlog_tiles::prove_record(n, i, &Theirs(&t)).unwrap().iter().map(ours).collect();
        prop_assert_eq!(&mine, &theirs);
        let m = 1 + b % n;
        let old = tree_root(m, &t).unwrap();
        let mine_c = prove_consistency(m, n, &t).unwrap();
        let theirs_c: Vec<Hash> = tlog_tiles::prove_tree(n, m, &Theirs(&t)).unwrap().iter().map(ours).collect();
        prop_assert_eq!(&mine_c, &theirs_c);
        // Each side verifies the other's proofs.
        let th = |h: &Hash| tlog_tiles::Hash(h.0);
        let their_proof: Vec<tlog_tiles::Hash> = mine.iter().map(th).collect();
        tlog_tiles::check_record(&their_proof, n, th(&root), i, th(&t.leaves()[i as usize])).unwrap();
        let their_c: Vec<tlog_tiles::Hash> = mine_c.iter().map(th).collect();
        tlog_tiles::check_tree(&their_c, n, th(&root), m, th(&old)).unwrap();
        verify_inclusion(i, n, &t.leaves()[i as usize], &theirs, &root).unwrap();
        verify_consistency(m, n, &old, &root, &theirs_c).unwrap();
    }

    #[test]
    fn same_tile_paths_as_tlog_tiles(level in 0u8..6, index in any::<u64>(), w in 1u16..=256) {
        let index = index % 1_000_000_000_000;
        let ours = TileId { level, index, width: w };
        let theirs = tlog_tiles::Tile::new(8, level, index, w as u32, false);
        // tlog_tiles writes Go sumdb paths, which carry the height (8) that
        // C2SP tlog-tiles leaves out; the rest must match byte for byte.
        prop_assert_eq!(format!("tile/8/{}", ours.path(false)), theirs.path());
        prop_assert_eq!(parse_tile_path(&ours.path(false)).unwrap(), ours);
        let back = tlog_tiles::Tile::from_path(&theirs.path()).unwrap();
        prop_assert_eq!((back.level(), back.level_index(), back.width()), (level, index, w as u32));
    }

    #[test]
    fn notes_verify_across_implementations(seed in any::<[u8; 32]>(), name in "[a-z]{1,12}(\\.[a-z]{2,5})?(/[a-z0-9]{1,8})?", lines in proptest::collection::vec("[ -~]{0,40}", 1..5)) {
        let text: String = lines.iter().map(|l| format!("{}\n", l.trim_end())).filter(|l| l != "\n").collect::<String>();
        prop_assume!(!text.is_empty());
        let ours_key = SignerKey::from_seed(&name, ALG_ED25519, seed).unwrap();
        let vkey = ours_key.verifier().to_vkey();
        // Theirs parses our keys; our note verifies with their verifier.
        let their_signer = signed_note::StandardSigner::new(&ours_key.to_skey()).unwrap();
        let their_verifier = signed_note::StandardVerifier::new(&vkey).unwrap();
        let note = Note::sign(&text, &[&ours_key]).unwrap();
        let theirs_parsed = signed_note::Note::from_bytes(&note.to_bytes()).unwrap();
        let list = signed_note::VerifierList::new(vec![Box::new(their_verifier.clone())]);
        theirs_parsed.verify(&list).unwrap();
        // Their signature on the same text is byte-identical and verifies here.
        let mut their_note = signed_note::Note::new(text.as_bytes(), &[]).unwrap();
        their_note.add_sigs(&[&their_signer]).unwrap();
        prop_assert_eq!(their_note.to_bytes(), note.to_bytes());
        let parsed = Note::parse(&their_note.to_bytes()).unwrap();
        parsed.verify(&[VerifierKey::parse(&vkey).unwrap()]).unwrap();
        // Their key generation is readable here.
        let (skey, vk) = signed_note::generate_key(&mut rand::rngs::OsRng, &name);
        prop_assert_eq!(SignerKey::parse(&skey).unwrap().verifier().to_vkey(), vk);
    }
}
