//! Exact numbers: JSON numerals built from parameter text, and the range every number a
//! plugin receives stays within.
//!
//! serde_json runs with `arbitrary_precision`, so a [`Number`] keeps its digits as text and
//! an integer of any size reaches plugins exactly (a Python handler gets an `int`, not
//! `1e+23`). Parameters arrive as lax text (`+7`, `0123`, `1.`, `.5`, `1E3`); this module
//! rewrites it into JSON's grammar without a detour through `f64`, so nothing is rounded.

use serde_json::{Number, Value};

/// Most significant digits an integer may have: CPython's default limit for turning text
/// into an `int` (`sys.get_int_max_str_digits()`), so that every integer the host accepts,
/// a Python plugin can decode. Pydantic refuses longer ones as `int_parsing_size`.
pub const MAX_INT_DIGITS: usize = 4300;

/// Why a text is not an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotInteger {
    /// Not an integer numeral at all.
    Syntax,
    /// An integer with more than [`MAX_INT_DIGITS`] significant digits.
    TooLong,
}

/// A numeral cut into its parts, as written: `-12.50e+3` is `-`, `12`, `50`, `+3`.
struct Numeral<'t> {
    negative: bool,
    whole: &'t str,
    fraction: Option<&'t str>,
    exponent: Option<&'t str>,
}

fn all_digits(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit())
}

/// Splits `[+-]digits[.digits][(e|E)[+-]digits]`, either digit run before the exponent
/// possibly empty but not both (what Rust's `f64` parser accepts, minus `inf`/`nan`).
fn split(text: &str) -> Option<Numeral<'_>> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let fraction_digits = fraction.unwrap_or_default();
    if !all_digits(whole) || !all_digits(fraction_digits) {
        return None;
    }
    if whole.is_empty() && fraction_digits.is_empty() {
        return None;
    }
    if let Some(exponent) = exponent {
        let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        if digits.is_empty() || !all_digits(digits) {
            return None;
        }
    }
    Some(Numeral {
        negative,
        whole,
        fraction,
        exponent,
    })
}

/// Parses an integer the way pydantic does: surrounding whitespace, a sign and leading zeros
/// allowed, `"12.000"` accepted as 12; exact at any size up to [`MAX_INT_DIGITS`] digits.
pub(crate) fn integer(text: &str) -> Result<Number, NotInteger> {
    let text = text.trim();
    if let Ok(i) = text.parse::<i64>() {
        return Ok(i.into());
    }
    if let Ok(u) = text.parse::<u64>() {
        return Ok(u.into());
    }
    let numeral = split(text).ok_or(NotInteger::Syntax)?;
    let whole_number = numeral
        .fraction
        .is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b == b'0'));
    if numeral.whole.is_empty() || numeral.exponent.is_some() || !whole_number {
        return Err(NotInteger::Syntax);
    }
    let digits = numeral.whole.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0.into());
    }
    if digits.len() > MAX_INT_DIGITS {
        return Err(NotInteger::TooLong);
    }
    let sign = if numeral.negative { "-" } else { "" };
    format!("{sign}{digits}")
        .parse()
        .map_err(|_| NotInteger::Syntax)
}

/// Parses a finite number exactly as written: integer numerals stay integers (`"42"` is
/// `42`, not `42.0`), others keep their digits (`"0.10"` is `0.10`). A value beyond `f64`'s
/// range is refused, as no float could carry it.
pub(crate) fn number(text: &str) -> Option<Number> {
    let text = text.trim();
    if let Ok(i) = text.parse::<i64>() {
        return Some(i.into());
    }
    let numeral = split(text)?;
    let mut json = String::with_capacity(text.len() + 2);
    if numeral.negative {
        json.push('-');
    }
    match numeral.whole.trim_start_matches('0') {
        "" => json.push('0'),
        digits => json.push_str(digits),
    }
    if let Some(fraction) = numeral.fraction {
        json.push('.');
        json.push_str(if fraction.is_empty() { "0" } else { fraction });
    }
    if let Some(exponent) = numeral.exponent {
        json.push('e');
        json.push_str(exponent);
    }
    if !json.parse::<f64>().is_ok_and(f64::is_finite) {
        return None;
    }
    json.parse().ok()
}

/// Whether a JSON number is written as an integer (no fraction, no exponent).
pub(crate) fn is_integer(number: &Number) -> bool {
    !number.as_str().contains(['.', 'e', 'E'])
}

