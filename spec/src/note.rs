//! C2SP signed-note with Ed25519: signer and verifier key strings, key IDs,
//! parsing, signing and verification of notes, and `cosignature/v1`
//! (timestamped Ed25519) signatures.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::hash::sha256;

/// Signature type byte of plain Ed25519 note signatures.
pub const ALG_ED25519: u8 = 0x01;
/// Signature type byte of timestamped Ed25519 `cosignature/v1` signatures.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Most signature lines a note may carry (Go's `note.Open` limit).
pub const MAX_SIGNATURES: usize = 100;
/// Largest note accepted, in bytes.
pub const MAX_NOTE_SIZE: usize = 1_000_000;

const SIG_PREFIX: &str = "\u{2014} ";

/// Why a key, a note or a signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key name is empty or contains white space or `+`.
    #[error("invalid key name {0:?}: must be non-empty with no spaces and no '+'")]
    KeyName(String),
    /// A key string does not have the expected fields.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// A key's ID does not match the one computed from its name and key.
    #[error("key ID {got:08x} does not match the computed {want:08x}")]
    KeyIdMismatch {
        /// ID in the key string.
        got: u32,
        /// ID computed from the name, type and public key.
        want: u32,
    },
    /// A key has a signature type this implementation does not know.
    #[error("unsupported signature type 0x{0:02x}")]
    UnknownAlgorithm(u8),
    /// The note is not well formed.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// A signature line from a trusted key did not verify.
    #[error("signature by {name} ({id:08x}) does not verify")]
    BadSignature {
        /// Key name on the failing line.
        name: String,
        /// Key ID on the failing line.
        id: u32,
    },
    /// No signature line came from a trusted key.
    #[error("note has no signature from a trusted key")]
    NoTrustedSignature,
}

/// Whether `name` is a valid key name: non-empty, no white space, no `+`.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Key ID: the first 4 bytes (big-endian) of SHA-256(name || 0x0A || alg || key).
pub fn key_id(name: &str, alg: u8, public_key: &[u8]) -> u32 {
    let mut buf = Vec::with_capacity(name.len() + 2 + public_key.len());
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(alg);
    buf.extend_from_slice(public_key);
    let h = sha256(&buf);
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

fn parse_hex_id(s: &str) -> Result<u32, NoteError> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::MalformedKey("key ID must be 8 hex digits"));
    }
    u32::from_str_radix(s, 16).map_err(|_| NoteError::MalformedKey("key ID must be 8 hex digits"))
}

