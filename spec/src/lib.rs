//! Vellum's formats and algorithms, defined once and free of I/O: RFC 9162
//! Merkle trees and proofs, C2SP tlog-tiles, signed notes and checkpoints,
//! and the audit event with its RFC 8785 canonical form.
//!
//! The normative prose lives beside this crate in `spec/*.md`.
#![deny(missing_docs)]

pub mod borrowed;
pub mod bundle;
pub mod checkpoint;
pub mod event;
pub mod fuzzing;
pub mod hash;
pub mod jcs;
pub mod jsonscan;
pub mod leaf;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod siem;
pub mod tile;
pub mod time;
pub mod witness;

pub use checkpoint::Checkpoint;
pub use hash::{leaf_hash, node_hash, Hash, EMPTY_ROOT};
pub use merkle::{NodeId, NodeReader};
pub use note::{Note, SignerKey, VerifierKey};
pub use tile::TileId;
