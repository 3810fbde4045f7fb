//! The whole suite in one process: starts each server (pinned to CPU 0 with
//! `taskset`), drives it from this process (pinned to CPU 1 by `run.sh`),
//! stops it by PID, interleaves passes, and writes raw JSON lines plus a
//! markdown report.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::load::{self, LoadOpts, Mode};

/// Suite options.
#[derive(Debug, Clone)]
pub struct SuiteOpts {
    /// Output directory (results.jsonl, report.md, server logs).
    pub out: PathBuf,
    /// Passes per configuration.
    pub passes: usize,
    /// Measuring window per run.
    pub duration: Duration,
    /// Warm-up per run.
    pub warmup: Duration,
    /// Pin servers to CPU 0 with taskset.
    pub pin: bool,
    /// python3 executable.
    pub python: String,
    /// `benchmarks/py/servers.py`.
    pub py_script: PathBuf,
    /// Which parts to run (echo, connect, udp, shutdown, upload, scale).
    pub only: Vec<String>,
    /// Connections for the scale test.
    pub scale_conns: usize,
    /// Only the scale servers whose name contains one of these (all if empty).
    pub scale_servers: Vec<String>,
    /// Shutdown-latency runs.
    pub shutdown_runs: usize,
    /// upload_server / upload_client binaries, if built.
    pub upload: Option<(PathBuf, PathBuf)>,
    /// Why the upload is not measured, if it is not.
    pub upload_skip: Option<String>,
    /// Upload size in bytes.
    pub upload_bytes: u64,
    /// Scratch directory for the upload (tmpfs).
    pub scratch: PathBuf,
    /// The echo example binary (release), if built.
    pub echo_example: Option<PathBuf>,
}

/// A server to start: a display name and a command line.
#[derive(Debug, Clone)]
struct Spec {
    name: String,
    cmd: Vec<String>,
}

/// A started server; stopped by PID (SIGTERM, then SIGKILL) when dropped.
struct Running {
    child: Child,
    addr: SocketAddr,
    /// The server's later `stats ` lines (datagram batch sizes).
    lines: mpsc::Receiver<String>,
    stopped: bool,
}

impl Running {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Stops the server and returns the `stats ` lines it printed.
    fn stop(&mut self) -> Vec<String> {
        if !self.stopped {
            self.stopped = true;
            stop_pid(self.pid(), &mut self.child);
        }
        let mut out = Vec::new();
        // The reader thread ends at the server's EOF.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            out.push(line);
        }
        out
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.stopped {
            stop_pid(self.pid(), &mut self.child);
        }
    }
}

fn stop_pid(pid: i32, child: &mut Child) {
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(5));
    }
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = child.wait();
}

fn start(spec: &Spec, o: &SuiteOpts) -> io::Result<Running> {
    let mut cmd = if o.pin {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").args(&spec.cmd);
        c
    } else {
        let mut c = Command::new(&spec.cmd[0]);
        c.args(&spec.cmd[1..]);
        c
    };
    let log = File::options()
        .create(true)
        .append(true)
        .open(o.out.join("servers.log"))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    // SAFETY: prctl is async-signal-safe; the server dies with the suite.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    let (stats_tx, lines) = mpsc::channel();
    thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(stats) = line.strip_prefix("stats ") {
                let _ = stats_tx.send(stats.to_string());
            } else if let (false, Some(a)) = (sent, line.strip_prefix("listening on ")) {
                let _ = tx.send(a.trim().to_string());
                sent = true;
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(a) => a,
        Err(_) => {
            let pid = child.id() as i32;
            stop_pid(pid, &mut child);
            return Err(io::Error::other(format!(
                "{}: no `listening on` line",
                spec.name
            )));
        }
    };
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::other(format!("{}: bad address {addr}: {e}", spec.name)))?;
    Ok(Running {
        child,
        addr,
        lines,
        stopped: false,
    })
}

fn exe() -> String {
    std::env::current_exe()
        .expect("current_exe")
        .to_string_lossy()
        .into_owned()
}

fn sv(name: &str, cmd: &[&str]) -> Spec {
    Spec {
        name: name.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
    }
}

