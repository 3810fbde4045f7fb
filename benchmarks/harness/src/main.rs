//! `sockbench`: the benchmark harness of the `socketserver` crate.
//!
//! ```text
//! sockbench serve-std    [--addr A] [--udp [--mmsg]] [--stack BYTES]
//! sockbench serve-crate  [--addr A] --strategy sequential|threading|pool|forking|reactor
//!                        [--workers N (reactor: loops)] [--stack BYTES] [--handler loop|copy] [--udp]
//! sockbench serve-tokio  [--addr A] [--udp]
//! sockbench serve-sink   [--addr A]
//! sockbench load         --addr A --mode echo|connect|udp [--conns N] [--size B] [--inflight K]
//!                        [--warmup S] [--duration S] [--depth K] [--server-pid PID]
//! sockbench shutdown     [--runs N] [--clients N]
//! sockbench suite        --out DIR [--passes N] [--duration S] [--warmup S] [--no-pin]
//!                        [--python P] [--py-script F] [--only a,b] [--scale-conns N] [--scale-servers a,b]
//!                        [--shutdown-runs N] [--upload-server BIN --upload-client BIN]
//!                        [--upload-skip REASON] [--upload-bytes N] [--scratch DIR]
//!                        [--echo-example BIN]
//! sockbench report       FILE.jsonl
//! sockbench upload-split [--bytes N] [--passes P] [--tmpfs DIR] [--disk DIR]
//!                        [--server BIN --client BIN]
//!                        [--baseline-server BIN --baseline-client BIN]   (upload_split.rs)
//! ```
//!
//! Servers print `listening on <addr>` and serve until killed. `benchmarks/run.sh`
//! runs the whole suite.

mod inproc;
mod load;
mod mmsg;
mod report;
mod servers;
mod suite;
mod udp;
mod upload_split;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `--key value` and `--flag` arguments.
struct Args {
    map: HashMap<String, String>,
    positional: Vec<String>,
}

impl Args {
    fn parse(args: &[String]) -> Args {
        let mut map = HashMap::new();
        let mut positional = Vec::new();
        let mut i = 0;
        while i < args.len() {
            if let Some(k) = args[i].strip_prefix("--") {
                if i + 1 < args.len() && !args[i + 1].starts_with("--") {
                    map.insert(k.to_string(), args[i + 1].clone());
                    i += 2;
                } else {
                    map.insert(k.to_string(), String::new());
                    i += 1;
                }
            } else {
                positional.push(args[i].clone());
                i += 1;
            }
        }
        Args { map, positional }
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.map.get(k).map(String::as_str)
    }
    fn str(&self, k: &str, d: &str) -> String {
        self.get(k).unwrap_or(d).to_string()
    }
    fn flag(&self, k: &str) -> bool {
        self.map.contains_key(k)
    }
    fn num<T: std::str::FromStr>(&self, k: &str, d: T) -> T {
        self.get(k).and_then(|v| v.parse().ok()).unwrap_or(d)
    }
    fn secs(&self, k: &str, d: f64) -> Duration {
        Duration::from_secs_f64(self.num(k, d))
    }
}

/// Runs a command to completion; returns its exit status, its peak RSS in
/// KiB (`ru_maxrss` from `wait4`, the same as its final VmHWM) and stdout.
pub fn run_measured(cmd: &[String]) -> io::Result<(i32, u64, String)> {
    use std::io::Read;
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out)?;
    }
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: waiting for our own child; rusage is written by the kernel.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, ru.ru_maxrss as u64, out))
}

/// `serve-crate`'s options.
fn crate_opts(a: &Args, stack: Option<usize>) -> servers::CrateOpts {
    servers::CrateOpts {
        strategy: a.str("strategy", "threading"),
        workers: a.num("workers", 16),
        stack,
        handler: a.str("handler", "loop"),
        udp: a.flag("udp"),
        nodelay: a.flag("nodelay"),
    }
}

/// `load`: one load run against `--addr`, printed as one JSON object.
fn load_cmd(a: &Args, addr: &str) -> io::Result<()> {
    let mode = match a.str("mode", "echo").as_str() {
        "echo" => load::Mode::Echo,
        "connect" => load::Mode::Connect,
        "udp" => load::Mode::Udp,
        m => return Err(io::Error::other(format!("unknown mode {m}"))),
    };
    let o = load::LoadOpts {
        addr: addr.parse().map_err(io::Error::other)?,
        mode,
        conns: a.num("conns", 16),
        size: a.num("size", 64),
        inflight: a.num("inflight", 1),
        warmup: a.secs("warmup", 0.5),
        duration: a.secs("duration", 2.0),
        depth: a.num("depth", 1),
        server_pid: a.get("server-pid").and_then(|p| p.parse().ok()),
    };
    println!("{}", load::run(&o)?);
    Ok(())
}

