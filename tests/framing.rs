//! Integration tests for `socketserver::framing`: wire compatibility with the
//! Python lesson's `struct.pack('i', n)`, error kinds and messages, bounded
//! allocation, and property tests showing the sticky-packet (粘包) fix holds
//! however the byte stream is split.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
#[cfg(feature = "json")]
use serde::{Deserialize, Serialize};
use socketserver::framing::{
    BodyReader, Endian, FrameFormat, LengthWidth, copy_body, read_frame, write_frame,
};
#[cfg(feature = "json")]
use socketserver::framing::{read_json, write_json};

// ---------------------------------------------------------------------------
// A global allocator that records the largest single allocation made on the
// current thread while "armed", to prove reads never allocate beyond max_len.
// ---------------------------------------------------------------------------

struct Tracking;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = PEAK.try_with(|p| p.set(p.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// Runs `f` and returns its result with the largest single allocation it made
/// on this thread.
fn peak_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    PEAK.with(|p| p.set(0));
    ARMED.with(|a| a.set(true));
    let out = f();
    ARMED.with(|a| a.set(false));
    (out, PEAK.with(|p| p.get()))
}

// ---------------------------------------------------------------------------
// Readers that split the stream the way TCP may.
// ---------------------------------------------------------------------------

/// Yields at most one byte per `read`.
struct OneByte<'a>(&'a [u8]);

impl Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() || buf.is_empty() {
            return Ok(0);
        }
        buf[0] = self.0[0];
        self.0 = &self.0[1..];
        Ok(1)
    }
}

/// Yields chunks whose sizes cycle through `sizes` (each >= 1), and
/// occasionally an `Interrupted` error, which readers must retry.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    i: usize,
    calls: u8,
}

impl<'a> Chunked<'a> {
    fn new(data: &'a [u8], sizes: Vec<usize>) -> Self {
        assert!(!sizes.is_empty() && sizes.iter().all(|&s| s > 0));
        Chunked {
            data,
            sizes,
            i: 0,
            calls: 0,
        }
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Every fourth call is interrupted.
        self.calls = self.calls.wrapping_add(1);
        if self.calls & 3 == 0 {
            return Err(io::Error::from(ErrorKind::Interrupted));
        }
        let size = self.sizes[self.i % self.sizes.len()];
        self.i += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Serves `data`, then panics if read again: proves a reader stopped early.
struct PanicAfter<'a>(&'a [u8]);

impl Read for PanicAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        assert!(!self.0.is_empty(), "read past the length prefix");
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// Records each `write` call separately.
#[derive(Default)]
struct WriteLog(Vec<Vec<u8>>);

impl Write for WriteLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn all_formats() -> Vec<FrameFormat> {
    let mut v = Vec::new();
    for w in [
        LengthWidth::U8,
        LengthWidth::U16,
        LengthWidth::U32,
        LengthWidth::U64,
    ] {
        for e in [Endian::Little, Endian::Big] {
            for s in [false, true] {
                v.push(FrameFormat::new(w, e, s));
            }
        }
    }
    v
}

fn assert_err<T: std::fmt::Debug>(r: io::Result<T>, kind: ErrorKind, msg: &str) {
    let e = r.expect_err("expected an error");
    assert_eq!(e.kind(), kind, "kind of {e}");
    assert_eq!(e.to_string(), msg);
}

fn assert_err_prefix<T: std::fmt::Debug>(r: io::Result<T>, kind: ErrorKind, prefix: &str) {
    let e = r.expect_err("expected an error");
    assert_eq!(e.kind(), kind, "kind of {e}");
    assert!(
        e.to_string().starts_with(prefix),
        "{e:?} should start with {prefix:?}"
    );
}

#[cfg(feature = "json")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Header {
    cmd: String,
    total_size: u64,
    names: Vec<String>,
    ok: Option<bool>,
}

// ---------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------

