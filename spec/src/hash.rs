//! SHA-256 hashes as RFC 9162 uses them: leaf and interior node hashing with
//! domain-separation prefixes, and the base64 text form used on the wire.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;

/// Size in bytes of a SHA-256 hash.
pub const HASH_SIZE: usize = 32;

/// A 32-byte SHA-256 hash: a leaf hash, an interior node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_SIZE]);

/// The root of the empty tree: SHA-256 of the empty string.
pub const EMPTY_ROOT: Hash = Hash([
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
]);

/// Why a string or byte slice is not a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The text is not standard padded base64.
    #[error("not valid base64")]
    Base64,
    /// The decoded value is not 32 bytes long.
    #[error("decodes to {0} bytes, want 32")]
    Length(usize),
}

impl Hash {
    /// Parses a hash from standard padded base64 (44 characters).
    pub fn from_base64(s: &str) -> Result<Hash, HashError> {
        let bytes = B64.decode(s).map_err(|_| HashError::Base64)?;
        Hash::from_slice(&bytes)
    }

    /// Takes a hash from a slice that must be exactly 32 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Hash, HashError> {
        let arr: [u8; HASH_SIZE] = b.try_into().map_err(|_| HashError::Length(b.len()))?;
        Ok(Hash(arr))
    }

    /// Standard padded base64, the form used in checkpoints and JSON proofs.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Parses 64 hexadecimal digits.
    pub fn from_hex(s: &str) -> Option<Hash> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; HASH_SIZE];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Hash(out))
    }

    /// Lowercase hexadecimal.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// RFC 9162 leaf hash: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    Hash(h.finalize().into())
}

/// RFC 9162 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 1 + 2 * HASH_SIZE];
    buf[0] = 1;
    buf[1..33].copy_from_slice(&left.0);
    buf[33..].copy_from_slice(&right.0);
    Hash(Sha256::digest(buf).into())
}

/// Plain SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(EMPTY_ROOT.0, sha256(b""));
        assert_eq!(
            EMPTY_ROOT.to_base64(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn go_record_hash_vector() {
        // golang.org/x/mod/sumdb/tlog note_test.go: RecordHash("hello world").
        assert_eq!(
            leaf_hash(b"hello world").to_base64(),
            "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0="
        );
    }

    #[test]
    fn base64_round_trip_and_errors() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_base64(&h.to_base64()), Ok(h));
        assert_eq!(Hash::from_base64("!!"), Err(HashError::Base64));
        assert_eq!(Hash::from_base64("AAAA"), Err(HashError::Length(3)));
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(Hash::from_hex(&"g".repeat(64)), None);
        assert_eq!(Hash::from_hex("00"), None);
    }
}
