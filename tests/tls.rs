//! TLS (feature `tls`) on a real server: driven by Python's `ssl` module,
//! by `openssl s_client`, and by a rustls client; failed handshakes are
//! refused and counted while other clients are served; the certificate is
//! swapped while serving. Certificates are made at test time with the
//! openssl CLI (a missing openssl fails the test).

#[macro_use]
mod edge_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_support::{make_cert, read_to_close, wait_until};
use socketserver::tls::rustls;
use socketserver::{HandlerResult, ServerBuilder, StreamRequest, Threading, TlsConfig};

const LIMIT: Duration = Duration::from_secs(20);

/// Greets with what the handshake agreed, then echoes lines until EOF.
fn greet_and_echo(req: &mut StreamRequest) -> HandlerResult {
    let info = req.tls().expect("a TLS connection").clone();
    let alpn = info.alpn.map(|a| String::from_utf8_lossy(&a).into_owned());
    writeln!(
        req.wfile,
        "sni={} alpn={} version={}",
        info.sni.as_deref().unwrap_or("-"),
        alpn.as_deref().unwrap_or("-"),
        info.version.as_deref().unwrap_or("-")
    )?;
    let mut line = String::new();
    while req.rfile.read_line(&mut line)? > 0 {
        req.wfile.write_all(line.as_bytes())?;
        if line.trim() == "bye" {
            break;
        }
        line.clear();
    }
    Ok(())
}

fn tls_server(tls: TlsConfig) -> edge_support::Running {
    let server = ServerBuilder::new()
        .strategy(Threading::new())
        .drain_timeout(Duration::from_secs(1))
        .tls(tls)
        .bind_tcp("127.0.0.1:0", greet_and_echo)
        .unwrap();
    run!(server)
}

/// Runs Python's ssl client: connects trusting `ca`, sends two lines
/// (the second "bye"), prints what came back; (exit ok, stdout, stderr).
fn python_client(addr: SocketAddr, ca: &Path) -> (bool, String, String) {
    let script = r#"
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["echo/1"])
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"hello from python\nbye\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        sys.stdout.write(data.decode())
"#;
    let out = Command::new("python3")
        .args(["-c", script, &addr.port().to_string()])
        .arg(ca)
        .stdin(Stdio::null())
        .output()
        .expect("python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A rustls client trusting `ca`.
fn rustls_client(
    addr: SocketAddr,
    ca: &Path,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in socketserver::tls::load_certs(ca).unwrap() {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(socketserver::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = "localhost".try_into().unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(LIMIT)).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

fn first_line(stream: &mut impl Read) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read(&mut byte).unwrap() == 1 {
        line.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    String::from_utf8(line).unwrap()
}

#[test]
fn python_ssl_and_openssl_s_client_get_their_echo() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a", "localhost");
    let cfg = rustls::ServerConfig::builder_with_provider(socketserver::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            socketserver::tls::load_certs(&cert).unwrap(),
            socketserver::tls::load_key(&key).unwrap(),
        )
        .unwrap();
    let mut cfg = cfg;
    cfg.alpn_protocols = vec![b"echo/1".to_vec()];
    let running = tls_server(TlsConfig::new(Arc::new(cfg)));

    let (ok, out, err) = python_client(running.addr, &cert);
    assert!(ok, "python failed: {err}");
    assert_eq!(
        out,
        "sni=localhost alpn=echo/1 version=TLSv1_3\nhello from python\nbye\n"
    );

    let mut s_client = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-verify_return_error",
            "-servername",
            "localhost",
        ])
        .arg("-connect")
        .arg(running.addr.to_string())
        .arg("-CAfile")
        .arg(&cert)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is required (apt-get install openssl)");
    s_client
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello from s_client\nbye\n")
        .unwrap();
    let mut out = String::new();
    s_client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = edge_support_wait(&mut s_client);
    assert!(status, "s_client failed");
    assert!(
        out.starts_with("sni=localhost alpn=- version=TLSv1_3\n"),
        "{out}"
    );
    assert!(out.ends_with("hello from s_client\nbye\n"), "{out}");
    assert_eq!(running.handle.stats().tls_handshake_failures, 0);
}

