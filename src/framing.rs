//! Length-prefixed message framing: the fix for TCP's "sticky packet" problem (粘包).
//!
//! # The problem
//!
//! TCP delivers a *byte stream*, not messages. Two `send` calls on one side may
//! arrive as a single `recv` on the other ("sticky" packets), and one `send` may
//! arrive spread over several `recv` calls. A receiver that assumes "one `recv`
//! == one message" works on localhost most of the time and breaks under load, on
//! slow links, or with large messages.
//!
//! # The fix
//!
//! Put the length of each message in front of it, in a fixed-width header. The
//! receiver reads exactly the header, decodes the length, then reads exactly that
//! many bytes — looping over short reads — and is then positioned at the start of
//! the next frame. The Python lesson this crate grew from does:
//!
//! ```python
//! header_bytes = json.dumps(header).encode('utf-8')
//! conn.send(struct.pack('i', len(header_bytes)))   # 4 bytes, little-endian, signed (on x86)
//! conn.send(header_bytes)                          # JSON header, e.g. {"total_size": 1234}
//! conn.send(body)                                  # body of the length the header states
//!
//! header_len = struct.unpack('i', client.recv(4))[0]
//! header = json.loads(client.recv(header_len))
//! ```
//!
//! [`FrameFormat::LESSON`] produces exactly the bytes of `struct.pack('i', n)`
//! (note that `'i'` is *native* byte order; every mainstream platform is
//! little-endian, and `'<i'` is the portable spelling). Unlike the lesson's
//! `recv(4)` / `recv(header_len)`, the readers here never trust a single read to
//! return everything: they loop until the frame is complete, and they refuse
//! negative or oversized lengths *before* allocating anything.
//!
//! For bodies too large to hold in memory (file uploads), send the size in the
//! JSON header and stream the body with [`copy_body`] or [`BodyReader`].
//!
//! # Example
//!
//! Two frames written back to back into one buffer, read back through a reader
//! that hands out a single byte per `read` call — the worst case of splitting:
//!
//! ```
//! use std::io::{self, Read};
//! use socketserver::framing::{read_frame, write_frame};
//!
//! /// Yields at most one byte per `read`.
//! struct OneByte<'a>(&'a [u8]);
//! impl Read for OneByte<'_> {
//!     fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
//!         if self.0.is_empty() || buf.is_empty() {
//!             return Ok(0);
//!         }
//!         buf[0] = self.0[0];
//!         self.0 = &self.0[1..];
//!         Ok(1)
//!     }
//! }
//!
//! let mut wire = Vec::new();
//! write_frame(&mut wire, b"hello")?;
//! write_frame(&mut wire, b"world!")?;
//! // The two messages are "stuck together" in one byte stream:
//! assert_eq!(wire, b"\x05\0\0\0hello\x06\0\0\0world!");
//!
//! let mut r = OneByte(&wire);
//! assert_eq!(read_frame(&mut r)?.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(read_frame(&mut r)?.as_deref(), Some(&b"world!"[..]));
//! assert_eq!(read_frame(&mut r)?, None); // clean end of stream between frames
//! # Ok::<(), io::Error>(())
//! ```
//!
//! With the `json` feature (on by default), `write_json` / `read_json` (free
//! functions and [`FrameFormat`] methods) frame a serde value as UTF-8 JSON,
//! like the lesson's header.

use std::io::{self, ErrorKind, Read, Write};

/// Default maximum payload length of a frame: 64 KiB (65536 bytes).
const DEFAULT_MAX_LEN: u64 = 64 * 1024;

/// Initial buffer size when reading a payload; the buffer then grows only as
/// data actually arrives, never beyond the declared length.
const INITIAL_READ_CHUNK: usize = 8 * 1024;

/// Buffer size used by [`copy_body`].
const COPY_BUF_LEN: usize = 64 * 1024;

/// Width of the length prefix.
///
/// ```
/// use socketserver::framing::LengthWidth;
/// assert_eq!(LengthWidth::U32.bytes(), 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LengthWidth {
    /// 1 byte (Python `struct` `b` / `B`).
    U8,
    /// 2 bytes (Python `struct` `h` / `H`).
    U16,
    /// 4 bytes (Python `struct` `i` / `I`).
    U32,
    /// 8 bytes (Python `struct` `q` / `Q`).
    U64,
}

impl LengthWidth {
    /// Number of bytes of a prefix of this width.
    pub const fn bytes(self) -> usize {
        match self {
            LengthWidth::U8 => 1,
            LengthWidth::U16 => 2,
            LengthWidth::U32 => 4,
            LengthWidth::U64 => 8,
        }
    }
}

