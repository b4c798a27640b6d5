//! `Date:` values: RFC 5322 3.3 and the obsolete forms of 4.3, which old
//! and careless mailers still write (two- and three-digit years, named and
//! military zones, comments anywhere, no day of the week, no seconds).
//!
//! Also taken, because real mail has them and nothing is lost by reading
//! them: a day name without its comma, one-digit hours and minutes, `.`
//! between hour, minute and second, `+hh:mm` zones, a missing zone (read
//! as `-0000`) and anything after the zone.

/// The instant a `Date:` value names, in seconds since the epoch, and the
/// zone it was written in, in minutes east of UTC. `None` when the value is
/// not a date.
pub(crate) fn parse_date(value: &[u8]) -> Option<(i64, i32)> {
    let tokens = lex(value)?;
    let mut t = tokens.iter().peekable();

    if let Some(Token::Word(w)) = t.peek() {
        if weekday(w) {
            t.next();
            if t.peek() == Some(&&Token::Sym(b',')) {
                t.next();
            }
        }
    }
    let day = match t.next()? {
        Token::Num {
            value,
            digits: 1..=2,
        } => *value,
        _ => return None,
    };
    let month = match t.next()? {
        Token::Word(w) => month(w)?,
        _ => return None,
    };
    let year = match t.next()? {
        // RFC 5322 4.3: two digits are 2000-2049 below 50, 1950-1999 from
        // 50; three digits are added to 1900.
        Token::Num { value, digits: 2 } if *value < 50 => 2000 + value,
        Token::Num { value, digits: 2 } => 1900 + value,
        Token::Num { value, digits: 3 } => 1900 + value,
        Token::Num { value, digits: 4.. } => *value,
        _ => return None,
    };
    let hour = two_digits(t.next()?)?;
    if !matches!(t.next()?, Token::Sym(b':' | b'.')) {
        return None;
    }
    let minute = two_digits(t.next()?)?;
    let mut second = 0;
    if let Some(Token::Sym(b':' | b'.')) = t.peek() {
        t.next();
        second = two_digits(t.next()?)?;
    }
    let zone = match t.next() {
        None => 0,
        Some(Token::Sym(sign @ (b'+' | b'-'))) => {
            let (hours, minutes) = match t.next()? {
                Token::Num { value, digits: 4 } => (value / 100, value % 100),
                Token::Num { value, digits: 2 } => {
                    if t.next()? != &Token::Sym(b':') {
                        return None;
                    }
                    (*value, two_digits(t.next()?)?)
                }
                _ => return None,
            };
            if minutes > 59 {
                return None;
            }
            let z = i32::try_from(hours * 60 + minutes).ok()?;
            if *sign == b'-' {
                -z
            } else {
                z
            }
        }
        Some(Token::Word(w)) => named_zone(w),
        Some(_) => return None,
    };

    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
        || year > 9999
    {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let local = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some((local - i64::from(zone) * 60, zone))
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Num {
        value: u32,
        digits: usize,
    },
    /// Letters, lower-cased.
    Word(String),
    Sym(u8),
}

/// Splits a value into numbers, words and symbols, dropping blanks and
/// comments (nested, with quoted pairs). `None` for an unclosed comment or
/// a number too long to be part of a date.
fn lex(value: &[u8]) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if b.is_ascii_whitespace() {
            i += 1;
        } else if b == b'(' {
            let mut depth = 0usize;
            loop {
                match value.get(i)? {
                    b'\\' => i += 1,
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        } else if b.is_ascii_digit() {
            let start = i;
            while i < value.len() && value[i].is_ascii_digit() {
                i += 1;
            }
            if i - start > 9 {
                return None;
            }
            let text = std::str::from_utf8(&value[start..i]).ok()?;
            out.push(Token::Num {
                value: text.parse().ok()?,
                digits: i - start,
            });
        } else if b.is_ascii_alphabetic() {
            let start = i;
            while i < value.len() && value[i].is_ascii_alphabetic() {
                i += 1;
            }
            out.push(Token::Word(
                String::from_utf8_lossy(&value[start..i]).to_ascii_lowercase(),
            ));
        } else {
            out.push(Token::Sym(b));
            i += 1;
        }
    }
    Some(out)
}

fn two_digits(t: &Token) -> Option<u32> {
    match t {
        Token::Num {
            value,
            digits: 1..=2,
        } => Some(*value),
        _ => None,
    }
}

fn weekday(w: &str) -> bool {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].contains(&w)
}

fn month(w: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    MONTHS.iter().position(|m| *m == w).map(|i| i as u32 + 1)
}

