//! Renders results.jsonl as markdown tables: medians with min–max over the
//! passes, ratios against the std floor measured in the same pass.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde_json::Value;

use crate::suite::{group, median};

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

fn stats(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(&mut xs), lo, hi)
}

fn num(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn big(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let s = format!("{x:.0}");
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The markdown report for one results file.
pub fn render(path: &Path) -> io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let rows: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut md = targets(&rows);
    load_tables(&mut md, &rows);
    batch_table(&mut md, &rows);
    shutdown_table(&mut md, &rows);
    upload_table(&mut md, &rows);
    scale_table(&mut md, &rows);
    Ok(md)
}

fn in_case<'a>(rows: &'a [Value], case: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["case"] == case).collect()
}

/// One table per load case: req/s, ratio to the std floor of the same
/// pass, latency, errors, CPU.
fn load_tables(md: &mut String, rows: &[Value]) {
    let load_rows: Vec<Value> = rows
        .iter()
        .filter(|r| r["mode"].is_string() || r["rps"].is_number() || r["error"].is_string())
        .filter(|r| {
            r["case"]
                .as_str()
                .is_some_and(|c| !matches!(c, "shutdown" | "scale" | "upload"))
        })
        .cloned()
        .collect();
    for (case, rs) in group(&load_rows, "case") {
        let title = rs[0]["title"].as_str().unwrap_or(&case);
        let _ = writeln!(md, "### {title} (`{case}`)\n");
        let _ = writeln!(
            md,
            "| server | req/s median (min–max) | × std floor, median (min–max) | p50 µs | p99 µs | served/conns | errors | load-gen CPU/wall | CPU0 / CPU1 busy |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
        let owned: Vec<Value> = rs.iter().map(|v| (*v).clone()).collect();
        for (server, runs) in group(&owned, "server") {
            load_row(md, &owned, &server, &runs);
        }
        let _ = writeln!(md);
    }
}

/// The std floor's req/s in `pass` of a case.
fn floor(case_rows: &[Value], pass: u64) -> f64 {
    case_rows
        .iter()
        .find(|r| {
            r["pass"].as_u64() == Some(pass)
                && r["server"].as_str().unwrap_or("").starts_with("std floor")
        })
        .map_or(f64::NAN, |r| f(r, "rps"))
}

fn load_row(md: &mut String, case_rows: &[Value], server: &str, runs: &[&Value]) {
    let col = |k: &str| stats(runs.iter().map(|r| f(r, k)).collect());
    let (rps, lo, hi) = col("rps");
    let (ratio, rlo, rhi) = stats(
        runs.iter()
            .map(|r| f(r, "rps") / floor(case_rows, r["pass"].as_u64().unwrap_or(0)))
            .collect(),
    );
    let served = runs
        .iter()
        .map(|r| r["served"].as_u64().unwrap_or(0))
        .min()
        .unwrap_or(0);
    let conns = runs[0]["conns"].as_u64().unwrap_or(0);
    let errors: u64 = runs
        .iter()
        .map(|r| {
            r["errors"].as_u64().unwrap_or(0)
                + r["mismatches"].as_u64().unwrap_or(0)
                + r["lost"].as_u64().unwrap_or(0)
                + u64::from(r["error"].is_string())
        })
        .sum();
    let busy = |i: usize| {
        stats(
            runs.iter()
                .map(|r| r["cpu_busy"][i].as_f64().unwrap_or(f64::NAN))
                .collect(),
        )
        .0
    };
    let _ = writeln!(
        md,
        "| {server} | {} ({}–{}) | {} ({}–{}) | {} | {} | {served}/{conns} | {errors} | {:.0}% | {:.0}% / {:.0}% |",
        big(rps),
        big(lo),
        big(hi),
        num(ratio),
        num(rlo),
        num(rhi),
        num(col("p50_us").0),
        num(col("p99_us").0),
        col("load_cpu_frac").0 * 100.0,
        busy(0) * 100.0,
        busy(1) * 100.0,
    );
}

/// Datagram batch sizes the crate's servers saw (their close-time
/// summary) and the batching load generator's own.
fn batch_table(md: &mut String, rows: &[Value]) {
    let with: Vec<&Value> = rows
        .iter()
        .filter(|r| r["server_stats"].is_string() || r["client_batch_mean"].is_number())
        .collect();
    if with.is_empty() {
        return;
    }
    let _ = writeln!(md, "### Datagram batch sizes (UDP cases)\n");
    let _ = writeln!(
        md,
        "| case | server | pass | server: datagrams per recvmmsg, and batches by size | load generator: replies per recvmmsg |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for r in with {
        let server_side = r["server_stats"]
            .as_str()
            .and_then(|s| s.split_once(": ").map(|(_, rest)| rest.to_string()))
            .unwrap_or_else(|| "–".into());
        let _ = writeln!(
            md,
            "| {} | {} | {} | {server_side} | {} |",
            r["case"].as_str().unwrap_or("?"),
            r["server"].as_str().unwrap_or("?"),
            r["pass"],
            num(f(r, "client_batch_mean")),
        );
    }
    let _ = writeln!(md);
}

fn shutdown_table(md: &mut String, rows: &[Value]) {
    let sd = in_case(rows, "shutdown");
    if sd.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "### Shutdown latency: `shutdown()` → `serve_forever` returns (`shutdown`)\n"
    );
    let _ = writeln!(
        md,
        "| server | condition | runs | p50 µs | p99 µs | max µs | load requests served meanwhile |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for r in &sd {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r["strategy"].as_str().unwrap_or("?"),
            if r["load"] == "load" {
                format!("under load ({} connect/echo/close clients)", r["clients"])
            } else {
                "idle".into()
            },
            r["runs"],
            num(f(r, "p50_us")),
            num(f(r, "p99_us")),
            num(f(r, "max_us")),
            r["load_requests"]
                .as_u64()
                .map_or("–".into(), |n| n.to_string()),
        );
    }
    let _ = writeln!(md);
}

