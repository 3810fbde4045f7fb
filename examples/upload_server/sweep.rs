//! Guards the directory against temporary files piling up: partials
//! untouched for `--partial-ttl` are removed at start and periodically,
//! and once a file is stored its other partials (an older version of it,
//! another size) are removed. A file an upload holds is never removed.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::files::Dir;
use super::quota::evict;
use super::resume::{PARTIAL, declared_size, name_prefix};

/// Removes temporary files not modified for `ttl` and not in use; returns
/// how many it removed.
pub fn stale(dir: &Dir, ttl: Duration) -> usize {
    let Ok(names) = dir.names() else { return 0 };
    let mut removed = 0;
    for name in names.iter().filter(|n| declared_size(n).is_some()) {
        let age = std::fs::symlink_metadata(dir.path().join(name))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .unwrap_or_default();
        if age >= ttl && evict(dir, name).is_some() {
            log::info!("removed stale partial upload {name}");
            removed += 1;
        }
    }
    removed
}

/// Once `name` is stored, its other partials will never be resumed.
pub fn other_partials(dir: &Dir, name: &str) {
    let prefix = name_prefix(name);
    let Ok(names) = dir.names() else { return };
    for n in names {
        if n.starts_with(&prefix) && n.ends_with(PARTIAL) && evict(dir, &n).is_some() {
            log::info!("removed outdated partial upload of {name:?} ({n})");
        }
    }
}

/// Runs [`stale`] at most every `every` from the server's service hook.
#[derive(Debug)]
pub struct Sweeper {
    pub ttl: Duration,
    pub every: Duration,
    last: Mutex<Instant>,
}

impl Sweeper {
    /// Sweeps about ten times per TTL, between once a second and once an hour.
    pub fn new(ttl: Duration) -> Sweeper {
        let every = (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
        let last = Mutex::new(Instant::now());
        Sweeper { ttl, every, last }
    }

    pub fn tick(&self, dir: &Dir) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= self.every {
            *last = Instant::now();
            stale(dir, self.ttl);
        }
    }
}