/// RFC 5322 4.3: the North American zones have their meaning; UT and GMT
/// are UTC; the military letters (whose signs RFC 822 got backwards) and
/// any other name are "-0000", an unknown zone, read as UTC.
fn named_zone(w: &str) -> i32 {
    match w {
        "edt" => -4 * 60,
        "est" | "cdt" => -5 * 60,
        "cst" | "mdt" => -6 * 60,
        "mst" | "pdt" => -7 * 60,
        "pst" => -8 * 60,
        _ => 0,
    }
}

fn leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(value: &str) -> Option<(i64, i32)> {
        parse_date(value.as_bytes())
    }

    /// 2020-02-05 10:00 UTC.
    const FEB5: i64 = 1_580_896_800;

    #[test]
    fn rfc5322_dates() {
        assert_eq!(at("Wed, 05 Feb 2020 10:00:00 +0000"), Some((FEB5, 0)));
        assert_eq!(
            at("Tue, 1 Jul 2003 10:52:37 +0200"),
            Some((1_057_049_557, 120))
        );
        assert_eq!(
            at("Fri, 21 Nov 1997 09:55:06 -0600"),
            Some((880_127_706, -360))
        );
        assert_eq!(at("5 Feb 2020 10:00:00 -0000"), Some((FEB5, 0)));
        assert_eq!(
            at("29 Feb 2020 00:00:00 +0000").map(|d| d.0),
            Some(1_582_934_400)
        );
    }

    /// The dates of issue 10: no seconds with a named zone, and a
    /// two-digit year.
    #[test]
    fn obsolete_forms_of_rfc5322_4_3() {
        assert_eq!(
            at("Thu, 5 Feb 2020 10:00 EST"),
            Some((FEB5 + 5 * 3600, -300))
        );
        assert_eq!(at("1 Jan 70 00:00 GMT"), Some((0, 0)));
        assert_eq!(at("1 Jan 49 00:00 UT").map(|d| d.0), Some(2_493_072_000));
        assert_eq!(at("1 Jan 50 00:00 UT").map(|d| d.0), Some(-631_152_000));
        assert_eq!(at("5 Feb 120 10:00 +0000"), Some((FEB5, 0)));
        // Military zones and unknown names are "-0000".
        assert_eq!(at("Wed, 05 Feb 2020 10:00:00 A"), Some((FEB5, 0)));
        assert_eq!(at("5 Feb 2020 10:00:00 Z"), Some((FEB5, 0)));
        assert_eq!(at("5 Feb 2020 10:00:00 XYZ"), Some((FEB5, 0)));
        assert_eq!(at("5 Feb 2020 02:00:00 PST"), Some((FEB5, -480)));
        assert_eq!(at("5 Feb 2020 06:00:00 EDT"), Some((FEB5, -240)));
        // Comments anywhere, blanks around the colons.
        assert_eq!(
            at("(c) Wed, (x) 5 (y) Feb 2020 11 : 00 : 00 +0100 (CET)"),
            Some((FEB5, 60))
        );
        assert_eq!(at("Wed , 5 Feb 2020 10:00:00 +0000"), Some((FEB5, 0)));
    }

    #[test]
    fn lenient_but_harmless() {
        assert_eq!(at("Wed 5 Feb 2020 10:00:00 +0000"), Some((FEB5, 0)));
        assert_eq!(at("5 Feb 2020 10:00:00"), Some((FEB5, 0)));
        assert_eq!(at("5 feb 2020 9:0:0 -0100"), Some((FEB5, -60)));
        assert_eq!(at("5 Feb 2020 10.00.00 +0000"), Some((FEB5, 0)));
        assert_eq!(at("5 Feb 2020 11:00:00 +01:00"), Some((FEB5, 60)));
        assert_eq!(at("5 Feb 2020 11:00:00 +0100 CET"), Some((FEB5, 60)));
    }

    #[test]
    fn not_dates() {
        for bad in [
            "",
            "yesterday",
            "5-Feb-2020 10:00:00 +0000",
            "30 Feb 2020 10:00:00 +0000",
            "5 Feb 2020 24:00:00 +0000",
            "5 Feb 2020 10:60:00 +0000",
            "5 Feb 2020 10:00:00 +0160",
            "5 Foo 2020 10:00:00 +0000",
            "5 Feb 7 10:00:00 +0000",
            "5 Feb 2020",
            "5 Feb 2020 10:00:00 (unclosed",
            "5 Feb 99999999999 10:00 +0000",
            "5 Feb 2020 10:00:00 +00000",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }
}