fn edge_support_wait(child: &mut std::process::Child) -> bool {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.success();
        }
        assert!(start.elapsed() < LIMIT, "client did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn fifty_silent_clients_do_not_delay_a_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a", "localhost");
    let running = tls_server(TlsConfig::from_pem_files(&cert, &key).unwrap());
    let silent: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(running.addr).unwrap())
        .collect();
    let start = Instant::now();
    let mut c = rustls_client(running.addr, &cert);
    let greeting = first_line(&mut c);
    let took = start.elapsed();
    assert!(greeting.starts_with("sni=localhost"), "{greeting}");
    assert!(
        took < Duration::from_secs(2),
        "handshake took {took:?} behind 50 silent clients"
    );
    c.write_all(b"bye\n").unwrap();
    assert_eq!(first_line(&mut c), "bye\n");
    assert!(running.handle.stats().active >= 50);
    drop(silent);
}

#[test]
fn bad_handshakes_are_refused_and_counted_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a", "localhost");
    let (other_ca, _) = make_cert(dir.path(), "b", "localhost");
    let tls = TlsConfig::from_pem_files(&cert, &key)
        .unwrap()
        .handshake_timeout(Duration::from_secs(5));
    let running = tls_server(tls);
    let addr = running.addr;

    // A plain-text client on the TLS port.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let (got, closed) = read_to_close(&mut plain, LIMIT);
    assert!(closed);
    assert!(
        !String::from_utf8_lossy(&got).contains("sni="),
        "plain text reached the handler"
    );

    // A truncated ClientHello: a record header promising 512 bytes, 5 sent.
    let mut truncated = TcpStream::connect(addr).unwrap();
    truncated
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03])
        .unwrap();
    truncated.shutdown(std::net::Shutdown::Write).unwrap();
    let (got, closed) = read_to_close(&mut truncated, LIMIT);
    assert!(closed && got.len() < 64, "{got:?}");

    // A client that does not trust the server's certificate.
    let (ok, _, err) = python_client(addr, &other_ca);
    assert!(!ok && err.contains("CERTIFICATE_VERIFY_FAILED"), "{err}");

    // Meanwhile a good client is served.
    let (ok, out, err) = python_client(addr, &cert);
    assert!(ok, "{err}");
    assert!(out.ends_with("hello from python\nbye\n"));

    assert!(wait_until(LIMIT, || running
        .handle
        .stats()
        .tls_handshake_failures
        == 3));
    let s = running.handle.stats();
    assert_eq!((s.tls_handshake_failures, s.handler_errors), (3, 0));
}

#[test]
fn a_silent_client_is_cut_at_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a", "localhost");
    let limit = Duration::from_millis(300);
    let running = tls_server(
        TlsConfig::from_pem_files(&cert, &key)
            .unwrap()
            .handshake_timeout(limit),
    );
    let start = Instant::now();
    let mut silent = TcpStream::connect(running.addr).unwrap();
    let (_, closed) = read_to_close(&mut silent, LIMIT);
    assert!(closed && start.elapsed() >= limit);
    assert!(wait_until(LIMIT, || running
        .handle
        .stats()
        .tls_handshake_timeouts
        == 1));
    assert_eq!(running.handle.stats().tls_handshake_failures, 1);
}