fn upload_table(md: &mut String, rows: &[Value]) {
    let up: Vec<Value> = in_case(rows, "upload").into_iter().cloned().collect();
    if up.is_empty() {
        return;
    }
    let _ = writeln!(md, "### Upload, 1 GiB over loopback (`upload`)\n");
    if let Some(s) = up.iter().find_map(|r| r["skipped"].as_str()) {
        let _ = writeln!(md, "Not measured: {s}\n");
        return;
    }
    let _ = writeln!(
        md,
        "| transfer | MB/s median (min–max) | × raw | all ok | server peak RSS (VmHWM) | client peak RSS |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    let (raw, _, _) = stats(
        up.iter()
            .filter(|r| r["server"].as_str().unwrap_or("").starts_with("raw"))
            .map(|r| f(r, "mb_per_s"))
            .collect(),
    );
    for (server, runs) in group(&up, "server") {
        upload_row(md, &server, &runs, raw);
    }
    let _ = writeln!(md);
}

fn upload_row(md: &mut String, server: &str, runs: &[&Value], raw: f64) {
    let (m, lo, hi) = stats(runs.iter().map(|r| f(r, "mb_per_s")).collect());
    let ok = runs.iter().all(|r| r["ok"] == true);
    let (shwm, _, hhi) = stats(runs.iter().map(|r| f(r, "server_hwm_kib")).collect());
    let (chwm, _, chi) = stats(runs.iter().map(|r| f(r, "client_hwm_kib")).collect());
    let rss = if shwm.is_nan() {
        "– | –".to_string()
    } else {
        format!(
            "{:.1} MiB (max {:.1}) | {:.1} MiB (max {:.1})",
            shwm / 1024.0,
            hhi / 1024.0,
            chwm / 1024.0,
            chi / 1024.0
        )
    };
    let _ = writeln!(
        md,
        "| {server} | {} ({}–{}) | {} | {ok} | {rss} |",
        big(m),
        big(lo),
        big(hi),
        num(m / raw),
    );
}

