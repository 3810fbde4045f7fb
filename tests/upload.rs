//! The upload example end to end, on the real binaries: `upload_server` and
//! `upload_client` (and the lesson's Python client).

mod support;

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use socketserver::framing::{read_json, write_json};
use support::ServerProcess;

const LIMIT: Duration = Duration::from_secs(120);
const MIB: u64 = 1 << 20;

/// Writes `size` deterministic, non-repeating bytes: one pseudo-random MiB
/// (xorshift, from `seed`) with each MiB stamped with its index.
fn write_pattern(path: &Path, size: u64, seed: u64) {
    let mut block = vec![0u8; MIB as usize];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in block.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut w = BufWriter::new(File::create(path).unwrap());
    let mut left = size;
    let mut i = 0u64;
    while left > 0 {
        block[..8].copy_from_slice(&i.to_le_bytes());
        let n = left.min(MIB) as usize;
        w.write_all(&block[..n]).unwrap();
        left -= n as u64;
        i += 1;
    }
    w.flush().unwrap();
}

fn sha_file(path: &Path) -> String {
    let mut f = File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts `upload_server` storing into `dir`, with its cwd in `cwd`.
fn server(dir: &Path, cwd: &Path, extra: &[&str]) -> ServerProcess {
    support::start_with(
        Command::new(support::example_bin("upload_server"))
            .current_dir(cwd)
            .arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--dir")
            .arg(dir)
            .args(extra),
    )
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn client(addr: &str, file: &Path, extra: &[&str]) -> Run {
    let (status, out, err) = support::run_with_timeout(
        Command::new(support::example_bin("upload_client"))
            .arg("--addr")
            .arg(addr)
            .arg(file)
            .args(extra),
        LIMIT,
    );
    Run {
        status,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// The client's `sent N bytes (from offset M), sha256 H, ...` line.
fn sent_line(run: &Run) -> (u64, u64, String) {
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("sent "))
        .unwrap_or_else(|| panic!("no `sent` line: {}\n{}", run.stdout, run.stderr));
    let w: Vec<&str> = line.split_whitespace().collect();
    // sent N bytes (from offset M), sha256 H, ...
    let sent = w[1].parse().unwrap();
    let offset = w[5].trim_end_matches("),").parse().unwrap();
    let sha = w[7].trim_end_matches(',').to_string();
    (sent, offset, sha)
}

/// Waits for the server's `stored <size> <sha256> <name>` line.
fn stored_line(srv: &ServerProcess) -> (u64, String, String) {
    let line = srv
        .stdout
        .recv_timeout(Duration::from_secs(30))
        .expect("no `stored` line from the server");
    let mut w = line.splitn(4, ' ');
    assert_eq!(w.next(), Some("stored"), "{line}");
    let size = w.next().unwrap().parse().unwrap();
    let sha = w.next().unwrap().to_string();
    (size, sha, w.next().unwrap().to_string())
}

/// Every entry of `dir` (names), sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn partials(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect()
}

/// Waits (bounded) until `dir` holds a partial upload of at least `len` bytes;
/// returns its size.
fn wait_partial(dir: &Path, len: u64) -> u64 {
    let start = Instant::now();
    loop {
        if let Some(n) = partials(dir)
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .find(|&n| n >= len)
        {
            return n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no partial of {len} bytes in {}: {:?}",
            dir.display(),
            entries(dir)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// A scratch area: `up` (the server's directory) and `cwd` (its working
/// directory), both empty.
fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("up");
    let cwd = tmp.path().join("cwd");
    fs::create_dir(&up).unwrap();
    fs::create_dir(&cwd).unwrap();
    (tmp, up, cwd)
}

#[test]
fn a_256_mib_file_arrives_identical_with_bounded_memory() {
    let (tmp, up, cwd) = scratch();
    let src = tmp.path().join("big.bin");
    let size = 256 * MIB;
    let t = Instant::now();
    write_pattern(&src, size, 1);
    let want = sha_file(&src);
    eprintln!("generated and hashed 256 MiB in {:?}", t.elapsed());

    let srv = server(&up, &cwd, &[]);
    let t = Instant::now();
    let run = client(&srv.addr, &src, &["--report-rss"]);
    let secs = t.elapsed().as_secs_f64();
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    let (sent, offset, sha) = sent_line(&run);
    assert_eq!((sent, offset), (size, 0));
    assert_eq!(sha, want);
    assert!(run.stdout.contains("confirmed"));
    assert_eq!(stored_line(&srv), (size, want.clone(), "big.bin".into()));

    let server_kib = vm_hwm_kib(srv.child.id());
    let client_kib: u64 = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib "))
        .expect("peak_rss_kib line")
        .parse()
        .unwrap();
    eprintln!(
        "256 MiB in {secs:.2} s ({:.0} MiB/s); peak RSS: client {client_kib} KiB, server {server_kib} KiB",
        256.0 / secs
    );
    assert!(
        client_kib > 0 && client_kib < 32 * 1024,
        "client {client_kib} KiB"
    );
    assert!(server_kib < 32 * 1024, "server {server_kib} KiB");
    assert!(srv.stop().success());

    assert_eq!(entries(&up), ["big.bin"]);
    assert_eq!(fs::metadata(up.join("big.bin")).unwrap().len(), size);
    assert_eq!(sha_file(&up.join("big.bin")), want);
}

/// Sends a header and a small body on a raw connection; returns the reply.
fn raw_upload(addr: &str, header: &Value, body: &[u8]) -> Option<Value> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write_json(&mut s, header).unwrap();
    let _ = s.write_all(body);
    let _ = s.shutdown(Shutdown::Write);
    read_json(&mut s).unwrap()
}

#[test]
fn unsafe_names_are_refused_and_nothing_is_written() {
    let (tmp, up, cwd) = scratch();
    let srv = server(&up, &cwd, &[]);
    let long = "n".repeat(256);
    let names = [
        "../x",
        "/etc/passwd",
        "a/b",
        "",
        "a\0b",
        "..",
        ".",
        "a\\b",
        "..\\x",
        long.as_str(),
    ];
    let body = b"MARKER-upload-test-body";
    for name in names {
        let header = json!({"file_name": name, "file_size": body.len()});
        let reply = raw_upload(&srv.addr, &header, body).expect("an error reply");
        assert_eq!(reply["ok"], false, "{name:?}: {reply}");
        assert!(reply["error"].as_str().unwrap().contains("name"), "{reply}");
    }
    // The real client says why and fails.
    let src = tmp.path().join("src.txt");
    fs::write(&src, body).unwrap();
    for name in ["../x", "/etc/passwd", "a/b", ""] {
        let run = client(&srv.addr, &src, &["--name", name]);
        assert_eq!(run.status.code(), Some(1), "{name:?}: {}", run.stderr);
        assert!(run.stderr.contains("refused by server"), "{}", run.stderr);
    }
    assert!(srv.stop().success());
    assert!(entries(&up).is_empty(), "{:?}", entries(&up));
    assert!(entries(&cwd).is_empty(), "{:?}", entries(&cwd));
    assert_eq!(entries(tmp.path()), ["cwd", "src.txt", "up"]);
    let passwd = fs::read("/etc/passwd").unwrap_or_default();
    assert!(!passwd.windows(body.len()).any(|w| w == body));
}

#[test]
fn too_large_is_refused_before_the_body() {
    let (tmp, up, cwd) = scratch();
    let srv = server(&up, &cwd, &["--max-size", "1000"]);
    let src = tmp.path().join("f.bin");
    write_pattern(&src, 4 * MIB, 2);
    let run = client(&srv.addr, &src, &[]);
    assert_eq!(run.status.code(), Some(1));
    assert!(run.stderr.contains("too large"), "{}", run.stderr);
    assert!(entries(&up).is_empty(), "{:?}", entries(&up));
}

#[test]
fn a_client_stopped_halfway_resumes_with_only_the_rest() {
    let (tmp, up, cwd) = scratch();
    let srv = server(&up, &cwd, &[]);
    let src = tmp.path().join("movie.mp4");
    let size = 8 * MIB;
    write_pattern(&src, size, 3);
    let half = size / 2;

    let run = client(&srv.addr, &src, &["--stop-after", &half.to_string()]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("stopped after"), "{}", run.stderr);
    assert_eq!(wait_partial(&up, half), half);
    assert!(!up.join("movie.mp4").exists());

    let run = client(&srv.addr, &src, &["--resume"]);
    assert!(run.status.success(), "{}", run.stderr);
    let (sent, offset, sha) = sent_line(&run);
    assert_eq!((sent, offset), (size - half, half));
    let want = sha_file(&src);
    assert_eq!(sha, want);
    assert_eq!(stored_line(&srv), (size, want.clone(), "movie.mp4".into()));
    assert_eq!(sha_file(&up.join("movie.mp4")), want);
    assert_eq!(entries(&up), ["movie.mp4"], "the partial is gone");
}

#[test]
fn a_wrong_sha256_is_refused_and_nothing_stored() {
    let (tmp, up, cwd) = scratch();
    let srv = server(&up, &cwd, &[]);
    let src = tmp.path().join("f.bin");
    write_pattern(&src, 2 * MIB, 4);
    let wrong = "0".repeat(64);
    let run = client(&srv.addr, &src, &["--sha256", &wrong]);
    assert_eq!(run.status.code(), Some(1));
    assert!(run.stderr.contains("sha256 mismatch"), "{}", run.stderr);
    // The refusal arrives after the body: the handler has finished with it.
    assert!(entries(&up).is_empty(), "{:?}", entries(&up));

    // The right hash, declared up front, is accepted.
    let run = client(&srv.addr, &src, &["--hash-first"]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(stored_line(&srv).1, sha_file(&src));
}

#[test]
fn concurrent_uploads_of_one_name_leave_one_complete_file() {
    let (tmp, up, cwd) = scratch();
    let srv = server(&up, &cwd, &[]);
    let (a, b) = (tmp.path().join("a.bin"), tmp.path().join("b.bin"));
    let size = 4 * MIB;
    write_pattern(&a, size, 5);
    write_pattern(&b, size, 6);
    let (sha_a, sha_b) = (sha_file(&a), sha_file(&b));
    assert_ne!(sha_a, sha_b);

    let rate = (2 * MIB).to_string();
    let args = ["--name", "same.bin", "--rate-limit", rate.as_str()];
    let addr = srv.addr.as_str();
    std::thread::scope(|s| {
        let first = s.spawn(|| client(addr, &a, &args));
        // Start the second once the first is visibly under way.
        wait_partial(&up, 1);
        let second = s.spawn(|| client(addr, &b, &args));
        for run in [first.join().unwrap(), second.join().unwrap()] {
            assert!(run.status.success(), "{}", run.stderr);
        }
    });
    let one = stored_line(&srv);
    let two = stored_line(&srv);
    let mut stored = [one.1.clone(), two.1.clone()];
    stored.sort();
    let mut want = [sha_a, sha_b];
    want.sort();
    assert_eq!(stored, want, "each upload was stored whole");
    // The last completed rename wins, and nothing else is left behind.
    assert_eq!(sha_file(&up.join("same.bin")), two.1);
    assert_eq!(entries(&up), ["same.bin"]);
}

#[test]
fn the_lesson_python_client_uploads() {
    let (tmp, up, cwd) = scratch();
    let srv = server(&up, &cwd, &[]);
    let src = tmp.path().join("lesson.bin");
    write_pattern(&src, 300_000, 7);
    let (host, port) = srv.addr.rsplit_once(':').unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/lesson_upload_client.py");
    let name = "jason真实写真集.mp4";
    let (status, out, err) = support::run_with_timeout(
        Command::new("python3")
            .arg(&script)
            .args([host, port])
            .arg(&src)
            .arg(name),
        LIMIT,
    );
    assert!(status.success(), "{}", String::from_utf8_lossy(&err));
    assert_eq!(String::from_utf8_lossy(&out).trim(), "sent 300000 bytes");
    let want = sha_file(&src);
    assert_eq!(stored_line(&srv), (300_000, want.clone(), name.into()));
    assert_eq!(sha_file(&up.join(name)), want);
    assert!(srv.stop().success());
    assert_eq!(entries(&up), [name]);
}

#[test]
fn against_a_server_that_never_acknowledges_the_client_says_not_confirmed() {
    // The lesson's server: read the header, read file_size bytes, close.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let lesson = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let header: Value = read_json(&mut conn).unwrap().unwrap();
        let mut body = Vec::new();
        (&mut conn)
            .take(header["file_size"].as_u64().unwrap())
            .read_to_end(&mut body)
            .unwrap();
        (header, body)
    });
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("f.bin");
    write_pattern(&src, 100_000, 8);
    let run = client(&addr, &src, &[]);
    let (header, body) = lesson.join().unwrap();
    assert_eq!(header["file_name"], "f.bin");
    assert_eq!(body, fs::read(&src).unwrap());
    assert_eq!(run.status.code(), Some(3), "{}", run.stderr);
    assert!(
        run.stdout.contains("sent but not confirmed"),
        "{}",
        run.stdout
    );
    assert_eq!(sent_line(&run).0, 100_000);
}

#[test]
fn a_vanished_client_leaves_no_file_and_others_are_served() {
    let (tmp, up, cwd) = scratch();
    let srv = server(&up, &cwd, &[]);
    {
        let mut s = TcpStream::connect(&srv.addr).unwrap();
        write_json(&mut s, &json!({"file_name": "gone.bin", "file_size": MIB})).unwrap();
        s.write_all(&[7u8; 100_000]).unwrap();
    } // dropped: the client vanishes
    assert_eq!(wait_partial(&up, 100_000), 100_000);

    let src = tmp.path().join("other.bin");
    write_pattern(&src, 1_000_000, 9);
    let run = client(&srv.addr, &src, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(stored_line(&srv).2, "other.bin");
    assert!(!up.join("gone.bin").exists());
    assert!(srv.stop().success());
}

#[test]
fn a_stalled_client_is_cut_after_the_timeout() {
    let (_tmp, up, cwd) = scratch();
    let srv = server(&up, &cwd, &["--timeout", "0.5"]);
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    write_json(&mut s, &json!({"file_name": "slow.bin", "file_size": MIB})).unwrap();
    s.write_all(&[1u8; 1000]).unwrap();
    // Then silence: the server gives up and closes (EOF, no acknowledgement).
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut rest = Vec::new();
    let t = Instant::now();
    let _ = s.read_to_end(&mut rest);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the server never cut it"
    );
    assert!(rest.is_empty());
    assert!(!up.join("slow.bin").exists());
    assert_eq!(wait_partial(&up, 1000), 1000, "kept for a resume");
}

#[test]
fn sigterm_mid_upload_exits_0_and_leaves_it_resumable() {
    let (tmp, up, cwd) = scratch();
    let srv = server(&up, &cwd, &["--drain-timeout", "0.3"]);
    let src = tmp.path().join("f.bin");
    let size = 8 * MIB;
    write_pattern(&src, size, 10);
    let addr = srv.addr.clone();
    let slow = {
        let src = src.clone();
        std::thread::spawn(move || client(&addr, &src, &["--rate-limit", &MIB.to_string()]))
    };
    wait_partial(&up, 256 * 1024);
    let status = srv.stop();
    assert!(status.success(), "SIGTERM exit: {status:?}");
    let run = slow.join().unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(!up.join("f.bin").exists(), "nothing under the final name");
    let kept = wait_partial(&up, 1);
    assert!(kept < size);

    let srv = server(&up, &cwd, &[]);
    let run = client(&srv.addr, &src, &["--resume"]);
    assert!(run.status.success(), "{}", run.stderr);
    let (sent, offset, sha) = sent_line(&run);
    assert_eq!(offset, kept);
    assert_eq!(sent, size - kept);
    assert_eq!(sha, sha_file(&src));
    assert_eq!(stored_line(&srv).1, sha);
    assert_eq!(entries(&up), ["f.bin"]);
}

#[test]
fn resuming_from_another_version_of_the_file_is_refused_then_starts_over() {
    let (tmp, up, cwd) = scratch();
    let srv = server(&up, &cwd, &[]);
    let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
    let size = 2 * MIB;
    write_pattern(&old, size, 11);
    write_pattern(&new, size, 12);
    let run = client(
        &srv.addr,
        &old,
        &["--name", "doc.bin", "--stop-after", "1000000"],
    );
    assert_eq!(run.status.code(), Some(1));
    wait_partial(&up, 1_000_000);

    // Same name and size, different bytes: the stale prefix is detected by
    // the whole-file hash a resume declares, and discarded.
    let run = client(&srv.addr, &new, &["--name", "doc.bin", "--resume"]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stdout);
    assert!(run.stderr.contains("sha256 mismatch"), "{}", run.stderr);
    assert!(entries(&up).is_empty(), "{:?}", entries(&up));

    let run = client(&srv.addr, &new, &["--name", "doc.bin", "--resume"]);
    assert!(run.status.success(), "{}", run.stderr);
    let (sent, offset, _) = sent_line(&run);
    assert_eq!((sent, offset), (size, 0));
    assert_eq!(sha_file(&up.join("doc.bin")), sha_file(&new));
}

#[test]
fn an_empty_file_uploads() {
    let (tmp, up, cwd) = scratch();
    let srv = server(&up, &cwd, &[]);
    let src = tmp.path().join("empty");
    fs::write(&src, b"").unwrap();
    let run = client(&srv.addr, &src, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(sent_line(&run).0, 0);
    assert_eq!(stored_line(&srv).0, 0);
    assert_eq!(fs::metadata(up.join("empty")).unwrap().len(), 0);
}

/// Makes `path` look untouched for two days.
fn age(path: &Path) {
    let status = Command::new("touch")
        .arg("-d")
        .arg("2 days ago")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn stale_partials_are_removed_at_startup_and_while_running() {
    let (tmp, up, cwd) = scratch();
    let src = tmp.path().join("f.bin");
    write_pattern(&src, MIB, 13);
    let srv = server(&up, &cwd, &[]);
    let run = client(&srv.addr, &src, &["--stop-after", "100000"]);
    assert_eq!(run.status.code(), Some(1));
    wait_partial(&up, 100_000);
    assert!(srv.stop().success());
    let partial = partials(&up).pop().unwrap();

    // Fresh partials survive a restart; stale ones (default TTL 24 h) do not.
    let srv = server(&up, &cwd, &[]);
    assert!(partial.exists());
    assert!(srv.stop().success());
    age(&partial);
    let srv = server(&up, &cwd, &[]);
    assert!(!partial.exists(), "swept before `listening on`");

    // While running: a TTL of 0.003 h (10.8 s) sweeps about every second.
    let run = client(&srv.addr, &src, &["--stop-after", "100000"]);
    assert_eq!(run.status.code(), Some(1));
    wait_partial(&up, 100_000);
    assert!(srv.stop().success());
    let srv = server(&up, &cwd, &["--partial-ttl", "0.003"]);
    assert!(partial.exists(), "younger than the TTL");
    age(&partial);
    let start = Instant::now();
    while partial.exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "never swept");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(entries(&up).is_empty());
    assert!(srv.stop().success());
}

#[test]
fn a_full_disk_gets_a_clear_error_and_leaves_nothing() {
    // A 1 MiB tmpfs for the server alone, in its own mount namespace.
    let (tmp, up, cwd) = scratch();
    let probe = Command::new("unshare")
        .args(["-m", "true"])
        .stderr(std::process::Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: cannot create a mount namespace here (unshare -m)");
        return;
    }
    let srv = support::start_with(
        Command::new("unshare")
            .current_dir(&cwd)
            .args(["-m", "sh", "-c"])
            .arg(r#"mount -t tmpfs -o size=1m tmpfs "$0" && exec "$1" --addr 127.0.0.1:0 --dir "$0""#)
            .arg(&up)
            .arg(support::example_bin("upload_server")),
    );
    // The server's view of its directory (the tmpfs), from outside.
    let inside =
        PathBuf::from(format!("/proc/{}/root", srv.child.id())).join(up.strip_prefix("/").unwrap());
    let src = tmp.path().join("big.bin");
    write_pattern(&src, 4 * MIB, 14);
    let run = client(&srv.addr, &src, &[]);
    assert_eq!(run.status.code(), Some(1));
    assert!(run.stderr.contains("disk full"), "{}", run.stderr);
    assert!(entries(&inside).is_empty(), "{:?}", entries(&inside));

    // The space is free again: a small upload fits.
    let small = tmp.path().join("small.bin");
    write_pattern(&small, 300_000, 15);
    let run = client(&srv.addr, &small, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(entries(&inside), ["small.bin"]);
    assert!(srv.stop().success());
}

#[test]
fn a_client_killed_midway_resumes_with_only_the_rest() {
    let (tmp, up, cwd) = scratch();
    let srv = server(&up, &cwd, &[]);
    let src = tmp.path().join("f.bin");
    let size = 8 * MIB;
    write_pattern(&src, size, 16);
    let mut child = Command::new(support::example_bin("upload_client"))
        .arg("--addr")
        .arg(&srv.addr)
        .arg(&src)
        .args(["--rate-limit", &(4 * MIB).to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_partial(&up, size / 2);
    child.kill().unwrap(); // SIGKILL: no chance to say goodbye
    child.wait().unwrap();
    assert!(!up.join("f.bin").exists());

    let run = client(&srv.addr, &src, &["--resume"]);
    assert!(run.status.success(), "{}", run.stderr);
    let (sent, offset, sha) = sent_line(&run);
    assert!(offset >= size / 2 && offset < size, "offset {offset}");
    assert_eq!(sent, size - offset, "only the rest is sent");
    assert_eq!(sha, sha_file(&src));
    assert_eq!(sha_file(&up.join("f.bin")), sha);
    assert_eq!(entries(&up), ["f.bin"]);
}
