//! The start-up check that the object store really enforces conditional
//! writes. Several S3 imitations accept every conditional PUT; on them two
//! writers would both "win" the lock and the log would fork silently, so
//! the writer refuses to run there.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

/// Why the store failed the probe.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The store accepted a write it had to refuse.
    #[error("the object store does not enforce conditional writes: {0}; a log on it could fork, so vellum refuses to write to it")]
    NotEnforced(String),
    /// The store could not be reached or refused the probe's requests.
    #[error("probing the object store: {0}")]
    Store(#[from] object_store::Error),
}

/// Creates `path` twice with `If-None-Match: *` (the second must fail),
/// then updates it with a stale `If-Match` (must fail) and with the right
/// one (must succeed); deletes it at the end.
pub async fn conditional_writes(os: Arc<dyn ObjectStore>, path: Path) -> Result<(), ProbeError> {
    let create = || PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    let res = check(&os, &path, create).await;
    let _ = os.delete(&path).await;
    res
}

async fn check(
    os: &Arc<dyn ObjectStore>,
    path: &Path,
    create: impl Fn() -> PutOptions,
) -> Result<(), ProbeError> {
    let first = os
        .put_opts(path, PutPayload::from_static(b"probe 1"), create())
        .await?;
    match os
        .put_opts(path, PutPayload::from_static(b"probe 2"), create())
        .await
    {
        Err(object_store::Error::AlreadyExists { .. }) => {}
        Ok(_) => {
            return Err(ProbeError::NotEnforced(
                "a second PUT with If-None-Match: * of an existing object succeeded".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let stale = UpdateVersion {
        e_tag: Some("\"00000000000000000000000000000000\"".into()),
        version: None,
    };
    match os
        .put_opts(
            path,
            PutPayload::from_static(b"probe 3"),
            PutOptions {
                mode: PutMode::Update(stale),
                ..Default::default()
            },
        )
        .await
    {
        Err(object_store::Error::Precondition { .. }) => {}
        Ok(_) => {
            return Err(ProbeError::NotEnforced(
                "a PUT with a stale If-Match ETag succeeded".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let current = UpdateVersion {
        e_tag: first.e_tag,
        version: first.version,
    };
    os.put_opts(
        path,
        PutPayload::from_static(b"probe 4"),
        PutOptions {
            mode: PutMode::Update(current),
            ..Default::default()
        },
    )
    .await?;
    let got = os.get(path).await?.bytes().await?;
    if &got[..] != b"probe 4" {
        return Err(ProbeError::NotEnforced(
            "the object does not hold what the last successful PUT wrote".into(),
        ));
    }
    Ok(())
}
