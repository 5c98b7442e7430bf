//! Sizes as users type them: `8M`, `10G`, `512k`, `1048576`, `4MiB`.

use crate::error::{Error, Result};

/// The largest size hoist takes from a flag (1 TiB).
pub const MAX: u64 = 1 << 40;

/// Parses a whole number of bytes, optionally with K, M, G or T (powers of 1024, an optional
/// `B` or `iB` after it). Zero and anything above [`MAX`] are refused, without overflow.
pub fn parse(text: &str) -> Result<u64> {
    let invalid = || Error::invalid("size", text, "expected bytes or a whole number with K, M, G or T, e.g. 8M or 10G");
    let upper = text.trim().to_ascii_uppercase();
    let stripped = upper.strip_suffix("IB").or_else(|| upper.strip_suffix('B')).unwrap_or(&upper);
    let split = stripped.find(|c: char| !c.is_ascii_digit()).unwrap_or(stripped.len());
    let (number, unit) = stripped.split_at(split);
    let shift = match unit.trim() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(invalid()),
    };
    let number: u64 = number.parse().map_err(|_| invalid())?;
    match number.checked_mul(1 << shift) {
        Some(size) if size > 0 && size <= MAX => Ok(size),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn sizes_parse_and_overflow_is_refused() {
        assert_eq!(parse("8M").unwrap(), 8 << 20);
        assert_eq!(parse("512k").unwrap(), 512 << 10);
        assert_eq!(parse("4MiB").unwrap(), 4 << 20);
        assert_eq!(parse("1048576").unwrap(), 1 << 20);
        assert_eq!(parse("1T").unwrap(), 1 << 40);
        for bad in ["0", "", "lots", "-1M", "1.5G", "18446744073709551615", "99999999999999G", "2T", "8X"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