/// The servers for a persistent-connection or connect-per-request TCP case.
fn tcp_servers(o: &SuiteOpts, conns: usize, sequential: bool, copy_row: bool) -> Vec<Spec> {
    let e = exe();
    let py = o.python.as_str();
    let script = o.py_script.to_string_lossy().into_owned();
    let workers = conns.max(16).to_string();
    let children = conns.max(40).to_string();
    let mut v = vec![sv("std floor", &[&e, "serve-std"])];
    if sequential {
        v.push(sv(
            "crate sequential",
            &[&e, "serve-crate", "--strategy", "sequential"],
        ));
    }
    v.push(sv(
        "crate threading",
        &[&e, "serve-crate", "--strategy", "threading"],
    ));
    if let (true, Some(bin)) = (copy_row, &o.echo_example) {
        let bin = bin.to_string_lossy().into_owned();
        v.push(sv(
            "echo example (threading)",
            &[&bin, "--addr", "127.0.0.1:0", "--strategy", "threading"],
        ));
    }
    if copy_row {
        v.push(sv(
            "crate threading, io::copy handler",
            &[
                &e,
                "serve-crate",
                "--strategy",
                "threading",
                "--handler",
                "copy",
            ],
        ));
        v.push(sv(
            "crate threading, io::copy handler + nodelay(true)",
            &[
                &e,
                "serve-crate",
                "--strategy",
                "threading",
                "--handler",
                "copy",
                "--nodelay",
            ],
        ));
    }
    v.push(sv(
        &format!("crate pool({workers})"),
        &[
            &e,
            "serve-crate",
            "--strategy",
            "pool",
            "--workers",
            &workers,
        ],
    ));
    v.push(sv(
        &format!("crate forking(max {children})"),
        &[
            &e,
            "serve-crate",
            "--strategy",
            "forking",
            "--workers",
            &children,
        ],
    ));
    v.push(sv("tokio", &[&e, "serve-tokio"]));
    v.push(sv(
        "crate reactor (1 loop)",
        &[&e, "serve-crate", "--strategy", "reactor", "--workers", "1"],
    ));
    v.push(sv(
        "python ThreadingTCPServer",
        &[py, &script, "threading-tcp"],
    ));
    v.push(sv("python ForkingTCPServer", &[py, &script, "forking-tcp"]));
    v
}

/// The UDP echo servers: the std floors (plain and batched), the crate's
/// strategies, tokio, the echo example, and Python (one in flight only).
fn udp_servers(o: &SuiteOpts, inflight: usize) -> Vec<Spec> {
    let e = exe();
    let crate_udp = |strategy: &str| {
        let name = match strategy {
            "pool" => "crate pool(16)".to_string(),
            s => format!("crate {s}"),
        };
        let cmd = [
            &e,
            "serve-crate",
            "--strategy",
            strategy,
            "--workers",
            "16",
            "--udp",
        ];
        sv(&name, &cmd)
    };
    let mut v = vec![
        sv("std floor (recv_from/send_to)", &[&e, "serve-std", "--udp"]),
        sv(
            "std recvmmsg/sendmmsg (batching ceiling)",
            &[&e, "serve-std", "--udp", "--mmsg"],
        ),
        crate_udp("sequential"),
        crate_udp("threading"),
        crate_udp("pool"),
        sv("tokio", &[&e, "serve-tokio", "--udp"]),
    ];
    if let Some(bin) = &o.echo_example {
        let bin = bin.to_string_lossy().into_owned();
        v.push(sv(
            "echo example --udp (threading)",
            &[&bin, "--udp", "--addr", "127.0.0.1:0"],
        ));
    }
    if inflight == 1 {
        let script = o.py_script.to_string_lossy().into_owned();
        v.push(sv(
            "python ThreadingUDPServer",
            &[&o.python, &script, "threading-udp"],
        ));
    }
    v
}

/// One load case.
struct Case {
    id: &'static str,
    title: &'static str,
    mode: Mode,
    conns: usize,
    size: usize,
    /// UDP: datagrams in flight per client.
    inflight: usize,
    servers: Vec<Spec>,
}

/// A TCP case of `conns` connections and `size`-byte messages.
fn tcp_case(o: &SuiteOpts, id: &'static str, title: &'static str, mode: Mode) -> Case {
    let (conns, size) = match id {
        "echo-64-1" => (1, 64),
        "echo-64-256" => (256, 64),
        "echo-16k-16" => (16, 16384),
        _ => (16, 64),
    };
    Case {
        id,
        title,
        mode,
        conns,
        size,
        inflight: 1,
        servers: tcp_servers(o, conns, conns == 1, id == "echo-16k-16"),
    }
}