/// A public key that verifies note signatures of one (name, ID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    /// Key name (for a log: its origin).
    pub name: String,
    /// Key ID.
    pub id: u32,
    /// Signature type: [`ALG_ED25519`] or [`ALG_COSIGNATURE_V1`].
    pub alg: u8,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses `<name>+<hex id>+<base64(type || public key)>`.
    pub fn parse(s: &str) -> Result<VerifierKey, NoteError> {
        let s = s.trim_end_matches(['\n', '\r']);
        let (name, rest) = s
            .split_once('+')
            .ok_or(NoteError::MalformedKey("want <name>+<id>+<key>"))?;
        let (hex, b64) = rest
            .split_once('+')
            .ok_or(NoteError::MalformedKey("want <name>+<id>+<key>"))?;
        if !is_valid_key_name(name) {
            return Err(NoteError::KeyName(name.to_string()));
        }
        let id = parse_hex_id(hex)?;
        let raw = B64
            .decode(b64)
            .map_err(|_| NoteError::MalformedKey("key is not valid base64"))?;
        let (&alg, pk) = raw
            .split_first()
            .ok_or(NoteError::MalformedKey("empty key"))?;
        if alg != ALG_ED25519 && alg != ALG_COSIGNATURE_V1 {
            return Err(NoteError::UnknownAlgorithm(alg));
        }
        let pk: [u8; 32] = pk
            .try_into()
            .map_err(|_| NoteError::MalformedKey("Ed25519 public key must be 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&pk)
            .map_err(|_| NoteError::MalformedKey("not a valid Ed25519 public key"))?;
        let want = key_id(name, alg, &pk);
        if want != id {
            return Err(NoteError::KeyIdMismatch { got: id, want });
        }
        Ok(VerifierKey {
            name: name.to_string(),
            id,
            alg,
            key,
        })
    }

    /// Builds a verifier key for an Ed25519 public key under `alg`.
    pub fn from_public(name: &str, alg: u8, key: VerifyingKey) -> Result<VerifierKey, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::KeyName(name.to_string()));
        }
        Ok(VerifierKey {
            name: name.to_string(),
            id: key_id(name, alg, key.as_bytes()),
            alg,
            key,
        })
    }

    /// The same Ed25519 key as a `cosignature/v1` verifier (ID recomputed
    /// with type 0x04), for witnesses whose key was published as type 0x01.
    pub fn as_cosignature_v1(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: key_id(&self.name, ALG_COSIGNATURE_V1, self.key.as_bytes()),
            alg: ALG_COSIGNATURE_V1,
            key: self.key,
        }
    }

    /// The key string `<name>+<hex id>+<base64(type || public key)>`.
    pub fn to_vkey(&self) -> String {
        let mut raw = vec![self.alg];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, B64.encode(raw))
    }

    /// Checks one signature blob (key ID already stripped) over `text`.
    /// Returns the cosignature timestamp for `cosignature/v1` keys.
    pub fn verify(&self, text: &[u8], sig: &[u8]) -> Option<Option<u64>> {
        match self.alg {
            ALG_ED25519 => {
                let sig = ed25519_dalek::Signature::from_slice(sig).ok()?;
                self.key.verify_strict(text, &sig).ok()?;
                Some(None)
            }
            ALG_COSIGNATURE_V1 => {
                if sig.len() != 72 {
                    return None;
                }
                let ts = u64::from_be_bytes(sig[..8].try_into().ok()?);
                let s = ed25519_dalek::Signature::from_slice(&sig[8..]).ok()?;
                let msg = cosignature_message(ts, text);
                self.key.verify_strict(&msg, &s).ok()?;
                Some(Some(ts))
            }
            _ => None,
        }
    }
}

/// The bytes a `cosignature/v1` signs: header, time line, checkpoint text.
pub fn cosignature_message(timestamp: u64, checkpoint_text: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    m.extend_from_slice(checkpoint_text);
    m
}

/// A private Ed25519 key that signs notes under one name.
pub struct SignerKey {
    /// Key name.
    pub name: String,
    /// Signature type: [`ALG_ED25519`] or [`ALG_COSIGNATURE_V1`].
    pub alg: u8,
    key: SigningKey,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        write!(f, "SignerKey({}+{:08x})", self.name, self.id())
    }
}

