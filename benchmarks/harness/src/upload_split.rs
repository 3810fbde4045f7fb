//! The upload's cost, split: what one core spends per byte on
//! each part of receiving an upload, then the upload example end to end.
//!
//! ```text
//! sockbench upload-split [--bytes N] [--passes P] [--tmpfs DIR] [--disk DIR]
//!                        [--server BIN --client BIN] [--e2e-only]
//!                        [--baseline-server BIN --baseline-client BIN]
//! ```
//!
//! In-process part: a receiver thread pinned to CPU 0 takes `--bytes` from
//! one loopback TCP stream that a sender thread pinned to CPU 1 writes from
//! memory (1 MiB writes, no hashing), so the receiver's work is all that
//! changes between cases:
//!
//! 1. receive and discard (64 KiB and 1 MiB reads),
//! 2. receive + SHA-256,
//! 3. receive + write to tmpfs (with and without `fallocate`),
//! 4. receive + SHA-256 + write + fsync to disk: one fsync at the end, or
//!    `sync_file_range` write-behind every 8 MiB; the hash on the receiving
//!    core, or on a second thread (unpinned: both cores).
//!
//! End-to-end part: `upload_client` to `upload_server` (release builds),
//! SHA-256 on both ends, fsynced, into tmpfs and onto disk; the server
//! pinned to CPU 0 with the client on CPU 1, and both free to use both
//! cores. Reports MB/s (10^6 bytes/s) and both processes' peak RSS.
//!
//! Every case runs `--passes` times, interleaved; one JSON line per run.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Options of `upload-split`.
pub struct SplitOpts {
    pub bytes: u64,
    pub passes: usize,
    pub tmpfs: PathBuf,
    pub disk: PathBuf,
    pub examples: Option<(PathBuf, PathBuf)>,
    /// Only the end-to-end part.
    pub e2e_only: bool,
    /// Only the in-process cases whose name starts with this.
    pub cases: String,
    /// The examples as they were before (no token), run in the same passes.
    pub baseline: Option<(PathBuf, PathBuf)>,
}

/// What the receiver does with the bytes.
#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    buf: usize,
    hash: bool,
    /// Write into a file in this directory kind.
    write: Option<Where>,
    fallocate: bool,
    fsync: bool,
    /// `sync_file_range(WRITE)` every this many bytes (0: never), waiting
    /// for the range two windows back.
    write_behind: u64,
    /// Hash on a second, unpinned thread.
    hash_thread: bool,
}

#[derive(Clone, Copy, Debug)]
enum Where {
    Tmpfs,
    Disk,
}

const KIB: usize = 1024;
const MIB: usize = 1 << 20;

