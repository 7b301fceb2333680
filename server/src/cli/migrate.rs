//! `vellum migrate --from DIR --to s3://BUCKET/PREFIX`: copies a stopped
//! embedded log into an empty bucket, entry by entry through the same
//! commit path the writer uses, then verifies the copy: the root recomputed
//! from the bucket's entry bundles, the bucket's tiles and its lock record
//! must all equal the source's root at the same size. Only then does it
//! report success.

use std::path::PathBuf;
use std::time::Instant;

use vellum_spec::hash::leaf_hash;
use vellum_spec::merkle::tree_root;
use vellum_spec::tile::{parse_bundle, TILE_WIDTH};

use crate::storage::object::{instance_id, BucketStore, OpenOptions, Role, S3Settings};
use crate::storage::tree::{StoreNodes, TreeEdge};
use crate::storage::{CommitBatch, LogStore, SledStore};
use crate::{datadir, storage};

/// Entries per commit while copying.
const CHUNK: u64 = 16_384;

/// Flags of `vellum migrate`.
#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// Data directory of the embedded log (stopped while it is copied).
    #[arg(long)]
    pub from: PathBuf,
    /// Destination: s3://BUCKET[/PREFIX] (must hold no log yet).
    #[arg(long)]
    pub to: String,
    /// S3 endpoint URL, e.g. http://127.0.0.1:8333 (default: AWS).
    #[arg(long, env = "VELLUM_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: us-east-1].
    #[arg(long, env = "VELLUM_S3_REGION")]
    pub s3_region: Option<String>,
}

/// Runs the migration; credentials come from the AWS_* variables.
pub fn run(a: MigrateArgs) -> Result<(), String> {
    let (bucket, prefix) = S3Settings::parse_url(&a.to)?;
    let settings = S3Settings {
        endpoint: a.s3_endpoint,
        region: a.s3_region.unwrap_or_default(),
        bucket,
        prefix,
        access_key_id: crate::storage::object::settings::credential_from_env("ACCESS_KEY_ID"),
        secret_access_key: crate::storage::object::settings::credential_from_env(
            "SECRET_ACCESS_KEY",
        ),
    };
    settings.validate()?;
    if !a.from.join("log.key").exists() {
        return Err(format!(
            "{} holds no vellum log (no log.key)",
            a.from.display()
        ));
    }
    let _lock = datadir::lock_for_serving(&a.from).map_err(|e| e.to_string())?;
    let dir = datadir::DataDir::open(&a.from, None).map_err(|e| e.to_string())?;
    let vkey = dir.signer.verifier().to_vkey();
    let src = SledStore::open(&dir.db_path(), 32 << 20, storage::dedup_index::TABLE_KEYS)
        .map_err(|e| format!("opening {}: {e}", a.from.display()))?;
    let size = src.size().map_err(|e| e.to_string())?;
    let want = tree_root(size, &StoreNodes::new(&src, size)).map_err(|e| e.to_string())?;
    let local = dir.db_path().join("s3");
    let open = |role| {
        BucketStore::open(OpenOptions {
            settings: settings.clone(),
            role,
            local: local.clone(),
            instance: instance_id(&a.from).map_err(|e| e.to_string())?,
            log_key: Some(vkey.clone()),
            dedup_table_keys: storage::dedup_index::TABLE_KEYS,
            lease: storage::object::lock::DEFAULT_LEASE,
        })
        .map_err(|e| format!("{}: {e}", settings.describe()))
    };
    let dst = open(Role::Writer)?;
    let have = dst.size().map_err(|e| e.to_string())?;
    if have != 0 {
        return Err(format!(
            "{} already holds a log of {have} entries; migrate only into an empty prefix",
            settings.describe()
        ));
    }
    eprintln!(
        "vellum migrate: copying {size} entries from {} to {}",
        a.from.display(),
        settings.describe()
    );
    let t = Instant::now();
    let mut edge = TreeEdge::load(&dst, 0).map_err(|e| e.to_string())?;
    let mut next = 0u64;
    while next < size {
        let end = (next + CHUNK).min(size);
        let mut batch = CommitBatch::default();
        let mut leaves = Vec::new();
        storage::for_each_entry(&src, next, end, |i, leaf| {
            batch.entries.push((i, leaf.to_vec()));
            leaves.push(leaf_hash(leaf));
            Ok::<(), storage::StoreError>(())
        })
        .map_err(|e| e.to_string())?;
        batch.tiles = edge.append(&leaves);
        batch.new_size = edge.size();
        batch.new_root = edge.root();
        dst.commit(&batch).map_err(|e| e.to_string())?;
        next = end;
        if next.is_multiple_of(CHUNK * 16) {
            eprintln!("  {next}/{size}");
        }
    }
    if let Some(note) = src.checkpoint().map_err(|e| e.to_string())? {
        dst.put_checkpoint(&note).map_err(|e| e.to_string())?;
    }
    drop(dst);

    // Verify the copy from what the bucket holds, read afresh.
    let check = open(Role::Replica)?;
    let copied = check.size().map_err(|e| e.to_string())?;
    if copied != size {
        return Err(format!(
            "the bucket's lock record says {copied} entries, not {size}"
        ));
    }
    let from_tiles = tree_root(size, &StoreNodes::new(&check, size)).map_err(|e| e.to_string())?;
    let mut recomputed = TreeEdge::load(&check, 0).map_err(|e| e.to_string())?;
    let mut n = 0;
    while n * TILE_WIDTH < size {
        let w = (size - n * TILE_WIDTH).min(TILE_WIDTH) as usize;
        let data = check.bundle(n, w).map_err(|e| e.to_string())?;
        let leaves: Vec<_> = parse_bundle(&data)
            .map_err(|e| format!("entry bundle {n}: {e}"))?
            .iter()
            .map(|l| leaf_hash(l))
            .collect();
        recomputed.append(&leaves);
        n += 1;
    }
    if from_tiles != want || recomputed.root() != want {
        return Err(format!(
            "the copy does not verify: source root {want}, bucket tiles {from_tiles}, bucket entries {}",
            recomputed.root()
        ));
    }
    println!(
        "migrated {size} entries to {} in {:.1} s; verified: the root recomputed from the bucket's entries and its tiles equals the source's, {want} at size {size}",
        settings.describe(),
        t.elapsed().as_secs_f64()
    );
    println!(
        "serve it with: vellum serve --data {} --storage s3 --s3-bucket {}{}{}",
        a.from.display(),
        settings.bucket,
        if settings.prefix.is_empty() {
            String::new()
        } else {
            format!(" --s3-prefix {}", settings.prefix)
        },
        settings
            .endpoint
            .as_deref()
            .map(|e| format!(" --s3-endpoint {e}"))
            .unwrap_or_default()
    );
    Ok(())
}
