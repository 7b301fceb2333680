//! The dashboard at `/ui/`: static assets embedded in the binary (no
//! runtime download; vendored front-end code at pinned versions, see
//! `scripts/vendor-ui`). The page is plain JavaScript modules that call
//! the read API with the reader's token and check in the browser what the
//! log claims (`assets/verify.js`).
//!
//! `/ui/` is the page, never cached; every asset is under
//! `/ui/v/<version>/`, where the version is a hash of all assets, so it is
//! cached for a year and a new build is a new URL. Every answer carries a
//! strict Content-Security-Policy: scripts, styles and connections from
//! this origin only, no inline script, no framing.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// The policy every `/ui` answer carries.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The assets: path under the version directory, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("app.js", JS, include_bytes!("assets/app.js")),
    ("verify.js", JS, include_bytes!("assets/verify.js")),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/style.css"),
    ),
    (
        "vendor/noble-ed25519/index.js",
        JS,
        include_bytes!("assets/vendor/noble-ed25519/index.js"),
    ),
    (
        "vendor/noble-hashes/sha2.js",
        JS,
        include_bytes!("assets/vendor/noble-hashes/sha2.js"),
    ),
    (
        "vendor/noble-hashes/_md.js",
        JS,
        include_bytes!("assets/vendor/noble-hashes/_md.js"),
    ),
    (
        "vendor/noble-hashes/_u64.js",
        JS,
        include_bytes!("assets/vendor/noble-hashes/_u64.js"),
    ),
    (
        "vendor/noble-hashes/utils.js",
        JS,
        include_bytes!("assets/vendor/noble-hashes/utils.js"),
    ),
    (
        "vendor/noble-hashes/crypto.js",
        JS,
        include_bytes!("assets/vendor/noble-hashes/crypto.js"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";
const INDEX: &str = include_str!("assets/index.html");

/// The assets' version: the first 16 hex digits of SHA-256 over all of
/// them (names and bytes).
pub fn version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(INDEX.as_bytes());
        for (name, _, bytes) in ASSETS {
            h.update((name.len() as u64).to_be_bytes());
            h.update(name.as_bytes());
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        }
        let d = h.finalize();
        d[..8].iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// The routes under `/ui`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/v/{version}/{*path}", get(asset))
}

fn secured(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

async fn index() -> Response {
    let page = INDEX.replace("__VERSION__", version());
    secured(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            page,
        )
            .into_response(),
    )
}

async fn asset(Path((v, path)): Path<(String, String)>) -> Response {
    if v != version() {
        // An old page asking for assets this build does not have.
        return secured(
            (
                StatusCode::NOT_FOUND,
                "stale dashboard version: reload /ui/",
            )
                .into_response(),
        );
    }
    match ASSETS.iter().find(|(name, _, _)| *name == path) {
        Some((_, ctype, bytes)) => secured(
            (
                [
                    (header::CONTENT_TYPE, *ctype),
                    (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                ],
                *bytes,
            )
                .into_response(),
        ),
        None => secured((StatusCode::NOT_FOUND, "no such asset").into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_modules_import_is_served() {
        // Each relative import in a module resolves to a listed asset.
        for (name, _, bytes) in ASSETS {
            let text = std::str::from_utf8(bytes).unwrap();
            let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            let mut in_comment = false;
            for line in text.lines() {
                let t = line.trim_start();
                if in_comment {
                    in_comment = !line.contains("*/");
                    continue;
                }
                if t.starts_with("/*") {
                    in_comment = !line.contains("*/");
                    continue;
                }
                if !(t.starts_with("import ")
                    || t.starts_with("export ")
                    || t.starts_with("} from"))
                {
                    continue;
                }
                let Some(rest) = line
                    .split(" from '")
                    .nth(1)
                    .or_else(|| line.split(" from \"").nth(1))
                else {
                    continue;
                };
                let target = rest.split(['\'', '"']).next().unwrap();
                if !target.starts_with('.') {
                    panic!("{name}: bare import {target:?} (a browser cannot resolve it)");
                }
                let mut parts: Vec<&str> = if dir.is_empty() {
                    vec![]
                } else {
                    dir.split('/').collect()
                };
                for seg in target.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let resolved = parts.join("/");
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == resolved),
                    "{name} imports {target} = {resolved}, which is not served"
                );
            }
        }
    }

    #[test]
    fn the_page_refers_to_its_versioned_assets_only() {
        assert!(INDEX.contains("./v/__VERSION__/app.js"));
        assert!(!INDEX.contains("<script>"), "no inline script");
        assert!(!INDEX.contains("style="), "no inline style");
        assert_eq!(version().len(), 16);
    }
}
