//! C2SP tlog-checkpoint: the note text `<origin>\n<size>\n<base64 root>\n`
//! followed by optional extension lines.

use crate::hash::Hash;

/// A checkpoint body: a commitment to the first `size` entries of a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (by convention its key name).
    pub origin: String,
    /// Number of entries committed to.
    pub size: u64,
    /// RFC 9162 root hash of those entries.
    pub root: Hash,
    /// Extension lines, opaque; Vellum never emits any.
    pub extensions: Vec<String>,
}

/// Why a checkpoint text is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Fewer than three lines, or no final newline.
    #[error("checkpoint must have origin, size and root lines, each ending in a newline")]
    Lines,
    /// Empty origin line.
    #[error("checkpoint origin is empty")]
    Origin,
    /// The size is not canonical decimal.
    #[error("checkpoint size must be a decimal without sign or leading zeros")]
    Size,
    /// The root is not 32 bytes of base64.
    #[error("checkpoint root must be base64 of 32 bytes")]
    Root,
    /// An extension line is empty.
    #[error("checkpoint extension lines must not be empty")]
    Extension,
}

impl Checkpoint {
    /// The note text of this checkpoint.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parses a checkpoint from note text.
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text.strip_suffix('\n').ok_or(CheckpointError::Lines)?;
        let mut lines = body.split('\n');
        let origin = lines.next().ok_or(CheckpointError::Lines)?;
        let size = lines.next().ok_or(CheckpointError::Lines)?;
        let root = lines.next().ok_or(CheckpointError::Lines)?;
        if origin.is_empty() {
            return Err(CheckpointError::Origin);
        }
        let size = parse_canonical_u64(size).ok_or(CheckpointError::Size)?;
        let root = Hash::from_base64(root).map_err(|_| CheckpointError::Root)?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(CheckpointError::Extension);
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }
}

/// Parses a decimal with no sign and no leading zeros ("0" is allowed).
pub fn parse_canonical_u64(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let t =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let c = Checkpoint::parse(t).unwrap();
        assert_eq!(c.size, 20852163);
        assert_eq!(c.to_text(), t);
        for bad in [
            "o\n05\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "o\n+5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",
            "o\n5\nAAAA\n",
            "\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "o\n5\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