fn scale_table(md: &mut String, rows: &[Value]) {
    let sc = in_case(rows, "scale");
    if sc.is_empty() {
        return;
    }
    let _ = writeln!(md, "### Memory and scale: idle connections (`scale`)\n");
    let _ = writeln!(
        md,
        "| server | held / target | threads | RSS before | RSS idle | RSS after echo | KiB per conn (idle, above baseline) | KiB per conn (after echo, above baseline) | KiB per conn (whole RSS / conns) | echoed | connect s | echo-all s |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &sc {
        if let Some(e) = r["error"].as_str() {
            let _ = writeln!(md, "| {} | error: {e} |||||||||||", r["server"]);
            continue;
        }
        let mib = |k: &str| format!("{:.1} MiB", f(r, k) / 1024.0);
        let _ = writeln!(
            md,
            "| {} | {}/{}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r["server"].as_str().unwrap_or("?"),
            r["held"],
            r["target"],
            r["connect_error"]
                .as_str()
                .map_or(String::new(), |e| format!(" ({e})")),
            r["threads_idle"],
            mib("base_rss_kib"),
            mib("idle_rss_kib"),
            mib("after_echo_rss_kib"),
            num(f(r, "idle_kib_per_conn")),
            num(f(r, "after_echo_kib_per_conn")),
            num(f(r, "total_kib_per_conn")),
            r["echoed"],
            num(f(r, "connect_s")),
            num(f(r, "echo_s")),
        );
    }
    let _ = writeln!(md);
}

/// Per-pass ratio of `server`'s req/s to the first server whose name starts
/// with `base` in the same case and pass: (median, min, max).
fn ratio(rows: &[Value], case: &str, server: &str, base: &str) -> (f64, f64, f64) {
    let in_case = in_case(rows, case);
    let xs = in_case
        .iter()
        .filter(|r| r["server"] == server)
        .map(|r| {
            let b = in_case
                .iter()
                .find(|b| {
                    b["pass"] == r["pass"] && b["server"].as_str().unwrap_or("").starts_with(base)
                })
                .map_or(f64::NAN, |b| f(b, "rps"));
            f(r, "rps") / b
        })
        .collect();
    stats(xs)
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// The targets table being written.
struct Targets<'a> {
    rows: &'a [Value],
    md: String,
}

impl Targets<'_> {
    /// One target: what it is, what was measured, met or missed (tokio and
    /// Python rows are recorded, not judged).
    fn line(&mut self, t: String, m: String, ok: Option<bool>) {
        let v = if t.starts_with("tokio") {
            "recorded"
        } else if t.contains("python") {
            "reference"
        } else {
            verdict(ok)
        };
        let _ = writeln!(self.md, "| {t} | {m} | {v} |");
    }

    fn has(&self, case: &str) -> bool {
        self.rows.iter().any(|r| r["case"] == case)
    }

    /// The distinct servers of `case` whose name starts with `prefix`.
    fn servers_in(&self, case: &str, prefix: &str) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for r in self.rows.iter().filter(|r| r["case"] == case) {
            let s = r["server"].as_str().unwrap_or("");
            if s.starts_with(prefix) && !v.iter().any(|x| x == s) {
                v.push(s.to_string());
            }
        }
        v
    }

    /// "`server`, `case` ≥ `min`× `base`".
    fn at_least(&mut self, case: &str, server: &str, base: &str, min: f64, what: String) {
        let (m, lo, hi) = ratio(self.rows, case, server, base);
        self.line(
            what,
            format!("{}× ({}–{})", num(m), num(lo), num(hi)),
            m.is_finite().then_some(m >= min),
        );
    }
}

fn echo_targets(t: &mut Targets) {
    for case in ["echo-64-16", "echo-64-256"] {
        if !t.has(case) {
            continue;
        }
        for s in t
            .servers_in(case, "crate threading")
            .into_iter()
            .filter(|s| s == "crate threading")
            .chain(t.servers_in(case, "crate pool"))
        {
            t.at_least(
                case,
                &s,
                "std floor",
                1.0,
                format!("{s}, `{case}` ≥ 1.0× std"),
            );
        }
        let (m, lo, hi) = ratio(t.rows, case, "tokio", "std floor");
        t.line(
            format!("tokio, `{case}`: the gap to std"),
            format!("{}× ({}–{})", num(m), num(lo), num(hi)),
            m.is_finite().then_some(true),
        );
    }
    let case = "echo-16k-16";
    for s in t.servers_in(case, "echo example") {
        t.at_least(
            case,
            &s,
            "std floor",
            1.0,
            format!("{s}, `{case}` ≥ 1.0× std"),
        );
    }
}

fn connect_targets(t: &mut Targets) {
    for s in t.servers_in("connect-16", "crate pool") {
        let what = format!("{s}, connection per request ≥ 1.4× std");
        t.at_least("connect-16", &s, "std floor", 1.4, what);
    }
}