#[test]
fn the_certificate_is_swapped_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a) = make_cert(dir.path(), "a", "localhost");
    let (cert_b, key_b) = make_cert(dir.path(), "b", "localhost");
    let tls = TlsConfig::from_pem_files(&cert_a, &key_a).unwrap();
    let running = tls_server(tls.clone());

    let mut before = rustls_client(running.addr, &cert_a);
    assert!(first_line(&mut before).starts_with("sni="));

    // A failed reload keeps the old certificate.
    assert!(tls.reload_pem_files(&cert_b, &key_a).is_err());
    let (ok, _, err) = python_client(running.addr, &cert_a);
    assert!(ok, "{err}");

    tls.reload_pem_files(&cert_b, &key_b).unwrap();
    let (ok, _, err) = python_client(running.addr, &cert_a);
    assert!(!ok && err.contains("CERTIFICATE_VERIFY_FAILED"), "{err}");
    let (ok, out, err) = python_client(running.addr, &cert_b);
    assert!(ok, "{err}");
    assert!(out.ends_with("bye\n"));

    // The connection made before the swap still works.
    before.write_all(b"still here\n").unwrap();
    assert_eq!(first_line(&mut before), "still here\n");
    // The server's close_notify ends it cleanly (no ragged EOF).
    before.write_all(b"bye\n").unwrap();
    assert_eq!(first_line(&mut before), "bye\n");
    let mut rest = Vec::new();
    before.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn ragged_eof_reads_as_eof_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a", "localhost");
    let running = tls_server(TlsConfig::from_pem_files(&cert, &key).unwrap());
    let mut c = rustls_client(running.addr, &cert);
    assert!(first_line(&mut c).starts_with("sni="));
    c.write_all(b"line\n").unwrap();
    assert_eq!(first_line(&mut c), "line\n");
    // Close the TCP socket without close_notify.
    c.sock.shutdown(std::net::Shutdown::Both).unwrap();
    assert!(wait_until(LIMIT, || running.handle.stats().active == 0));
    let s = running.handle.stats();
    assert_eq!((s.handler_errors, s.tls_handshake_failures), (0, 0));
}

mod support;

/// The echo example with `--tls-cert/--tls-key` under every strategy
/// (the handshake runs in the worker thread or the forked child), driven
/// by Python's ssl module; with `--proxy-protocol` too, the header read
/// before the handshake.
#[test]
fn the_echo_example_serves_tls_under_every_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a", "localhost");
    let script = r#"
import socket, ssl, sys
port, ca, proxy = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
ctx = ssl.create_default_context(cafile=ca)
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    if proxy:
        raw.sendall(b"PROXY TCP4 192.0.2.1 192.0.2.2 4444 443\r\n")
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"over tls\n")
        got = b""
        while not got.endswith(b"\n"):
            chunk = s.recv(100)
            if not chunk:
                break
            got += chunk
        sys.stdout.write(got.decode())
"#;
    for (strategy, proxy) in [
        ("sequential", false),
        ("threading", false),
        ("pool", false),
        ("forking", false),
        ("threading", true),
        ("forking", true),
    ] {
        let mut args = vec!["--addr", "127.0.0.1:0", "--strategy", strategy];
        args.extend([
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ]);
        if proxy {
            args.extend(["--proxy-protocol", "--trusted-proxy", "127.0.0.1"]);
        }
        let server = support::start("echo", &args);
        let port = server.addr.rsplit(':').next().unwrap().to_string();
        let out = Command::new("python3")
            .args(["-c", script, &port])
            .arg(&cert)
            .arg(if proxy { "1" } else { "0" })
            .stdin(Stdio::null())
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{strategy} proxy={proxy}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "over tls\n",
            "{strategy}"
        );
        assert!(server.stop().success(), "{strategy}");
    }
}

#[test]
fn the_handler_reads_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "server", "localhost");
    let (ca, client_cert, client_key) = edge_support::make_client_cert(dir.path(), "alice");
    let mut roots = rustls::RootCertStore::empty();
    for c in socketserver::tls::load_certs(&ca).unwrap() {
        roots.add(c).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        socketserver::tls::provider(),
    )
    .build()
    .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(socketserver::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            socketserver::tls::load_certs(&cert).unwrap(),
            socketserver::tls::load_key(&key).unwrap(),
        )
        .unwrap();
    let server = ServerBuilder::new()
        .strategy(Threading::new())
        .tls(TlsConfig::new(Arc::new(cfg)))
        .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| {
            let certs = &req.tls().unwrap().peer_certificates;
            let alice = certs
                .first()
                .is_some_and(|c| c.windows(5).any(|w| w == b"alice"));
            writeln!(req.wfile, "certs={} alice={alice}", certs.len())?;
            Ok(())
        })
        .unwrap();
    let running = run!(server);
    let script = r#"
