//! The documentation as a test: the guide and its Chinese translation have
//! the same chapters and the same code, the corrected Python shown in the
//! guide is the Python run here against the example servers, and no page
//! points outside the repository.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use socketserver::framing::{read_json, write_json};
use support::{example_bin, run_with_timeout};

/// Upper bound on anything a test waits for.
const LIMIT: Duration = Duration::from_secs(60);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `.md` files of a directory, sorted by name.
fn chapters(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    names
}

/// Every fenced code block of a Markdown text: its fence line, then its body.
fn code_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut open: Option<String> = None;
    for line in text.lines() {
        match open.as_mut() {
            None if line.starts_with("```") => open = Some(format!("{line}\n")),
            None => {}
            Some(_) if line == "```" => blocks.push(open.take().unwrap()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(open.is_none(), "a code block is never closed");
    blocks
}

#[test]
fn the_chinese_guide_has_every_chapter() {
    let en = chapters("docs/guide");
    assert!(en.len() >= 9, "{en:?}");
    assert_eq!(chapters("docs/zh-CN"), en);
}

#[test]
fn both_languages_have_the_same_code_blocks_byte_for_byte() {
    for name in chapters("docs/guide") {
        let en = code_blocks(&read(&repo().join("docs/guide").join(&name)));
        let zh = code_blocks(&read(&repo().join("docs/zh-CN").join(&name)));
        assert!(!en.is_empty(), "{name} has no code");
        assert_eq!(en.len(), zh.len(), "{name}: number of code blocks");
        for (i, (e, z)) in en.iter().zip(&zh).enumerate() {
            assert_eq!(e, z, "{name}: code block {} differs", i + 1);
        }
    }
}

/// A chapter's lines outside its code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut in_code = false;
    text.lines()
        .filter(|line| {
            if line.starts_with("```") {
                in_code = !in_code;
                return false;
            }
            !in_code
        })
        .collect()
}

#[test]
fn both_languages_have_the_same_sections_and_name_the_same_things() {
    for name in chapters("docs/guide") {
        let en = read(&repo().join("docs/guide").join(&name));
        let zh = read(&repo().join("docs/zh-CN").join(&name));
        let (en, zh) = (prose(&en), prose(&zh));
        let headings = |lines: &[&str]| lines.iter().filter(|l| l.starts_with('#')).count();
        assert_eq!(headings(&en), headings(&zh), "{name}: number of headings");
        // Every name, flag and value the English prose sets in `code`
        // (one without spaces) appears in the Chinese prose too.
        let (en, zh) = (en.join(" "), zh.join(" "));
        let zh_spans: Vec<&str> = zh.split('`').skip(1).step_by(2).collect();
        for span in en.split('`').skip(1).step_by(2) {
            if !span.contains(char::is_whitespace) {
                assert!(
                    zh_spans.contains(&span),
                    "{name}: the Chinese text never says `{span}`"
                );
            }
        }
    }
}

/// The corrected Python clients and server, `tests/python/corrected/*.py`.
fn corrected_python() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/python/corrected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_guide_shows_each_corrected_python_file_whole() {
    let shown: Vec<String> = chapters("docs/guide")
        .iter()
        .flat_map(|n| code_blocks(&read(&repo().join("docs/guide").join(n))))
        .filter_map(|b| b.strip_prefix("```python\n").map(str::to_owned))
        .collect();
    let files = corrected_python();
    assert_eq!(files.len(), 4, "{files:?}");
    for file in files {
        assert!(
            shown.contains(&read(&file)),
            "{} is not shown whole in the guide",
            file.display()
        );
    }
}

#[test]
fn no_page_points_outside_the_repository() {
    let mut pages = vec![repo().join("README.md"), repo().join("README.zh-CN.md")];
    for dir in ["docs", "docs/guide", "docs/zh-CN"] {
        pages.extend(chapters(dir).iter().map(|n| repo().join(dir).join(n)));
    }
    for page in pages {
        let text = read(&page);
        for needle in ["shared/", "day27", "/work/", "::<_>", "req.peer()"] {
            assert!(
                !text.contains(needle),
                "{} mentions {needle:?}",
                page.display()
            );
        }
        let words: Vec<&str> = text.split_whitespace().collect();
        for pair in words.windows(2) {
            let word = pair[0].trim_matches(|c: char| !c.is_alphanumeric());
            let number = pair[1].trim_start_matches(['#', '(']);
            let tracker = word.eq_ignore_ascii_case("issue")
                && number.starts_with(|c: char| c.is_ascii_digit());
            assert!(
                !tracker,
                "{} names a tracker issue: {pair:?}",
                page.display()
            );
        }
    }
}

/// Runs `tests/python/corrected/<script>` with `args` (and `env`).
fn python(script: &str, args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("tests/python/corrected").join(script))
        .args(args)
        .envs(env.iter().copied());
    let (status, out, err) = run_with_timeout(&mut cmd, LIMIT);
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (status, text(out), text(err))
}

