//! Writes the seed inputs of every fuzz target to `corpus/<target>/seed-*`:
//! well-formed instances of each format (events, leaves, signed notes and
//! checkpoints signed with the fuzz key, witness requests, receipts, tile
//! paths, entry and evidence bundles), so the fuzzers start from inputs
//! that reach past the first checks. Run: `cargo run --bin seeds`.

use std::collections::BTreeMap;
use std::path::Path;

use vellum_spec::bundle::{self, Filter, Header, Kind, Manifest, Scope};
use vellum_spec::hash::leaf_hash;
use vellum_spec::merkle::{prove_consistency, prove_inclusion, MemoryTree};
use vellum_spec::note::{Note, SignerKey, ALG_ED25519};
use vellum_spec::proof::TlogProof;
use vellum_spec::tile::{push_bundle_entry, TileId};
use vellum_spec::witness::AddCheckpoint;
use vellum_spec::Checkpoint;

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(format!("seed-{name}")), data).expect("seed");
}

const EVENTS: &[&str] = &[
    r#"{"ts":"2026-06-20T14:07:31.120Z","agent":"billing-bot","session":"s-42","principal":"svc-billing@corp.example","owner":"payments-oncall","tool":"stripe.refund","target":"api.stripe.com","args_hash":"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","provenance":"untrusted","provenance_source":"inbound email","verdict":"deny","rule":"refunds-need-approval","reason":"amount over 100 EUR","risk":80}"#,
    r#"{"ts":"2026-06-20T14:08:00Z","agent":"a","principal":"p","owner":"o","tool":"t","verdict":"allow","seq":7,"latency_ms":12,"result":{"status":200,"error":"timeout"},"attrs":{"n":1.5e3,"k":[true,false,null,"\u00e9\ud83d\ude00"]}}"#,
    r#"{"ts":"2026-06-20T14:08:00Z","agent":"a","principal":"p","owner":"o","tool":"t","verdict":"review","event_id":"e-1","args":{"q":"select 1","big":209495624604671740,"neg":-0.0}}"#,
];