/// `suite`'s options.
fn suite_opts(a: &Args) -> suite::SuiteOpts {
    let upload = match (a.get("upload-server"), a.get("upload-client")) {
        (Some(s), Some(c)) if !s.is_empty() && !c.is_empty() => {
            Some((PathBuf::from(s), PathBuf::from(c)))
        }
        _ => None,
    };
    let list = |k: &str| -> Vec<String> {
        a.get(k)
            .map(|s| {
                s.split(',')
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    suite::SuiteOpts {
        out: PathBuf::from(a.str("out", "benchmarks/results/latest")),
        passes: a.num("passes", 3),
        duration: a.secs("duration", 2.0),
        warmup: a.secs("warmup", 0.5),
        pin: !a.flag("no-pin"),
        python: a.str("python", "python3"),
        py_script: PathBuf::from(a.str("py-script", "benchmarks/py/servers.py")),
        only: list("only"),
        scale_conns: a.num("scale-conns", 10_000),
        scale_servers: list("scale-servers"),
        shutdown_runs: a.num("shutdown-runs", 200),
        upload,
        upload_skip: a.get("upload-skip").map(String::from),
        upload_bytes: a.num("upload-bytes", 1u64 << 30),
        scratch: PathBuf::from(a.str("scratch", "/dev/shm/sockbench")),
        echo_example: a
            .get("echo-example")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
    }
}

/// `upload-split`'s options.
fn split_opts(a: &Args) -> upload_split::SplitOpts {
    let pair = |s: &str, c: &str| match (a.get(s), a.get(c)) {
        (Some(s), Some(c)) => Some((PathBuf::from(s), PathBuf::from(c))),
        _ => None,
    };
    upload_split::SplitOpts {
        bytes: a.num("bytes", 1u64 << 30),
        passes: a.num("passes", 3),
        tmpfs: PathBuf::from(a.str("tmpfs", "/dev/shm/sockbench-split")),
        disk: PathBuf::from(a.str("disk", "/var/tmp/sockbench-split")),
        examples: pair("server", "client"),
        e2e_only: a.flag("e2e-only"),
        cases: a.str("cases", ""),
        baseline: pair("baseline-server", "baseline-client"),
    }
}

fn shutdown_cmd(a: &Args) -> io::Result<()> {
    for v in inproc::shutdown_latency(a.num("runs", 200), a.num("clients", 4))? {
        println!("{v}");
    }
    Ok(())
}

fn report_cmd(a: &Args) -> io::Result<()> {
    let p = a
        .positional
        .first()
        .ok_or_else(|| io::Error::other("report FILE"))?;
    print!("{}", report::render(std::path::Path::new(p))?);
    Ok(())
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first().cloned() else {
        eprintln!(
            "usage: sockbench serve-std|serve-crate|serve-tokio|serve-sink|load|shutdown|suite|report ..."
        );
        std::process::exit(2);
    };
    let a = Args::parse(&argv[1..]);
    let addr = a.str("addr", "127.0.0.1:0");
    let stack = a.get("stack").and_then(|s| s.parse().ok());
    let result: io::Result<()> = match cmd.as_str() {
        "serve-std" => servers::serve_std(&addr, stack, a.flag("udp"), a.flag("mmsg")),
        "serve-crate" => servers::serve_crate(&addr, &crate_opts(&a, stack)),
        "serve-tokio" => servers::serve_tokio(&addr, a.flag("udp")),
        "serve-sink" => servers::serve_sink(&addr),
        "load" => load_cmd(&a, &addr),
        "shutdown" => shutdown_cmd(&a),
        "suite" => suite::run(&suite_opts(&a)).map(|report| println!("{}", report.display())),
        "upload-split" => upload_split::run(&split_opts(&a)).map(|_| ()),
        "report" => report_cmd(&a),
        other => Err(io::Error::other(format!("unknown command {other}"))),
    };
    if let Err(e) = result {
        eprintln!("sockbench {cmd}: {e}");
        std::process::exit(1);
    }
}
