//! Feeds arbitrary bytes to `framing`'s frame reader and JSON reader.
//!
//! Checks: no panic; every frame is at most `max_len`; a frame read never makes
//! a single allocation larger than `max_len` (plus a small allowance for error
//! messages); decoded frames re-encode to exactly the bytes they came from; and
//! every error is `InvalidData` or `UnexpectedEof`.
//!
//! Input layout: byte 0 picks the prefix format, bytes 1..3 the `max_len`
//! (little-endian u16), byte 3 the chunk size of the reader (so short reads are
//! exercised too); the rest is the stream.
//!
//! Run with `cargo fuzz run decode` from the crate root (needs nightly).

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, ErrorKind, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use socketserver::framing::{Endian, FrameFormat, LengthWidth};

/// Records the largest single allocation made while armed.
struct Tracking;

static ARMED: AtomicBool = AtomicBool::new(false);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn note(size: usize) {
    if ARMED.load(Ordering::Relaxed) {
        PEAK.fetch_max(size, Ordering::Relaxed);
    }
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

/// Hands out at most `chunk` bytes per read.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Small allocations (error messages) are allowed regardless of `max_len`.
const ERROR_ALLOWANCE: usize = 256;

fuzz_target!(|input: &[u8]| {
    if input.len() < 4 {
        return;
    }
    let width = match input[0] & 3 {
        0 => LengthWidth::U8,
        1 => LengthWidth::U16,
        2 => LengthWidth::U32,
        _ => LengthWidth::U64,
    };
    let endian = if input[0] & 4 == 0 {
        Endian::Little
    } else {
        Endian::Big
    };
    let signed = input[0] & 8 != 0;
    let max = u64::from(u16::from_le_bytes([input[1], input[2]]));
    let fmt = FrameFormat::new(width, endian, signed).max_len(max);
    let chunk = usize::from(input[3]).max(1);
    let data = &input[4..];

    // Frames.
    let mut reader = Chunked { data, chunk };
    let mut frames = Vec::new();
    loop {
        PEAK.store(0, Ordering::Relaxed);
        ARMED.store(true, Ordering::Relaxed);
        let res = fmt.read_frame(&mut reader);
        ARMED.store(false, Ordering::Relaxed);
        let peak = PEAK.load(Ordering::Relaxed);
        assert!(
            peak as u64 <= max.max(ERROR_ALLOWANCE as u64),
            "allocated {peak} bytes with max_len {max}"
        );
        match res {
            Ok(Some(frame)) => {
                assert!(frame.len() as u64 <= max);
                frames.push(frame);
            }
            Ok(None) => break,
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::InvalidData | ErrorKind::UnexpectedEof),
                    "unexpected error kind: {e:?}"
                );
                break;
            }
        }
    }
    // Decoding is exact: re-encoding the frames gives back the bytes consumed.
    let mut reencoded = Vec::new();
    for f in &frames {
        fmt.write_frame(&mut reencoded, f)
            .expect("a decoded frame re-encodes");
    }
    assert_eq!(&data[..reencoded.len()], &reencoded[..]);

    // JSON: only "no panic" and well-kinded errors (serde_json's own
    // allocations for a parsed value are not bounded by max_len).
    let mut reader = Chunked { data, chunk };
    loop {
        match fmt.read_json::<_, serde_json::Value>(&mut reader) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::InvalidData | ErrorKind::UnexpectedEof),
                    "unexpected error kind: {e:?}"
                );
                break;
            }
        }
    }
});
