//! Asking the log: the query index (derived from the entry bundles,
//! built by a thread that follows the durable log off the append path),
//! paged and filtered queries with authenticated cursors, stats from
//! per-minute counts, and live tails read from storage. This side reads
//! storage; storage knows nothing of it.

pub mod cursor;
pub mod exec;
pub mod fields;
pub mod index;
pub mod params;
pub mod postings;
pub mod segment;
pub mod stats;
pub mod tail;

pub use index::{Index, QueryError};
