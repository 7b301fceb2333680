//! `vellum serve` settings: command-line flags, `VELLUM_*` environment
//! variables, or a TOML file (`--config`), in that order of precedence,
//! over defaults that let `vellum serve` run alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use vellum_net::parse_duration;

/// Flags of `vellum serve` (each also read from its environment variable).
/// A flag given twice takes its last value.
#[derive(clap::Args, Debug, Default)]
#[command(args_override_self = true)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (flags and env win).
    #[arg(long, env = "VELLUM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./vellum-data].
    #[arg(long, env = "VELLUM_DATA")]
    pub data: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7380].
    #[arg(long, env = "VELLUM_LISTEN")]
    pub listen: Option<String>,
    /// Log origin and key name, set on first start [default: localhost/vellum].
    #[arg(long, env = "VELLUM_ORIGIN")]
    pub origin: Option<String>,
    /// How often to sign a checkpoint when the tree grew, e.g. 200ms, 1s [default: 1s].
    #[arg(long, env = "VELLUM_CHECKPOINT_INTERVAL", value_parser = parse_duration)]
    pub checkpoint_interval: Option<Duration>,
    /// Serve entries (bundles and /v1/entries) without a token, for public logs.
    #[arg(long, env = "VELLUM_PUBLIC_ENTRIES", num_args = 0..=1, default_missing_value = "true")]
    pub public_entries: Option<bool>,
    /// Most events in one append request [default: 1000].
    #[arg(long, env = "VELLUM_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// Append requests that may wait for the sequencer before 503s [default: 4096].
    #[arg(long, env = "VELLUM_QUEUE")]
    pub queue: Option<usize>,
    /// sled page cache in MiB (it holds only the tree size and checkpoint) [default: 32].
    #[arg(long, env = "VELLUM_CACHE_MB")]
    pub cache_mb: Option<u64>,
    /// Event IDs the dedup index keeps in memory before writing a sorted
    /// run file (memory vs. number of files) [default: 262144].
    #[arg(long, env = "VELLUM_DEDUP_TABLE_KEYS")]
    pub dedup_table_keys: Option<usize>,
    /// Write logs as JSON lines.
    #[arg(long, env = "VELLUM_LOG_JSON", num_args = 0..=1, default_missing_value = "true")]
    pub log_json: Option<bool>,
    /// A witness as `VKEY@URL` (repeatable; env: comma-separated). Checkpoints
    /// are published only once a quorum of witnesses cosigned them.
    #[arg(
        long = "witness",
        env = "VELLUM_WITNESS",
        value_delimiter = ',',
        value_name = "VKEY@URL"
    )]
    pub witnesses: Vec<String>,
    /// Cosignatures needed to publish a checkpoint [default: a majority of the witnesses].
    #[arg(long, env = "VELLUM_WITNESS_QUORUM")]
    pub witness_quorum: Option<usize>,
    /// How long one witness request may take, e.g. 2s [default: 5s].
    #[arg(long, env = "VELLUM_WITNESS_TIMEOUT", value_parser = parse_duration)]
    pub witness_timeout: Option<Duration>,
    /// How long an append with `?receipt=true` waits for a checkpoint [default: 10s].
    #[arg(long, env = "VELLUM_RECEIPT_TIMEOUT", value_parser = parse_duration)]
    pub receipt_timeout: Option<Duration>,
    /// HTTP connections served at once; more get 503 [default: 1024, at
    /// most half the descriptor limit].
    #[arg(long, env = "VELLUM_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Time a client has to send a request's headers [default: 10s].
    #[arg(long, env = "VELLUM_HEADER_TIMEOUT", value_parser = parse_duration)]
    pub header_timeout: Option<Duration>,
    /// A connection with no traffic for this long is closed [default: 60s].
    #[arg(long, env = "VELLUM_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// A response the client does not read for this long is cut off [default: 30s].
    #[arg(long, env = "VELLUM_WRITE_TIMEOUT", value_parser = parse_duration)]
    pub write_timeout: Option<Duration>,
    /// Time a client has to send an append request's body [default: 30s].
    #[arg(long, env = "VELLUM_BODY_TIMEOUT", value_parser = parse_duration)]
    pub body_timeout: Option<Duration>,
    /// Evidence exports streamed at once; more get 503 [default: 4].
    #[arg(long, env = "VELLUM_MAX_EXPORTS")]
    pub max_exports: Option<usize>,
    /// Appends waiting for a receipt at once; more get 503 [default: 4096].
    #[arg(long, env = "VELLUM_MAX_RECEIPT_WAITS")]
    pub max_receipt_waits: Option<usize>,
    /// Keep the query index (GET /v1/events, /v1/stats) [default: true].
    #[arg(long, env = "VELLUM_QUERY_INDEX", num_args = 0..=1, default_missing_value = "true")]
    pub query_index: Option<bool>,
    /// Live tails served at once; more get 503 [default: 256].
    #[arg(long, env = "VELLUM_MAX_TAILS")]
    pub max_tails: Option<usize>,
    /// Storage backend: `embedded` (files in the data directory, the
    /// default) or `s3` (an S3-compatible bucket; see the README's
    /// "Running at scale").
    #[arg(long, env = "VELLUM_STORAGE")]
    pub storage: Option<String>,
    /// S3 endpoint URL, e.g. http://127.0.0.1:8333 (default: AWS).
    #[arg(long, env = "VELLUM_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: us-east-1].
    #[arg(long, env = "VELLUM_S3_REGION")]
    pub s3_region: Option<String>,
    /// S3 bucket.
    #[arg(long, env = "VELLUM_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// Key prefix of the log inside the bucket [default: none].
    #[arg(long, env = "VELLUM_S3_PREFIX")]
    pub s3_prefix: Option<String>,
    /// Serve the bucket's log without writing (a read replica; needs
    /// --storage s3): follows the writer's lock record.
    #[arg(long, env = "VELLUM_READ_ONLY", num_args = 0..=1, default_missing_value = "true")]
    pub read_only: Option<bool>,
    /// The S3 writer's lease: another writer may take over this long after
    /// this one stopped renewing it [default: 15s].
    #[arg(long, env = "VELLUM_S3_LEASE", value_parser = parse_duration)]
    pub s3_lease: Option<Duration>,
    /// How often a read replica looks for new entries [default: 500ms].
    #[arg(long, env = "VELLUM_FOLLOW_INTERVAL", value_parser = parse_duration)]
    pub follow_interval: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data: Option<PathBuf>,
    listen: Option<String>,
    origin: Option<String>,
    checkpoint_interval: Option<String>,
    public_entries: Option<bool>,
    max_batch: Option<usize>,
    queue: Option<usize>,
    cache_mb: Option<u64>,
    dedup_table_keys: Option<usize>,
    log_json: Option<bool>,
    witness: Option<Vec<String>>,
    witness_quorum: Option<usize>,
    witness_timeout: Option<String>,
    receipt_timeout: Option<String>,
    max_connections: Option<usize>,
    header_timeout: Option<String>,
    idle_timeout: Option<String>,
    write_timeout: Option<String>,
    body_timeout: Option<String>,
    max_exports: Option<usize>,
    max_receipt_waits: Option<usize>,
    query_index: Option<bool>,
    max_tails: Option<usize>,
    sink: Option<Vec<crate::sinks::SinkToml>>,
    storage: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_bucket: Option<String>,
    s3_prefix: Option<String>,
    s3_access_key_id: Option<String>,
    /// A file holding the secret key (keep it 0600); never the key itself.
    s3_secret_access_key_file: Option<PathBuf>,
    read_only: Option<bool>,
    follow_interval: Option<String>,
    s3_lease: Option<String>,
}