fn udp_case(o: &SuiteOpts, id: &'static str, title: &'static str, inflight: usize) -> Case {
    Case {
        id,
        title,
        mode: Mode::Udp,
        conns: 16,
        size: 64,
        inflight,
        servers: udp_servers(o, inflight),
    }
}

/// The load cases selected by `--only` (a part such as `echo` or `udp`, or
/// a case id such as `echo-16k-16`).
fn cases(o: &SuiteOpts) -> Vec<Case> {
    let all = [
        (
            "echo",
            "echo-64-1",
            "TCP echo, 64 B ping-pong, 1 connection",
        ),
        (
            "echo",
            "echo-64-16",
            "TCP echo, 64 B ping-pong, 16 connections",
        ),
        (
            "echo",
            "echo-64-256",
            "TCP echo, 64 B ping-pong, 256 connections",
        ),
        (
            "echo",
            "echo-16k-16",
            "TCP echo, 16 KiB ping-pong, 16 connections",
        ),
        (
            "connect",
            "connect-16",
            "Connection per request (64 B echo), 16 concurrent clients",
        ),
        (
            "udp",
            "udp-64-16-1",
            "UDP echo, 64 B datagrams, 16 clients, 1 in flight each",
        ),
        (
            "udp",
            "udp-64-16-8",
            "UDP echo, 64 B datagrams, 16 clients, 8 in flight each (batching load generator)",
        ),
    ];
    let want =
        |part: &str, id: &str| o.only.is_empty() || o.only.iter().any(|x| x == part || x == id);
    all.into_iter()
        .filter(|(part, id, _)| want(part, id))
        .map(|(part, id, title)| match (part, id) {
            ("udp", "udp-64-16-1") => udp_case(o, id, title, 1),
            ("udp", _) => udp_case(o, id, title, 8),
            ("connect", _) => tcp_case(o, id, title, Mode::Connect),
            _ => tcp_case(o, id, title, Mode::Echo),
        })
        .collect()
}

fn emit(out: &mut File, v: &Value) -> io::Result<()> {
    writeln!(out, "{v}")?;
    out.flush()
}

/// Runs every selected part; returns the report path.
pub fn run(o: &SuiteOpts) -> io::Result<PathBuf> {
    fs::create_dir_all(&o.out)?;
    let mut raw = File::create(o.out.join("results.jsonl"))?;
    let want = |p: &str| o.only.is_empty() || o.only.iter().any(|x| x == p);
    let started = Instant::now();
    for case in cases(o) {
        run_case(o, &case, &mut raw, started)?;
    }
    if want("shutdown") {
        eprintln!(
            "[{:>6.1}s] shutdown latency",
            started.elapsed().as_secs_f64()
        );
        for v in shutdown(o)? {
            emit(&mut raw, &v)?;
        }
    }
    if want("upload") {
        eprintln!("[{:>6.1}s] upload", started.elapsed().as_secs_f64());
        for v in upload(o)? {
            emit(&mut raw, &v)?;
        }
    }
    if want("scale") {
        eprintln!("[{:>6.1}s] scale", started.elapsed().as_secs_f64());
        for v in scale(o)? {
            eprintln!("    {v}");
            emit(&mut raw, &v)?;
        }
    }
    eprintln!("[{:>6.1}s] done", started.elapsed().as_secs_f64());
    drop(raw);
    let report = o.out.join("report.md");
    let text = crate::report::render(&o.out.join("results.jsonl"))?;
    fs::write(&report, text)?;
    Ok(report)
}

/// Every pass of one load case, its servers interleaved (A B C … A B C …).
fn run_case(o: &SuiteOpts, case: &Case, raw: &mut File, started: Instant) -> io::Result<()> {
    for pass in 0..o.passes {
        for spec in &case.servers {
            let t = Instant::now();
            let mut v =
                measure_one(o, case, spec).unwrap_or_else(|e| json!({"error": e.to_string()}));
            v["case"] = json!(case.id);
            v["title"] = json!(case.title);
            v["server"] = json!(spec.name);
            v["pass"] = json!(pass);
            eprintln!(
                "[{:>6.1}s] {:<12} pass {pass} {:<40} {:>10.0} req/s p99 {:>8.1} us ({:.1}s)",
                started.elapsed().as_secs_f64(),
                case.id,
                spec.name,
                v["rps"].as_f64().unwrap_or(f64::NAN),
                v["p99_us"].as_f64().unwrap_or(f64::NAN),
                t.elapsed().as_secs_f64()
            );
            emit(raw, &v)?;
        }
    }
    Ok(())
}