/// Whether a parsed JSON number is one a plugin may not be able to hold: an integer of more
/// than [`MAX_INT_DIGITS`] digits, or another number beyond `f64`'s range. Without
/// `arbitrary_precision` serde_json refused both as "number out of range"; bodies keep
/// that limit while integers in between now arrive exactly.
fn out_of_range(number: &Number) -> bool {
    let text = number.as_str();
    if is_integer(number) {
        return text.trim_start_matches('-').len() > MAX_INT_DIGITS;
    }
    // Without an exponent, a value needs 309 digits before the point to pass f64::MAX.
    (text.len() > 308 || text.contains(['e', 'E'])) && number.as_f64().is_none()
}

/// Finds a number in a JSON body that is out of range (see [`out_of_range`]), returning its
/// first characters for the error message.
pub fn find_out_of_range(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) if out_of_range(n) => {
            let text = n.as_str();
            Some(match text.char_indices().nth(24) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text.to_owned(),
            })
        }
        Value::Array(items) => items.iter().find_map(find_out_of_range),
        Value::Object(members) => members.values().find_map(find_out_of_range),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(text: &str) -> Result<String, NotInteger> {
        integer(text).map(|n| n.to_string())
    }

    fn num(text: &str) -> Option<String> {
        number(text).map(|n| n.to_string())
    }

    #[test]
    fn integers_are_exact_at_any_size() {
        assert_eq!(int("42"), Ok("42".into()));
        assert_eq!(int(" +0042 "), Ok("42".into()));
        assert_eq!(int("-0"), Ok("0".into()));
        assert_eq!(int("-000"), Ok("0".into()));
        assert_eq!(
            int("99999999999999999999999"),
            Ok("99999999999999999999999".into())
        );
        assert_eq!(
            int("-00099999999999999999999999.000"),
            Ok("-99999999999999999999999".into())
        );
        let big = "7".repeat(MAX_INT_DIGITS);
        assert_eq!(int(&big), Ok(big.clone()));
        assert_eq!(int(&format!("000{big}")), Ok(big.clone()));
        assert_eq!(int(&format!("{big}7")), Err(NotInteger::TooLong));
        for bad in [
            "", "-", "+", "1.5", "1.", ".0", "1e3", "0x10", "1_0", "١٢", "1 2",
        ] {
            assert_eq!(int(bad), Err(NotInteger::Syntax), "{bad:?}");
        }
        let n = integer("123456789012345678901234567890").unwrap();
        assert!(is_integer(&n) && !n.is_f64() && n.as_u64().is_none());
    }

    #[test]
    fn numbers_keep_their_digits() {
        assert_eq!(num("42"), Some("42".into()));
        assert_eq!(num("1.5"), Some("1.5".into()));
        assert_eq!(num("+01.50"), Some("1.50".into()));
        assert_eq!(num(".5"), Some("0.5".into()));
        assert_eq!(num("-1."), Some("-1.0".into()));
        assert_eq!(num("1E3"), Some("1e+3".into()));
        assert_eq!(num("1e300"), Some("1e+300".into()));
        assert_eq!(num("2.5e-3"), Some("2.5e-3".into()));
        assert_eq!(
            num("99999999999999999999999"),
            Some("99999999999999999999999".into())
        );
        assert_eq!(
            num("0.1000000000000000000000001"),
            Some("0.1000000000000000000000001".into())
        );
        for bad in [
            "", ".", "e5", "1e", "1e+", "inf", "NaN", "1e999", "1,5", "--1", "1.2.3",
        ] {
            assert_eq!(num(bad), None, "{bad:?}");
        }
        assert_eq!(num(&"9".repeat(400)), None, "beyond f64");
        assert!(number("1.5").unwrap().is_f64());
        assert_eq!(number("1.5").unwrap().as_f64(), Some(1.5));
    }

    #[test]
    fn bodies_keep_the_old_range() {
        let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        assert_eq!(
            find_out_of_range(&parse(
                r#"{"a": [1, 2.5, 1e300, -1e-400, 99999999999999999999999]}"#
            )),
            None
        );
        assert_eq!(
            find_out_of_range(&parse(r#"{"a": [1, {"b": 1.5e400}]}"#)),
            Some("1.5e+400".into())
        );
        let long = "9".repeat(MAX_INT_DIGITS);
        assert_eq!(find_out_of_range(&parse(&format!("[-{long}]"))), None);
        let too_long = parse(&format!("[{long}9]"));
        assert_eq!(
            find_out_of_range(&too_long),
            Some(format!("{}…", "9".repeat(24)))
        );
        let wide = format!("[{}.5]", "9".repeat(400));
        assert!(find_out_of_range(&parse(&wide)).is_some());
    }
}