/// Byte order of the length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Least significant byte first (Python `struct` `<`, and native order on x86/ARM).
    Little,
    /// Most significant byte first, a.k.a. network order (Python `struct` `!` / `>`).
    Big,
}

/// A length-prefix format: width, byte order and signedness of the prefix, plus
/// the largest payload length accepted when reading or writing.
///
/// ```
/// use socketserver::framing::{Endian, FrameFormat, LengthWidth};
///
/// // Python's struct.pack('!H', n), accepting payloads up to 1000 bytes.
/// let fmt = FrameFormat::new(LengthWidth::U16, Endian::Big, false).max_len(1000);
/// let mut wire = Vec::new();
/// fmt.write_frame(&mut wire, b"abc")?;
/// assert_eq!(wire, b"\x00\x03abc");
/// assert_eq!(fmt.read_frame(&mut &wire[..])?, Some(b"abc".to_vec()));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameFormat {
    width: LengthWidth,
    endian: Endian,
    signed: bool,
    max_len: u64,
}

impl Default for FrameFormat {
    /// [`FrameFormat::LESSON`].
    fn default() -> Self {
        FrameFormat::LESSON
    }
}

impl FrameFormat {
    /// The lesson's `struct.pack('i', n)`: 4 bytes, little-endian, signed;
    /// `max_len` 64 KiB.
    ///
    /// ```
    /// use socketserver::framing::FrameFormat;
    /// // struct.pack('i', 10000) == b'\x10\x27\x00\x00'
    /// assert_eq!(FrameFormat::LESSON.encode_len(10000)?, [0x10, 0x27, 0, 0]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub const LESSON: FrameFormat = FrameFormat::new(LengthWidth::U32, Endian::Little, true);

    /// Network order `struct.pack('!I', n)`: 4 bytes, big-endian, unsigned;
    /// `max_len` 64 KiB.
    ///
    /// ```
    /// use socketserver::framing::FrameFormat;
    /// assert_eq!(FrameFormat::NETWORK.encode_len(10000)?, [0, 0, 0x27, 0x10]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub const NETWORK: FrameFormat = FrameFormat::new(LengthWidth::U32, Endian::Big, false);

    /// A format with the given prefix width, byte order and signedness, and the
    /// default `max_len` of 64 KiB (65536 bytes).
    ///
    /// A signed prefix carries the same non-negative lengths as Python's signed
    /// `struct` codes; a negative length read from the wire is an error.
    pub const fn new(width: LengthWidth, endian: Endian, signed: bool) -> Self {
        FrameFormat {
            width,
            endian,
            signed,
            max_len: DEFAULT_MAX_LEN,
        }
    }

    /// Sets the largest payload length accepted by this format (default 64 KiB,
    /// i.e. 65536 bytes). Longer frames are refused on write
    /// ([`ErrorKind::InvalidInput`]) and on read ([`ErrorKind::InvalidData`],
    /// before anything is allocated).
    ///
    /// The effective limit is also capped by what the prefix can represent; see
    /// [`FrameFormat::limit`].
    ///
    /// ```
    /// use socketserver::framing::FrameFormat;
    /// let fmt = FrameFormat::LESSON.max_len(16 * 1024 * 1024);
    /// assert_eq!(fmt.limit(), 16 * 1024 * 1024);
    /// ```
    #[must_use]
    pub const fn max_len(mut self, max: u64) -> Self {
        self.max_len = max;
        self
    }

    /// Width of the length prefix.
    pub const fn width(&self) -> LengthWidth {
        self.width
    }

    /// Byte order of the length prefix.
    pub const fn endian(&self) -> Endian {
        self.endian
    }

    /// Whether the prefix is a signed integer (like Python's `'i'`).
    pub const fn is_signed(&self) -> bool {
        self.signed
    }

    /// The largest payload length this format accepts: the smaller of the
    /// configured `max_len` and the largest value the prefix can represent.
    ///
    /// ```
    /// use socketserver::framing::{Endian, FrameFormat, LengthWidth};
    /// assert_eq!(FrameFormat::LESSON.limit(), 65536);
    /// let tiny = FrameFormat::new(LengthWidth::U8, Endian::Little, true);
    /// assert_eq!(tiny.limit(), 127);
    /// ```
    pub const fn limit(&self) -> u64 {
        let repr = self.max_representable();
        if self.max_len < repr {
            self.max_len
        } else {
            repr
        }
    }