fn cases() -> Vec<Case> {
    let base = Case {
        name: "",
        buf: MIB,
        hash: false,
        write: None,
        fallocate: false,
        fsync: false,
        write_behind: 0,
        hash_thread: false,
    };
    let full = Case {
        hash: true,
        write: Some(Where::Disk),
        fsync: true,
        ..base
    };
    vec![
        Case {
            name: "1. receive, discard (64 KiB reads)",
            buf: 64 * KIB,
            ..base
        },
        Case {
            name: "1. receive, discard (1 MiB reads)",
            ..base
        },
        Case {
            name: "2. receive + SHA-256",
            hash: true,
            ..base
        },
        Case {
            name: "3. receive + write to tmpfs",
            write: Some(Where::Tmpfs),
            ..base
        },
        Case {
            name: "3. receive + write to tmpfs, fallocate",
            write: Some(Where::Tmpfs),
            fallocate: true,
            ..base
        },
        Case {
            name: "4. receive + SHA-256 + write + fsync, disk (64 KiB, as before)",
            buf: 64 * KIB,
            ..full
        },
        Case {
            name: "4. receive + SHA-256 + write + fsync, disk",
            ..full
        },
        Case {
            name: "4. ... + fallocate",
            fallocate: true,
            ..full
        },
        Case {
            name: "4. ... + fallocate + write-behind 8 MiB",
            fallocate: true,
            write_behind: 8 << 20,
            ..full
        },
        Case {
            name: "4. ... + fallocate + write-behind + hash on a 2nd thread",
            fallocate: true,
            write_behind: 8 << 20,
            hash_thread: true,
            ..full
        },
        Case {
            name: "4b. receive + SHA-256 + write + fsync, disk, fallocate + write-behind, 256 KiB",
            buf: 256 * KIB,
            fallocate: true,
            write_behind: 8 << 20,
            ..full
        },
        Case {
            name: "4b. ... 128 KiB",
            buf: 128 * KIB,
            fallocate: true,
            write_behind: 8 << 20,
            ..full
        },
        Case {
            name: "4b. ... 128 KiB, hash on a 2nd thread",
            buf: 128 * KIB,
            fallocate: true,
            write_behind: 8 << 20,
            hash_thread: true,
            ..full
        },
        Case {
            name: "2b. receive + SHA-256, 128 KiB",
            buf: 128 * KIB,
            hash: true,
            ..base
        },
        Case {
            name: "3b. receive + write to tmpfs, 128 KiB",
            buf: 128 * KIB,
            write: Some(Where::Tmpfs),
            ..base
        },
    ]
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// CPU seconds (user + system) of the calling thread so far.
fn thread_cpu() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// CPU seconds (user + system) of process `pid` so far, from /proc.
fn process_cpu(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a constant.
    Some(ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
}

/// Runs `cmd` to completion: exit code, peak RSS (KiB), CPU seconds, stdout.
fn run_timed(cmd: &[String]) -> io::Result<(i32, u64, f64, String)> {
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)?;
    let mut status = 0;
    // SAFETY: waiting for our own child; rusage is written by the kernel.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::wait4(child.id() as i32, &mut status, 0, &mut ru) < 0 {
            return Err(io::Error::last_os_error());
        }
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((
        code,
        ru.ru_maxrss as u64,
        t(ru.ru_utime) + t(ru.ru_stime),
        out,
    ))
}

/// `sync_file_range` on `f`: start writing `[off, off+len)` back, or wait
/// for it.
fn sync_range(f: &File, off: u64, len: u64, wait: bool) {
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    // SAFETY: a plain syscall on a file descriptor we own.
    unsafe { libc::sync_file_range(f.as_raw_fd(), off as i64, len as i64, flags) };
}

fn dir_for(o: &SplitOpts, w: Where) -> &Path {
    match w {
        Where::Tmpfs => &o.tmpfs,
        Where::Disk => &o.disk,
    }
}

/// One receiver run; the seconds from the first byte sent to the last
/// byte durable (when fsyncing).
fn run_case(o: &SplitOpts, c: &Case) -> io::Result<Value> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let bytes = o.bytes;
    let path = c.write.map(|w| dir_for(o, w).join("split.bin"));
    let case = *c;
    let receiver = std::thread::spawn(move || -> io::Result<(String, f64, f64)> {
        pin(0);
        let (conn, _) = listener.accept()?;
        receive(conn, &case, path.as_deref(), bytes)
    });
    let sender = std::thread::spawn(move || -> io::Result<()> {
        pin(1);
        let mut s = TcpStream::connect(addr)?;
        let buf = vec![0x5au8; MIB];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(MIB as u64) as usize;
            s.write_all(&buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    });
    let t = Instant::now();
    sender.join().expect("sender")?;
    let (digest, cpu, hasher_cpu) = receiver.join().expect("receiver")?;
    let secs = t.elapsed().as_secs_f64();
    if let Some(w) = c.write {
        let _ = fs::remove_file(dir_for(o, w).join("split.bin"));
    }
    Ok(json!({
        "case": "upload-split", "server": c.name, "bytes": bytes, "secs": secs,
        "mb_per_s": bytes as f64 / secs / 1e6, "ns_per_byte": secs * 1e9 / bytes as f64,
        "sha256": digest,
        "receiver_cpu_ns_per_byte": cpu * 1e9 / bytes as f64,
        "cpu_ns_per_byte": (cpu + hasher_cpu) * 1e9 / bytes as f64,
    }))
}

