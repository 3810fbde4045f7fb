//! Per-connection buffers: unconsumed input and pending output.
//!
//! Reads land in one buffer per loop; only what a protocol leaves
//! unconsumed (a partial frame) is copied into the connection's own
//! [`InBuf`]. Replies are appended to [`OutBuf`] and sent from its front.
//! Both keep their capacity between messages (no allocation per message)
//! and give it back when large and empty, so an idle connection holds
//! almost nothing.

/// Capacity an empty buffer may keep; larger ones are freed when emptied.
const KEEP: usize = 16 * 1024;

/// Input a protocol has not consumed yet.
#[derive(Debug, Default)]
pub(crate) struct InBuf {
    buf: Vec<u8>,
}

impl InBuf {
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Drops the first `n` bytes (consumed by the protocol).
    pub(crate) fn consume(&mut self, n: usize) {
        if n >= self.buf.len() {
            self.clear();
        } else if n > 0 {
            self.buf.drain(..n);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        }
    }

    /// Takes the buffer out (to offer it to the protocol while the
    /// connection is borrowed elsewhere); [`put_back`](Self::put_back)
    /// returns it.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    pub(crate) fn put_back(&mut self, buf: Vec<u8>) {
        self.buf = buf;
    }
}

/// Output waiting to be sent: `buf[pos..]`.
#[derive(Debug, Default)]
pub(crate) struct OutBuf {
    buf: Vec<u8>,
    pos: usize,
}

impl OutBuf {
    /// Bytes not yet sent.
    pub(crate) fn len(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The buffer to append to (sent bytes at its front are not yet
    /// dropped; appending is all a protocol may do).
    pub(crate) fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    pub(crate) fn pending(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// `n` more bytes were sent.
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos += n;
        if self.pos >= self.buf.len() {
            self.clear();
        } else if self.pos > KEEP && self.pos * 2 > self.buf.len() {
            // Most of the buffer is sent: move the rest to the front so it
            // cannot grow while a slow peer takes a little at a time.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
        if self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_buffer_sends_from_the_front_and_frees_large_capacity() {
        let mut out = OutBuf::default();
        out.push(b"hello ");
        out.push(b"world");
        out.advance(6);
        assert_eq!(out.pending(), b"world");
        out.advance(5);
        assert!(out.is_empty());
        out.push(&vec![0; 100_000]);
        out.advance(100_000);
        assert_eq!(out.vec().capacity(), 0);
    }

    #[test]
    fn in_buffer_keeps_what_was_not_consumed() {
        let mut inb = InBuf::default();
        inb.extend(b"GET a\r\nGET");
        inb.consume(7);
        assert_eq!(inb.bytes(), b"GET");
        inb.consume(3);
        assert!(inb.is_empty());
    }
}