    /// Length of the prefix in bytes (4 for [`FrameFormat::LESSON`]).
    pub fn header_len(&self) -> usize {
        self.width.bytes()
    }

    /// Largest value the prefix itself can carry.
    const fn max_representable(&self) -> u64 {
        let bits = self.width.bytes() as u32 * 8;
        if self.signed {
            (1u64 << (bits - 1)) - 1
        } else if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        }
    }

    /// Checks a payload length against the prefix range and `max_len`.
    fn check_encodable(&self, len: u64) -> io::Result<()> {
        let repr = self.max_representable();
        if len > repr {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "frame length {len} does not fit in a {}-byte {} prefix (maximum {repr})",
                    self.width.bytes(),
                    if self.signed { "signed" } else { "unsigned" },
                ),
            ));
        }
        if len > self.max_len {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!("frame length {len} exceeds the maximum of {}", self.max_len),
            ));
        }
        Ok(())
    }

    /// Encodes `len` as a length prefix.
    ///
    /// Fails with [`ErrorKind::InvalidInput`] if `len` does not fit in the prefix
    /// or exceeds `max_len`.
    ///
    /// ```
    /// use socketserver::framing::FrameFormat;
    /// assert_eq!(FrameFormat::LESSON.encode_len(5)?, [5, 0, 0, 0]);
    /// let err = FrameFormat::LESSON.encode_len(1 << 20).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn encode_len(&self, len: u64) -> io::Result<Vec<u8>> {
        self.check_encodable(len)?;
        let n = self.width.bytes();
        Ok(match self.endian {
            Endian::Little => len.to_le_bytes()[..n].to_vec(),
            Endian::Big => len.to_be_bytes()[8 - n..].to_vec(),
        })
    }

    /// Writes the length prefix for `len` to `w`.
    ///
    /// Fails with [`ErrorKind::InvalidInput`] like [`FrameFormat::encode_len`].
    pub fn write_len<W: Write + ?Sized>(&self, w: &mut W, len: u64) -> io::Result<()> {
        let prefix = self.encode_len(len)?;
        w.write_all(&prefix)
    }

    /// Reads one length prefix, looping over short reads.
    ///
    /// Returns `Ok(None)` on a clean end of stream before the first byte of the
    /// prefix. Errors:
    /// - [`ErrorKind::UnexpectedEof`] if the stream ends inside the prefix;
    /// - [`ErrorKind::InvalidData`] for a negative length (signed formats) or a
    ///   length above `max_len` — nothing is allocated in either case.
    ///
    /// ```
    /// use socketserver::framing::FrameFormat;
    /// let mut r: &[u8] = &[0x10, 0x27, 0, 0];
    /// assert_eq!(FrameFormat::LESSON.read_len(&mut r)?, Some(10000));
    /// assert_eq!(FrameFormat::LESSON.read_len(&mut r)?, None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_len<R: Read + ?Sized>(&self, r: &mut R) -> io::Result<Option<u64>> {
        let n = self.width.bytes();
        let mut buf = [0u8; 8];
        let mut got = 0;
        while got < n {
            match r.read(&mut buf[got..n]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!("connection closed inside a frame header ({got} of {n} bytes)"),
                    ));
                }
                // Guard against a misbehaving reader reporting more than it was given.
                Ok(k) => got += k.min(n - got),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let raw = match self.endian {
            Endian::Little => {
                let mut b = [0u8; 8];
                b[..n].copy_from_slice(&buf[..n]);
                u64::from_le_bytes(b)
            }
            Endian::Big => {
                let mut b = [0u8; 8];
                b[8 - n..].copy_from_slice(&buf[..n]);
                u64::from_be_bytes(b)
            }
        };
        let sign_bit = 1u64 << (n * 8 - 1);
        if self.signed && raw & sign_bit != 0 {
            let shift = 64 - 8 * n as u32;
            let value = ((raw << shift) as i64) >> shift;
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                format!("frame length {value} is negative"),
            ));
        }
        if raw > self.max_len {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                format!("frame length {raw} exceeds the maximum of {}", self.max_len),
            ));
        }
        Ok(Some(raw))
    }

    /// Writes the length prefix and `payload` with a single `write_all` of one
    /// buffer, so a frame is never needlessly split into two writes by this code.
    ///
    /// Fails with [`ErrorKind::InvalidInput`] (writing nothing) if the payload is
    /// longer than the format allows.
    pub fn write_frame<W: Write + ?Sized>(&self, w: &mut W, payload: &[u8]) -> io::Result<()> {
        let prefix = self.encode_len(payload.len() as u64)?;
        let mut buf = Vec::with_capacity(prefix.len() + payload.len());
        buf.extend_from_slice(&prefix);
        buf.extend_from_slice(payload);
        w.write_all(&buf)
    }

    /// Reads one frame (prefix + payload), looping over short reads.
    ///
    /// Returns `Ok(None)` on a clean end of stream between frames. Errors are
    /// those of [`FrameFormat::read_len`], plus [`ErrorKind::UnexpectedEof`] if
    /// the stream ends inside the payload.
    ///
    /// Memory: the length is validated before any allocation, and the payload
    /// buffer then grows only as bytes arrive (starting at 8 KiB), never beyond
    /// the declared length — so at most `max_len` bytes are ever allocated, and a
    /// peer that declares a large frame but sends little costs little.
    pub fn read_frame<R: Read + ?Sized>(&self, r: &mut R) -> io::Result<Option<Vec<u8>>> {
        let Some(len) = self.read_len(r)? else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("frame length {len} exceeds addressable memory"),
            )
        })?;
        let mut buf: Vec<u8> = Vec::new();
        let mut filled = 0;
        while filled < len {
            if filled == buf.len() {
                let new_len = buf.len().saturating_mul(2).max(INITIAL_READ_CHUNK).min(len);
                buf.reserve_exact(new_len - buf.len());
                buf.resize(new_len, 0);
            }
            match r.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed inside a frame payload ({filled} of {len} bytes)"
                        ),
                    ));
                }
                Ok(k) => filled += k.min(buf.len() - filled),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(buf))
    }

    /// Serializes `value` as JSON and writes it as one frame.
    ///
    /// Fails with [`ErrorKind::InvalidInput`] if the value cannot be serialized
    /// or the JSON is longer than the format allows.
    ///
    /// ```
    /// use socketserver::framing::FrameFormat;
    /// let mut wire = Vec::new();
    /// FrameFormat::LESSON.write_json(&mut wire, &serde_json::json!({"file_size": 3}))?;
    /// assert_eq!(wire, b"\x0f\0\0\0{\"file_size\":3}");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn write_json<W, T>(&self, w: &mut W, value: &T) -> io::Result<()>
    where
        W: Write + ?Sized,
        T: serde::Serialize + ?Sized,
    {
        let bytes = serde_json::to_vec(value).map_err(|e| {
            io::Error::new(
                ErrorKind::InvalidInput,
                format!("value cannot be serialized as JSON: {e}"),
            )
        })?;
        self.write_frame(w, &bytes)
    }

    /// Reads one frame and deserializes its payload as UTF-8 JSON.
    ///
    /// Returns `Ok(None)` on a clean end of stream between frames. Besides the
    /// errors of [`FrameFormat::read_frame`], fails with
    /// [`ErrorKind::InvalidData`] and one of these distinct messages:
    /// - `frame payload is not valid UTF-8: ...`
    /// - `frame payload is not valid JSON: ...`
    /// - `frame payload JSON does not match the expected type: ...`
    ///
    /// ```
    /// use socketserver::framing::FrameFormat;
    /// let mut r: &[u8] = b"\x0f\0\0\0{\"file_size\":3}";
    /// let v: serde_json::Value = FrameFormat::LESSON.read_json(&mut r)?.unwrap();
    /// assert_eq!(v["file_size"], 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn read_json<R, T>(&self, r: &mut R) -> io::Result<Option<T>>
    where
        R: Read + ?Sized,
        T: serde::de::DeserializeOwned,
    {
        let Some(payload) = self.read_frame(r)? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&payload).map_err(|e| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("frame payload is not valid UTF-8: {e}"),
            )
        })?;
        serde_json::from_str(text).map(Some).map_err(|e| {
            let msg = match e.classify() {
                serde_json::error::Category::Data => {
                    format!("frame payload JSON does not match the expected type: {e}")
                }
                _ => format!("frame payload is not valid JSON: {e}"),
            };
            io::Error::new(ErrorKind::InvalidData, msg)
        })
    }
}