fn udp_targets(t: &mut Targets) {
    for case in ["udp-64-16-1", "udp-64-16-8"] {
        for s in t.servers_in(case, "crate") {
            let (m, lo, hi) = ratio(t.rows, case, &s, "std floor");
            let (k, klo, khi) = ratio(t.rows, case, &s, "tokio");
            t.line(
                format!("UDP `{case}`: {s} ≥ 1.0× std and ≥ tokio"),
                format!(
                    "{}× std ({}–{}); {}× tokio ({}–{})",
                    num(m),
                    num(lo),
                    num(hi),
                    num(k),
                    num(klo),
                    num(khi)
                ),
                (m.is_finite() && k.is_finite()).then_some(m >= 1.0 && k >= 1.0),
            );
        }
    }
}

fn shutdown_targets(t: &mut Targets) {
    let rows = t.rows;
    for r in rows.iter().filter(|r| r["case"] == "shutdown") {
        let who = r["strategy"].as_str().unwrap_or("?");
        let p99 = f(r, "p99_us");
        let judged = !who.starts_with("python") && p99.is_finite();
        t.line(
            format!(
                "shutdown p99 < 1 ms: {who}, {}",
                r["load"].as_str().unwrap_or("?")
            ),
            format!("p99 {} µs ({} runs)", num(p99), r["runs"]),
            judged.then_some(p99 < 1000.0),
        );
    }
}

fn upload_targets(t: &mut Targets) {
    let rows = t.rows;
    if let Some(skip) = rows
        .iter()
        .find(|r| r["case"] == "upload")
        .and_then(|r| r["skipped"].as_str())
    {
        let what = "upload ≥ 1 GB/s with SHA-256, RSS < 32 MiB".into();
        t.line(what, format!("not measured: {skip}"), None);
        return;
    }
    let up: Vec<&Value> = in_case(rows, "upload")
        .into_iter()
        .filter(|r| {
            r["server"]
                .as_str()
                .unwrap_or("")
                .starts_with("upload_server")
        })
        .collect();
    if up.is_empty() {
        return;
    }
    let (m, lo, hi) = stats(up.iter().map(|r| f(r, "mb_per_s")).collect());
    let rss = up
        .iter()
        .flat_map(|r| [f(r, "server_hwm_kib"), f(r, "client_hwm_kib")])
        .fold(0.0, f64::max);
    let ok = up.iter().all(|r| r["ok"] == true);
    t.line(
        "upload ≥ 1 GB/s with SHA-256".into(),
        format!(
            "{} MB/s ({}–{}), all verified: {ok}",
            big(m),
            big(lo),
            big(hi)
        ),
        m.is_finite().then_some(m >= 1000.0 && ok),
    );
    t.line(
        "upload peak RSS < 32 MiB (both processes)".into(),
        format!("largest VmHWM {:.1} MiB", rss / 1024.0),
        (rss > 0.0).then_some(rss < 32.0 * 1024.0),
    );
}

fn scale_targets(t: &mut Targets) {
    let rows = t.rows;
    for r in rows.iter().filter(|r| r["case"] == "scale") {
        let who = r["server"].as_str().unwrap_or("?");
        if !who.starts_with("crate") {
            continue;
        }
        let held = r["held"].as_u64().unwrap_or(0);
        let target = r["target"].as_u64().unwrap_or(0);
        let per = f(r, "total_kib_per_conn");
        t.line(
            format!("{target} idle connections < 64 KiB RSS each: {who}"),
            format!(
                "held {held}, echoed {}, {} KiB/conn (whole RSS / conns)",
                r["echoed"],
                num(per)
            ),
            per.is_finite().then_some(per < 64.0 && held == target),
        );
    }
}

/// The targets, each with the measured figure and met/missed.
fn targets(rows: &[Value]) -> String {
    let mut t = Targets {
        rows,
        md: String::new(),
    };
    let _ = writeln!(t.md, "### Targets\n");
    let _ = writeln!(
        t.md,
        "| target | measured (median, min–max over passes) | verdict |"
    );
    let _ = writeln!(t.md, "|---|---|---|");
    echo_targets(&mut t);
    connect_targets(&mut t);
    udp_targets(&mut t);
    shutdown_targets(&mut t);
    upload_targets(&mut t);
    scale_targets(&mut t);
    let _ = writeln!(t.md);
    t.md
}