/// Receives `bytes` and does what `c` says with them.
fn receive(
    mut conn: TcpStream,
    c: &Case,
    path: Option<&Path>,
    bytes: u64,
) -> io::Result<(String, f64, f64)> {
    let cpu0 = thread_cpu();
    let mut file = match path {
        Some(p) => Some(
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(p)?,
        ),
        None => None,
    };
    if let (Some(f), true) = (&file, c.fallocate) {
        // SAFETY: a plain syscall on a file descriptor we own.
        unsafe { libc::fallocate(f.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, bytes as i64) };
    }
    let (to_hasher, hasher_in) = mpsc::sync_channel::<Vec<u8>>(2);
    let (back, free) = mpsc::channel::<Vec<u8>>();
    let hasher = c.hash_thread.then(|| {
        std::thread::spawn(move || {
            let mut h = Sha256::new();
            for b in hasher_in {
                h.update(&b);
                let _ = back.send(b);
            }
            (h.finalize(), thread_cpu())
        })
    });
    let mut h = Sha256::new();
    let mut spare: Vec<Vec<u8>> = (0..3).map(|_| vec![0u8; c.buf]).collect();
    let mut done = 0u64;
    let mut synced = 0u64;
    while done < bytes {
        let mut buf = match spare.pop() {
            Some(b) => b,
            None => free.recv().map_err(io::Error::other)?,
        };
        let want = (c.buf as u64).min(bytes - done) as usize;
        let mut filled = 0;
        while filled < want {
            let n = conn.read(&mut buf[filled..want])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            filled += n;
        }
        if let Some(f) = &mut file {
            f.write_all(&buf[..filled])?;
        }
        done += filled as u64;
        if let (Some(f), true) = (&file, c.write_behind > 0) {
            while done - synced >= c.write_behind {
                sync_range(f, synced, c.write_behind, false);
                if synced >= 2 * c.write_behind {
                    sync_range(f, synced - 2 * c.write_behind, c.write_behind, true);
                }
                synced += c.write_behind;
            }
        }
        if c.hash_thread {
            buf.truncate(filled);
            to_hasher.send(buf).map_err(io::Error::other)?;
        } else {
            if c.hash {
                h.update(&buf[..filled]);
            }
            spare.push(buf);
        }
    }
    drop(to_hasher);
    let (digest, hasher_cpu) = match hasher {
        Some(t) => t.join().expect("hasher"),
        None => (h.finalize(), 0.0),
    };
    if let (Some(f), true) = (&file, c.fsync) {
        f.sync_data()?;
    }
    let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, thread_cpu() - cpu0, hasher_cpu))
}