import socket, ssl, sys
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
if cert != "-":
    ctx.load_cert_chain(cert, key)
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        sys.stdout.write(s.recv(100).decode())
"#;
    let client = |with_cert: bool| {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", script, &running.addr.port().to_string()])
            .arg(&cert);
        if with_cert {
            cmd.arg(&client_cert).arg(&client_key);
        } else {
            cmd.args(["-", "-"]);
        }
        cmd.stdin(Stdio::null()).output().expect("python3")
    };
    let out = client(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "certs=1 alice=true\n");
    // Without a certificate the handshake fails (TLS 1.3: the client may
    // only notice on its first read) and the handler never runs.
    let out = client(false);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("certs="));
    assert!(wait_until(LIMIT, || running
        .handle
        .stats()
        .tls_handshake_failures
        == 1));
}

#[test]
fn four_mebibytes_echo_over_tls_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a", "localhost");
    let server = ServerBuilder::new()
        .strategy(Threading::new())
        .tls(TlsConfig::from_pem_files(&cert, &key).unwrap())
        .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| {
            std::io::copy(&mut req.rfile, &mut req.wfile)?;
            Ok(())
        })
        .unwrap();
    let running = run!(server);
    let mut c = rustls_client(running.addr, &cert);
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut echoed = Vec::with_capacity(data.len());
    // 64 KiB at a time, reading each piece's echo before the next: several
    // TLS records per piece, both ways.
    for piece in data.chunks(64 * 1024) {
        c.write_all(piece).unwrap();
        let want = echoed.len() + piece.len();
        let mut buf = [0u8; 16 * 1024];
        while echoed.len() < want {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "EOF after {} bytes", echoed.len());
            echoed.extend_from_slice(&buf[..n]);
        }
    }
    assert!(echoed == data, "the echo differs");
    c.conn.send_close_notify();
    c.flush().unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap(); // the server's close_notify: a clean end
    assert!(rest.is_empty());
    let s = running.handle.stats();
    assert!(s.bytes_in > data.len() as u64 && s.bytes_out > data.len() as u64);
}

/// The upload example over TLS (`--tls-cert/--tls-key`, the lesson's
/// token-less protocol under `--lesson`), driven by the lesson's wire steps
/// in Python over an `ssl` socket: the stored file is byte-identical.
#[test]
fn the_upload_example_over_tls_stores_the_file_byte_for_byte() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "a", "localhost");
    let up = dir.path().join("up");
    std::fs::create_dir(&up).unwrap();
    let src = dir.path().join("big.bin");
    let data: Vec<u8> = (0..6u32 << 20).map(|i| (i ^ (i >> 9)) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let server = support::start_with(
        Command::new(support::example_bin("upload_server"))
            .current_dir(dir.path())
            .args(["--addr", "127.0.0.1:0", "--lesson", "--dir"])
            .arg(&up)
            .arg("--token-file")
            .arg(dir.path().join("token"))
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key),
    );
    let script = r#"
import json, os, socket, ssl, struct, sys
port, ca, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        head = json.dumps({"file_name": "tls.bin", "file_size": os.path.getsize(path)}).encode()
        s.sendall(struct.pack("i", len(head)) + head)
        with open(path, "rb") as f:
            while True:
                chunk = f.read(1024)
                if not chunk:
                    break
                s.sendall(chunk)
        # Like the lesson's client: read no reply, just close.
"#;
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let (status, _, err) = support::run_with_timeout(
        Command::new("python3")
            .args(["-c", script, &port])
            .arg(&cert)
            .arg(&src),
        support::LIMIT,
    );
    assert!(status.success(), "{}", String::from_utf8_lossy(&err));
    let want = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let line = server
        .stdout
        .recv_timeout(support::LIMIT)
        .expect("no `stored` line");
    assert!(
        line.starts_with(&format!("stored {} {want}", data.len())),
        "{line}"
    );
    assert!(
        std::fs::read(up.join("tls.bin")).unwrap() == data,
        "stored bytes differ"
    );
    assert!(server.stop().success());
}