fn main() {
    let key = SignerKey::from_seed("fuzz.example/log", ALG_ED25519, [42; 32]).expect("key");
    let witness = SignerKey::from_seed("fuzz.example/witness", ALG_ED25519, [43; 32]).expect("key");
    // Events and request bodies.
    for (i, e) in EVENTS.iter().enumerate() {
        write("event", &i.to_string(), e.as_bytes());
        write("jcs", &i.to_string(), e.as_bytes());
    }
    write("event", "batch", format!("[{}]", EVENTS.join(",")).as_bytes());
    for (i, j) in [
        r#"{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001]}"#,
        r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
        "[1e21,1e20,-1,0.1,9007199254740991,-9007199254740991]",
    ]
    .iter()
    .enumerate()
    {
        write("jcs", &format!("rfc8785-{i}"), j.as_bytes());
    }
    // Sealed leaves, in a tree.
    let leaves: Vec<Vec<u8>> = EVENTS
        .iter()
        .map(|e| {
            let v = vellum_spec::jcs::parse_strict(e.as_bytes()).expect("seed event");
            vellum_spec::event::seal(v, "gw", "2026-06-20T14:07:31.120Z", || "id".into())
                .expect("seed seals")
                .leaf
        })
        .collect();
    for (i, l) in leaves.iter().enumerate() {
        write("leaf", &i.to_string(), l);
    }
    let tree = MemoryTree::new(leaves.iter().map(|l| leaf_hash(l)).collect());
    let size = leaves.len() as u64;
    let cp = Checkpoint {
        origin: key.name.clone(),
        size,
        root: tree.root(size).expect("root"),
        extensions: vec![],
    };
    let text = cp.to_text();
    write("checkpoint", "0", text.as_bytes());
    write("checkpoint", "size", b"18446744073709551615");
    let mut note = Note::sign(&text, &[&key]).expect("note");
    write("note", "signed", &note.to_bytes());
    note.sigs.push(witness.cosign(text.as_bytes(), 1_760_000_000));
    let cosigned = note.to_bytes();
    write("note", "cosigned", &cosigned);
    // Witness requests.
    let proof = prove_consistency(1, size, &tree).expect("consistency");
    let plain = Note::sign(&text, &[&key]).expect("note").to_bytes();
    write(
        "witness_request",
        "0",
        &AddCheckpoint {
            old: 1,
            proof,
            note: plain.clone(),
        }
        .to_bytes(),
    );
    write(
        "witness_request",
        "first",
        &AddCheckpoint {
            old: 0,
            proof: vec![],
            note: plain,
        }
        .to_bytes(),
    );
    write("witness_request", "size", b"17\n");
    // Receipts.
    for i in 0..size {
        let r = TlogProof {
            extra: Some(leaves[i as usize].clone()),
            index: i,
            proof: prove_inclusion(i, size, &tree).expect("inclusion"),
            checkpoint: cosigned.clone(),
        };
        write("receipt", &i.to_string(), r.to_text().as_bytes());
    }
    // Tile paths.
    for (i, id) in [
        TileId::full(0, 0),
        TileId { level: 0, index: 1234, width: 5 },
        TileId::full(3, 1_000_000_000),
        TileId { level: 1, index: 67, width: 255 },
    ]
    .iter()
    .enumerate()
    {
        write("tile_path", &format!("t{i}"), id.path(false).as_bytes());
        write("tile_path", &format!("e{i}"), id.path(true).as_bytes());
    }
    // Entry bundles.
    let mut b = Vec::new();
    for l in &leaves {
        push_bundle_entry(&mut b, l).expect("bundle");
    }
    write("entry_bundle", "0", &b);
    // An evidence bundle, signed as a log would.
    let manifest = Manifest {
        origin: key.name.clone(),
        log_key: key.verifier().to_vkey(),
        schema: bundle::SCHEMA.into(),
        exported_at: "2026-06-20T15:00:00.000Z".into(),
        scope: Scope {
            from: None,
            to: None,
            first_index: 0,
            end_index: size,
            complete: true,
        },
        filter: Filter::default(),
        counts: {
            let mut c: BTreeMap<String, u64> = bundle::empty_counts();
            for v in ["deny", "allow", "review"] {
                *c.entry(v.into()).or_insert(0) += 1;
            }
            c.insert("events".into(), size);
            c
        },
        checkpoint_size: size,
    };
    let statement = bundle::manifest_statement(&manifest, &cp);
    let header = Header {
        format: bundle::FORMAT.into(),
        manifest,
        checkpoint: String::from_utf8(cosigned).expect("utf8"),
        consistency: None,
        manifest_signature: String::from_utf8(
            Note::sign(&statement, &[&key]).expect("statement").to_bytes(),
        )
        .expect("utf8"),
    };
    let mut out = bundle::header_line(&header);
    for i in 0..size {
        let p = prove_inclusion(i, size, &tree).expect("inclusion");
        out.extend(bundle::record_line(Kind::Event, i, &p, &leaves[i as usize]));
    }
    out.extend(bundle::end_line(size));
    write("evidence_bundle", "0", &out);
    // The server's parsers: query strings, cursors, leaves.
    for (i, q) in [
        "agent=billing-bot&verdict=deny,review&order=asc&limit=50",
        "owner=team-a&owner=team-b&risk_min=40&risk_max=90&from=2026-06-20T00:00:00Z&to=2026-06-21T00:00:00.500Z&proofs=true",
        "session=s%2042&tool=stripe.refund&provenance=untrusted&gateway=gw&event_id=e1,e2",
        "bucket=5m&group_by=agent&top=20&verdict=deny",
        "after=17&rule=refunds-need-approval&target=api.stripe.com",
        "cursor=AQEAAAAAAAAAEAAAAAAAAAAKSFAp3KD6HSsAS2sJNVb3SbWz_eCOdF0WUk2KbfA-gIQ&limit=1000",
    ]
    .iter()
    .enumerate()
    {
        write("server_query_params", &i.to_string(), q.as_bytes());
    }
    let cursors = vellum_server::query::cursor::Cursors::new(b"fuzz");
    let c = cursors.encode(
        vellum_server::query::cursor::Position {
            dir: vellum_server::query::exec::Dir::Desc,
            hi: 1000,
            next: 500,
        },
        "f",
    );
    write("server_cursor", "0", c.as_bytes());
    let mut raw = 1000u64.to_le_bytes().to_vec();
    raw.extend_from_slice(&500u64.to_le_bytes());
    raw.push(1);
    write("server_cursor", "raw", &raw);
    for (i, l) in leaves.iter().enumerate() {
        write("server_event_fields", &i.to_string(), l);
    }
    write(
        "server_event_fields",
        "escapes",
        br#"{"agent":"a\"b","args":{"q":"}{\"","n":[1,{"x":"]"}]},"risk":7,"verdict":"deny"}"#,
    );
}
