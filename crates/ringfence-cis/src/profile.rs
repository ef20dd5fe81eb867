//! Expected-failure profiles and waivers.
//!
//! A profile (such as `tkg-1.5`) pins a benchmark and lists the checks a
//! platform is known to fail, each with the platform's explanation and a
//! remediation. A waiver file lists checks a team has accepted to fail, each
//! with a reason, an owner and an expiry date; once the date has passed the
//! waiver no longer covers the failure, so it counts as a failure again.

use crate::benchmark::{yaml_error, Benchmark};
use ringfence_diag::{closest, InputError, InputErrors};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::fmt;

/// Profiles built into ringfence: (name, YAML text).
pub const EMBEDDED: [(&str, &str); 1] =
    [("tkg-1.5", include_str!("../../../profiles/tkg-1.5.yaml"))];

/// A check a profile expects to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedFailure {
    /// The check id.
    pub id: String,
    /// Why the platform fails it.
    pub explanation: String,
    /// What can be done about it.
    pub remediation: String,
}

/// An expected-failure profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The profile's name (`tkg-1.5`).
    pub name: String,
    /// What it describes.
    pub title: String,
    /// The benchmark it pins.
    pub benchmark: String,
    /// The expected failures.
    pub expected: Vec<ExpectedFailure>,
}

/// A calendar date (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// Year.
    pub year: i32,
    /// Month, 1-12.
    pub month: u32,
    /// Day, 1-31.
    pub day: u32,
}

impl Date {
    /// Parse `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Date> {
        let mut it = s.trim().splitn(3, '-');
        let (y, m, d) = (it.next()?, it.next()?, it.next()?);
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        let date = Date {
            year: y.parse().ok()?,
            month: m.parse().ok()?,
            day: d.parse().ok()?,
        };
        let leap = date.year % 4 == 0 && (date.year % 100 != 0 || date.year % 400 == 0);
        let days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        (date.month >= 1
            && date.month <= 12
            && date.day >= 1
            && date.day <= days[date.month as usize - 1])
            .then_some(date)
    }

    /// Today's date in UTC.
    pub fn today() -> Date {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Date::from_days((secs / 86_400) as i64)
    }

    /// The date `days` after 1970-01-01 (civil-from-days).
    pub fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// An accepted failure with an owner and an end date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiver {
    /// The check id.
    pub id: String,
    /// Why the failure is accepted.
    pub reason: String,
    /// Who answers for it.
    pub owner: String,
    /// The last day the waiver holds.
    pub expires: Date,
}

impl Waiver {
    /// Whether the waiver has run out on `today` (it holds through its
    /// expiry date).
    pub fn expired(&self, today: Date) -> bool {
        today > self.expires
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    profile: String,
    title: String,
    benchmark: String,
    expected_failures: Vec<RawExpected>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpected {
    id: Spanned<String>,
    explanation: String,
    remediation: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaivers {
    waivers: Vec<RawWaiver>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaiver {
    id: Spanned<String>,
    reason: String,
    owner: String,
    expires: Spanned<String>,
}

fn unknown_id(file: &str, id: &Spanned<String>, bench: &Benchmark) -> InputError {
    let mut e = InputError::at(
        file,
        id.referenced.line(),
        id.referenced.column(),
        format!("check {:?} does not exist in {}", id.value, bench.name),
    );
    if let Some(c) = closest(&id.value, bench.checks().map(|c| c.id.as_str())) {
        e = e.with_help(format!("did you mean {c}?"));
    }
    e
}

impl Profile {
    /// A built-in profile by name.
    pub fn embedded(name: &str) -> Option<(String, &'static str)> {
        EMBEDDED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, t)| (format!("profiles/{n}.yaml"), *t))
    }

    /// Parse a profile; its ids are checked against its own benchmark.
    pub fn parse(file: &str, text: &str) -> Result<Profile, InputErrors> {
        let raw: RawProfile = serde_saphyr::from_str(text).map_err(|e| yaml_error(file, &e))?;
        let bench = Benchmark::embedded(&raw.benchmark).map_err(|e| {
            InputErrors::from(InputError::whole(
                file,
                format!("profile pins {}", e.message),
            ))
        })?;
        let mut errors = Vec::new();
        for x in &raw.expected_failures {
            if bench.check(&x.id.value).is_none() {
                errors.push(unknown_id(file, &x.id, &bench));
            }
        }
        if !errors.is_empty() {
            return Err(InputErrors(errors));
        }
        Ok(Profile {
            name: raw.profile,
            title: raw.title,
            benchmark: raw.benchmark,
            expected: raw
                .expected_failures
                .into_iter()
                .map(|x| ExpectedFailure {
                    id: x.id.value,
                    explanation: x.explanation.trim().to_string(),
                    remediation: x.remediation.trim().to_string(),
                })
                .collect(),
        })
    }

    /// The expected failure for a check id.
    pub fn expected(&self, id: &str) -> Option<&ExpectedFailure> {
        self.expected.iter().find(|x| x.id == id)
    }
}

/// Parse a waiver file, checking its ids against the benchmark in use.
pub fn parse_waivers(
    file: &str,
    text: &str,
    bench: &Benchmark,
) -> Result<Vec<Waiver>, InputErrors> {
    let raw: RawWaivers = serde_saphyr::from_str(text).map_err(|e| yaml_error(file, &e))?;
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for w in raw.waivers {
        if bench.check(&w.id.value).is_none() {
            errors.push(unknown_id(file, &w.id, bench));
            continue;
        }
        let Some(expires) = Date::parse(&w.expires.value) else {
            errors.push(
                InputError::at(
                    file,
                    w.expires.referenced.line(),
                    w.expires.referenced.column(),
                    format!("expires {:?} is not a date", w.expires.value),
                )
                .with_help("write the last day the waiver holds as YYYY-MM-DD"),
            );
            continue;
        };
        if w.owner.trim().is_empty() || w.reason.trim().is_empty() {
            errors.push(InputError::at(
                file,
                w.id.referenced.line(),
                w.id.referenced.column(),
                format!(
                    "waiver for {} needs a non-empty reason and owner",
                    w.id.value
                ),
            ));
            continue;
        }
        out.push(Waiver {
            id: w.id.value,
            reason: w.reason.trim().to_string(),
            owner: w.owner.trim().to_string(),
            expires,
        });
    }
    if !errors.is_empty() {
        return Err(InputErrors(errors));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_strictly_and_days_convert() {
        assert_eq!(Date::parse("2026-02-28").unwrap().to_string(), "2026-02-28");
        assert!(Date::parse("2026-02-29").is_none());
        assert!(Date::parse("2024-02-29").is_some());
        assert!(Date::parse("2026-13-01").is_none());
        assert!(Date::parse("26-1-1").is_none());
        assert_eq!(Date::from_days(0).to_string(), "1970-01-01");
        assert_eq!(Date::from_days(20_454).to_string(), "2026-01-01");
    }

    #[test]
    fn a_waiver_holds_through_its_expiry_day() {
        let w = Waiver {
            id: "1.2.6".into(),
            reason: "r".into(),
            owner: "o".into(),
            expires: Date::parse("2026-06-30").unwrap(),
        };
        assert!(!w.expired(Date::parse("2026-06-30").unwrap()));
        assert!(w.expired(Date::parse("2026-07-01").unwrap()));
    }
}
