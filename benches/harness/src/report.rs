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
    let mut md = String::new();
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
        // std floor per pass.
        let floor = |pass: u64| -> f64 {
            owned
                .iter()
                .find(|r| {
                    r["pass"].as_u64() == Some(pass)
                        && r["server"].as_str().unwrap_or("").starts_with("std floor")
                })
                .map_or(f64::NAN, |r| f(r, "rps"))
        };
        for (server, runs) in group(&owned, "server") {
            let (rps, lo, hi) = stats(runs.iter().map(|r| f(r, "rps")).collect());
            let (ratio, rlo, rhi) = stats(
                runs.iter()
                    .map(|r| f(r, "rps") / floor(r["pass"].as_u64().unwrap_or(0)))
                    .collect(),
            );
            let (p50, _, _) = stats(runs.iter().map(|r| f(r, "p50_us")).collect());
            let (p99, _, _) = stats(runs.iter().map(|r| f(r, "p99_us")).collect());
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
            let (cpu, _, _) = stats(runs.iter().map(|r| f(r, "load_cpu_frac")).collect());
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
                num(p50),
                num(p99),
                cpu * 100.0,
                busy(0) * 100.0,
                busy(1) * 100.0,
            );
        }
        let _ = writeln!(md);
    }
    let sd: Vec<Value> = rows
        .iter()
        .filter(|r| r["case"] == "shutdown")
        .cloned()
        .collect();
    if !sd.is_empty() {
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
    let up: Vec<Value> = rows
        .iter()
        .filter(|r| r["case"] == "upload")
        .cloned()
        .collect();
    if !up.is_empty() {
        let _ = writeln!(md, "### Upload, 1 GiB over loopback (`upload`)\n");
        if let Some(s) = up.iter().find_map(|r| r["skipped"].as_str()) {
            let _ = writeln!(md, "Not measured: {s}\n");
        } else {
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
                let (m, lo, hi) = stats(runs.iter().map(|r| f(r, "mb_per_s")).collect());
                let ok = runs.iter().all(|r| r["ok"] == true);
                let (shwm, _, hhi) = stats(runs.iter().map(|r| f(r, "server_hwm_kib")).collect());
                let (chwm, _, chi) = stats(runs.iter().map(|r| f(r, "client_hwm_kib")).collect());
                if shwm.is_nan() {
                    let _ = writeln!(
                        md,
                        "| {server} | {} ({}–{}) | {} | {ok} | – | – |",
                        big(m),
                        big(lo),
                        big(hi),
                        num(m / raw),
                    );
                    continue;
                }
                let _ = writeln!(
                    md,
                    "| {server} | {} ({}–{}) | {} | {ok} | {:.1} MiB (max {:.1}) | {:.1} MiB (max {:.1}) |",
                    big(m),
                    big(lo),
                    big(hi),
                    num(m / raw),
                    shwm / 1024.0,
                    hhi / 1024.0,
                    chwm / 1024.0,
                    chi / 1024.0,
                );
            }
            let _ = writeln!(md);
        }
    }
    let sc: Vec<Value> = rows
        .iter()
        .filter(|r| r["case"] == "scale")
        .cloned()
        .collect();
    if !sc.is_empty() {
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
    Ok(md)
}
