//! The transparency log itself: the sequencer that assigns indexes and
//! commits in groups ([`sequencer`]), the checkpoints it signs
//! ([`checkpointer`]) and the witnesses that cosign them ([`witnessing`]).

pub mod checkpointer;
pub mod sequencer;
pub mod witnessing;
