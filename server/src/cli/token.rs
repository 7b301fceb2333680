//! `vellum token add|list|revoke`: token management on the data directory,
//! safe to run while the log serves it. A revoke tells the running log
//! (SIGHUP) and waits until it has re-read the tokens, so that when the
//! command says the token is refused, it is.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;

use crate::datadir;
use crate::tokens;

/// How long `revoke` waits for the running log to confirm.
const CONFIRM_WITHIN: Duration = Duration::from_secs(3);

/// The `vellum token` subcommands.
#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it (once).
    Add {
        /// Token name; events appended with it carry it as `gateway`.
        name: String,
        /// Comma-separated scopes: append, read, admin (admin: evidence exports).
        #[arg(long, default_value = "append")]
        scopes: String,
        /// Data directory.
        #[arg(long, env = "VELLUM_DATA", default_value = "vellum-data")]
        data: PathBuf,
    },
    /// List tokens (names and scopes; secrets are never stored).
    List {
        /// Data directory.
        #[arg(long, env = "VELLUM_DATA", default_value = "vellum-data")]
        data: PathBuf,
    },
    /// Revoke a token; a running log on the same directory refuses it
    /// before this command returns.
    Revoke {
        /// Token name.
        name: String,
        /// Data directory.
        #[arg(long, env = "VELLUM_DATA", default_value = "vellum-data")]
        data: PathBuf,
    },
}

/// Runs a token subcommand.
pub fn run(cmd: TokenCmd) -> Result<(), String> {
    match cmd {
        TokenCmd::Add { name, scopes, data } => {
            let scopes = scopes
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(tokens::Scope::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            if scopes.is_empty() {
                return Err("--scopes needs at least one of append, read, admin".into());
            }
            let t = tokens::add(&data, &name, &scopes).map_err(|e| e.to_string())?;
            // A running log would find the new token on first use anyway;
            // telling it now keeps its view, and a concurrent revoke's
            // confirmation, current.
            if let Some(pid) = datadir::serving_pid(&data) {
                datadir::signal_reload(pid);
            }
            println!("{t}");
            eprintln!("token {name:?} created; it is shown only now");
        }
        TokenCmd::List { data } => {
            for t in tokens::list(&data).map_err(|e| e.to_string())? {
                let scopes: Vec<&str> = t.scopes.iter().map(|s| s.name()).collect();
                println!("{}\t{}\t{}", t.name, scopes.join(","), t.created);
            }
        }
        TokenCmd::Revoke { name, data } => {
            tokens::revoke(&data, &name).map_err(|e| e.to_string())?;
            match datadir::serving_pid(&data) {
                None => eprintln!(
                    "token {name:?} revoked (no log is running on {})",
                    data.display()
                ),
                Some(pid) => {
                    if datadir::signal_reload(pid) && tokens::wait_applied(&data, CONFIRM_WITHIN) {
                        eprintln!("token {name:?} revoked; the running log (pid {pid}) refuses it from now on");
                    } else {
                        eprintln!(
                            "token {name:?} revoked; the running log (pid {pid}) did not confirm within {}s and refuses it once it re-reads tokens.json (within a second)",
                            CONFIRM_WITHIN.as_secs()
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