/// Where the log is stored.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Files in the data directory.
    Embedded,
    /// An S3-compatible bucket.
    S3(crate::storage::object::S3Settings),
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory.
    pub data: PathBuf,
    /// Listen address.
    pub listen: String,
    /// Origin for a new log (an existing log keeps its own).
    pub origin: Option<String>,
    /// Checkpoint interval.
    pub checkpoint_interval: Duration,
    /// Entries readable without a token.
    pub public_entries: bool,
    /// Events per request limit.
    pub max_batch: usize,
    /// Queue length.
    pub queue: usize,
    /// Storage cache in bytes.
    pub cache_bytes: u64,
    /// Dedup keys held in memory per run.
    pub dedup_table_keys: usize,
    /// JSON logs.
    pub log_json: bool,
    /// Witnesses to ask for cosignatures.
    pub witnesses: Vec<crate::tlog::witnessing::WitnessSpec>,
    /// Cosignatures needed to publish.
    pub witness_quorum: usize,
    /// Per-request witness timeout.
    pub witness_timeout: Duration,
    /// How long a receipt request waits.
    pub receipt_timeout: Duration,
    /// Connection limits of the HTTP server.
    pub conn: vellum_net::ConnLimits,
    /// Time to receive an append body.
    pub body_timeout: Duration,
    /// Concurrent exports.
    pub max_exports: usize,
    /// Concurrent receipt waits.
    pub max_receipt_waits: usize,
    /// Keep the query index.
    pub query_index: bool,
    /// Concurrent live tails.
    pub max_tails: usize,
    /// The `[[sink]]` entries, validated.
    pub sinks: Vec<crate::sinks::SinkSpec>,
    /// Storage backend.
    pub storage: Storage,
    /// Serve without writing (a read replica of a bucket's log).
    pub read_only: bool,
    /// How often a replica looks for new entries.
    pub follow_interval: Duration,
    /// The S3 writer's lease.
    pub s3_lease: Duration,
    /// The file the S3 secret key was read from, if any (its mode is
    /// checked once logging runs).
    pub s3_secret_file: Option<PathBuf>,
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Config {
    /// Merges flags and environment over the TOML file over defaults.
    pub fn resolve(a: ServeArgs) -> Result<Config, String> {
        let f = match &a.config {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let interval = match (a.checkpoint_interval, f.checkpoint_interval) {
            (Some(d), _) => d,
            (None, Some(s)) => {
                parse_duration(&s).map_err(|e| format!("checkpoint_interval: {e}"))?
            }
            (None, None) => Duration::from_secs(1),
        };
        let dur =
            |flag: Option<Duration>, file: Option<String>, name: &str, default: Duration| match (
                flag, file,
            ) {
                (Some(d), _) => Ok(d),
                (None, Some(s)) => parse_duration(&s).map_err(|e| format!("{name}: {e}")),
                (None, None) => Ok(default),
            };
        let witness_timeout = dur(
            a.witness_timeout,
            f.witness_timeout,
            "witness_timeout",
            Duration::from_secs(5),
        )?;
        let receipt_timeout = dur(
            a.receipt_timeout,
            f.receipt_timeout,
            "receipt_timeout",
            Duration::from_secs(10),
        )?;
        let defaults = vellum_net::ConnLimits::default();
        let conn = vellum_net::ConnLimits {
            max_connections: a
                .max_connections
                .or(f.max_connections)
                .unwrap_or(defaults.max_connections)
                .max(1),
            header_timeout: dur(
                a.header_timeout,
                f.header_timeout,
                "header_timeout",
                defaults.header_timeout,
            )?,
            idle_timeout: dur(
                a.idle_timeout,
                f.idle_timeout,
                "idle_timeout",
                defaults.idle_timeout,
            )?,
            write_timeout: dur(
                a.write_timeout,
                f.write_timeout,
                "write_timeout",
                defaults.write_timeout,
            )?,
        };
        if conn.idle_timeout <= receipt_timeout {
            return Err(format!(
                "idle_timeout ({:?}) must be longer than receipt_timeout ({receipt_timeout:?}): a connection waiting for its receipt is idle",
                conn.idle_timeout
            ));
        }
        let body_timeout = dur(
            a.body_timeout,
            f.body_timeout,
            "body_timeout",
            Duration::from_secs(30),
        )?;
        let raw = if a.witnesses.is_empty() {
            f.witness.unwrap_or_default()
        } else {
            a.witnesses
        };
        let witnesses = raw
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| crate::tlog::witnessing::WitnessSpec::parse(s.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, w) in witnesses.iter().enumerate() {
            if witnesses[..i].iter().any(|o| o.key == w.key) {
                return Err(format!("witness {} is listed twice", w.key.to_vkey()));
            }
        }
        let witness_quorum = a
            .witness_quorum
            .or(f.witness_quorum)
            .unwrap_or(witnesses.len() / 2 + usize::from(!witnesses.is_empty()));
        if witness_quorum > witnesses.len() {
            return Err(format!(
                "witness quorum {witness_quorum} is more than the {} witness(es) configured",
                witnesses.len()
            ));
        }
        let sinks = crate::sinks::config::validate_all(f.sink.as_deref().unwrap_or_default())?;
        let storage = match a.storage.or(f.storage).as_deref() {
            None | Some("embedded") => Storage::Embedded,
            Some("s3") => {
                // The environment wins over the file, as for every setting.
                let secret = match (
                    crate::storage::object::settings::credential_from_env("SECRET_ACCESS_KEY"),
                    &f.s3_secret_access_key_file,
                ) {
                    (Some(s), _) => Some(s),
                    (None, Some(p)) => Some(
                        std::fs::read_to_string(p)
                            .map_err(|e| format!("s3_secret_access_key_file {}: {e}", p.display()))?
                            .trim()
                            .to_string(),
                    ),
                    (None, None) => None,
                };
                let s = crate::storage::object::S3Settings {
                    endpoint: a.s3_endpoint.or(f.s3_endpoint),
                    region: a.s3_region.or(f.s3_region).unwrap_or_default(),
                    bucket: a.s3_bucket.or(f.s3_bucket).unwrap_or_default(),
                    prefix: a.s3_prefix.or(f.s3_prefix).unwrap_or_default(),
                    access_key_id: crate::storage::object::settings::credential_from_env(
                        "ACCESS_KEY_ID",
                    )
                    .or(f.s3_access_key_id),
                    secret_access_key: secret,
                };
                s.validate()?;
                Storage::S3(s)
            }
            Some(other) => {
                return Err(format!(
                    "storage {other:?} is not known: use embedded or s3"
                ))
            }
        };
        let read_only = a.read_only.or(f.read_only).unwrap_or(false);
        if read_only && matches!(storage, Storage::Embedded) {
            return Err("--read-only serves a bucket's log: it needs --storage s3".into());
        }
        let follow_interval = dur(
            a.follow_interval,
            f.follow_interval,
            "follow_interval",
            Duration::from_millis(500),
        )?;
        let s3_lease = dur(
            a.s3_lease,
            f.s3_lease,
            "s3_lease",
            crate::storage::object::lock::DEFAULT_LEASE,
        )?;
        if s3_lease < Duration::from_secs(1) {
            return Err("s3_lease must be at least 1s".into());
        }
        let max_batch = a.max_batch.or(f.max_batch).unwrap_or(1000);
        if max_batch == 0 || max_batch > 100_000 {
            return Err("max_batch must be between 1 and 100000".into());
        }
        Ok(Config {
            data: a
                .data
                .or(f.data)
                .unwrap_or_else(|| PathBuf::from("vellum-data")),
            listen: a
                .listen
                .or(f.listen)
                .unwrap_or_else(|| "127.0.0.1:7380".into()),
            origin: a.origin.or(f.origin),
            checkpoint_interval: interval,
            public_entries: a.public_entries.or(f.public_entries).unwrap_or(false),
            max_batch,
            queue: a.queue.or(f.queue).unwrap_or(4096).max(1),
            cache_bytes: a.cache_mb.or(f.cache_mb).unwrap_or(32) << 20,
            dedup_table_keys: a
                .dedup_table_keys
                .or(f.dedup_table_keys)
                .unwrap_or(crate::storage::dedup_index::TABLE_KEYS)
                .max(1),
            log_json: a.log_json.or(f.log_json).unwrap_or(false),
            witnesses,
            witness_quorum,
            witness_timeout,
            receipt_timeout,
            conn,
            body_timeout,
            max_exports: a.max_exports.or(f.max_exports).unwrap_or(4).max(1),
            max_receipt_waits: a
                .max_receipt_waits
                .or(f.max_receipt_waits)
                .unwrap_or(4096)
                .max(1),
            query_index: a.query_index.or(f.query_index).unwrap_or(true),
            max_tails: a.max_tails.or(f.max_tails).unwrap_or(256).max(1),
            sinks,
            storage,
            read_only,
            follow_interval,
            s3_lease,
            s3_secret_file: f.s3_secret_access_key_file.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_over_file_over_defaults() {
        let dir = std::env::temp_dir().join(format!("vellum-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("v.toml");
        std::fs::write(
            &p,
            "listen = \"127.0.0.1:1\"\ncheckpoint_interval = \"250ms\"\nmax_batch = 7\n",
        )
        .unwrap();
        let c = Config::resolve(ServeArgs {
            config: Some(p.clone()),
            max_batch: Some(9),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.checkpoint_interval, Duration::from_millis(250));
        assert_eq!(c.max_batch, 9);
        assert_eq!(c.data, PathBuf::from("vellum-data"));
        std::fs::write(&p, "listne = \"x\"\n").unwrap();
        let e = Config::resolve(ServeArgs {
            config: Some(p),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("listne"), "{e}");
    }
}
