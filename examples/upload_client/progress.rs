//! Progress: a bar with rate and ETA on a terminal, otherwise a plain
//! `progress ...` line on stderr every second.

use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where an upload stands.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Offset the body started from (non-zero when resuming).
    pub offset: u64,
    /// Bytes sent on this connection so far.
    pub sent: u64,
    /// The file's size.
    pub total: u64,
    /// Time since the body started.
    pub elapsed: Duration,
}

/// Draws progress on stderr.
pub struct Printer {
    tty: bool,
    bar: ProgressBar,
    last_line: Instant,
}

impl Printer {
    pub fn new() -> Printer {
        let tty = io::stderr().is_terminal();
        Printer {
            tty,
            bar: ProgressBar::hidden(),
            last_line: Instant::now(),
        }
    }

    pub fn show(&mut self, p: &Progress) {
        let done = p.offset + p.sent;
        if self.tty {
            if self.bar.is_hidden() {
                self.bar.set_draw_target(ProgressDrawTarget::stderr());
                self.bar.set_length(p.total);
                let template = "{bar:40.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}";
                self.bar
                    .set_style(ProgressStyle::with_template(template).expect("valid template"));
            }
            self.bar.set_position(done);
        } else if self.last_line.elapsed() >= Duration::from_secs(1) || done == p.total {
            self.last_line = Instant::now();
            let rate = p.sent as f64 / p.elapsed.as_secs_f64().max(1e-9);
            let eta = (p.total - done) as f64 / rate.max(1.0);
            eprintln!(
                "progress {done}/{} bytes ({:.1}%), {:.1} MiB/s, eta {eta:.0} s",
                p.total,
                done as f64 * 100.0 / p.total.max(1) as f64,
                rate / (1 << 20) as f64,
            );
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
