//! PUBLISH / SUBSCRIBE: channels map to subscribers; a subscriber is
//! whatever can take a message frame (a reactor connection's mailbox, or a
//! blocking connection's locked socket).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::resp;

/// Something a published message can be delivered to.
pub trait Subscriber: Send + Sync {
    /// Delivers one encoded message; false if the subscriber is gone.
    fn deliver(&self, frame: &[u8]) -> bool;
}

type Subs = Vec<(u64, Arc<dyn Subscriber>)>;

/// Every channel and its subscribers.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<Vec<u8>, Subs>>,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HashMap<Vec<u8>, Subs>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn subscribe(&self, channel: &[u8], id: u64, sub: Arc<dyn Subscriber>) {
        let mut map = self.lock();
        let subs = map.entry(channel.to_vec()).or_default();
        if !subs.iter().any(|(i, _)| *i == id) {
            subs.push((id, sub));
        }
    }

    pub fn unsubscribe(&self, channel: &[u8], id: u64) {
        let mut map = self.lock();
        if let Some(subs) = map.get_mut(channel) {
            subs.retain(|(i, _)| *i != id);
            if subs.is_empty() {
                map.remove(channel);
            }
        }
    }

    /// Sends `message` to every subscriber of `channel`; how many got it.
    pub fn publish(&self, channel: &[u8], message: &[u8]) -> i64 {
        let subs: Subs = match self.lock().get(channel) {
            Some(s) => s.clone(),
            None => return 0,
        };
        let mut frame = Vec::with_capacity(32 + channel.len() + message.len());
        resp::array(&mut frame, 3);
        resp::bulk(&mut frame, b"message");
        resp::bulk(&mut frame, channel);
        resp::bulk(&mut frame, message);
        subs.iter().filter(|(_, s)| s.deliver(&frame)).count() as i64
    }
}