#[test]
fn lesson_matches_python_struct_pack_i() {
    let f = FrameFormat::LESSON;
    assert_eq!(f.header_len(), 4);
    assert_eq!(FrameFormat::default(), f);
    // struct.pack('i', n) on x86:
    assert_eq!(f.encode_len(0).unwrap(), [0, 0, 0, 0]);
    assert_eq!(f.encode_len(1).unwrap(), [1, 0, 0, 0]);
    assert_eq!(f.encode_len(10000).unwrap(), [0x10, 0x27, 0, 0]);
    assert_eq!(f.encode_len(65536).unwrap(), [0, 0, 1, 0]);
    assert_eq!(f.limit(), 65536);
    assert_eq!(
        (f.width(), f.endian(), f.is_signed()),
        (LengthWidth::U32, Endian::Little, true)
    );
    // struct.unpack('i', b'\x10\x27\x00\x00')[0] == 10000
    assert_eq!(
        f.read_len(&mut &[0x10, 0x27, 0, 0][..]).unwrap(),
        Some(10000)
    );
}

#[test]
fn network_is_big_endian_unsigned() {
    let f = FrameFormat::NETWORK;
    assert_eq!(f.header_len(), 4);
    assert_eq!(f.encode_len(10000).unwrap(), [0, 0, 0x27, 0x10]);
    assert!(!f.is_signed());
    // A set top bit is a (large) length for unsigned formats, not a negative one.
    let big = f.max_len(u64::MAX);
    assert_eq!(big.limit(), u32::MAX as u64);
    assert_eq!(
        big.read_len(&mut &[0x80, 0, 0, 0][..]).unwrap(),
        Some(0x8000_0000)
    );
    assert_eq!(big.encode_len(u32::MAX as u64).unwrap(), [0xff; 4]);
}

