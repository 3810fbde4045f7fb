//! The mini_redis example under every strategy, driven by the real
//! `redis-cli` and `redis-benchmark` (Debian's redis-tools; a test fails,
//! never skips, when they are missing) and by the `redis` crate: pipelined
//! commands, pub/sub across two clients, expiry, malformed input.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use support::{LIMIT, ServerProcess};

const STRATEGIES: [&str; 3] = ["reactor", "threading", "pool"];

fn start(strategy: &str) -> ServerProcess {
    support::start(
        "mini_redis",
        &[
            "--addr",
            "127.0.0.1:0",
            "--strategy",
            strategy,
            "--loops",
            "2",
            "--workers",
            "8",
        ],
    )
}

fn port(server: &ServerProcess) -> String {
    server.addr.rsplit(':').next().unwrap().to_string()
}

/// Runs `tool` (redis-cli, redis-benchmark) against the server; fails the
/// test if the tool is not installed.
fn tool(server: &ServerProcess, tool: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(tool);
    cmd.args(["-h", "127.0.0.1", "-p", &port(server)])
        .args(args);
    let (status, out, err) = support::run_with_timeout(&mut cmd, LIMIT);
    assert!(
        status.success(),
        "{tool} {args:?} failed: {status:?} {}",
        String::from_utf8_lossy(&err)
    );
    String::from_utf8(out).unwrap()
}

fn assert_tools_installed() {
    for t in ["redis-cli", "redis-benchmark"] {
        let found = Command::new(t).arg("--version").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "{t} is missing: install Debian's redis-tools (`apt-get install -y redis-tools`)"
        );
    }
}

fn stop(mut server: ServerProcess) {
    support::signal(&server.child, 15);
    let status = support::wait_timeout(&mut server.child, LIMIT).expect("exited after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn redis_cli_commands_under_every_strategy() {
    assert_tools_installed();
    for strategy in STRATEGIES {
        let s = start(strategy);
        let cli = |args: &[&str]| tool(&s, "redis-cli", args);
        assert_eq!(cli(&["ping"]), "PONG\n", "{strategy}");
        assert_eq!(cli(&["echo", "hi there"]), "hi there\n");
        assert_eq!(cli(&["set", "k", "v"]), "OK\n");
        assert_eq!(cli(&["get", "k"]), "v\n");
        assert_eq!(cli(&["set", "k", "w", "NX"]), "\n"); // nil
        assert_eq!(cli(&["set", "k", "w", "XX"]), "OK\n");
        assert_eq!(cli(&["set", "fresh", "x", "XX"]), "\n");
        assert_eq!(cli(&["incr", "n"]), "1\n");
        assert_eq!(cli(&["decr", "n"]), "0\n");
        assert!(cli(&["incr", "k"]).starts_with("ERR value is not an integer"));
        assert_eq!(cli(&["exists", "k", "n", "nope"]), "2\n");
        assert_eq!(cli(&["del", "k", "nope"]), "1\n");
        assert_eq!(cli(&["ttl", "n"]), "-1\n");
        assert_eq!(cli(&["expire", "n", "100"]), "1\n");
        assert_eq!(cli(&["ttl", "n"]), "100\n");
        assert_eq!(cli(&["ttl", "gone"]), "-2\n");
        assert!(cli(&["set", "a", "b", "EX", "0"]).starts_with("ERR invalid expire time"));
        assert!(cli(&["flurb", "x"]).starts_with("ERR unknown command 'flurb'"));
        assert!(cli(&["get"]).starts_with("ERR wrong number of arguments for 'get'"));
        stop(s);
    }
}

#[test]
fn redis_benchmark_runs_against_every_strategy() {
    assert_tools_installed();
    for strategy in STRATEGIES {
        let s = start(strategy);
        let out = tool(
            &s,
            "redis-benchmark",
            &["-t", "set,get", "-n", "2000", "-c", "8", "-P", "4", "-q"],
        );
        assert!(
            out.contains("SET: ") && out.contains("GET: "),
            "{strategy}: {out}"
        );
        stop(s);
    }
}

fn client(server: &ServerProcess) -> redis::Connection {
    let url = format!("redis://{}/", server.addr);
    let c = redis::Client::open(url).unwrap();
    let con = c.get_connection_with_timeout(LIMIT).unwrap();
    con.set_read_timeout(Some(LIMIT)).unwrap();
    con
}

#[test]
fn the_redis_crate_pipelines_subscribes_and_expires() {
    for strategy in STRATEGIES {
        let s = start(strategy);
        let mut con = client(&s);

        // 1000 commands in one pipeline: one write, replies in order.
        let mut pipe = redis::pipe();
        for i in 0..500 {
            pipe.cmd("SET").arg(format!("key{i}")).arg(i).ignore();
        }
        for i in 0..500 {
            pipe.cmd("GET").arg(format!("key{i}"));
        }
        let got: Vec<i64> = pipe.query(&mut con).unwrap();
        assert_eq!(got, (0..500).collect::<Vec<i64>>(), "{strategy}");

        // Pub/sub across two clients.
        let mut sub_con = client(&s);
        let mut sub = sub_con.as_pubsub();
        sub.subscribe("news").unwrap();
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg("news")
            .arg("hello")
            .query(&mut con)
            .unwrap();
        assert_eq!(receivers, 1, "{strategy}");
        sub.set_read_timeout(Some(LIMIT)).unwrap();
        let msg = sub.get_message().unwrap();
        assert_eq!(msg.get_channel_name(), "news");
        assert_eq!(msg.get_payload::<String>().unwrap(), "hello");
        sub.unsubscribe("news").unwrap();
        drop(sub);
        drop(sub_con);

        // Expiry: PX 50 is gone once its time has passed.
        let _: () = redis::cmd("SET")
            .arg("brief")
            .arg("x")
            .arg("PX")
            .arg(50)
            .query(&mut con)
            .unwrap();
        let ttl: i64 = redis::cmd("TTL").arg("brief").query(&mut con).unwrap();
        assert!((0..=1).contains(&ttl), "{ttl}");
        support::eventually(LIMIT, "the key expires", || {
            let v: Option<String> = redis::cmd("GET").arg("brief").query(&mut con).unwrap();
            v.is_none()
        });
        stop(s);
    }
}

#[test]
fn malformed_input_is_answered_and_closed() {
    for strategy in STRATEGIES {
        let s = start(strategy);
        let mut c = TcpStream::connect(&s.addr).unwrap();
        c.set_read_timeout(Some(LIMIT)).unwrap();
        c.write_all(b"*1\r\n$x\r\n").unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        assert!(
            reply.starts_with("-ERR Protocol error"),
            "{strategy}: {reply:?}"
        );
        // A huge claimed length is refused before anything is allocated.
        let mut c = TcpStream::connect(&s.addr).unwrap();
        c.set_read_timeout(Some(LIMIT)).unwrap();
        c.write_all(b"*1\r\n$999999999999\r\n").unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        assert!(
            reply.starts_with("-ERR Protocol error"),
            "{strategy}: {reply:?}"
        );
        // Inline commands work (as from nc).
        let mut c = TcpStream::connect(&s.addr).unwrap();
        c.set_read_timeout(Some(LIMIT)).unwrap();
        c.write_all(b"PING\r\nQUIT\r\n").unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "+PONG\r\n+OK\r\n");
        stop(s);
    }
}