/// Shutdown latency of each strategy (in process), and Python's.
fn shutdown(o: &SuiteOpts) -> io::Result<Vec<Value>> {
    let mut out = crate::inproc::shutdown_latency(o.shutdown_runs, 4)?;
    for v in &mut out {
        v["case"] = json!("shutdown");
    }
    let py_runs = 20;
    let py = Command::new(&o.python)
        .arg(&o.py_script)
        .arg("shutdown-latency")
        .arg(py_runs.to_string())
        .output()?;
    let line = String::from_utf8_lossy(&py.stdout);
    let mut v: Value = serde_json::from_str(line.trim()).unwrap_or(json!({"error": "no output"}));
    v["case"] = json!("shutdown");
    v["strategy"] = json!("python ThreadingTCPServer");
    v["load"] = json!("idle");
    out.push(v);
    Ok(out)
}

fn measure_one(o: &SuiteOpts, case: &Case, spec: &Spec) -> io::Result<Value> {
    let mut server = start(spec, o)?;
    let lo = LoadOpts {
        addr: server.addr,
        mode: case.mode,
        conns: case.conns,
        size: case.size,
        inflight: case.inflight,
        warmup: o.warmup,
        duration: o.duration,
        depth: 1,
        server_pid: Some(server.pid()),
    };
    let r = load::run(&lo);
    let mut v = r?;
    v["server_pid"] = json!(server.pid());
    let stats = server.stop();
    if let Some(line) = stats.last() {
        v["server_stats"] = json!(line);
    }
    Ok(v)
}

/// A field of /proc/PID/status in KiB (or a count for `Threads`).
pub fn proc_status(pid: i32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Memory and scale: hold `n` idle connections, then echo on all of them.
fn scale(o: &SuiteOpts) -> io::Result<Vec<Value>> {
    let e = exe();
    let n = o.scale_conns;
    let ns = n.to_string();
    let stack = (64 * 1024).to_string();
    let specs = [
        (
            sv(
                "std floor, 64 KiB stacks",
                &[&e, "serve-std", "--stack", &stack],
            ),
            true,
        ),
        (
            sv(
                "crate threading, 64 KiB stacks",
                &[
                    &e,
                    "serve-crate",
                    "--strategy",
                    "threading",
                    "--stack",
                    &stack,
                ],
            ),
            true,
        ),
        (
            sv(
                "crate threading, default 2 MiB stacks",
                &[&e, "serve-crate", "--strategy", "threading"],
            ),
            true,
        ),
        (
            sv(
                &format!("crate pool({n}), 64 KiB stacks"),
                &[
                    &e,
                    "serve-crate",
                    "--strategy",
                    "pool",
                    "--workers",
                    &ns,
                    "--stack",
                    &stack,
                ],
            ),
            false,
        ),
        (sv("tokio", &[&e, "serve-tokio"]), false),
        (
            sv(
                "crate reactor (1 loop)",
                &[&e, "serve-crate", "--strategy", "reactor", "--workers", "1"],
            ),
            false,
        ),
    ];
    let mut out = Vec::new();
    for (spec, thread_per_conn) in specs {
        if !o.scale_servers.is_empty() && !o.scale_servers.iter().any(|s| spec.name.contains(s)) {
            continue;
        }
        let v = match scale_one(o, &spec, n, thread_per_conn) {
            Ok(v) => v,
            Err(err) => json!({"error": err.to_string()}),
        };
        let mut v = v;
        v["case"] = json!("scale");
        v["server"] = json!(spec.name);
        v["target"] = json!(n);
        out.push(v);
    }
    Ok(out)
}

fn scale_one(o: &SuiteOpts, spec: &Spec, n: usize, thread_per_conn: bool) -> io::Result<Value> {
    let server = start(spec, o)?;
    let pid = server.pid();
    // Let the pool's workers start before taking the baseline.
    thread::sleep(Duration::from_millis(300));
    let base_rss = proc_status(pid, "VmRSS").unwrap_or(0);
    let base_threads = proc_status(pid, "Threads").unwrap_or(0);
    let t = Instant::now();
    let mut conns = Vec::with_capacity(n);
    let mut connect_error = None;
    for _ in 0..n {
        match TcpStream::connect_timeout(&server.addr, Duration::from_secs(5)) {
            Ok(s) => conns.push(s),
            Err(e) => {
                connect_error = Some(e.to_string());
                break;
            }
        }
    }
    let connect_s = t.elapsed().as_secs_f64();
    let held = conns.len();
    // Wait until every connection has its thread (thread-per-connection
    // servers), at most 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    if thread_per_conn {
        while proc_status(pid, "Threads").unwrap_or(0) < base_threads + held as u64
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(20));
        }
    } else {
        thread::sleep(Duration::from_millis(500));
    }
    let threads_idle = proc_status(pid, "Threads").unwrap_or(0);
    let idle_rss = proc_status(pid, "VmRSS").unwrap_or(0);
    let t = Instant::now();
    let echoed = echo_all(&mut conns, Duration::from_secs(30))?;
    let echo_s = t.elapsed().as_secs_f64();
    let after_rss = proc_status(pid, "VmRSS").unwrap_or(0);
    let hwm = proc_status(pid, "VmHWM").unwrap_or(0);
    drop(conns);
    drop(server);
    let per = |rss: u64| {
        if held == 0 {
            f64::NAN
        } else {
            rss.saturating_sub(base_rss) as f64 / held as f64
        }
    };
    Ok(json!({
        "held": held,
        "connect_error": connect_error,
        "connect_s": connect_s,
        "base_rss_kib": base_rss,
        "idle_rss_kib": idle_rss,
        "after_echo_rss_kib": after_rss,
        "hwm_kib": hwm,
        "threads_idle": threads_idle,
        "idle_kib_per_conn": per(idle_rss),
        "after_echo_kib_per_conn": per(after_rss),
        "total_kib_per_conn": if held == 0 { f64::NAN } else { after_rss as f64 / held as f64 },
        "echoed": echoed,
        "echo_s": echo_s,
    }))
}