/// The token `cmd_server` and `upload_server` are started with: 16 random
/// bytes in hex.
const TOKEN: &str = "3f9a2c7e51d84b06a7e2c913f05d6b48";

fn host_port(addr: &str) -> (&str, &str) {
    addr.rsplit_once(':').unwrap()
}

#[test]
fn the_corrected_cmd_client_runs_commands_on_cmd_server() {
    let srv = support::start_with(
        Command::new(example_bin("cmd_server"))
            .env("CMD_TOKEN", TOKEN)
            .args(["--addr", "127.0.0.1:0"]),
    );
    let (host, port) = host_port(&srv.addr);
    let (status, out, err) = python(
        "cmd_client.py",
        &[
            host,
            port,
            "echo hello; echo oops >&2",
            "printf '中文'; exit 4",
        ],
        &[("CMD_TOKEN", TOKEN)],
    );
    assert_eq!(status.code(), Some(4), "stderr: {err}");
    assert_eq!(out, "hello\n中文");
    assert_eq!(err, "oops\n");

    // A wrong token: the server refuses, and the client says so.
    let (status, out, err) = python(
        "cmd_client.py",
        &[host, port, "echo never"],
        &[("CMD_TOKEN", "5b0e8d2f7a6c4193b8e1d0f2a9c7e645")],
    );
    assert!(!status.success());
    assert_eq!(out, "");
    assert!(err.contains("token"), "stderr: {err}");
}

#[test]
fn the_corrected_cmd_client_reads_a_response_that_arrives_byte_by_byte() {
    // A server that answers one command with its frame header, header and
    // body cut into single bytes, each its own send: recv(4) would see 1.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(LIMIT)).unwrap();
        conn.set_nodelay(true).unwrap();
        let request: serde_json::Value = read_json(&mut conn).unwrap().unwrap();
        let body = b"split\n";
        let mut wire = Vec::new();
        let hash = format!("{:x}", Sha256::digest(body));
        write_json(
            &mut wire,
            &json!({"total_size": 6, "hash": hash, "exit_code": 0}),
        )
        .unwrap();
        wire.extend_from_slice(body);
        for byte in wire {
            conn.write_all(&[byte]).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap(); // the client hangs up
        request
    });
    let (status, out, err) = python("cmd_client.py", &["127.0.0.1", &port, "echo split"], &[]);
    assert!(status.success(), "stderr: {err}");
    assert_eq!(out, "split\n");
    assert_eq!(server.join().unwrap(), json!({"cmd": "echo split"}));
}

#[test]
fn cmd_client_drives_the_corrected_python_server_without_deadlock() {
    let script = repo().join("tests/python/corrected/cmd_server.py");
    let srv = support::start_with(
        Command::new("python3")
            .arg(&script)
            .args(["127.0.0.1", "0"]),
    );
    // A mebibyte on stderr before a line on stdout: the lesson's server,
    // reading stderr to the end first, hangs on this one.
    let (status, out, err) = run_with_timeout(
        Command::new(example_bin("cmd_client")).args([
            "--addr",
            &srv.addr,
            "head -c 1048576 /dev/zero >&2; echo done",
            "echo bye; exit 3",
        ]),
        LIMIT,
    );
    assert_eq!(status.code(), Some(3));
    assert_eq!(out, b"done\nbye\n");
    assert_eq!(err.len(), 1 << 20);

    // What a web page can make a browser send: refused, nothing runs.
    let dir = tempfile::tempdir().unwrap();
    let pwned = dir.path().join("pwned");
    let mut browser = std::net::TcpStream::connect(&srv.addr).unwrap();
    browser.set_read_timeout(Some(LIMIT)).unwrap();
    let request = format!(
        "POST /;touch${{IFS}}{}; HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        pwned.display()
    );
    // The server hangs up without an answer: the write may already fail,
    // and the read sees the end or a reset (it leaves the rest unread).
    let gone = |e: std::io::Error| {
        use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
        assert!(matches!(e.kind(), BrokenPipe | ConnectionReset), "{e}");
    };
    if let Err(e) = browser.write_all(request.as_bytes()) {
        gone(e);
    }
    let mut answer = Vec::new();
    match browser.read_to_end(&mut answer) {
        Ok(_) => assert_eq!(answer, b""),
        Err(e) => gone(e),
    }
    assert!(!pwned.exists());

    // The corrected Python client against the corrected Python server.
    let (host, port) = host_port(&srv.addr);
    let (status, out, _) = python("cmd_client.py", &[host, port, "echo both"], &[]);
    assert!(status.success());
    assert_eq!(out, "both\n");
}

/// `upload_server` storing into `store`, with [`TOKEN`] in a token file
/// (mode 0600) under `scratch`.
fn upload_server(scratch: &Path, store: &Path) -> support::ServerProcess {
    use std::os::unix::fs::PermissionsExt;
    let token_file = scratch.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    support::start_with(
        Command::new(example_bin("upload_server"))
            .args(["--addr", "127.0.0.1:0", "--token-file"])
            .arg(&token_file)
            .arg("--dir")
            .arg(store),
    )
}

