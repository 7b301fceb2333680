//! The network edge of the Vellum log and witness, in one place so that
//! both hold the same limits: serving HTTP/1 with bounded connections
//! ([`serve`]), the descriptor limit ([`fdlimit`]) and size-capped reads
//! of what other servers answer ([`capped`]).
#![deny(missing_docs)]

pub mod capped;
pub mod fdlimit;
mod guard;
pub mod serve;

use std::time::Duration;

pub use capped::{read_capped, read_capped_text, CappedError};
pub use serve::{serve, ConnLimits, ConnStats};

/// How long clients keep idle pooled connections: well below the default
/// header timeout (10 s), after which the server closes a kept-alive
/// connection that sent no new request, so that no request is sent on a
/// connection the server is closing at that moment.
pub const CLIENT_IDLE: Duration = Duration::from_secs(5);

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Parses durations written like `200ms`, `1s`, `1.5s`, `2m` or `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration {s:?} needs a unit: ms, s, m or h"))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("duration {s:?}: {num:?} is not a number"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("duration {s:?}: unit must be ms, s, m or h")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86400.0 * 365.0 {
        return Err(format!("duration {s:?} must be positive and under a year"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["1", "s", "1x", "0s", "-1s", ""] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