/// Sends 64 bytes on every connection at once, then collects every echo
/// (non-blocking, one epoll loop). Returns how many came back intact.
fn echo_all(conns: &mut [TcpStream], limit: Duration) -> io::Result<usize> {
    use mio::{Events, Interest, Poll, Token};
    let msg = [0x5au8; 64];
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut got = vec![0usize; conns.len()];
    let mut ok = 0;
    for (k, c) in conns.iter_mut().enumerate() {
        c.set_nonblocking(true)?;
        let _ = c.set_nodelay(true);
        c.write_all(&msg)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(c);
        poll.registry()
            .register(&mut mio::unix::SourceFd(&fd), Token(k), Interest::READABLE)?;
    }
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 128];
    while ok < conns.len() && Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in events.iter() {
            let k = ev.token().0;
            loop {
                match conns[k].read(&mut buf) {
                    Ok(0) => break,
                    Ok(m) => {
                        let before = got[k];
                        got[k] += m;
                        if before < 64 && got[k] >= 64 {
                            ok += 1;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
    }
    Ok(ok)
}

/// Upload throughput: the upload example against raw loopback, interleaved.
fn upload(o: &SuiteOpts) -> io::Result<Vec<Value>> {
    let mut out = Vec::new();
    let Some((server_bin, client_bin)) = o.upload.clone() else {
        out.push(json!({
            "case": "upload",
            "skipped": o.upload_skip.clone().unwrap_or_else(|| "not built".into()),
        }));
        return Ok(out);
    };
    fs::create_dir_all(&o.scratch)?;
    let src = o.scratch.join("upload-src.bin");
    let dir = o.scratch.join("uploads");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    make_file(&src, o.upload_bytes)?;
    {
        // The single-core SHA-256 ceiling (sha2 0.10, as the example uses):
        // each side of the upload hashes every byte on its own CPU.
        use sha2::{Digest, Sha256};
        let block = vec![0xa5u8; 1 << 20];
        let total = 512u64 << 20;
        let t = Instant::now();
        let mut h = Sha256::new();
        for _ in 0..(total >> 20) {
            h.update(&block);
        }
        let _ = h.finalize();
        let secs = t.elapsed().as_secs_f64();
        let v = json!({
            "case": "upload",
            "server": "SHA-256 alone (sha2 0.10, one core, in memory)",
            "bytes": total,
            "ok": true,
            "secs": secs,
            "mb_per_s": total as f64 / secs / 1e6,
        });
        eprintln!("    {v}");
        out.push(v);
    }
    for pass in 0..o.passes {
        // Raw: one TCP stream into a sink, 256 KiB writes.
        let spec = sv("raw loopback sink", &[&exe(), "serve-sink"]);
        let v = match raw_send(o, &spec, o.upload_bytes) {
            Ok(v) => v,
            Err(e) => json!({"error": e.to_string()}),
        };
        let mut v = v;
        v["case"] = json!("upload");
        v["server"] = json!("raw loopback TCP (one stream, 256 KiB writes, no hashing)");
        v["pass"] = json!(pass);
        eprintln!("    {v}");
        out.push(v);
        let v = match upload_once(o, &server_bin, &client_bin, &src, &dir, pass) {
            Ok(v) => v,
            Err(e) => json!({"error": e.to_string()}),
        };
        let mut v = v;
        v["case"] = json!("upload");
        v["server"] = json!("upload_server + upload_client (SHA-256 both ends)");
        v["pass"] = json!(pass);
        eprintln!("    {v}");
        out.push(v);
    }
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_file(&src);
    let _ = fs::remove_dir(&o.scratch);
    Ok(out)
}

fn make_file(path: &Path, bytes: u64) -> io::Result<()> {
    if fs::metadata(path)
        .map(|m| m.len() == bytes)
        .unwrap_or(false)
    {
        return Ok(());
    }
    let mut f = io::BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut left = bytes;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()
}

fn raw_send(o: &SuiteOpts, spec: &Spec, bytes: u64) -> io::Result<Value> {
    let server = start(spec, o)?;
    let buf = vec![0x42u8; 256 * 1024];
    let t = Instant::now();
    let mut s = TcpStream::connect(server.addr)?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        s.write_all(&buf[..n])?;
        left -= n as u64;
    }
    s.shutdown(std::net::Shutdown::Write)?;
    let mut ack = [0u8; 8];
    s.read_exact(&mut ack)?;
    let secs = t.elapsed().as_secs_f64();
    let hwm = proc_status(server.pid(), "VmHWM");
    let got = u64::from_le_bytes(ack);
    Ok(json!({
        "bytes": got,
        "ok": got == bytes,
        "secs": secs,
        "mb_per_s": bytes as f64 / secs / 1e6,
        "server_hwm_kib": hwm,
        "client_hwm_kib": proc_status(std::process::id() as i32, "VmHWM"),
    }))
}

fn upload_once(
    o: &SuiteOpts,
    server_bin: &Path,
    client_bin: &Path,
    src: &Path,
    dir: &Path,
    pass: usize,
) -> io::Result<Value> {
    // The server creates the token file; the client reads it.
    let token = dir.with_extension("token");
    let spec = Spec {
        name: "upload_server".into(),
        cmd: vec![
            server_bin.to_string_lossy().into_owned(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--dir".into(),
            dir.to_string_lossy().into_owned(),
            "--strategy".into(),
            "threading".into(),
            "--token-file".into(),
            token.to_string_lossy().into_owned(),
        ],
    };
    let server = start(&spec, o)?;
    let name = format!("bench-{pass}.bin");
    let t = Instant::now();
    let (status, maxrss_kib, stdout) = crate::run_measured(&[
        client_bin.to_string_lossy().into_owned(),
        "--addr".into(),
        server.addr.to_string(),
        src.to_string_lossy().into_owned(),
        "--name".into(),
        name.clone(),
        "--token-file".into(),
        token.to_string_lossy().into_owned(),
    ])?;
    let secs = t.elapsed().as_secs_f64();
    let server_hwm = proc_status(server.pid(), "VmHWM");
    drop(server);
    let stored = fs::metadata(dir.join(&name)).map(|m| m.len()).ok();
    let _ = fs::remove_file(dir.join(&name));
    let last = stdout.lines().last().unwrap_or("").to_string();
    Ok(json!({
        "bytes": o.upload_bytes,
        "ok": status == 0 && stored == Some(o.upload_bytes),
        "client_status": status,
        "client_last_line": last,
        "secs": secs,
        "mb_per_s": o.upload_bytes as f64 / secs / 1e6,
        "server_hwm_kib": server_hwm,
        "client_hwm_kib": maxrss_kib,
    }))
}

/// Medians etc. for the report.
pub fn median(v: &mut Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Groups values by key preserving first-seen order.
pub fn group<'a>(rows: &'a [Value], key: &str) -> Vec<(String, Vec<&'a Value>)> {
    let mut order = Vec::new();
    let mut map: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in rows {
        let k = r[key].as_str().unwrap_or("").to_string();
        if !map.contains_key(&k) {
            order.push(k.clone());
        }
        map.entry(k).or_default().push(r);
    }
    order
        .into_iter()
        .map(|k| {
            let v = map.remove(&k).unwrap_or_default();
            (k, v)
        })
        .collect()
}
