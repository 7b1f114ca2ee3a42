//! Text from outside (a device, a camera, an agency) made safe to log and to store.
//!
//! A tamper detail is whatever the device sent: with terminal escape codes in it, a log line
//! read in a terminal could move the cursor, rewrite earlier lines or retitle the window, and
//! the same text stored in an incident's audit reaches operators' terminals through the CLI.
//! [`printable`] keeps every ordinary character (accents included) and writes control
//! characters and the bidirectional overrides (which can make a line read backwards) as
//! visible `\u{..}` escapes.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a log or a terminal as is.
fn unsafe_char(c: char) -> bool {
    // C0 (escape, carriage return, backspace, newline...), DEL and C1 controls; the Unicode
    // bidirectional embeddings, overrides and isolates.
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with control and bidirectional-override characters escaped; borrowed when there
/// is none (the common case costs no allocation).
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_codes_become_visible_and_ordinary_text_is_untouched() {
        assert!(matches!(
            printable("puerta forzada, niño"),
            Cow::Borrowed(_)
        ));
        let hostile = "ok\u{1b}[2J\u{1b}]0;pwned\u{7}\r\nfake line\u{202E}txet";
        let shown = printable(hostile);
        assert_eq!(
            shown,
            "ok\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{d}\\u{a}fake line\\u{202e}txet"
        );
        assert!(!shown.chars().any(unsafe_char));
        assert_eq!(
            printable("\u{9b}31m"),
            "\\u{9b}31m",
            "a C1 control sequence introducer"
        );
    }
}
