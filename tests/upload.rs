//! The upload example end to end, on the real binaries: `upload_server` and
//! `upload_client` (and the lesson's Python client), on loopback.
//!
//! What used to be test hooks in the examples lives here: a cut upload is a
//! raw connection that sends part of the body and closes, peak memory is
//! read from `/proc` (server) and `getrusage` (client, through Python).

mod support;

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use socketserver::framing::{read_json, write_json};
use support::{LIMIT, ServerProcess, eventually, within};

const MIB: u64 = 1 << 20;

/// Writes `size` deterministic, non-repeating bytes: one pseudo-random MiB
/// (xorshift, from `seed`) with each MiB stamped with its index.
fn write_pattern(path: &Path, size: u64, seed: u64) {
    fs::write(path, pattern(size, seed)).unwrap();
}

fn pattern(size: u64, seed: u64) -> Vec<u8> {
    let mut block = vec![0u8; MIB as usize];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in block.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut out = Vec::with_capacity(size as usize);
    let mut i = 0u64;
    while (out.len() as u64) < size {
        block[..8].copy_from_slice(&i.to_le_bytes());
        let n = (size - out.len() as u64).min(MIB) as usize;
        out.extend_from_slice(&block[..n]);
        i += 1;
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn sha_file(path: &Path) -> String {
    let mut h = Sha256::new();
    std::io::copy(&mut File::open(path).unwrap(), &mut h).unwrap();
    hex(&h.finalize())
}

/// The server's name for the partial of (`name`, `size`, `sha256`), as
/// `resume.rs` computes it.
fn partial_name(name: &str, size: u64, sha256: &str) -> String {
    let n = hex(&Sha256::digest(name.as_bytes())[..8]);
    let k = hex(&Sha256::digest(format!("{name}\0{size}\0{sha256}"))[..16]);
    format!(".upload-{n}-{k}-{size}.partial")
}

/// A scratch area: `up` (the server's directory), `cwd` (its working
/// directory) and a token file, mode 0600.
struct Scratch {
    tmp: tempfile::TempDir,
    up: PathBuf,
    cwd: PathBuf,
    token_file: PathBuf,
    token: String,
}

fn scratch() -> Scratch {
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("up");
    let cwd = tmp.path().join("cwd");
    fs::create_dir(&up).unwrap();
    fs::create_dir(&cwd).unwrap();
    let token = "0123456789abcdef0123456789abcdef".to_string();
    let token_file = tmp.path().join("token");
    fs::write(&token_file, format!("{token}\n")).unwrap();
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
    Scratch {
        tmp,
        up,
        cwd,
        token_file,
        token,
    }
}

impl Scratch {
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Starts `upload_server` storing into `up`, with the token file.
    fn server(&self, extra: &[&str]) -> ServerProcess {
        support::start_with(
            Command::new(support::example_bin("upload_server"))
                .current_dir(&self.cwd)
                .args(["--addr", "127.0.0.1:0", "--dir"])
                .arg(&self.up)
                .arg("--token-file")
                .arg(&self.token_file)
                .args(extra),
        )
    }

    /// Runs `upload_client` with the token.
    fn client(&self, addr: &str, file: &Path, extra: &[&str]) -> Run {
        let mut args = vec!["--token-file", self.token_file.to_str().unwrap()];
        args.extend_from_slice(extra);
        client(addr, file, &args)
    }
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `upload_client` as is (no token unless `extra` has one).
fn client(addr: &str, file: &Path, extra: &[&str]) -> Run {
    let (status, out, err) = support::run_with_timeout(
        Command::new(support::example_bin("upload_client"))
            .args(["--addr", addr])
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
    let sent = w[1].parse().unwrap();
    let offset = w[5].trim_end_matches("),").parse().unwrap();
    (sent, offset, w[7].trim_end_matches(',').to_string())
}

/// Waits for the server's `stored <size> <sha256> <name>` line.
fn stored_line(srv: &ServerProcess) -> (u64, String, String) {
    let line = srv
        .stdout
        .recv_timeout(LIMIT)
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

/// Waits until `dir` holds a partial of at least `len` bytes; its size.
fn wait_partial(dir: &Path, len: u64) -> u64 {
    let mut found = 0;
    eventually(LIMIT, &format!("a partial of {len} bytes"), || {
        found = partials(dir)
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .find(|&n| n >= len)
            .unwrap_or(0);
        found > 0
    });
    found
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.set_write_timeout(Some(LIMIT)).unwrap();
    s
}

/// Sends a header and a body on a raw connection, half-closes; the reply.
fn raw_upload(addr: &str, header: &Value, body: &[u8]) -> Option<Value> {
    let mut s = connect(addr);
    write_json(&mut s, header).unwrap();
    let _ = s.write_all(body);
    let _ = s.shutdown(Shutdown::Write);
    read_json(&mut s).ok().flatten()
}

/// An upload cut after `part` bytes (the client "crashes"): header with
/// token and hash (so the server keeps it for a resume), part of the body,
/// close. Waits for the server to have written it.
fn cut_upload(sc: &Scratch, addr: &str, name: &str, data: &[u8], part: usize) {
    let header = json!({"file_name": name, "file_size": data.len(), "token": sc.token,
                        "sha256": sha(data)});
    let mut s = connect(addr);
    write_json(&mut s, &header).unwrap();
    s.write_all(&data[..part]).unwrap();
    drop(s);
    let partial = sc
        .up
        .join(partial_name(name, data.len() as u64, &sha(data)));
    eventually(LIMIT, &format!("{name} cut at {part} bytes"), || {
        fs::metadata(&partial).is_ok_and(|m| m.len() == part as u64)
    });
}

/// Reads until the server closes; how long that took (bounded).
fn time_to_close(s: &mut TcpStream) -> Duration {
    let t = Instant::now();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    t.elapsed()
}

#[test]
fn a_256_mib_file_arrives_identical_with_bounded_memory() {
    let sc = scratch();
    let src = sc.path("big.bin");
    let size = 256 * MIB;
    write_pattern(&src, size, 1);
    let want = sha_file(&src);
    let srv = sc.server(&[]);
    // The client's peak RSS: getrusage of a child, through Python.
    let probe = "import resource,subprocess,sys\n\
                 r=subprocess.run(sys.argv[1:],stdout=subprocess.PIPE)\n\
                 sys.stdout.write(r.stdout.decode())\n\
                 print('peak_rss_kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
                 sys.exit(r.returncode)";
    let (status, out, err) = support::run_with_timeout(
        Command::new("python3")
            .args(["-c", probe])
            .arg(support::example_bin("upload_client"))
            .args(["--addr", &srv.addr, "--token-file"])
            .arg(&sc.token_file)
            .arg(&src),
        LIMIT * 4,
    );
    let run = Run {
        status,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    };
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(sent_line(&run), (size, 0, want.clone()));
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
    eprintln!("peak RSS: client {client_kib} KiB, server {server_kib} KiB");
    assert!(
        client_kib > 0 && client_kib < 32 * 1024,
        "client {client_kib} KiB"
    );
    assert!(server_kib < 32 * 1024, "server {server_kib} KiB");
    assert!(srv.stop().success());
    assert_eq!(entries(&sc.up), ["big.bin"]);
    assert_eq!(sha_file(&sc.up.join("big.bin")), want);
}

#[test]
fn chunks_straddling_buffer_boundaries_arrive_identical() {
    // Sizes and write sizes around the 8 KiB rfile buffer and the 1 MiB
    // body buffer: every byte arrives once, in order, and hashes right.
    let sc = scratch();
    let srv = sc.server(&[]);
    let writes = [
        1usize,
        3,
        8191,
        8192,
        8193,
        65_537,
        1 << 20,
        (1 << 20) + 1,
        7,
        1 << 19,
    ];
    for (i, size) in [MIB - 1, MIB, MIB + 1, 3 * MIB + 12_345]
        .into_iter()
        .enumerate()
    {
        let data = pattern(size, 100 + i as u64);
        let name = format!("straddle-{i}.bin");
        let header = json!({"file_name": name, "file_size": size, "token": sc.token,
                            "sha256": sha(&data)});
        let mut s = connect(&srv.addr);
        s.set_nodelay(true).unwrap();
        let mut framed = Vec::new();
        write_json(&mut framed, &header).unwrap();
        framed.extend_from_slice(&data);
        let mut rest = &framed[..];
        for w in writes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (*w).min(rest.len());
            s.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        s.shutdown(Shutdown::Write).unwrap();
        let reply: Value = read_json(&mut s).unwrap().unwrap();
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(reply["sha256"], sha(&data));
        assert_eq!(stored_line(&srv), (size, sha(&data), name.clone()));
        assert!(
            fs::read(sc.up.join(&name)).unwrap() == data,
            "{name} differs"
        );
    }
}

#[test]
fn unsafe_names_are_refused_and_nothing_is_written() {
    let sc = scratch();
    let srv = sc.server(&[]);
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
        "\u{2215}etc\u{2215}passwd",
        "evil\u{202E}txt.exe",
        "-rf",
        ".bashrc",
        "CON",
        "com1.txt",
        ".UPLOAD-x",
        "zero\u{200B}width",
        "e\u{301}.txt",
        "trailing. ",
    ];
    let body = b"MARKER-upload-test-body";
    for name in names {
        let header = json!({"file_name": name, "file_size": body.len(), "token": sc.token});
        let reply = raw_upload(&srv.addr, &header, body).expect("an error reply");
        assert_eq!(reply["ok"], false, "{name:?}: {reply}");
        assert!(reply["error"].as_str().unwrap().contains("name"), "{reply}");
    }
    // The real client says why and fails.
    let src = sc.path("src.txt");
    fs::write(&src, body).unwrap();
    for name in ["../x", "/etc/passwd", "a/b", ""] {
        let run = sc.client(&srv.addr, &src, &["--name", name]);
        assert_eq!(run.status.code(), Some(1), "{name:?}: {}", run.stderr);
        assert!(run.stderr.contains("refused by server"), "{}", run.stderr);
    }
    // Without strict names, a dotfile is a plain name.
    let lax = sc.server(&["--lax-names"]);
    let run = sc.client(&lax.addr, &src, &["--name", ".profile"]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(stored_line(&lax).2, ".profile");
    assert!(srv.stop().success());
    assert_eq!(entries(&sc.up), [".profile"]);
    assert!(entries(&sc.cwd).is_empty(), "{:?}", entries(&sc.cwd));
    let passwd = fs::read("/etc/passwd").unwrap_or_default();
    assert!(!passwd.windows(body.len()).any(|w| w == body));
}

#[test]
fn a_newline_in_the_name_cannot_forge_a_stored_line() {
    let sc = scratch();
    let srv = sc.server(&[]);
    let body = b"forged";
    let forged = format!("x\nstored 6 {} passwd", sha(body));
    for name in [
        forged.as_str(),
        "a\rb",
        "bell\u{7}",
        "esc\u{1b}[2Jclear",
        "line\u{2028}sep",
    ] {
        let header = json!({"file_name": name, "file_size": body.len(), "token": sc.token});
        let reply = raw_upload(&srv.addr, &header, body).expect("an error reply");
        assert_eq!(reply["ok"], false, "{name:?}: {reply}");
        assert!(
            reply["error"].as_str().unwrap().contains("control"),
            "{reply}"
        );
    }
    // The next line on stdout is the next real upload, nothing forged.
    let src = sc.path("real.txt");
    fs::write(&src, b"real").unwrap();
    assert!(sc.client(&srv.addr, &src, &[]).status.success());
    assert_eq!(stored_line(&srv).2, "real.txt");
    assert_eq!(entries(&sc.up), ["real.txt"]);
}

#[test]
fn too_large_is_refused_before_the_body() {
    let sc = scratch();
    let srv = sc.server(&["--max-size", "1000"]);
    let src = sc.path("f.bin");
    write_pattern(&src, 4 * MIB, 2);
    let run = sc.client(&srv.addr, &src, &[]);
    assert_eq!(run.status.code(), Some(1));
    assert!(run.stderr.contains("too large"), "{}", run.stderr);
    assert!(entries(&sc.up).is_empty(), "{:?}", entries(&sc.up));
}

#[test]
fn a_client_stopped_halfway_resumes_with_only_the_rest() {
    let sc = scratch();
    let srv = sc.server(&[]);
    let src = sc.path("movie.mp4");
    let size = 8 * MIB;
    write_pattern(&src, size, 3);
    let half = (size / 2) as usize;
    cut_upload(&sc, &srv.addr, "movie.mp4", &fs::read(&src).unwrap(), half);
    assert!(!sc.up.join("movie.mp4").exists());

    let run = sc.client(&srv.addr, &src, &["--resume"]);
    assert!(run.status.success(), "{}", run.stderr);
    let want = sha_file(&src);
    assert_eq!(
        sent_line(&run),
        (size - half as u64, half as u64, want.clone())
    );
    assert_eq!(stored_line(&srv), (size, want.clone(), "movie.mp4".into()));
    assert_eq!(sha_file(&sc.up.join("movie.mp4")), want);
    assert_eq!(entries(&sc.up), ["movie.mp4"], "the partial is gone");
}

#[test]
fn a_wrong_sha256_is_refused_and_nothing_stored() {
    let sc = scratch();
    let srv = sc.server(&[]);
    let src = sc.path("f.bin");
    write_pattern(&src, 2 * MIB, 4);
    let run = sc.client(&srv.addr, &src, &["--sha256", &"0".repeat(64)]);
    assert_eq!(run.status.code(), Some(1));
    assert!(run.stderr.contains("sha256 mismatch"), "{}", run.stderr);
    assert!(entries(&sc.up).is_empty(), "{:?}", entries(&sc.up));
    let run = sc.client(&srv.addr, &src, &["--hash-first"]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(stored_line(&srv).1, sha_file(&src));
}

#[test]
fn an_existing_file_is_replaced_only_with_overwrite() {
    let sc = scratch();
    let (a, b) = (sc.path("a"), sc.path("b"));
    fs::write(&a, b"first version").unwrap();
    fs::write(&b, b"second version").unwrap();
    let srv = sc.server(&[]);
    assert!(
        sc.client(&srv.addr, &a, &["--name", "doc.txt"])
            .status
            .success()
    );
    let run = sc.client(&srv.addr, &b, &["--name", "doc.txt"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(run.stderr.contains("--overwrite"), "{}", run.stderr);
    assert_eq!(fs::read(sc.up.join("doc.txt")).unwrap(), b"first version");
    assert!(srv.stop().success());

    let srv = sc.server(&["--overwrite"]);
    let run = sc.client(&srv.addr, &b, &["--name", "doc.txt"]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(fs::read(sc.up.join("doc.txt")).unwrap(), b"second version");
}

#[test]
fn without_the_token_nothing_is_stored_or_overwritten() {
    let sc = scratch();
    let src = sc.path("doc.txt");
    fs::write(&src, b"the owner's file").unwrap();
    let evil = sc.path("evil");
    fs::write(&evil, b"replaced!").unwrap();
    let srv = sc.server(&["--overwrite"]);
    assert!(sc.client(&srv.addr, &src, &[]).status.success());
    let wrong = sc.path("wrong-token");
    fs::write(&wrong, "ffffffffffffffffffffffffffffffff").unwrap();
    for args in [vec![], vec!["--token-file", wrong.to_str().unwrap()]] {
        let mut args = args;
        args.extend(["--name", "doc.txt"]);
        let run = client(&srv.addr, &evil, &args);
        assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("token"), "{}", run.stderr);
    }
    assert!(srv.stop().success());
    // --lesson lets token-less uploads create files, never replace one,
    // even with --overwrite, and never resume.
    let srv = sc.server(&["--lesson", "--overwrite"]);
    let run = client(&srv.addr, &evil, &["--name", "doc.txt"]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("exists"), "{}", run.stderr);
    let run = client(&srv.addr, &evil, &["--name", "new.txt", "--resume"]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("token"), "{}", run.stderr);
    assert_eq!(
        fs::read(sc.up.join("doc.txt")).unwrap(),
        b"the owner's file"
    );
    assert_eq!(entries(&sc.up), ["doc.txt"]);
}

#[test]
fn lesson_mode_is_refused_off_loopback() {
    let sc = scratch();
    let (status, _, err) = support::run_with_timeout(
        Command::new(support::example_bin("upload_server"))
            .args(["--addr", "0.0.0.0:0", "--lesson", "--dir"])
            .arg(&sc.up)
            .arg("--token-file")
            .arg(&sc.token_file),
        LIMIT,
    );
    assert!(!status.success());
    assert!(String::from_utf8_lossy(&err).contains("loopback"));
}

#[test]
fn someone_elses_partial_cannot_be_resumed_seen_or_wiped() {
    let sc = scratch();
    let srv = sc.server(&["--lesson"]);
    let victim = pattern(4 * MIB, 22);
    cut_upload(&sc, &srv.addr, "v.bin", &victim, 2_000_000);
    let kept = partials(&sc.up).pop().unwrap();
    let before = fs::read(&kept).unwrap();
    // Another hash declared with resume: not the victim's partial.
    let mut fake = victim.clone();
    fake[0] ^= 1;
    let header = json!({"file_name": "v.bin", "file_size": fake.len(), "token": sc.token,
                        "sha256": sha(&fake), "resume": true});
    let mut s = connect(&srv.addr);
    write_json(&mut s, &header).unwrap();
    let answer: Value = read_json(&mut s).unwrap().unwrap();
    assert_eq!(answer["offset"], 0, "{answer}");
    s.write_all(&fake[..1000]).unwrap();
    drop(s);
    eventually(LIMIT, "the other upload's partial", || {
        partials(&sc.up).len() == 2
    });
    assert_eq!(fs::read(&kept).unwrap(), before, "untouched");
    // Without a token (a guest under --lesson) even the right hash resumes nothing.
    let header = json!({"file_name": "v.bin", "file_size": victim.len(),
                        "sha256": sha(&victim), "resume": true});
    let reply = raw_upload(&srv.addr, &header, b"").expect("a refusal");
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(fs::read(&kept).unwrap(), before, "untouched");
    // The owner resumes where it was cut.
    let src = sc.path("v.bin");
    fs::write(&src, &victim).unwrap();
    let run = sc.client(&srv.addr, &src, &["--resume"]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(sent_line(&run).1, 2_000_000);
    assert_eq!(sha_file(&sc.up.join("v.bin")), sha(&victim));
}

#[test]
fn a_planted_symlink_is_not_written_through_nor_leaked() {
    let sc = scratch();
    let secret = sc.path("secret.txt");
    let secret_bytes = pattern(3 * MIB, 30);
    fs::write(&secret, &secret_bytes).unwrap();
    let src = sc.path("f.bin");
    let data = pattern(4 * MIB, 31);
    fs::write(&src, &data).unwrap();
    let srv = sc.server(&[]);
    let planted = sc
        .up
        .join(partial_name("f.bin", data.len() as u64, &sha(&data)));
    std::os::unix::fs::symlink(&secret, &planted).unwrap();

    // A resume would have hashed the secret and answered with its size.
    let run = sc.client(&srv.addr, &src, &["--resume"]);
    assert!(run.status.success(), "{}", run.stderr);
    let (sent, offset, _) = sent_line(&run);
    assert_eq!(
        (sent, offset),
        (data.len() as u64, 0),
        "nothing of the secret leaked"
    );
    assert_eq!(
        fs::read(&secret).unwrap(),
        secret_bytes,
        "not written through"
    );
    assert_eq!(fs::read(sc.up.join("f.bin")).unwrap(), data);
    assert_eq!(entries(&sc.up), ["f.bin"], "the symlink is gone");
    // A hard link is refused the same way.
    let data2 = pattern(MIB, 32);
    let src2 = sc.path("g.bin");
    fs::write(&src2, &data2).unwrap();
    let planted = sc
        .up
        .join(partial_name("g.bin", data2.len() as u64, &sha(&data2)));
    fs::hard_link(&secret, &planted).unwrap();
    let run = sc.client(&srv.addr, &src2, &["--resume"]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(sent_line(&run).1, 0);
    assert_eq!(fs::read(&secret).unwrap(), secret_bytes);
}

#[test]
fn files_are_private_and_a_shared_directory_is_refused() {
    let sc = scratch();
    let fresh = sc.path("fresh");
    let srv = support::start_with(
        Command::new(support::example_bin("upload_server"))
            .args(["--addr", "127.0.0.1:0", "--dir"])
            .arg(&fresh)
            .arg("--token-file")
            .arg(&sc.token_file),
    );
    let src = sc.path("f.txt");
    fs::write(&src, b"private").unwrap();
    assert!(sc.client(&srv.addr, &src, &[]).status.success());
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("f.txt")), 0o600);
    assert!(srv.stop().success());
    fs::set_permissions(&fresh, fs::Permissions::from_mode(0o777)).unwrap();
    let (status, _, err) = support::run_with_timeout(
        Command::new(support::example_bin("upload_server"))
            .args(["--addr", "127.0.0.1:0", "--dir"])
            .arg(&fresh)
            .arg("--token-file")
            .arg(&sc.token_file),
        LIMIT,
    );
    assert!(!status.success());
    assert!(String::from_utf8_lossy(&err).contains("writable by others"));
}

#[test]
fn cut_uploads_cannot_lock_out_a_real_one() {
    // A 4 MiB budget for uploads in progress and kept partials: four cut
    // uploads declaring 1 MiB each fill it; a real upload still fits (the
    // idle partials make room), and the total never exceeds the budget.
    let sc = scratch();
    let srv = sc.server(&["--max-partial-bytes", &(4 * MIB).to_string()]);
    for i in 0..4 {
        cut_upload(
            &sc,
            &srv.addr,
            &format!("cut-{i}"),
            &pattern(MIB, 40 + i),
            100_000,
        );
    }
    assert_eq!(partials(&sc.up).len(), 4);
    // Declaring more than the budget is refused before any body byte.
    let header = json!({"file_name": "huge", "file_size": 64u64 << 30, "token": sc.token});
    let reply = raw_upload(&srv.addr, &header, b"").expect("a refusal");
    assert!(
        reply["error"].as_str().unwrap().contains("disk full"),
        "{reply}"
    );

    let src = sc.path("real.bin");
    write_pattern(&src, 3 * MIB, 50);
    let run = sc.client(&srv.addr, &src, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(stored_line(&srv).2, "real.bin");
    let left = partials(&sc.up).len();
    assert!(
        left <= 1,
        "{left} idle partials kept beside 3 MiB in a 4 MiB budget"
    );
}

#[test]
fn a_trickle_is_cut_by_the_minimum_rate() {
    // One byte every 200 ms never trips a 1 s silence timeout; it does fall
    // behind 10,000 bytes/s.
    let sc = scratch();
    let srv = sc.server(&["--timeout", "1", "--min-rate", "10000"]);
    let mut s = connect(&srv.addr);
    let header = json!({"file_name": "slow.bin", "file_size": MIB, "token": sc.token});
    write_json(&mut s, &header).unwrap();
    let t = Instant::now();
    let cut = within(LIMIT, "the trickle being cut", move || {
        for _ in 0..100 {
            if s.write_all(b"x").is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            let closed = match s.read(&mut b) {
                Ok(n) => n == 0,
                Err(e) => e.kind() != ErrorKind::WouldBlock,
            };
            s.set_nonblocking(false).unwrap();
            if closed {
                return true;
            }
        }
        false
    });
    assert!(cut, "a 1-byte-per-200-ms trickle was never cut");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(!sc.up.join("slow.bin").exists());
}

#[test]
fn a_client_that_sends_no_header_is_cut_at_the_header_deadline() {
    let sc = scratch();
    let srv = sc.server(&["--header-timeout", "0.5"]);
    let mut silent = connect(&srv.addr);
    let mut dribble = connect(&srv.addr);
    let t = Instant::now();
    dribble.write_all(&[10, 0]).unwrap(); // half a length prefix, then nothing
    let d = within(LIMIT, "the silent client being cut", move || {
        time_to_close(&mut silent)
    });
    assert!(d < Duration::from_secs(5), "{d:?}");
    within(LIMIT, "the dribbling client being cut", move || {
        time_to_close(&mut dribble)
    });
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn concurrent_uploads_of_one_name_leave_one_complete_file() {
    let sc = scratch();
    let srv = sc.server(&["--overwrite"]);
    let (a, b) = (sc.path("a.bin"), sc.path("b.bin"));
    write_pattern(&a, 4 * MIB, 5);
    write_pattern(&b, 4 * MIB, 6);
    let (sha_a, sha_b) = (sha_file(&a), sha_file(&b));
    let rate = (2 * MIB).to_string();
    let args = ["--name", "same.bin", "--rate-limit", rate.as_str()];
    let addr = srv.addr.as_str();
    std::thread::scope(|s| {
        let first = s.spawn(|| sc.client(addr, &a, &args));
        eventually(LIMIT, "the first upload under way", || {
            entries(&sc.up).len() == 1
        });
        let second = s.spawn(|| sc.client(addr, &b, &args));
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
    assert_eq!(
        sha_file(&sc.up.join("same.bin")),
        two.1,
        "the last rename wins"
    );
    assert_eq!(entries(&sc.up), ["same.bin"]);
}

#[test]
fn the_lesson_python_client_uploads() {
    let sc = scratch();
    let srv = sc.server(&["--lesson"]);
    let src = sc.path("lesson.bin");
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
    assert_eq!(sha_file(&sc.up.join(name)), want);
    assert!(srv.stop().success());
    assert_eq!(entries(&sc.up), [name]);
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
    let (header, body) = within(LIMIT, "the lesson's server", move || lesson.join().unwrap());
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
    let sc = scratch();
    let srv = sc.server(&[]);
    {
        let mut s = connect(&srv.addr);
        write_json(
            &mut s,
            &json!({"file_name": "gone.bin", "file_size": MIB, "token": sc.token}),
        )
        .unwrap();
        s.write_all(&[7u8; 100_000]).unwrap();
    } // dropped: the client vanishes; no hash declared, so nothing is kept
    let src = sc.path("other.bin");
    write_pattern(&src, 1_000_000, 9);
    let run = sc.client(&srv.addr, &src, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(stored_line(&srv).2, "other.bin");
    // The vanished client's partial may be created and removed after the
    // other upload (its handler sees EOF when it gets there): wait for the
    // directory to hold only the real file, which fails if it is never
    // removed.
    eventually(LIMIT, "only the served upload remains", || {
        entries(&sc.up) == ["other.bin"]
    });
    assert!(srv.stop().success());
}

#[test]
fn a_stalled_client_is_cut_after_the_timeout() {
    let sc = scratch();
    let srv = sc.server(&["--timeout", "0.5"]);
    let data = pattern(MIB, 10);
    let mut s = connect(&srv.addr);
    let header = json!({"file_name": "slow.bin", "file_size": MIB, "token": sc.token,
                        "sha256": sha(&data)});
    write_json(&mut s, &header).unwrap();
    s.write_all(&data[..1000]).unwrap();
    // Then silence: the server gives up and closes (EOF, no acknowledgement).
    let d = within(LIMIT, "the stalled client being cut", move || {
        time_to_close(&mut s)
    });
    assert!(
        d < Duration::from_secs(10),
        "the server never cut it: {d:?}"
    );
    assert!(!sc.up.join("slow.bin").exists());
    assert_eq!(wait_partial(&sc.up, 1000), 1000, "kept for a resume");
}

#[test]
fn sigterm_mid_upload_exits_0_and_leaves_it_resumable() {
    let sc = scratch();
    let srv = sc.server(&["--drain-timeout", "0.3"]);
    let src = sc.path("f.bin");
    let size = 8 * MIB;
    write_pattern(&src, size, 10);
    let addr = srv.addr.clone();
    let rate = MIB.to_string();
    std::thread::scope(|s| {
        let slow = s.spawn(|| sc.client(&addr, &src, &["--hash-first", "--rate-limit", &rate]));
        wait_partial(&sc.up, 256 * 1024);
        let status = srv.stop();
        assert!(status.success(), "SIGTERM exit: {status:?}");
        let run = slow.join().unwrap();
        assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    });
    assert!(
        !sc.up.join("f.bin").exists(),
        "nothing under the final name"
    );
    let kept = wait_partial(&sc.up, 1);
    assert!(kept < size);
    let srv = sc.server(&[]);
    let run = sc.client(&srv.addr, &src, &["--resume"]);
    assert!(run.status.success(), "{}", run.stderr);
    let (sent, offset, sha) = sent_line(&run);
    assert_eq!((sent, offset), (size - kept, kept));
    assert_eq!(sha, sha_file(&src));
    assert_eq!(stored_line(&srv).1, sha);
    assert_eq!(entries(&sc.up), ["f.bin"]);
}

#[test]
fn another_version_of_the_file_starts_over_and_the_old_partial_goes() {
    let sc = scratch();
    let srv = sc.server(&[]);
    let old = pattern(2 * MIB, 11);
    cut_upload(&sc, &srv.addr, "doc.bin", &old, 1_000_000);
    // Same name and size, different bytes: a different partial (the key
    // has the hash), so the stale prefix is never continued.
    let new = sc.path("doc.bin");
    write_pattern(&new, 2 * MIB, 12);
    let run = sc.client(&srv.addr, &new, &["--resume"]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(sent_line(&run).1, 0);
    assert_eq!(sha_file(&sc.up.join("doc.bin")), sha_file(&new));
    assert_eq!(
        entries(&sc.up),
        ["doc.bin"],
        "the outdated partial is removed"
    );
}

#[test]
fn an_empty_file_uploads() {
    let sc = scratch();
    let srv = sc.server(&[]);
    let src = sc.path("empty");
    fs::write(&src, b"").unwrap();
    let run = sc.client(&srv.addr, &src, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(sent_line(&run).0, 0);
    assert_eq!(stored_line(&srv).0, 0);
    assert_eq!(fs::metadata(sc.up.join("empty")).unwrap().len(), 0);
}

/// Makes `path` look untouched for two days.
fn age(path: &Path) {
    let status = Command::new("touch")
        .args(["-h", "-d", "2 days ago"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn stale_partials_are_removed_at_startup_and_while_running() {
    let sc = scratch();
    let data = pattern(MIB, 13);
    let srv = sc.server(&[]);
    cut_upload(&sc, &srv.addr, "f.bin", &data, 100_000);
    assert!(srv.stop().success());
    let partial = partials(&sc.up).pop().unwrap();
    // Fresh partials survive a restart; stale ones (default TTL 24 h) do not.
    let srv = sc.server(&[]);
    assert!(partial.exists());
    assert!(srv.stop().success());
    age(&partial);
    let srv = sc.server(&[]);
    assert!(!partial.exists(), "swept before `listening on`");
    // While running: a TTL of 0.003 h (10.8 s) sweeps about every second.
    cut_upload(&sc, &srv.addr, "f.bin", &data, 100_000);
    assert!(srv.stop().success());
    let srv = sc.server(&["--partial-ttl", "0.003"]);
    assert!(partial.exists(), "younger than the TTL");
    age(&partial);
    eventually(LIMIT, "the stale partial swept", || !partial.exists());
    assert!(entries(&sc.up).is_empty());
    assert!(srv.stop().success());
}

#[test]
fn a_full_disk_gets_a_clear_error_and_leaves_nothing() {
    // A 1 MiB tmpfs for the server alone, in its own mount namespace.
    let sc = scratch();
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
            .current_dir(&sc.cwd)
            .args(["-m", "sh", "-c"])
            .arg(r#"mount -t tmpfs -o size=1m,mode=700 tmpfs "$0" && exec "$1" --addr 127.0.0.1:0 --dir "$0" --token-file "$2""#)
            .arg(&sc.up)
            .arg(support::example_bin("upload_server"))
            .arg(&sc.token_file),
    );
    let inside = PathBuf::from(format!("/proc/{}/root", srv.child.id()))
        .join(sc.up.strip_prefix("/").unwrap());
    let src = sc.path("big.bin");
    write_pattern(&src, 4 * MIB, 14);
    let run = sc.client(&srv.addr, &src, &[]);
    assert_eq!(run.status.code(), Some(1));
    assert!(run.stderr.contains("disk full"), "{}", run.stderr);
    assert!(entries(&inside).is_empty(), "{:?}", entries(&inside));
    let small = sc.path("small.bin");
    write_pattern(&small, 300_000, 15);
    let run = sc.client(&srv.addr, &small, &[]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(entries(&inside), ["small.bin"]);
    assert!(srv.stop().success());
}

#[test]
fn a_client_killed_midway_resumes_with_only_the_rest() {
    let sc = scratch();
    let srv = sc.server(&[]);
    let src = sc.path("f.bin");
    let size = 8 * MIB;
    write_pattern(&src, size, 16);
    let mut child = Command::new(support::example_bin("upload_client"))
        .args(["--addr", &srv.addr, "--hash-first", "--token-file"])
        .arg(&sc.token_file)
        .arg(&src)
        .args(["--rate-limit", &(4 * MIB).to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_partial(&sc.up, size / 2);
    child.kill().unwrap(); // SIGKILL: no chance to say goodbye
    child.wait().unwrap();
    assert!(!sc.up.join("f.bin").exists());
    let run = sc.client(&srv.addr, &src, &["--resume"]);
    assert!(run.status.success(), "{}", run.stderr);
    let (sent, offset, sha) = sent_line(&run);
    assert!(offset >= size / 2 && offset < size, "offset {offset}");
    assert_eq!(sent, size - offset, "only the rest is sent");
    assert_eq!(sha, sha_file(&src));
    assert_eq!(entries(&sc.up), ["f.bin"]);
}
