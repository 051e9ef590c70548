//! `format` helpers: the UUID check registered with jsonschema, and the pydantic-style
//! reasons ("month value is outside expected range of 1-12") appended to format errors.
//!
//! jsonschema only says *that* a value is not a `date`; clients of a pydantic-compatible API
//! expect to be told *why*, so the reason is recomputed here, only on the error path.

/// The regex pydantic/email-validator style errors cite for a bad `email` (as in the fixtures).
pub(crate) const EMAIL_PATTERN: &str = r"^[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$";

/// UUID text as pydantic (the `uuid` crate) accepts it: hyphenated, simple (32 hex digits),
/// `{braced}` or `urn:uuid:` prefixed. Registered for every draft, since jsonschema only
/// knows `uuid` from draft 2019-09 on and schemas written for draft 7 still mean it.
pub(crate) fn is_uuid(text: &str) -> bool {
    let body = text
        .strip_prefix("urn:uuid:")
        .or_else(|| text.strip_prefix('{').and_then(|t| t.strip_suffix('}')))
        .unwrap_or(text);
    let bytes = body.as_bytes();
    match bytes.len() {
        32 if body.len() == text.len() => bytes.iter().all(u8::is_ascii_hexdigit),
        36 => bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        }),
        _ => false,
    }
}

/// An ISO 8601 duration as the decoders behind the host take it (msgspec, pydantic):
/// `P1DT2H30M`, and also signed (`-P1D`) and with a fractional last unit (`PT1.5S`), which
/// the strict RFC 3339 grammar of jsonschema's `duration` refuses. Registered for the
/// `duration` format so the host never refuses a duration the handler's decoder takes; the
/// decoder still refuses what it does not (msgspec has no years, months or weeks).
pub(crate) fn is_duration(text: &str) -> bool {
    let text = text.strip_prefix(['+', '-']).unwrap_or(text);
    let Some(rest) = text.strip_prefix('P') else {
        return false;
    };
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    let date_units = duration_units(date, &['Y', 'M', 'W', 'D']);
    let time_units = match time {
        Some(time) => match duration_units(time, &['H', 'M', 'S']) {
            Some(0) | None => return false, // `P1DT`: a time part needs a unit
            units => units,
        },
        None => Some(0),
    };
    matches!((date_units, time_units), (Some(d), Some(t)) if d + t > 0)
}

/// How many `<number><unit>` components `part` is, units in `order` and each at most once;
/// only the last may have a fraction (`1.5`, `1,5`). `None` when it is not such a list.
fn duration_units(part: &str, order: &[char]) -> Option<usize> {
    let mut next_unit = 0;
    let mut count = 0;
    let mut rest = part;
    let mut fractional = false;
    while !rest.is_empty() {
        if fractional {
            return None;
        }
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
            .unwrap_or(rest.len());
        let number = &rest[..digits];
        let (whole, fraction) = match number.split_once(['.', ',']) {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (number, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if let Some(fraction) = fraction {
            if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            fractional = true;
        }
        let unit = rest[digits..].chars().next()?;
        let position = order[next_unit..].iter().position(|&u| u == unit)?;
        next_unit += position + 1;
        count += 1;
        rest = &rest[digits + unit.len_utf8()..];
    }
    Some(count)
}

/// Why `text` is not a UUID, in the `uuid` crate's words (what pydantic reports).
pub(crate) fn uuid_reason(text: &str) -> Option<String> {
    let (body, offset, simple) = if let Some(inner) = text.strip_prefix("urn:uuid:") {
        (inner, "urn:uuid:".len(), false)
    } else if let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        (inner, 1, false)
    } else {
        (text, 0, true)
    };
    for (index, c) in body.char_indices() {
        if c != '-' && !c.is_ascii_hexdigit() {
            return Some(format!(
                "invalid character: expected an optional prefix of `urn:uuid:` followed by \
                 [0-9a-fA-F-], found `{c}` at {}",
                index + offset
            ));
        }
    }
    let groups: Vec<usize> = body.split('-').map(str::len).collect();
    if groups.len() == 1 && simple {
        return (body.len() != 32).then(|| {
            format!(
                "invalid length: expected length 32 for simple format, found {}",
                body.len()
            )
        });
    }
    if groups.len() != 5 {
        return Some(format!(
            "invalid group count: expected 5, found {}",
            groups.len()
        ));
    }
    const EXPECTED: [usize; 5] = [8, 4, 4, 4, 12];
    groups
        .iter()
        .zip(EXPECTED)
        .position(|(found, expected)| *found != expected)
        .map(|group| {
            format!(
                "invalid group length in group {group}: expected {}, found {}",
                EXPECTED[group], groups[group]
            )
        })
}

/// Why `text` is not a `YYYY-MM-DD` date (speedate wording, as pydantic reports).
pub(crate) fn date_reason(text: &str) -> Option<&'static str> {
    let b = text.as_bytes();
    date_prefix_reason(b).or_else(|| (b.len() > 10).then_some(EXTRA_CHARACTERS))
}

