//! The process's descriptor limit: raised to the hard limit at start, and
//! the connection cap derived from it, so that a connection flood can
//! never take the descriptors the log needs to write its files.

use std::io;

/// Descriptors kept free of connections for storage, the dedup runs,
/// outgoing requests and the runtime.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (capped at 2^20, the
/// kernel's usual `nr_open`); returns the (soft, hard) limits in force.
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let want = lim.rlim_max.min(1 << 20);
    if want > lim.rlim_cur {
        let new = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            lim.rlim_cur = want;
        }
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// The connections a process with `soft` descriptors may serve at once:
/// the `requested` number, but at most half of what the reserve leaves
/// (each connection's request may open a file of its own).
pub fn connection_cap(requested: usize, soft: u64) -> usize {
    let room = soft.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    requested.min(room as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_files() {
        assert_eq!(connection_cap(1024, 1024), 480);
        assert_eq!(connection_cap(1024, 1 << 20), 1024);
        assert_eq!(connection_cap(1024, 10), 1);
        let (soft, hard) = raise_nofile_limit().unwrap();
        assert!(soft <= hard && soft > 0);
    }
}