/// [`FrameFormat::write_frame`] with [`FrameFormat::LESSON`].
///
/// ```
/// let mut wire = Vec::new();
/// socketserver::framing::write_frame(&mut wire, b"hi")?;
/// assert_eq!(wire, b"\x02\0\0\0hi");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_frame<W: Write + ?Sized>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    FrameFormat::LESSON.write_frame(w, payload)
}

/// [`FrameFormat::read_frame`] with [`FrameFormat::LESSON`].
///
/// ```
/// let mut r: &[u8] = b"\x02\0\0\0hi";
/// assert_eq!(socketserver::framing::read_frame(&mut r)?, Some(b"hi".to_vec()));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_frame<R: Read + ?Sized>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    FrameFormat::LESSON.read_frame(r)
}

/// [`FrameFormat::write_json`] with [`FrameFormat::LESSON`].
#[cfg(feature = "json")]
pub fn write_json<W, T>(w: &mut W, value: &T) -> io::Result<()>
where
    W: Write + ?Sized,
    T: serde::Serialize + ?Sized,
{
    FrameFormat::LESSON.write_json(w, value)
}

/// [`FrameFormat::read_json`] with [`FrameFormat::LESSON`].
///
/// ```
/// use socketserver::framing::{read_json, write_json};
/// let mut wire = Vec::new();
/// write_json(&mut wire, &serde_json::json!({"cmd": "ls", "total_size": 42}))?;
/// let header: serde_json::Value = read_json(&mut &wire[..])?.unwrap();
/// assert_eq!(header["total_size"], 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg(feature = "json")]
pub fn read_json<R, T>(r: &mut R) -> io::Result<Option<T>>
where
    R: Read + ?Sized,
    T: serde::de::DeserializeOwned,
{
    FrameFormat::LESSON.read_json(r)
}