/// Why `text` is not an RFC 3339 date-time.
pub(crate) fn datetime_reason(text: &str) -> Option<&'static str> {
    let b = text.as_bytes();
    if let Some(reason) = date_prefix_reason(b) {
        return Some(reason);
    }
    match b.get(10) {
        None => Some("input is too short"),
        Some(b'T' | b't' | b'_' | b' ') => time_reason(&b[11..]),
        Some(_) => Some("invalid datetime separator, expected `T`, `t`, `_` or space"),
    }
}

/// Why `text` is not an RFC 3339 full-time (`HH:MM:SS[.f](Z|±HH:MM)`).
pub(crate) fn time_text_reason(text: &str) -> Option<&'static str> {
    time_reason(text.as_bytes())
}

const EXTRA_CHARACTERS: &str = "unexpected extra characters at the end of the input";

fn two_digits(b: &[u8], at: usize) -> Option<u32> {
    match (b.get(at), b.get(at + 1)) {
        (Some(h @ b'0'..=b'9'), Some(l @ b'0'..=b'9')) => {
            Some(u32::from(h - b'0') * 10 + u32::from(l - b'0'))
        }
        _ => None,
    }
}

fn date_prefix_reason(b: &[u8]) -> Option<&'static str> {
    if b.len() < 10 {
        return Some("input is too short");
    }
    if !b[..4].iter().all(u8::is_ascii_digit) {
        return Some("invalid character in year");
    }
    if b[4] != b'-' || b[7] != b'-' {
        return Some("invalid date separator, expected `-`");
    }
    let Some(month) = two_digits(b, 5) else {
        return Some("invalid character in month");
    };
    let Some(day) = two_digits(b, 8) else {
        return Some("invalid character in day");
    };
    if !(1..=12).contains(&month) {
        return Some("month value is outside expected range of 1-12");
    }
    let year: u32 = b[..4].iter().fold(0, |y, d| y * 10 + u32::from(d - b'0'));
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=days).contains(&day) {
        return Some("day value is outside expected range");
    }
    None
}

fn time_reason(b: &[u8]) -> Option<&'static str> {
    if b.len() < 5 {
        return Some("input is too short");
    }
    let Some(hour) = two_digits(b, 0) else {
        return Some("invalid character in hour");
    };
    if b[2] != b':' {
        return Some("invalid time separator, expected `:`");
    }
    let Some(minute) = two_digits(b, 3) else {
        return Some("invalid character in minute");
    };
    if hour > 23 {
        return Some("hour value is outside expected range of 0-23");
    }
    if minute > 59 {
        return Some("minute value is outside expected range of 0-59");
    }
    let mut at = 5;
    if b.get(at) == Some(&b':') {
        let Some(second) = two_digits(b, at + 1) else {
            return Some("invalid character in second");
        };
        if second > 60 {
            return Some("second value is outside expected range of 0-59");
        }
        at += 3;
        if b.get(at) == Some(&b'.') {
            at += 1;
            let digits = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return Some("invalid character in second fraction");
            }
            at += digits;
        }
    }
    match b.get(at) {
        None => Some("timezone offset is required"),
        Some(b'Z' | b'z') => (b.len() > at + 1).then_some(EXTRA_CHARACTERS),
        Some(b'+' | b'-') => {
            if two_digits(b, at + 1).is_none()
                || b.get(at + 3) != Some(&b':')
                || two_digits(b, at + 4).is_none()
            {
                Some("invalid timezone hour or minute")
            } else {
                (b.len() > at + 6).then_some(EXTRA_CHARACTERS)
            }
        }
        Some(_) => Some("invalid timezone sign"),
    }
}

