//! Text from outside (registries, helpers, files) made safe to print: no terminal escape
//! sequences or other control characters reach a user's terminal or a CI log.

/// `text` with every control character (escape, carriage return, newline, …) replaced by a
/// visible `\u{…}` escape; everything else kept.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            super::printable("ok \u{1b}[31mred\u{1b}[0m\r\nnext"),
            "ok \\u{1b}[31mred\\u{1b}[0m\\u{d}\\u{a}next"
        );
        assert_eq!(super::printable("plain: ünïcode"), "plain: ünïcode");
    }
}