#[test]
fn specific_encodings_per_width_and_endian() {
    let f = |w, e, s| FrameFormat::new(w, e, s).max_len(u64::MAX);
    use Endian::*;
    use LengthWidth::*;
    assert_eq!(f(U8, Little, false).encode_len(200).unwrap(), [200]);
    assert_eq!(f(U16, Little, false).encode_len(0x0102).unwrap(), [2, 1]);
    assert_eq!(f(U16, Big, false).encode_len(0x0102).unwrap(), [1, 2]);
    assert_eq!(
        f(U64, Little, true).encode_len(0x0102).unwrap(),
        [2, 1, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(f(U64, Big, false).encode_len(u64::MAX).unwrap(), [0xff; 8]);
    assert_eq!(f(U8, Big, true).limit(), 127);
    assert_eq!(f(U16, Big, true).limit(), 32767);
    assert_eq!(f(U64, Big, true).limit(), i64::MAX as u64);
    assert_eq!(f(U64, Big, false).limit(), u64::MAX);
    for w in [U8, U16, U32, U64] {
        assert_eq!(f(w, Big, false).header_len(), w.bytes());
    }
}

#[test]
fn round_trip_every_format() {
    for fmt in all_formats() {
        let fmt_big = fmt.max_len(u64::MAX);
        // Lengths: 0, 1, and the largest the prefix can carry.
        for len in [0, 1, fmt_big.limit()] {
            let mut wire = Vec::new();
            fmt_big.write_len(&mut wire, len).unwrap();
            assert_eq!(wire.len(), fmt.header_len());
            assert_eq!(
                fmt_big.read_len(&mut OneByte(&wire)).unwrap(),
                Some(len),
                "{fmt:?}"
            );
        }
        // One past the representable maximum does not fit.
        if fmt_big.limit() < u64::MAX {
            assert_err_prefix(
                fmt_big.encode_len(fmt_big.limit() + 1),
                ErrorKind::InvalidInput,
                &format!("frame length {} does not fit in a", fmt_big.limit() + 1),
            );
        }
        // Frames, merged into one buffer.
        let payloads: Vec<Vec<u8>> = [0usize, 1, 5, 127, 300]
            .iter()
            .map(|&n| (0..n.min(fmt.limit() as usize)).map(|i| i as u8).collect())
            .collect();
        let mut wire = Vec::new();
        for p in &payloads {
            fmt.write_frame(&mut wire, p).unwrap();
        }
        let mut r = OneByte(&wire);
        for p in &payloads {
            assert_eq!(fmt.read_frame(&mut r).unwrap().as_ref(), Some(p), "{fmt:?}");
        }
        assert_eq!(fmt.read_frame(&mut r).unwrap(), None);
    }
}

#[test]
fn write_frame_is_a_single_write() {
    let mut log = WriteLog::default();
    FrameFormat::LESSON.write_frame(&mut log, b"hello").unwrap();
    assert_eq!(log.0, vec![b"\x05\0\0\0hello".to_vec()]);
}

#[test]
fn free_functions_use_lesson_format() {
    let mut a = Vec::new();
    let mut b = Vec::new();
    write_frame(&mut a, b"xyz").unwrap();
    FrameFormat::LESSON.write_frame(&mut b, b"xyz").unwrap();
    assert_eq!(a, b);
    assert_eq!(read_frame(&mut &a[..]).unwrap(), Some(b"xyz".to_vec()));
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

#[test]
fn clean_eof_is_none() {
    let empty: &[u8] = &[];
    assert_eq!(FrameFormat::LESSON.read_len(&mut &empty[..]).unwrap(), None);
    assert_eq!(read_frame(&mut &empty[..]).unwrap(), None);
    #[cfg(feature = "json")]
    assert_eq!(read_json::<_, Header>(&mut &empty[..]).unwrap(), None);
}

#[test]
fn negative_length_is_invalid_data() {
    let wire = (-5i32).to_le_bytes();
    assert_err(
        read_frame(&mut &wire[..]),
        ErrorKind::InvalidData,
        "frame length -5 is negative",
    );
    let one = FrameFormat::new(LengthWidth::U8, Endian::Big, true);
    assert_err(
        one.read_len(&mut &[0xff][..]),
        ErrorKind::InvalidData,
        "frame length -1 is negative",
    );
    let wide = FrameFormat::new(LengthWidth::U64, Endian::Big, true).max_len(u64::MAX);
    assert_err(
        wide.read_len(&mut &i64::MIN.to_be_bytes()[..]),
        ErrorKind::InvalidData,
        &format!("frame length {} is negative", i64::MIN),
    );
    let short = FrameFormat::new(LengthWidth::U16, Endian::Little, true);
    assert_err(
        short.read_len(&mut &(-300i16).to_le_bytes()[..]),
        ErrorKind::InvalidData,
        "frame length -300 is negative",
    );
}

#[test]
fn over_max_is_invalid_data_on_read_and_invalid_input_on_write() {
    let wire = 1_048_576i32.to_le_bytes();
    assert_err(
        read_frame(&mut &wire[..]),
        ErrorKind::InvalidData,
        "frame length 1048576 exceeds the maximum of 65536",
    );
    // Exactly the maximum is fine.
    assert_eq!(
        FrameFormat::LESSON
            .read_len(&mut &65536i32.to_le_bytes()[..])
            .unwrap(),
        Some(65536)
    );
    let mut out = Vec::new();
    assert_err(
        write_frame(&mut out, &vec![0u8; 65537]),
        ErrorKind::InvalidInput,
        "frame length 65537 exceeds the maximum of 65536",
    );
    assert!(out.is_empty(), "nothing written on error");
    assert_err(
        FrameFormat::LESSON.max_len(10).encode_len(11),
        ErrorKind::InvalidInput,
        "frame length 11 exceeds the maximum of 10",
    );
    assert_err(
        FrameFormat::new(LengthWidth::U8, Endian::Little, false).encode_len(256),
        ErrorKind::InvalidInput,
        "frame length 256 does not fit in a 1-byte unsigned prefix (maximum 255)",
    );
    assert_err(
        FrameFormat::LESSON.max_len(u64::MAX).encode_len(1 << 31),
        ErrorKind::InvalidInput,
        "frame length 2147483648 does not fit in a 4-byte signed prefix (maximum 2147483647)",
    );
}

#[test]
fn eof_inside_prefix_is_unexpected_eof() {
    assert_err(
        read_frame(&mut &[1u8, 2][..]),
        ErrorKind::UnexpectedEof,
        "connection closed inside a frame header (2 of 4 bytes)",
    );
    assert_err(
        read_frame(&mut OneByte(&[1u8, 2, 3])),
        ErrorKind::UnexpectedEof,
        "connection closed inside a frame header (3 of 4 bytes)",
    );
}

#[test]
fn eof_inside_payload_is_unexpected_eof() {
    let mut wire = 10i32.to_le_bytes().to_vec();
    wire.extend_from_slice(b"abc");
    assert_err(
        read_frame(&mut &wire[..]),
        ErrorKind::UnexpectedEof,
        "connection closed inside a frame payload (3 of 10 bytes)",
    );
    // Also after a complete first frame.
    let mut wire = Vec::new();
    write_frame(&mut wire, b"complete").unwrap();
    wire.extend_from_slice(&5i32.to_le_bytes());
    let mut r = OneByte(&wire);
    assert_eq!(read_frame(&mut r).unwrap(), Some(b"complete".to_vec()));
    assert_err(
        read_frame(&mut r),
        ErrorKind::UnexpectedEof,
        "connection closed inside a frame payload (0 of 5 bytes)",
    );
}

#[cfg(feature = "json")]
#[test]
fn invalid_utf8_and_invalid_json_have_distinct_messages() {
    let mut wire = Vec::new();
    write_frame(&mut wire, &[b'"', 0xff, 0xfe, b'"']).unwrap();
    assert_err_prefix(
        read_json::<_, serde_json::Value>(&mut &wire[..]),
        ErrorKind::InvalidData,
        "frame payload is not valid UTF-8: ",
    );

    let mut wire = Vec::new();
    write_frame(&mut wire, b"{not json").unwrap();
    assert_err_prefix(
        read_json::<_, serde_json::Value>(&mut &wire[..]),
        ErrorKind::InvalidData,
        "frame payload is not valid JSON: ",
    );

    // Truncated JSON is also "not valid JSON".
    let mut wire = Vec::new();
    write_frame(&mut wire, b"{\"a\": ").unwrap();
    assert_err_prefix(
        read_json::<_, serde_json::Value>(&mut &wire[..]),
        ErrorKind::InvalidData,
        "frame payload is not valid JSON: ",
    );

    // Valid JSON of the wrong shape says so.
    let mut wire = Vec::new();
    write_json(&mut wire, &serde_json::json!({"cmd": 5})).unwrap();
    assert_err_prefix(
        read_json::<_, Header>(&mut &wire[..]),
        ErrorKind::InvalidData,
        "frame payload JSON does not match the expected type: ",
    );
}

#[cfg(feature = "json")]
#[test]
fn unserializable_value_is_invalid_input() {
    let mut map = std::collections::BTreeMap::new();
    map.insert((1u8, 2u8), "tuple keys are not JSON object keys");
    let mut out = Vec::new();
    assert_err_prefix(
        write_json(&mut out, &map),
        ErrorKind::InvalidInput,
        "value cannot be serialized as JSON: ",
    );
    assert!(out.is_empty());
}

#[test]
fn huge_declared_length_errs_without_reading_or_allocating() {
    let wire = 0x7fff_ffffi32.to_le_bytes();
    let start = Instant::now();
    let (res, peak) = peak_alloc(|| read_frame(&mut PanicAfter(&wire)));
    assert_err(
        res,
        ErrorKind::InvalidData,
        "frame length 2147483647 exceeds the maximum of 65536",
    );
    assert!(peak < 1024, "allocated {peak} bytes before refusing");
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn large_max_len_allocates_only_as_data_arrives() {
    // A peer may declare up to 1 GiB here but sends only 100 bytes, then closes.
    let fmt = FrameFormat::LESSON.max_len(1 << 30);
    let mut wire = fmt.encode_len(1 << 30).unwrap();
    wire.extend_from_slice(&[7u8; 100]);
    let (res, peak) = peak_alloc(|| fmt.read_frame(&mut &wire[..]));
    assert_err(
        res,
        ErrorKind::UnexpectedEof,
        "connection closed inside a frame payload (100 of 1073741824 bytes)",
    );
    assert!(peak <= 16 * 1024, "allocated {peak} bytes for 100 received");
}

#[test]
fn read_frame_never_allocates_beyond_the_frame_length() {
    let fmt = FrameFormat::LESSON.max_len(1 << 20);
    let payload = vec![42u8; (1 << 20) - 3];
    let mut wire = Vec::new();
    fmt.write_frame(&mut wire, &payload).unwrap();
    let (res, peak) = peak_alloc(|| fmt.read_frame(&mut Chunked::new(&wire, vec![4096, 17])));
    let got = res.unwrap().unwrap();
    assert_eq!(got, payload);
    assert!(got.capacity() <= payload.len());
    assert!(peak <= payload.len(), "peak {peak} > {}", payload.len());
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

#[cfg(feature = "json")]
#[test]
fn json_matches_lesson_bytes_and_round_trips() {
    let mut wire = Vec::new();
    write_json(&mut wire, &serde_json::json!({"file_size": 3})).unwrap();
    // header_bytes = json.dumps({"file_size": 3}, separators=(',', ':')).encode()
    let json = br#"{"file_size":3}"#;
    let mut expected = (json.len() as i32).to_le_bytes().to_vec();
    expected.extend_from_slice(json);
    assert_eq!(wire, expected);

    let h = Header {
        cmd: "上传 upload".into(),
        total_size: 10_000_000_000,
        names: vec!["a.txt".into(), "粘包.bin".into()],
        ok: None,
    };
    let mut wire = Vec::new();
    write_json(&mut wire, &h).unwrap();
    FrameFormat::NETWORK.write_json(&mut wire, &h).unwrap();
    let mut r = OneByte(&wire);
    assert_eq!(read_json::<_, Header>(&mut r).unwrap(), Some(h.clone()));
    // The second frame is in another format: reading it with NETWORK works.
    assert_eq!(
        FrameFormat::NETWORK.read_json::<_, Header>(&mut r).unwrap(),
        Some(h)
    );
    assert_eq!(read_json::<_, Header>(&mut r).unwrap(), None);
}

// ---------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------

#[test]
fn copy_body_copies_exactly_len() {
    let mut r: &[u8] = b"0123456789rest";
    let mut out = Vec::new();
    assert_eq!(copy_body(&mut r, &mut out, 10).unwrap(), 10);
    assert_eq!(out, b"0123456789");
    assert_eq!(r, b"rest");
    assert_eq!(copy_body(&mut r, &mut out, 0).unwrap(), 0);
    assert_eq!(r, b"rest");

    // Through a 1-byte reader and an interrupting chunked reader.
    let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let mut out = Vec::new();
    copy_body(&mut OneByte(&data), &mut out, 5000).unwrap();
    assert_eq!(out, data);
    let mut out = Vec::new();
    copy_body(&mut Chunked::new(&data, vec![3, 1000]), &mut out, 4999).unwrap();
    assert_eq!(out, data[..4999]);
}

#[test]
fn copy_body_short_input_is_unexpected_eof() {
    let mut out = Vec::new();
    assert_err(
        copy_body(&mut &b"abc"[..], &mut out, 10),
        ErrorKind::UnexpectedEof,
        "body ended after 3 of 10 bytes",
    );
    assert_eq!(out, b"abc");
}

#[test]
fn copy_body_uses_constant_memory() {
    let len = 64 * 1024 * 1024; // 64 MiB through a bounded buffer
    let (res, peak) = peak_alloc(|| copy_body(&mut io::repeat(1).take(len), &mut io::sink(), len));
    assert_eq!(res.unwrap(), len);
    assert!(peak <= 64 * 1024, "peak {peak}");
}

#[test]
fn body_reader_limits_and_errors_on_short_input() {
    let mut inner: &[u8] = b"abcdefgh";
    let mut body = BodyReader::new(&mut inner, 5);
    assert_eq!(body.remaining(), 5);
    let mut buf = [0u8; 3];
    assert_eq!(body.read(&mut buf).unwrap(), 3);
    assert_eq!(body.remaining(), 2);
    let mut rest = Vec::new();
    body.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"de");
    assert_eq!(body.read(&mut buf).unwrap(), 0);
    let _ = body.into_inner();
    assert_eq!(inner, b"fgh");

    let mut short = BodyReader::new(OneByte(b"xyz"), 10);
    let mut got = Vec::new();
    assert_err(
        short.read_to_end(&mut got),
        ErrorKind::UnexpectedEof,
        "body ended after 3 of 10 bytes",
    );
    assert_eq!(got, b"xyz");
    assert_eq!(short.remaining(), 7);

    // Streaming into two sinks at once (as a hasher + file would).
    let data = vec![9u8; 100_000];
    let mut body = BodyReader::new(Chunked::new(&data, vec![777]), 100_000);
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // BodyReader passes Interrupted through, like std readers; retry it.
        let n = match body.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => other.unwrap(),
        };
        if n == 0 {
            break;
        }
        a.extend_from_slice(&buf[..n]);
        b.extend_from_slice(&buf[..n]);
    }
    assert_eq!(a, data);
    assert_eq!(b, data);
}

// ---------------------------------------------------------------------------
// The sticky-packet demonstration and a real socket
// ---------------------------------------------------------------------------

#[test]
fn naive_single_read_merges_messages_but_read_frame_separates_them() {
    // What the kernel may hand over when two sends arrive together.
    let mut wire = Vec::new();
    write_frame(&mut wire, b"hello").unwrap();
    write_frame(&mut wire, b"world").unwrap();

    // Naive receiver: "one recv(1024) is one message".
    let mut naive = Chunked::new(&wire, vec![1024]);
    let mut buf = [0u8; 1024];
    let n = loop {
        match naive.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => break other.unwrap(),
        }
    };
    let got = &buf[..n];
    assert_eq!(n, wire.len(), "both messages arrived in one read");
    assert!(got.windows(5).any(|w| w == b"hello") && got.windows(5).any(|w| w == b"world"));

    // And one big message may arrive in pieces.
    let big = vec![b'x'; 2000];
    let mut wire2 = Vec::new();
    write_frame(&mut wire2, &big).unwrap();
    let mut naive = Chunked::new(&wire2, vec![1024]);
    let n = loop {
        match naive.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => break other.unwrap(),
        }
    };
    assert!(
        n < wire2.len(),
        "a single read got only part of the message"
    );

    // Framed receiver: exactly the messages that were sent.
    let mut r = Chunked::new(&wire, vec![1024]);
    assert_eq!(read_frame(&mut r).unwrap(), Some(b"hello".to_vec()));
    assert_eq!(read_frame(&mut r).unwrap(), Some(b"world".to_vec()));
    assert_eq!(read_frame(&mut r).unwrap(), None);
    let mut r = Chunked::new(&wire2, vec![1024]);
    assert_eq!(read_frame(&mut r).unwrap(), Some(big));
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    (client, server)
}