/// Why `text` is not an absolute URI (the `url` crate's wording for the common cases).
pub(crate) fn url_reason(text: &str) -> &'static str {
    if text.is_empty() {
        return "input is empty";
    }
    let scheme_ok = text.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if scheme_ok {
        "invalid character in URL"
    } else {
        "relative URL without a base"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_the_decoders_take_them() {
        for ok in [
            "P1D",
            "PT5M",
            "P1DT2H30M",
            "-P1DT2H",
            "+PT1S",
            "PT1.5S",
            "PT0,5S",
            "P1W",
            "P1Y2M3D",
            "PT36H",
        ] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in [
            "", "P", "PT", "P1DT", "1D", "P1", "PD", "P1S", "PT1D", "P1D1D", "PT1.5H2M", "P-1D",
            "P1.D", "P.5D", "1 day", "P1DTT1H", "PT1HM",
        ] {
            assert!(!is_duration(bad), "{bad}");
        }
    }

    #[test]
    fn uuid_forms() {
        assert!(is_uuid("c892496f-b1fd-4b91-bdb8-b46f92df1716"));
        assert!(is_uuid("c892496fb1fd4b91bdb8b46f92df1716"));
        assert!(is_uuid("{c892496f-b1fd-4b91-bdb8-b46f92df1716}"));
        assert!(is_uuid("urn:uuid:c892496f-b1fd-4b91-bdb8-b46f92df1716"));
        assert!(!is_uuid("{c892496fb1fd4b91bdb8b46f92df1716}"));
        assert!(!is_uuid("c892496f-b1fd-4b91-bdb8-b46f92df171"));
        assert!(!is_uuid("not-a-uuid"));
        assert!(!is_uuid("c892496f-b1fd-4b91-bdb8-b46f92df171é"));
    }

    #[test]
    fn uuid_reasons() {
        assert_eq!(
            uuid_reason("not-a-uuid").as_deref(),
            Some(
                "invalid character: expected an optional prefix of `urn:uuid:` followed by \
                 [0-9a-fA-F-], found `n` at 0"
            )
        );
        assert_eq!(
            uuid_reason("abc").as_deref(),
            Some("invalid length: expected length 32 for simple format, found 3")
        );
        assert_eq!(
            uuid_reason("abc-def").as_deref(),
            Some("invalid group count: expected 5, found 2")
        );
        assert_eq!(
            uuid_reason("c892496f-b1fd-4b91-bdb-b46f92df17160").as_deref(),
            Some("invalid group length in group 3: expected 4, found 3")
        );
        assert_eq!(uuid_reason("c892496f-b1fd-4b91-bdb8-b46f92df1716"), None);
    }

    #[test]
    fn date_and_time_reasons() {
        assert_eq!(
            date_reason("2025-13-45"),
            Some("month value is outside expected range of 1-12")
        );
        assert_eq!(
            date_reason("2023-02-29"),
            Some("day value is outside expected range")
        );
        assert_eq!(date_reason("2024-02-29"), None);
        assert_eq!(date_reason("15/01/2024"), Some("invalid character in year"));
        assert_eq!(date_reason("2024"), Some("input is too short"));
        assert_eq!(date_reason("2024-01-15x"), Some(EXTRA_CHARACTERS));
        assert_eq!(datetime_reason("2024-01-15T10:30:00Z"), None);
        assert_eq!(datetime_reason("2024-01-15T10:30:00.123+02:00"), None);
        assert_eq!(
            datetime_reason("2024-01-15T10:30:00"),
            Some("timezone offset is required")
        );
        assert_eq!(
            datetime_reason("2024-01-15T25:30:00Z"),
            Some("hour value is outside expected range of 0-23")
        );
        assert_eq!(
            datetime_reason("2024-01-15X10:30:00Z"),
            Some("invalid datetime separator, expected `T`, `t`, `_` or space")
        );
        assert_eq!(time_text_reason("1é:00"), Some("invalid character in hour"));
    }

    #[test]
    fn url_reasons() {
        assert_eq!(url_reason("not a uri"), "relative URL without a base");
        assert_eq!(
            url_reason("https://exa mple.com"),
            "invalid character in URL"
        );
        assert_eq!(url_reason(""), "input is empty");
    }
}
