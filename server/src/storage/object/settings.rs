//! Where the S3 backend's bucket is and how to reach it: endpoint, region,
//! bucket, prefix and credentials, from flags, `VELLUM_*` variables, the
//! TOML file, or the standard `AWS_*` variables.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::{ClientOptions, ObjectStore, RetryConfig};

/// How to reach the bucket. Secrets are never printed: `Debug` hides them.
#[derive(Clone, Default)]
pub struct S3Settings {
    /// Endpoint URL (e.g. `http://127.0.0.1:8333`); `None`: AWS itself.
    pub endpoint: Option<String>,
    /// Region; S3-compatible stores mostly ignore it.
    pub region: String,
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket ("" for the bucket root), no slashes
    /// at either end.
    pub prefix: String,
    /// Access key ID; `None`: from `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// Secret access key; `None`: from `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "…"),
            )
            .finish()
    }
}

/// A credential from `VELLUM_S3_<NAME>`, else the standard `AWS_<NAME>`
/// variable (e.g. `ACCESS_KEY_ID`, `SECRET_ACCESS_KEY`).
pub fn credential_from_env(name: &str) -> Option<String> {
    std::env::var(format!("VELLUM_S3_{name}"))
        .ok()
        .or_else(|| std::env::var(format!("AWS_{name}")).ok())
        .filter(|v| !v.is_empty())
}

impl S3Settings {
    /// Parses `s3://BUCKET[/PREFIX]` into bucket and prefix.
    pub fn parse_url(url: &str) -> Result<(String, String), String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?}: expected s3://BUCKET[/PREFIX]"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{url:?}: the bucket name is empty"));
        }
        Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
    }

    /// `s3://bucket/prefix` at the endpoint, for messages (no secrets).
    pub fn describe(&self) -> String {
        let at = self.endpoint.as_deref().unwrap_or("AWS");
        if self.prefix.is_empty() {
            format!("s3://{} at {at}", self.bucket)
        } else {
            format!("s3://{}/{} at {at}", self.bucket, self.prefix)
        }
    }

    /// Checks the settings, naming what is missing or wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.bucket.is_empty() {
            return Err("storage s3: the bucket is not set (--s3-bucket, VELLUM_S3_BUCKET or s3_bucket in the config file)".into());
        }
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(format!(
                    "storage s3: endpoint {e:?} must start with http:// or https://"
                ));
            }
        }
        if self.prefix.starts_with('/') || self.prefix.ends_with('/') || self.prefix.contains("//")
        {
            return Err(format!(
                "storage s3: prefix {:?} must not start or end with / or contain //",
                self.prefix
            ));
        }
        Ok(())
    }

    /// Builds the client: bounded time per request (10 s, 2 s to connect)
    /// and few retries, so that an unreachable store fails a commit within
    /// seconds (appends get 503) instead of stalling the log.
    pub fn connect(&self) -> Result<Arc<dyn ObjectStore>, String> {
        self.validate()?;
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_region(if self.region.is_empty() {
                "us-east-1"
            } else {
                &self.region
            })
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(Duration::from_secs(10))
                    .with_connect_timeout(Duration::from_secs(2))
                    .with_allow_http(
                        self.endpoint
                            .as_deref()
                            .is_some_and(|e| e.starts_with("http://")),
                    ),
            )
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(4),
                ..RetryConfig::default()
            });
        if let Some(e) = &self.endpoint {
            b = b
                .with_endpoint(e.trim_end_matches('/'))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(k) = &self.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &self.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        let store = b
            .build()
            .map_err(|e| format!("storage s3 ({}): {e}", self.describe()))?;
        Ok(Arc::new(store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_debug() {
        assert_eq!(
            S3Settings::parse_url("s3://b/p/q/").unwrap(),
            ("b".into(), "p/q".into())
        );
        assert_eq!(
            S3Settings::parse_url("s3://b").unwrap(),
            ("b".into(), "".into())
        );
        assert!(S3Settings::parse_url("http://b").is_err());
        assert!(S3Settings::parse_url("s3:///p").is_err());
        let s = S3Settings {
            secret_access_key: Some("hunter2".into()),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
