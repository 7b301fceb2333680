//! Reading an HTTP response body with a size cap: a peer that sends an
//! endless or oversized body gets an error once the cap is crossed, and
//! never more than the cap is held in memory. The client's own timeout
//! bounds the time.

/// Why a capped read failed.
#[derive(Debug, thiserror::Error)]
pub enum CappedError {
    /// The body (or its announced length) is over the cap.
    #[error("response body is over the {limit}-byte limit")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The transfer failed or timed out.
    #[error("reading the response body: {0}")]
    Http(#[from] reqwest::Error),
}

/// Reads `resp`'s body, refusing more than `limit` bytes.
pub async fn read_capped(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, CappedError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(CappedError::TooLarge { limit });
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > limit {
            return Err(CappedError::TooLarge { limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads `resp`'s body as text (lossy UTF-8), refusing more than `limit` bytes.
pub async fn read_capped_text(
    resp: reqwest::Response,
    limit: usize,
) -> Result<String, CappedError> {
    read_capped(resp, limit)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}
