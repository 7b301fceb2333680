//! RFC 3339 timestamps in UTC: strict parsing of event times and the
//! millisecond form the server writes into `logged_at`.

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_millis(unix_millis: i64) -> String {
    let secs = unix_millis.div_euclid(1000);
    let ms = unix_millis.rem_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86400));
    let sod = secs.rem_euclid(86400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Parses an RFC 3339 date-time in UTC (`Z` or `+00:00`) into Unix
/// milliseconds (fractions below a millisecond are truncated). The error
/// says which part is wrong.
pub fn parse_utc_millis(s: &str) -> Result<i64, &'static str> {
    parse_utc_millis_bytes(s.as_bytes())
}

/// [`parse_utc_millis`] on bytes (what a scanner holds before it has a
/// `&str`); any byte outside the grammar is refused.
pub fn parse_utc_millis_bytes(b: &[u8]) -> Result<i64, &'static str> {
    let digits = |r: std::ops::Range<usize>| -> Result<u32, &'static str> {
        let part = b.get(r).ok_or("too short for YYYY-MM-DDTHH:MM:SSZ")?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err("expected YYYY-MM-DDTHH:MM:SS[.fraction]Z");
        }
        Ok(part.iter().fold(0u32, |a, &c| a * 10 + (c - b'0') as u32))
    };
    if b.len() < 20 {
        return Err("too short for YYYY-MM-DDTHH:MM:SSZ");
    }
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err("expected YYYY-MM-DDTHH:MM:SS[.fraction]Z");
    }
    let (y, mo, d) = (digits(0..4)? as i64, digits(5..7)?, digits(8..10)?);
    let (h, mi, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return Err("date is not a valid calendar date");
    }
    if h > 23 || mi > 59 || sec > 60 {
        return Err("time of day is out of range");
    }
    let mut i = 19;
    let mut millis = 0u32;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + (b[i] - b'0') as u32;
            }
            i += 1;
        }
        if i == start {
            return Err("fraction of a second needs at least one digit");
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    match &b[i..] {
        b"Z" | b"z" | b"+00:00" => {}
        b"" => return Err("missing time zone; use Z"),
        _ => return Err("time must be in UTC (Z or +00:00)"),
    }
    let secs =
        days_from_civil(y, mo, d) * 86400 + h as i64 * 3600 + mi as i64 * 60 + sec.min(59) as i64;
    Ok(secs * 1000 + millis as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let ms = parse_utc_millis("2026-06-20T14:07:31.120Z").unwrap();
        assert_eq!(ms, 1_781_964_451_120);
        assert_eq!(format_millis(ms), "2026-06-20T14:07:31.120Z");
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            parse_utc_millis("2024-02-29T00:00:00+00:00").unwrap() % 1000,
            0
        );
        assert_eq!(parse_utc_millis("1970-01-01T00:00:00.9999Z"), Ok(999));
        for bad in [
            "2026-06-20 14:07:31Z",
            "2026-06-20T14:07:31",
            "2026-06-20T14:07:31+02:00",
            "2026-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-06-20T24:00:00Z",
            "2026-06-20T14:07:31.Z",
            "2026-06-20T14:07:31.1Zjunk",
        ] {
            assert!(parse_utc_millis(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000i64, -1, 0, 1, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