impl SignerKey {
    /// A key from a 32-byte Ed25519 seed (the caller supplies the randomness).
    pub fn from_seed(name: &str, alg: u8, seed: [u8; 32]) -> Result<SignerKey, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::KeyName(name.to_string()));
        }
        if alg != ALG_ED25519 && alg != ALG_COSIGNATURE_V1 {
            return Err(NoteError::UnknownAlgorithm(alg));
        }
        Ok(SignerKey {
            name: name.to_string(),
            alg,
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex id>+<base64(type || seed)>`.
    pub fn parse(s: &str) -> Result<SignerKey, NoteError> {
        let s = s.trim_end_matches(['\n', '\r']);
        let rest = s
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::MalformedKey(
                "signer key must start PRIVATE+KEY+",
            ))?;
        let (name, rest) = rest.split_once('+').ok_or(NoteError::MalformedKey(
            "want PRIVATE+KEY+<name>+<id>+<key>",
        ))?;
        let (hex, b64) = rest.split_once('+').ok_or(NoteError::MalformedKey(
            "want PRIVATE+KEY+<name>+<id>+<key>",
        ))?;
        let id = parse_hex_id(hex)?;
        let raw = B64
            .decode(b64)
            .map_err(|_| NoteError::MalformedKey("key is not valid base64"))?;
        let (&alg, seed) = raw
            .split_first()
            .ok_or(NoteError::MalformedKey("empty key"))?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| NoteError::MalformedKey("Ed25519 seed must be 32 bytes"))?;
        let k = SignerKey::from_seed(name, alg, seed)?;
        if k.id() != id {
            return Err(NoteError::KeyIdMismatch {
                got: id,
                want: k.id(),
            });
        }
        Ok(k)
    }

    /// The signer key string `PRIVATE+KEY+<name>+<hex id>+<base64(type || seed)>`.
    pub fn to_skey(&self) -> String {
        let mut raw = vec![self.alg];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id(),
            B64.encode(raw)
        )
    }

    /// Key ID of the matching public key.
    pub fn id(&self) -> u32 {
        key_id(&self.name, self.alg, self.key.verifying_key().as_bytes())
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: self.id(),
            alg: self.alg,
            key: self.key.verifying_key(),
        }
    }

    /// Signs note text with a plain Ed25519 signature (type 0x01 keys).
    pub fn sign(&self, text: &[u8]) -> NoteSignature {
        let sig = self.key.sign(text).to_bytes();
        NoteSignature::new(&self.name, self.id(), &sig)
    }

    /// Signs checkpoint text as a `cosignature/v1` made at `timestamp`.
    pub fn cosign(&self, text: &[u8], timestamp: u64) -> NoteSignature {
        let sig = self
            .key
            .sign(&cosignature_message(timestamp, text))
            .to_bytes();
        let mut blob = timestamp.to_be_bytes().to_vec();
        blob.extend_from_slice(&sig);
        NoteSignature::new(&self.name, self.id(), &blob)
    }
}

/// One signature line: key name, key ID and signature bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key ID (first 4 bytes of the decoded blob).
    pub id: u32,
    /// Signature bytes after the key ID.
    pub sig: Vec<u8>,
    /// The base64 text as received, re-emitted unchanged.
    pub b64: String,
}

impl NoteSignature {
    fn new(name: &str, id: u32, sig: &[u8]) -> NoteSignature {
        let mut blob = id.to_be_bytes().to_vec();
        blob.extend_from_slice(sig);
        NoteSignature {
            name: name.to_string(),
            id,
            sig: sig.to_vec(),
            b64: B64.encode(blob),
        }
    }

    /// Parses one line `— <name> <base64>` (without its newline).
    pub fn parse_line(line: &str) -> Result<NoteSignature, NoteError> {
        let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
            "signature line must start with an em dash and a space",
        ))?;
        let (name, b64) = rest.split_once(' ').ok_or(NoteError::Malformed(
            "signature line must be '<name> <base64>'",
        ))?;
        if !is_valid_key_name(name) {
            return Err(NoteError::Malformed("invalid key name on a signature line"));
        }
        let blob = B64
            .decode(b64)
            .map_err(|_| NoteError::Malformed("signature is not valid base64"))?;
        if blob.len() < 5 {
            return Err(NoteError::Malformed("signature is shorter than 5 bytes"));
        }
        Ok(NoteSignature {
            name: name.to_string(),
            id: u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]),
            sig: blob[4..].to_vec(),
            b64: b64.to_string(),
        })
    }

    /// The line `— <name> <base64>\n`.
    pub fn to_line(&self) -> String {
        format!("{SIG_PREFIX}{} {}\n", self.name, self.b64)
    }
}

/// A signed note: text (ending in a newline) and signature lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The signed text, including its final newline.
    pub text: String,
    /// Signature lines in order.
    pub sigs: Vec<NoteSignature>,
}

/// A signature that verified, with its key and timestamp (cosignatures).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The trusted key that made it.
    pub key: VerifierKey,
    /// `cosignature/v1` timestamp, seconds since the Unix epoch.
    pub timestamp: Option<u64>,
}

impl Note {
    /// Parses a note. It checks form only; see [`Note::verify`].
    pub fn parse(msg: &[u8]) -> Result<Note, NoteError> {
        if msg.len() > MAX_NOTE_SIZE {
            return Err(NoteError::Malformed("note is larger than 1,000,000 bytes"));
        }
        let s = std::str::from_utf8(msg).map_err(|_| NoteError::Malformed("note is not UTF-8"))?;
        if s.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::Malformed("note contains a control character"));
        }
        let split = s
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let text = &s[..split + 1];
        let block = &s[split + 2..];
        if block.is_empty() || !block.ends_with('\n') {
            return Err(NoteError::Malformed(
                "signature block must end with a newline",
            ));
        }
        let lines: Vec<&str> = block[..block.len() - 1].split('\n').collect();
        if lines.len() > MAX_SIGNATURES {
            return Err(NoteError::Malformed("more than 100 signatures"));
        }
        let sigs = lines
            .into_iter()
            .map(NoteSignature::parse_line)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Note {
            text: text.to_string(),
            sigs,
        })
    }

    /// Signs `text` (which must end with a newline) with `signers`.
    pub fn sign(text: &str, signers: &[&SignerKey]) -> Result<Note, NoteError> {
        if !text.ends_with('\n') || text.contains("\n\n") {
            return Err(NoteError::Malformed(
                "note text must end with a newline and contain no blank line",
            ));
        }
        Ok(Note {
            text: text.to_string(),
            sigs: signers.iter().map(|k| k.sign(text.as_bytes())).collect(),
        })
    }

    /// Verifies the note against trusted keys, matched by (name, ID) only.
    /// Any failing trusted signature rejects the note; so does having none.
    /// Returns the verified signatures; unknown lines are left in `sigs`.
    pub fn verify(&self, keys: &[VerifierKey]) -> Result<Vec<Verified>, NoteError> {
        let mut out: Vec<Verified> = Vec::new();
        for s in &self.sigs {
            let Some(k) = keys.iter().find(|k| k.name == s.name && k.id == s.id) else {
                continue;
            };
            if out.iter().any(|v| v.key == *k) {
                continue;
            }
            match k.verify(self.text.as_bytes(), &s.sig) {
                Some(timestamp) => out.push(Verified {
                    key: k.clone(),
                    timestamp,
                }),
                None => {
                    return Err(NoteError::BadSignature {
                        name: s.name.clone(),
                        id: s.id,
                    })
                }
            }
        }
        if out.is_empty() {
            return Err(NoteError::NoTrustedSignature);
        }
        Ok(out)
    }

    /// Checks each key that has a signature line here, independently: one
    /// entry per such key, `None` when none of its lines verifies. Unlike
    /// [`Note::verify`], a failing line does not reject the others; use it
    /// to count cosignatures and to report the ones that failed.
    pub fn verify_each(&self, keys: &[VerifierKey]) -> Vec<(VerifierKey, Option<Verified>)> {
        let mut out: Vec<(VerifierKey, Option<Verified>)> = Vec::new();
        for k in keys {
            if out.iter().any(|(seen, _)| seen == k) {
                continue;
            }
            let mut lines = self
                .sigs
                .iter()
                .filter(|s| s.name == k.name && s.id == k.id)
                .peekable();
            if lines.peek().is_none() {
                continue;
            }
            let ok = lines.find_map(|s| k.verify(self.text.as_bytes(), &s.sig));
            out.push((
                k.clone(),
                ok.map(|timestamp| Verified {
                    key: k.clone(),
                    timestamp,
                }),
            ));
        }
        out
    }

    /// The note's wire form: text, blank line, signature lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = self.text.clone();
        s.push('\n');
        for sig in &self.sigs {
            s.push_str(&sig.to_line());
        }
        s.into_bytes()
    }
}
