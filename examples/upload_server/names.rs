//! Guards the file name a client sends: it must name one plain file in the
//! upload directory, and printing it must not forge output or reach the
//! operator's terminal as escape sequences.
//!
//! Always refused: empty, longer than 255 bytes, `.`/`..`, `/`, `\`, NUL,
//! control and format characters (Unicode Cc, Cf, Zl, Zp: newlines, escape
//! sequences, bidi overrides, zero-width characters) and the server's own
//! temporary-file prefix. In strict mode (the default) also: names not in
//! Unicode NFC, a leading `-` or `.`, look-alike slashes (`∕` U+2215, ...),
//! trailing dots or spaces, Windows device names (`CON`, `com1.txt`) and
//! the reserved prefix in any case.

use unicode_normalization::is_nfc;

/// Prefix of every temporary file the server keeps in its directory.
pub const RESERVED_PREFIX: &str = ".upload-";

/// Why `name` is refused, or `None` if it may be stored.
pub fn check(name: &str, strict: bool) -> Option<String> {
    if let Some(why) = basic(name) {
        return Some(why.to_string());
    }
    if let Some(c) = name.chars().find(|&c| is_hidden(c)) {
        return Some(format!(
            "file name may not contain control or format characters (U+{:04X})",
            c as u32
        ));
    }
    if strict {
        return strict_check(name).map(str::to_string);
    }
    None
}

fn basic(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("file name is empty")
    } else if name.len() > 255 {
        Some("file name is longer than 255 bytes")
    } else if name == "." || name == ".." {
        Some("file name may not be . or ..")
    } else if name.contains(['/', '\\']) {
        Some("file name may not contain a path separator")
    } else if name.contains('\0') {
        Some("file name may not contain NUL")
    } else if name.starts_with(RESERVED_PREFIX) {
        Some("file names starting with .upload- are reserved")
    } else {
        None
    }
}

/// Characters that look like a path separator.
const SLASHES: &[char] = &[
    '\u{2215}', '\u{2044}', '\u{FF0F}', '\u{29F8}', '\u{2216}', '\u{FF3C}', '\u{29F9}',
];

/// Names Windows reserves for devices, with or without an extension.
const DEVICES: &[&str] = &[
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

fn strict_check(name: &str) -> Option<&'static str> {
    let stem = name.split('.').next().unwrap_or("").trim_end();
    if !is_nfc(name) {
        Some("file name must be in Unicode NFC form")
    } else if name.starts_with(['-', '.']) {
        Some("file name may not start with - or . (strict names)")
    } else if name.ends_with(['.', ' ']) {
        Some("file name may not end with a dot or a space (strict names)")
    } else if name.contains(SLASHES) {
        Some("file name may not contain a character that looks like a slash")
    } else if DEVICES.contains(&stem.to_ascii_lowercase().as_str()) {
        Some("file name is a reserved device name")
    } else if name.to_lowercase().starts_with(RESERVED_PREFIX) {
        Some("file names starting with .upload- are reserved")
    } else {
        None
    }
}

/// Unicode Cc, Cf, Zl and Zp: characters that do not print as themselves.
pub fn is_hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_format(c)
}

/// Unicode general category Cf (format), Unicode 15.
fn is_format(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// `name` for a log or stdout line: hidden characters and backslashes as
/// `\u{..}` escapes, everything else as is (checked names have none, so
/// this only matters for names being refused).
pub fn escape(name: &str) -> String {
    name.chars()
        .map(|c| {
            if is_hidden(c) || c == '\\' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