#[test]
fn tcp_hundred_frames_merged_into_one_write() {
    let (mut client, mut server) = tcp_pair();
    let messages: Vec<Vec<u8>> = (0..100)
        .map(|i| format!("message {i} {}", "#".repeat(i * 37)).into_bytes())
        .collect();
    let to_send = messages.clone();
    let writer = thread::spawn(move || {
        let mut merged = Vec::new();
        for m in &to_send {
            write_frame(&mut merged, m).unwrap();
        }
        client.write_all(&merged).unwrap();
        // Dropping `client` closes the connection: a clean EOF between frames.
    });
    for m in &messages {
        assert_eq!(read_frame(&mut server).unwrap().as_ref(), Some(m));
    }
    assert_eq!(read_frame(&mut server).unwrap(), None);
    writer.join().unwrap();
}

#[cfg(feature = "json")]
#[test]
fn tcp_lesson_style_upload_header_then_body() {
    let (mut client, mut server) = tcp_pair();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    let sent = body.clone();
    let writer = thread::spawn(move || {
        let header =
            serde_json::json!({"cmd": "put", "file_name": "a.bin", "file_size": sent.len()});
        write_json(&mut client, &header).unwrap();
        client.write_all(&sent).unwrap();
        write_frame(&mut client, b"bye").unwrap();
    });
    let header: serde_json::Value = read_json(&mut server).unwrap().unwrap();
    let size = header["file_size"].as_u64().unwrap();
    let mut got = Vec::new();
    assert_eq!(copy_body(&mut server, &mut got, size).unwrap(), size);
    assert_eq!(got, body);
    // The stream is positioned exactly at the next frame.
    assert_eq!(read_frame(&mut server).unwrap(), Some(b"bye".to_vec()));
    assert_eq!(read_frame(&mut server).unwrap(), None);
    writer.join().unwrap();
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

fn any_format() -> impl Strategy<Value = FrameFormat> {
    (
        prop_oneof![
            Just(LengthWidth::U8),
            Just(LengthWidth::U16),
            Just(LengthWidth::U32),
            Just(LengthWidth::U64),
        ],
        prop_oneof![Just(Endian::Little), Just(Endian::Big)],
        any::<bool>(),
    )
        .prop_map(|(w, e, s)| FrameFormat::new(w, e, s))
}

#[cfg(feature = "json")]
fn any_header() -> impl Strategy<Value = Header> {
    (
        "\\PC{0,20}",
        any::<u64>(),
        proptest::collection::vec("\\PC{0,8}", 0..4),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(cmd, total_size, names, ok)| Header {
            cmd,
            total_size,
            names,
            ok,
        })
}

fn merged(fmt: FrameFormat, msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut wire = Vec::new();
    for m in msgs {
        fmt.write_frame(&mut wire, m).unwrap();
    }
    wire
}

fn read_all(fmt: FrameFormat, r: &mut impl Read) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(m) = fmt.read_frame(r).unwrap() {
        out.push(m);
    }
    // Still at EOF: None again.
    assert_eq!(fmt.read_frame(r).unwrap(), None);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Many frames merged into one buffer come back intact through a
    /// reader that yields one byte per read.
    #[test]
    fn frames_survive_one_byte_reads(
        fmt in any_format(),
        msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
    ) {
        let msgs: Vec<Vec<u8>> = msgs
            .into_iter()
            .map(|mut m| { m.truncate(fmt.limit() as usize); m })
            .collect();
        let wire = merged(fmt, &msgs);
        prop_assert_eq!(read_all(fmt, &mut OneByte(&wire)), msgs);
    }

    /// ... and through a reader that yields arbitrary chunk sizes.
    #[test]
    fn frames_survive_random_chunking(
        fmt in any_format(),
        msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
        sizes in proptest::collection::vec(1usize..700, 1..30),
    ) {
        let msgs: Vec<Vec<u8>> = msgs
            .into_iter()
            .map(|mut m| { m.truncate(fmt.limit() as usize); m })
            .collect();
        let wire = merged(fmt, &msgs);
        prop_assert_eq!(read_all(fmt, &mut Chunked::new(&wire, sizes)), msgs);
    }

    /// JSON headers (including multi-byte UTF-8 split across reads) too.
    #[cfg(feature = "json")]
    #[test]
    fn json_survives_random_chunking(
        headers in proptest::collection::vec(any_header(), 0..10),
        sizes in proptest::collection::vec(1usize..50, 1..20),
    ) {
        let mut wire = Vec::new();
        for h in &headers {
            write_json(&mut wire, h).unwrap();
        }
        for mut r in [
            Box::new(OneByte(&wire)) as Box<dyn Read>,
            Box::new(Chunked::new(&wire, sizes.clone())),
        ] {
            let mut got = Vec::new();
            while let Some(h) = read_json::<_, Header>(&mut r).unwrap() {
                got.push(h);
            }
            prop_assert_eq!(&got, &headers);
        }
    }

    /// Every length within the limit round-trips; every length above it is refused.
    #[test]
    fn lengths_round_trip(fmt in any_format(), len in any::<u64>(), max in any::<u64>()) {
        let fmt = fmt.max_len(max);
        match fmt.encode_len(len) {
            Ok(bytes) => {
                prop_assert!(len <= fmt.limit());
                prop_assert_eq!(bytes.len(), fmt.header_len());
                prop_assert_eq!(fmt.read_len(&mut &bytes[..]).unwrap(), Some(len));
            }
            Err(e) => {
                prop_assert!(len > fmt.limit());
                prop_assert_eq!(e.kind(), ErrorKind::InvalidInput);
            }
        }
    }

    /// Arbitrary bytes never panic, never allocate beyond max_len, and
    /// end in Ok(None) or a well-kinded error.
    #[test]
    fn garbage_is_handled(fmt in any_format(), max in 0u64..4096, data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let fmt = fmt.max_len(max);
        let (res, peak) = peak_alloc(|| {
            let mut r = &data[..];
            loop {
                match fmt.read_frame(&mut r) {
                    Ok(Some(m)) => assert!(m.len() as u64 <= max),
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(e.kind()),
                }
            }
        });
        if let Err(kind) = res {
            prop_assert!(matches!(kind, ErrorKind::InvalidData | ErrorKind::UnexpectedEof));
        }
        // Small allocations for error messages are allowed.
        prop_assert!(peak as u64 <= max.max(256), "peak {} > max {}", peak, max);

        #[cfg(feature = "json")]
        {
            let mut r = &data[..];
            while let Ok(Some(_)) = fmt.read_json::<_, serde_json::Value>(&mut r) {}
        }
    }
}
