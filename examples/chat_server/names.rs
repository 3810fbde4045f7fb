//! Guards what members read: name rules, neutral default names, nicks
//! held for a while after they are freed, and chat text that cannot hide,
//! reorder or forge lines.
//!
//! Not protected: look-alike names (`aIice` for `alice`) and a message
//! padded with visible characters until the reader's terminal wraps it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a freed nick stays reserved for the address that held it.
pub const HOLD: Duration = Duration::from_secs(600);

/// The rule `/nick` enforces, as told to members.
pub const RULE: &str = "1-20 of A-Z a-z 0-9 _ -, not starting with \"guest\"";

/// The name a member has until `/nick`: `guest-7`, not its address.
pub fn guest(n: u64) -> String {
    format!("guest-{n}")
}

/// Checks a name for `/nick`: [`RULE`]. ASCII only, so no look-alike
/// scripts or direction marks; `guest…` belongs to the defaults.
pub fn valid(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !name.to_ascii_lowercase().starts_with("guest")
}

/// Unicode format characters (category Cf): bidi controls, zero-width
/// characters, the BOM, invisible operators, tags.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{AD}' | '\u{600}'..='\u{605}' | '\u{61C}' | '\u{6DD}' | '\u{70F}'
        | '\u{890}'..='\u{891}' | '\u{8E2}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{110BD}' | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
}

/// A member's text made safe to show: one trailing newline dropped;
/// control characters (Cc), format characters (Cf: bidi overrides,
/// zero-width), line and paragraph separators (Zl, Zp) refused; runs of
/// white space (which could push a fake `[alice] ...` onto a line of its
/// own) collapsed to one space, and the ends trimmed.
pub fn clean(raw: &str) -> Result<String, String> {
    let t = raw.strip_suffix('\n').unwrap_or(raw);
    let t = t.strip_suffix('\r').unwrap_or(t);
    let refuse = |what: &str, c: char| {
        Err(format!(
            "! refused: {what} (U+{:04X}) are not allowed",
            c as u32
        ))
    };
    for c in t.chars() {
        if c.is_control() && c != '\t' {
            return refuse("control characters (newlines...)", c);
        }
        if is_format(c) {
            return refuse("invisible or direction-changing characters", c);
        }
        if matches!(c, '\u{2028}' | '\u{2029}') {
            return refuse("line and paragraph separators", c);
        }
    }
    Ok(t.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Nicks recently freed (by `/quit`, an idle drop or a rename), each
/// reserved for the IP that held it until [`HOLD`] has passed.
#[derive(Debug, Default)]
pub struct Held(HashMap<String, (IpAddr, Instant)>);

impl Held {
    /// `name`, freed by a member from `ip`, is reserved for that IP.
    pub fn hold(&mut self, name: &str, ip: IpAddr, now: Instant) {
        if valid(name) {
            self.0.insert(name.to_ascii_lowercase(), (ip, now));
        }
    }

    /// Whether a member from `ip` may take `name` now; if so the hold ends.
    pub fn take(&mut self, name: &str, ip: IpAddr, now: Instant) -> bool {
        let key = name.to_ascii_lowercase();
        match self.0.get(&key) {
            Some(&(owner, since)) if owner != ip && now.duration_since(since) < HOLD => false,
            _ => {
                self.0.remove(&key);
                true
            }
        }
    }

    /// Forgets holds that have expired.
    pub fn sweep(&mut self, now: Instant) {
        self.0
            .retain(|_, (_, since)| now.duration_since(*since) < HOLD);
    }
}
