//! Budget periods in UTC: day, ISO week (from Monday), calendar month, or
//! all time. A period is identified by a number that grows with time, and
//! knows when it ends (for `retry-after` and reset times).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
    Total,
}

const DAY: u64 = 86_400;

impl Period {
    /// The id of the period containing `unix_secs`.
    pub fn id(self, unix_secs: u64) -> u64 {
        let days = unix_secs / DAY;
        match self {
            Period::Day => days,
            // 1970-01-01 was a Thursday; shifting by 3 days starts weeks on Monday.
            Period::Week => (days + 3) / 7,
            Period::Month => {
                let (y, m, _) = civil_from_days(days as i64);
                (y as u64) * 12 + (m as u64 - 1)
            }
            Period::Total => 0,
        }
    }

    /// Unix seconds at which the period `id` ends (`None` for all time).
    pub fn end(self, id: u64) -> Option<u64> {
        match self {
            Period::Day => Some((id + 1) * DAY),
            Period::Week => Some(((id + 1) * 7 - 3) * DAY),
            Period::Month => {
                let next = id + 1;
                let (y, m) = ((next / 12) as i64, (next % 12) as u32 + 1);
                Some(days_from_civil(y, m, 1) as u64 * DAY)
            }
            Period::Total => None,
        }
    }
}

/// Unix seconds as `2026-11-22T00:00:00Z`.
pub fn format_utc(secs: u64) -> String {
    let (y, m, d) = civil_from_days((secs / DAY) as i64);
    let s = secs % DAY;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31). Howard Hinnant's
/// algorithm ("chrono-Compatible Low-Level Date Algorithms").
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2026, 11, 21)), (2026, 11, 21));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        for z in (-1000..100_000).step_by(37) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn periods_start_and_end_where_people_expect() {
        // 2026-11-21 is a Saturday.
        let sat = days_from_civil(2026, 11, 21) as u64 * DAY + 3600;
        let mon = days_from_civil(2026, 11, 23) as u64 * DAY;
        assert_eq!(Period::Week.end(Period::Week.id(sat)), Some(mon));
        assert_eq!(Period::Week.id(mon), Period::Week.id(sat) + 1);
        let dec1 = days_from_civil(2026, 12, 1) as u64 * DAY;
        assert_eq!(Period::Month.end(Period::Month.id(sat)), Some(dec1));
        let jan1 = days_from_civil(2027, 1, 1) as u64 * DAY;
        assert_eq!(Period::Month.end(Period::Month.id(dec1)), Some(jan1));
        assert_eq!(Period::Day.end(Period::Day.id(sat)), Some(days_from_civil(2026, 11, 22) as u64 * DAY));
        assert_eq!(Period::Total.end(Period::Total.id(sat)), None);
    }
}
