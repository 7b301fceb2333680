//! Page cursors: opaque, authenticated (HMAC-SHA256 with a key derived
//! from the log's signing key), bound to the query they page through.
//! A cursor holds the result set's upper bound (the indexed size when the
//! first page was asked for) and where the next page starts, so pages
//! never repeat or skip an event however the log grows meanwhile.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::exec::Dir;

const VERSION: u8 = 1;
const TAG: usize = 16;
const PAYLOAD: usize = 1 + 1 + 8 + 8 + 16;

/// Where a result set stands between pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Walk order of the result set.
    pub dir: Dir,
    /// The result set covers entries below this index.
    pub hi: u64,
    /// Descending: the next page holds entries below `next`; ascending: at
    /// or above it.
    pub next: u64,
}

/// Signs and checks cursors.
pub struct Cursors {
    key: [u8; 32],
}

/// A cursor that is not one this log issued for this query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query parameter cursor: {0}")]
pub struct CursorError(pub &'static str);

fn digest(filter: &str) -> [u8; 16] {
    let h = Sha256::digest(filter.as_bytes());
    let mut d = [0u8; 16];
    d.copy_from_slice(&h[..16]);
    d
}

impl Cursors {
    /// Cursors keyed from `secret` (the log's signing key text).
    pub fn new(secret: &[u8]) -> Cursors {
        let mut h = Sha256::new();
        h.update(b"vellum query cursor key v1\0");
        h.update(secret);
        Cursors {
            key: h.finalize().into(),
        }
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG] {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        m.update(payload);
        let full = m.finalize().into_bytes();
        let mut t = [0u8; TAG];
        t.copy_from_slice(&full[..TAG]);
        t
    }

    /// The cursor for `p` in the result set of `filter` (its canonical text).
    pub fn encode(&self, p: Position, filter: &str) -> String {
        let mut b = Vec::with_capacity(PAYLOAD + TAG);
        b.push(VERSION);
        b.push(match p.dir {
            Dir::Asc => 0,
            Dir::Desc => 1,
        });
        b.extend_from_slice(&p.hi.to_be_bytes());
        b.extend_from_slice(&p.next.to_be_bytes());
        b.extend_from_slice(&digest(filter));
        let t = self.tag(&b);
        b.extend_from_slice(&t);
        URL_SAFE_NO_PAD.encode(b)
    }

    /// Checks a cursor against the query it is sent with.
    pub fn decode(&self, s: &str, filter: &str, dir: Dir) -> Result<Position, CursorError> {
        let b = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| CursorError("not a cursor this log issued (malformed)"))?;
        if b.len() != PAYLOAD + TAG || b[0] != VERSION {
            return Err(CursorError("not a cursor this log issued (malformed)"));
        }
        let (payload, tag) = b.split_at(PAYLOAD);
        let mut m = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        m.update(payload);
        if m.verify_truncated_left(tag).is_err() {
            return Err(CursorError(
                "not a cursor this log issued (its signature does not check)",
            ));
        }
        if payload[18..34] != digest(filter) {
            return Err(CursorError("it belongs to a query with other filters"));
        }
        let d = match payload[1] {
            0 => Dir::Asc,
            _ => Dir::Desc,
        };
        if d != dir {
            return Err(CursorError("it belongs to a query in the other order"));
        }
        let u = |r: std::ops::Range<usize>| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&payload[r]);
            u64::from_be_bytes(x)
        };
        Ok(Position {
            dir: d,
            hi: u(2..10),
            next: u(10..18),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let c = Cursors::new(b"secret");
        let p = Position {
            dir: Dir::Desc,
            hi: 1000,
            next: 377,
        };
        let s = c.encode(p, "agent=a");
        assert_eq!(c.decode(&s, "agent=a", Dir::Desc), Ok(p));
        assert!(c
            .decode(&s, "agent=b", Dir::Desc)
            .unwrap_err()
            .0
            .contains("other filters"));
        assert!(c.decode(&s, "agent=a", Dir::Asc).is_err());
        let mut b = URL_SAFE_NO_PAD.decode(&s).unwrap();
        b[12] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(&b);
        assert!(c
            .decode(&forged, "agent=a", Dir::Desc)
            .unwrap_err()
            .0
            .contains("signature"));
        assert!(c.decode("!!", "agent=a", Dir::Desc).is_err());
        assert!(Cursors::new(b"other")
            .decode(&s, "agent=a", Dir::Desc)
            .is_err());
    }
}