#[test]
fn the_corrected_upload_client_streams_a_file_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = dir.path().join("big.bin");
    // 64 MiB of a pattern that is not all the same byte.
    let mut data = Vec::with_capacity(64 << 20);
    for i in 0..(64u32 << 18) {
        data.extend_from_slice(&i.to_le_bytes());
    }
    std::fs::write(&file, &data).unwrap();
    let srv = upload_server(dir.path(), &store);
    let (host, port) = host_port(&srv.addr);

    // Run the client under a wrapper that reports its peak memory (VmHWM:
    // getrusage's maxrss would include the test process, kept across exec).
    let script = repo().join("tests/python/corrected/upload_client.py");
    let wrapper = "import runpy, sys\n\
        sys.argv = sys.argv[1:]\n\
        sys.path.insert(0, sys.argv[0].rsplit('/', 1)[0])\n\
        try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n\
        finally:\n    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n    \
        print('peak_kib', hwm[0].split()[1], file=sys.stderr)\n";
    let (status, out, err) = run_with_timeout(
        Command::new("python3")
            .args(["-c", wrapper])
            .arg(&script)
            .args([host, port])
            .arg(&file)
            .env("UPLOAD_TOKEN", TOKEN),
        LIMIT,
    );
    let (out, err) = (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    );
    assert!(status.success(), "stderr: {err}");
    let digest = format!("{:x}", Sha256::digest(&data));
    assert_eq!(
        out,
        format!("sent {} bytes, sha256 {digest}, confirmed\n", data.len())
    );
    assert_eq!(std::fs::read(store.join("big.bin")).unwrap(), data);
    let rss: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("peak_kib "))
        .expect("the wrapper's peak line")
        .parse()
        .unwrap();
    // Python itself takes ~10 MiB; the file alone would be 64 MiB.
    assert!(rss < 40 * 1024, "the client peaked at {rss} KiB");
}

#[test]
fn the_corrected_upload_client_reports_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    // A name the server keeps for itself (empty, so no body is left unread).
    let file = dir.path().join(".upload-mine");
    std::fs::write(&file, "").unwrap();
    let srv = upload_server(dir.path(), &dir.path().join("store"));
    let (host, port) = host_port(&srv.addr);
    let path = file.to_str().unwrap();
    let token = [("UPLOAD_TOKEN", TOKEN)];
    let (status, out, err) = python("upload_client.py", &[host, port, path], &token);
    assert_eq!(status.code(), Some(1));
    assert_eq!(out, "");
    assert!(err.starts_with("refused: "), "stderr: {err}");
}

#[test]
fn a_python_client_cut_off_mid_frame_fails_instead_of_spinning() {
    // The lesson's body loop spins forever on b''; recv_exact raises.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(LIMIT)).unwrap();
        let _: Option<serde_json::Value> = read_json(&mut conn).unwrap();
        let mut wire = Vec::new();
        write_json(&mut wire, &json!({"total_size": 100, "hash": ""})).unwrap();
        wire.extend_from_slice(b"only ten b");
        conn.write_all(&wire).unwrap();
        // Dropped: the connection ends 90 bytes short.
    });
    let (status, _, err) = python("cmd_client.py", &["127.0.0.1", &port, "x"], &[]);
    server.join().unwrap();
    assert!(!status.success());
    assert!(
        err.contains("connection closed after 10 of 100 bytes"),
        "stderr: {err}"
    );
}

/// A heading's anchor as GitHub makes it: lower case, spaces to `-`,
/// punctuation dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

#[test]
fn every_relative_link_of_the_guides_resolves() {
    let mut pages = vec![
        repo().join("README.zh-CN.md"),
        repo().join("docs/README.md"),
    ];
    pages.push(repo().join("docs/glossary.md"));
    for dir in ["docs/guide", "docs/zh-CN"] {
        pages.extend(chapters(dir).iter().map(|n| repo().join(dir).join(n)));
    }
    for page in pages {
        let text = read(&page);
        for (start, _) in text.match_indices("](") {
            let rest = &text[start + 2..];
            let target = &rest[..rest.find(')').expect("a link's closing parenthesis")];
            if target.starts_with("http") || target.starts_with('#') {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let resolved = page.parent().unwrap().join(path);
            assert!(
                resolved.exists(),
                "{}: link to {target} does not resolve",
                page.display()
            );
            if !anchor.is_empty() {
                let slugs: Vec<String> = prose(&read(&resolved))
                    .iter()
                    .filter_map(|l| l.strip_prefix('#'))
                    .map(|h| slug(h.trim_start_matches('#')))
                    .collect();
                assert!(
                    slugs.iter().any(|s| s == anchor),
                    "{}: {target} names no heading of {path}",
                    page.display()
                );
            }
        }
    }
}