/// One end-to-end upload with the example binaries.
fn example_once(
    o: &SplitOpts,
    w: Where,
    pinned: bool,
    pass: usize,
    baseline: bool,
) -> io::Result<Value> {
    let bins = if baseline { &o.baseline } else { &o.examples };
    let (server, client) = bins.clone().expect("examples");
    let base = dir_for(o, w).join("e2e");
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&base)?;
    let src = o.tmpfs.join("split-src.bin");
    let dir = base.join("uploads");
    let token = base.join("token");
    let taskset = |cpus: &str| {
        let mut c = Command::new("taskset");
        c.args(["-c", cpus]);
        c
    };
    let mut srv = taskset(if pinned { "0" } else { "0,1" });
    srv.arg(&server)
        .args(["--addr", "127.0.0.1:0", "--strategy", "threading", "--dir"])
        .arg(&dir)
        .args(if baseline {
            vec![]
        } else {
            vec!["--token-file".into(), token.clone().into_os_string()]
        })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = srv.spawn()?;
    let mut out = io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    io::BufRead::read_line(&mut out, &mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or("")
        .to_string();
    let name = format!("e2e-{pass}.bin");
    let mut cmd: Vec<String> = [
        "taskset",
        "-c",
        if pinned { "1" } else { "0,1" },
        &client.to_string_lossy(),
        "--addr",
        &addr,
        &src.to_string_lossy(),
        "--name",
        &name,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !baseline {
        cmd.extend(["--token-file".into(), token.to_string_lossy().into_owned()]);
    }
    let t = Instant::now();
    let server_cpu0 = process_cpu(child.id()).unwrap_or(0.0);
    let (status, client_kib, client_cpu, stdout) = run_timed(&cmd)?;
    let secs = t.elapsed().as_secs_f64();
    let server_kib = crate::suite::proc_status(child.id() as i32, "VmHWM");
    let server_cpu = process_cpu(child.id()).unwrap_or(f64::NAN) - server_cpu0;
    let _ = child.kill();
    let _ = child.wait();
    let stored = fs::metadata(dir.join(&name)).map(|m| m.len()).ok();
    let _ = fs::remove_dir_all(&base);
    let place = match w {
        Where::Tmpfs => "tmpfs",
        Where::Disk => "disk",
    };
    let cores = if pinned {
        "server on CPU 0, client on CPU 1"
    } else {
        "both free on 2 cores"
    };
    let which = if baseline { "before (main)" } else { "now" };
    Ok(json!({
        "case": "upload-e2e", "server": format!("{which}: upload_server + upload_client, {place}, {cores}"),
        "bytes": o.bytes, "ok": status == 0 && stored == Some(o.bytes), "client_status": status,
        "client_last_line": stdout.lines().last().unwrap_or(""), "secs": secs,
        "mb_per_s": o.bytes as f64 / secs / 1e6, "server_hwm_kib": server_kib,
        "client_hwm_kib": client_kib,
        "server_cpu_ns_per_byte": server_cpu * 1e9 / o.bytes as f64,
        "client_cpu_ns_per_byte": client_cpu * 1e9 / o.bytes as f64,
    }))
}

/// Runs every case `passes` times, interleaved; prints and returns the rows.
pub fn run(o: &SplitOpts) -> io::Result<Vec<Value>> {
    fs::create_dir_all(&o.tmpfs)?;
    fs::create_dir_all(&o.disk)?;
    let mut rows = Vec::new();
    if o.examples.is_some() {
        let src = o.tmpfs.join("split-src.bin");
        let mut f = io::BufWriter::with_capacity(MIB, File::create(&src)?);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut block = vec![0u8; MIB];
        for _ in 0..o.bytes.div_ceil(MIB as u64) {
            for chunk in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
            }
            f.write_all(&block)?;
        }
        f.flush()?;
        drop(f);
        fs::OpenOptions::new()
            .write(true)
            .open(&src)?
            .set_len(o.bytes)?;
    }
    for pass in 0..o.passes {
        for c in cases()
            .into_iter()
            .filter(|c| !o.e2e_only && c.name.starts_with(o.cases.as_str()))
        {
            let mut v = run_case(o, &c).unwrap_or_else(
                |e| json!({"case": "upload-split", "server": c.name, "error": e.to_string()}),
            );
            v["pass"] = json!(pass);
            println!("{v}");
            rows.push(v);
        }
        if o.examples.is_some() {
            for (w, pinned) in [
                (Where::Tmpfs, true),
                (Where::Tmpfs, false),
                (Where::Disk, true),
                (Where::Disk, false),
            ] {
                for baseline in [false, true]
                    .into_iter()
                    .filter(|&b| !b || o.baseline.is_some())
                {
                    let mut v = example_once(o, w, pinned, pass, baseline)
                        .unwrap_or_else(|e| json!({"case": "upload-e2e", "error": e.to_string()}));
                    v["pass"] = json!(pass);
                    println!("{v}");
                    rows.push(v);
                }
            }
        }
    }
    let _ = fs::remove_file(o.tmpfs.join("split-src.bin"));
    Ok(rows)
}
