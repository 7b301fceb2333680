//! Object names in the bucket: exactly the C2SP tlog-tiles paths under the
//! prefix (`checkpoint`, `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`),
//! so that the bucket, or any static server or CDN in front of it, is a
//! complete read API; plus the writer's lock record and probe objects
//! under `vellum/`, which no C2SP client asks for.

use object_store::path::Path;
use vellum_spec::tile::{encode_index, TILE_WIDTH};

/// Names objects under one prefix.
#[derive(Clone, Debug)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// Objects under `prefix` ("" for the bucket root).
    pub fn new(prefix: &str) -> Layout {
        let p = prefix.trim_matches('/');
        Layout {
            prefix: if p.is_empty() {
                String::new()
            } else {
                format!("{p}/")
            },
        }
    }

    fn path(&self, rel: &str) -> Path {
        Path::from(format!("{}{rel}", self.prefix))
    }

    /// `checkpoint`: the published checkpoint, as `GET /checkpoint` serves it.
    pub fn checkpoint(&self) -> Path {
        self.path("checkpoint")
    }

    /// The writer's lock record.
    pub fn lock(&self) -> Path {
        self.path("vellum/lock")
    }

    /// A probe object for the conditional-write check.
    pub fn probe(&self, name: &str) -> Path {
        self.path(&format!("vellum/probe/{name}"))
    }

    /// Hash tile (level, n) of `width` hashes (256: the full tile).
    pub fn tile(&self, level: u8, n: u64, width: usize) -> Path {
        self.path(&with_width(
            format!("tile/{level}/{}", encode_index(n)),
            width,
        ))
    }

    /// Entry bundle n of `width` entries (256: the full bundle).
    pub fn bundle(&self, n: u64, width: usize) -> Path {
        self.path(&with_width(
            format!("tile/entries/{}", encode_index(n)),
            width,
        ))
    }
}

fn with_width(base: String, width: usize) -> String {
    if width as u64 == TILE_WIDTH {
        base
    } else {
        format!("{base}.p/{width}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c2sp_paths_under_the_prefix() {
        let l = Layout::new("logs/a/");
        assert_eq!(
            l.tile(0, 1234067, 256).as_ref(),
            "logs/a/tile/0/x001/x234/067"
        );
        assert_eq!(l.tile(2, 5, 17).as_ref(), "logs/a/tile/2/005.p/17");
        assert_eq!(l.bundle(1000, 256).as_ref(), "logs/a/tile/entries/x001/000");
        assert_eq!(l.bundle(0, 3).as_ref(), "logs/a/tile/entries/000.p/3");
        assert_eq!(l.checkpoint().as_ref(), "logs/a/checkpoint");
        assert_eq!(Layout::new("").checkpoint().as_ref(), "checkpoint");
    }
}