fn body_eof(done: u64, len: u64) -> io::Error {
    io::Error::new(
        ErrorKind::UnexpectedEof,
        format!("body ended after {done} of {len} bytes"),
    )
}

/// Streams exactly `len` body bytes from `r` to `w` through a fixed 64 KiB
/// buffer (constant memory, whatever the body size) and returns the number of
/// bytes copied, which is always `len` on success.
///
/// Fails with [`ErrorKind::UnexpectedEof`] (`body ended after N of M bytes`) if
/// `r` ends early. Bytes after the body are left unread in `r`.
///
/// ```
/// use socketserver::framing::copy_body;
/// let mut r: &[u8] = b"hello, next frame";
/// let mut out = Vec::new();
/// assert_eq!(copy_body(&mut r, &mut out, 5)?, 5);
/// assert_eq!(out, b"hello");
/// assert_eq!(r, b", next frame");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn copy_body<R: Read + ?Sized, W: Write + ?Sized>(
    r: &mut R,
    w: &mut W,
    len: u64,
) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_BUF_LEN.min(usize::try_from(len).unwrap_or(usize::MAX))];
    let mut done = 0u64;
    while done < len {
        let want = buf
            .len()
            .min(usize::try_from(len - done).unwrap_or(usize::MAX));
        match r.read(&mut buf[..want]) {
            Ok(0) => return Err(body_eof(done, len)),
            Ok(k) => {
                let k = k.min(want);
                w.write_all(&buf[..k])?;
                done += k as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// A reader limited to `len` bytes of an inner reader that fails with
/// [`ErrorKind::UnexpectedEof`] (`body ended after N of M bytes`) — rather than
/// returning a short `Ok(0)` — if the inner reader ends before `len` bytes.
///
/// Useful to stream a body of known size into several sinks at once (a hasher
/// and a file, say) with [`std::io::copy`] or your own loop.
///
/// ```
/// use std::io::Read;
/// use socketserver::framing::BodyReader;
///
/// let mut body = BodyReader::new(&b"abcdef"[..], 4);
/// let mut s = String::new();
/// body.read_to_string(&mut s)?;
/// assert_eq!(s, "abcd");
/// assert_eq!(body.remaining(), 0);
/// assert_eq!(body.into_inner(), b"ef");
///
/// let mut short = BodyReader::new(&b"ab"[..], 4);
/// let err = short.read_to_end(&mut Vec::new()).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
/// assert_eq!(err.to_string(), "body ended after 2 of 4 bytes");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct BodyReader<R> {
    inner: R,
    len: u64,
    remaining: u64,
}

impl<R: Read> BodyReader<R> {
    /// Wraps `inner`, exposing exactly its next `len` bytes.
    pub fn new(inner: R, len: u64) -> Self {
        BodyReader {
            inner,
            len,
            remaining: len,
        }
    }

    /// Body bytes not yet read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Returns the inner reader, positioned after whatever was read of the body.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for BodyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let k = self.inner.read(&mut buf[..want])?;
        if k == 0 {
            return Err(body_eof(self.len - self.remaining, self.len));
        }
        let k = k.min(want);
        self.remaining -= k as u64;
        Ok(k)
    }
}
