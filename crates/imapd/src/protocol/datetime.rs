//! IMAP dates: `date-time` (`"21-Nov-2026 12:00:00 +0000"`) and SEARCH's `date`.

use super::types::{Date, DateTime};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn month_from(s: &[u8]) -> Option<u8> {
    MONTHS
        .iter()
        .position(|m| m.as_bytes().eq_ignore_ascii_case(s))
        .map(|i| i as u8 + 1)
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// Parses `date-text` (`1-Feb-1994`), without quotes.
pub fn parse_date(s: &[u8]) -> Option<Date> {
    let mut parts = s.split(|&b| b == b'-');
    let day = parts.next()?;
    let month = month_from(parts.next()?)?;
    let year = parts.next()?;
    if parts.next().is_some() || day.len() > 2 || year.len() != 4 {
        return None;
    }
    let (day, year) = (digits(day)? as u8, digits(year)? as u16);
    (day >= 1 && day <= days_in_month(year, month)).then_some(Date { year, month, day })
}

/// Parses the inside of a `date-time` (26 bytes; the day may be ` 1` or `01`).
pub fn parse_date_time(s: &[u8]) -> Option<DateTime> {
    if s.len() != 26 || s[11] != b' ' || s[20] != b' ' || s[14] != b':' || s[17] != b':' {
        return None;
    }
    let day = if s[0] == b' ' { &s[1..2] } else { &s[0..2] };
    let date = parse_date(&[day, &s[2..11]].concat())?;
    let (hour, minute, second) = (
        digits(&s[12..14])?,
        digits(&s[15..17])?,
        digits(&s[18..20])?,
    );
    let sign = match s[21] {
        b'+' => 1i16,
        b'-' => -1,
        _ => return None,
    };
    let (zh, zm) = (digits(&s[22..24])?, digits(&s[24..26])?);
    if hour > 23 || minute > 59 || second > 60 || zh > 23 || zm > 59 {
        return None;
    }
    Some(DateTime {
        year: date.year,
        month: date.month,
        day: date.day,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        zone_minutes: sign * (zh * 60 + zm) as i16,
    })
}

/// Formats a `date-time` with its quotes: `"21-Nov-2026 12:00:00 +0000"`.
pub fn format_date_time(d: &DateTime) -> String {
    let sign = if d.zone_minutes < 0 { '-' } else { '+' };
    let z = d.zone_minutes.unsigned_abs();
    format!(
        "\"{:02}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}\"",
        d.day,
        MONTHS[usize::from(d.month.clamp(1, 12)) - 1],
        d.year,
        d.hour,
        d.minute,
        d.second,
        sign,
        z / 60,
        z % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let d = parse_date_time(b"21-Nov-2026 12:00:00 +0000").unwrap();
        assert_eq!(format_date_time(&d), "\"21-Nov-2026 12:00:00 +0000\"");
        let d = parse_date_time(b" 7-Feb-1994 21:52:25 -0800").unwrap();
        assert_eq!(d.zone_minutes, -480);
        assert_eq!(format_date_time(&d), "\"07-Feb-1994 21:52:25 -0800\"");
        assert_eq!(
            parse_date(b"1-feb-1994"),
            Some(Date {
                year: 1994,
                month: 2,
                day: 1
            })
        );
    }

    #[test]
    fn rejects_nonsense() {
        assert!(parse_date(b"30-Feb-2000").is_none());
        assert!(parse_date(b"1-Foo-2000").is_none());
        assert!(parse_date(b"1-Feb-20000").is_none());
        assert!(parse_date_time(b"21-Nov-2026 24:00:00 +0000").is_none());
        assert!(parse_date_time(b"21-Nov-2026 12:00:00 0000").is_none());
        assert!(parse_date_time(b"").is_none());
    }
}
