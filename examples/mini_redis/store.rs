//! The keyspace: byte strings with optional expiry, behind one lock (each
//! command holds it for a lookup, a few hundred nanoseconds).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Entry {
    pub value: Vec<u8>,
    pub expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

/// The database every connection shares.
#[derive(Debug, Default)]
pub struct Db {
    map: Mutex<HashMap<Vec<u8>, Entry>>,
}

/// The keyspace, locked, with expired keys hidden.
pub struct Keys<'a> {
    map: MutexGuard<'a, HashMap<Vec<u8>, Entry>>,
    now: Instant,
}

impl Db {
    pub fn lock(&self) -> Keys<'_> {
        Keys {
            map: self.map.lock().unwrap_or_else(PoisonError::into_inner),
            now: Instant::now(),
        }
    }
}

impl Keys<'_> {
    /// The live entry at `key` (an expired one is removed).
    pub fn get(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let now = self.now;
        if self.map.get(key).is_some_and(|e| !e.live(now)) {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    pub fn set(&mut self, key: &[u8], value: &[u8], ttl: Option<Duration>) {
        let expires = ttl.map(|d| self.now + d);
        match self.map.get_mut(key) {
            Some(e) => {
                e.value.clear();
                e.value.extend_from_slice(value);
                e.expires = expires;
            }
            None => {
                let value = value.to_vec();
                self.map.insert(key.to_vec(), Entry { value, expires });
            }
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> bool {
        let live = self.get(key).is_some();
        self.map.remove(key);
        live
    }

    pub fn now(&self) -> Instant {
        self.now
    }
}
