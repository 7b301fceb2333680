//! The tests of `api.rs`, run against the S3 backend: every log they
//! start stores its tree in a SeaweedFS of its own (see
//! `vellum_tests::s3_suite`).

#[path = "api.rs"]
mod api;
