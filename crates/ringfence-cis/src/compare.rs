//! Comparison operators with kube-bench's semantics.
//!
//! A benchmark test observes one keyword (a flag value, a config key, a file's
//! mode or owner) and compares it with an expected value. The observed value
//! is `None` when the keyword is absent. Every operator except `set` and
//! `unset` fails on an absent value. The rules follow kube-bench's documented
//! behaviour (`controls.md`) so that kube-bench definitions can be evaluated
//! with this module unchanged:
//!
//! - `eq` / `noteq`: string equality, except that an observed `true` or
//!   `false` is lower-cased first (`False` equals `false`).
//! - `gt`, `gte`, `lt`, `lte`: both sides must be integers; anything else
//!   fails and says which side is not a number.
//! - `has` / `nothave`: substring containment.
//! - `regex`: the observed value matches the expected regular expression.
//! - `valid_elements`: every comma-separated element of the observed value is
//!   one of the comma-separated expected elements. A trailing comma and spaces
//!   around elements are ignored. Two empty lists agree; an empty list never
//!   agrees with a non-empty one.
//! - `bitmask`: both sides are octal modes and the observed mode grants no bit
//!   the expected mode withholds (600 passes 644; 666 fails 644).
//! - `set` / `unset`: the keyword is present / absent; the value is ignored.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal (booleans case-insensitively).
    Eq,
    /// Not equal (booleans case-insensitively).
    #[serde(rename = "noteq")]
    NotEq,
    /// Integer greater than.
    Gt,
    /// Integer greater than or equal.
    Gte,
    /// Integer less than.
    Lt,
    /// Integer less than or equal.
    Lte,
    /// Contains the expected text.
    Has,
    /// Does not contain the expected text.
    #[serde(rename = "nothave")]
    NotHave,
    /// Matches the expected regular expression.
    Regex,
    /// Every observed element is in the expected list.
    ValidElements,
    /// The observed octal mode is no wider than the expected one.
    Bitmask,
    /// The keyword is present.
    Set,
    /// The keyword is absent.
    Unset,
}

impl Op {
    /// Every operator, in documentation order.
    pub const ALL: [Op; 13] = [
        Op::Eq,
        Op::NotEq,
        Op::Gt,
        Op::Gte,
        Op::Lt,
        Op::Lte,
        Op::Has,
        Op::NotHave,
        Op::Regex,
        Op::ValidElements,
        Op::Bitmask,
        Op::Set,
        Op::Unset,
    ];

    /// The operator's name as written in benchmark files.
    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::NotEq => "noteq",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Has => "has",
            Op::NotHave => "nothave",
            Op::Regex => "regex",
            Op::ValidElements => "valid_elements",
            Op::Bitmask => "bitmask",
            Op::Set => "set",
            Op::Unset => "unset",
        }
    }

    /// Parse an operator name.
    pub fn parse(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Whether the operator needs an expected value.
    pub fn needs_value(self) -> bool {
        !matches!(self, Op::Set | Op::Unset)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of one comparison: pass or fail, and why when it is not plain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the comparison holds.
    pub pass: bool,
    /// Why it failed when the reason is more than "the values differ"
    /// (absent keyword, not a number, bad pattern).
    pub reason: Option<String>,
}

impl Verdict {
    fn of(pass: bool) -> Self {
        Verdict { pass, reason: None }
    }
    fn fail(reason: impl Into<String>) -> Self {
        Verdict {
            pass: false,
            reason: Some(reason.into()),
        }
    }
}

/// Compare an observed value (`None` = absent) with the expected value.
pub fn compare(op: Op, actual: Option<&str>, expected: &str) -> Verdict {
    let actual = match (op, actual) {
        (Op::Set, Some(_)) | (Op::Unset, None) => return Verdict::of(true),
        (Op::Set, None) => return Verdict::fail("not set"),
        (Op::Unset, Some(v)) => return Verdict::fail(format!("set to {v:?}")),
        (_, None) => return Verdict::fail("not set"),
        (_, Some(a)) => a,
    };
    match op {
        Op::Eq => Verdict::of(equal(actual, expected)),
        Op::NotEq => Verdict::of(!equal(actual, expected)),
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => numeric(op, actual, expected),
        Op::Has => Verdict::of(actual.contains(expected)),
        Op::NotHave => Verdict::of(!actual.contains(expected)),
        Op::Regex => match regex::Regex::new(expected) {
            Ok(re) => Verdict::of(re.is_match(actual)),
            Err(e) => Verdict::fail(format!(
                "the pattern {expected:?} is not a valid regular expression: {e}"
            )),
        },
        Op::ValidElements => {
            let have = elements(actual);
            let allowed = elements(expected);
            if have.is_empty() && allowed.is_empty() {
                return Verdict::of(true);
            }
            if have.is_empty() || allowed.is_empty() {
                return Verdict::fail("one list is empty and the other is not");
            }
            match have.iter().find(|e| !allowed.contains(e)) {
                None => Verdict::of(true),
                Some(bad) => Verdict::fail(format!("{bad} is not an allowed element")),
            }
        }
        Op::Bitmask => {
            let Some(have) = octal(actual) else {
                return Verdict::fail(format!("{actual:?} is not an octal mode"));
            };
            let Some(limit) = octal(expected) else {
                return Verdict::fail(format!("{expected:?} is not an octal mode"));
            };
            if have & limit == have {
                Verdict::of(true)
            } else {
                Verdict::fail(format!(
                    "mode {actual} grants {:o}, which {expected} does not",
                    have & !limit
                ))
            }
        }
        Op::Set | Op::Unset => unreachable!("handled above"),
    }
}

/// kube-bench's equality: an observed `True`/`FALSE` is lower-cased before it
/// is compared; the expected side is taken as written.
fn equal(actual: &str, expected: &str) -> bool {
    let lower = actual.to_ascii_lowercase();
    if lower == "true" || lower == "false" {
        lower == expected
    } else {
        actual == expected
    }
}

fn numeric(op: Op, actual: &str, expected: &str) -> Verdict {
    let Ok(a) = actual.trim().parse::<i64>() else {
        return Verdict::fail(format!(
            "{actual:?} is not a number, so it cannot be compared with {op} {expected}"
        ));
    };
    let Ok(e) = expected.trim().parse::<i64>() else {
        return Verdict::fail(format!("the expected value {expected:?} is not a number"));
    };
    Verdict::of(match op {
        Op::Gt => a > e,
        Op::Gte => a >= e,
        Op::Lt => a < e,
        Op::Lte => a <= e,
        _ => unreachable!("numeric operators only"),
    })
}

/// Split a comma-separated list: spaces around elements and a trailing comma
/// are ignored; an empty or blank string is the empty list.
pub fn elements(s: &str) -> Vec<&str> {
    let s = s.trim().trim_end_matches(',');
    if s.trim().is_empty() {
        return Vec::new();
    }
    s.split(',').map(str::trim).collect()
}

fn octal(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(op: Op, a: Option<&str>, e: &str) -> bool {
        compare(op, a, e).pass
    }

    #[test]
    fn operator_names_round_trip() {
        for op in Op::ALL {
            assert_eq!(Op::parse(op.name()), Some(op));
        }
        assert_eq!(Op::parse("equals"), None);
    }

    #[test]
    fn eq_lower_cases_observed_booleans_and_compares_other_text_exactly() {
        assert!(pass(Op::Eq, Some("False"), "false"));
        assert!(pass(Op::Eq, Some("TRUE"), "true"));
        assert!(!pass(Op::Eq, Some("Node"), "node"));
        assert!(pass(Op::Eq, Some("127.0.0.1"), "127.0.0.1"));
        // Only the observed side is lower-cased, as in kube-bench.
        assert!(!pass(Op::Eq, Some("false"), "False"));
        assert!(pass(Op::NotEq, Some("false"), "False"));
        assert!(!pass(Op::NotEq, Some("FALSE"), "false"));
        assert!(pass(Op::NotEq, Some("1"), "0"));
    }

    #[test]
    fn every_value_operator_fails_on_an_absent_keyword_with_a_reason() {
        for op in Op::ALL.into_iter().filter(|o| o.needs_value()) {
            let v = compare(op, None, "x");
            assert!(!v.pass, "{op}");
            assert_eq!(v.reason.as_deref(), Some("not set"));
        }
        assert!(pass(Op::Set, Some(""), ""));
        assert!(!pass(Op::Set, None, ""));
        assert!(pass(Op::Unset, None, ""));
        assert!(!pass(Op::Unset, Some("true"), ""));
    }

    #[test]
    fn numeric_comparison_of_a_non_number_fails_with_a_reason() {
        let v = compare(Op::Gte, Some("thirty"), "30");
        assert!(!v.pass);
        assert!(v.reason.unwrap().contains("not a number"));
        let v = compare(Op::Lt, Some("5"), "x");
        assert!(!v.pass);
        assert!(v.reason.unwrap().contains("expected value"));
        assert!(pass(Op::Gte, Some("30"), "30"));
        assert!(!pass(Op::Gt, Some("30"), "30"));
        assert!(pass(Op::Gt, Some("31"), "30"));
        assert!(pass(Op::Lte, Some("-1"), "0"));
        assert!(!pass(Op::Lt, Some("0"), "0"));
    }

    #[test]
    fn bitmask_600_passes_644_and_666_fails_644() {
        assert!(pass(Op::Bitmask, Some("600"), "644"));
        assert!(pass(Op::Bitmask, Some("644"), "644"));
        assert!(pass(Op::Bitmask, Some("400"), "644"));
        let v = compare(Op::Bitmask, Some("666"), "644");
        assert!(!v.pass);
        assert!(v.reason.unwrap().contains("22"));
        assert!(!pass(Op::Bitmask, Some("700"), "644"));
        assert!(pass(Op::Bitmask, Some("700"), "700"));
        assert!(!pass(Op::Bitmask, Some("755"), "700"));
        assert!(!compare(Op::Bitmask, Some("rw-r--r--"), "644").pass);
        assert!(!compare(Op::Bitmask, Some("9"), "644").pass);
    }

    #[test]
    fn valid_elements_handles_empty_lists_and_trailing_separators() {
        assert!(pass(Op::ValidElements, Some(""), ""));
        assert!(!pass(Op::ValidElements, Some(""), "a,b"));
        assert!(!pass(Op::ValidElements, Some("a"), ""));
        assert!(pass(Op::ValidElements, Some("a,b,"), "a,b,c"));
        assert!(pass(Op::ValidElements, Some(" a , b"), "a,b"));
        let v = compare(Op::ValidElements, Some("a,d"), "a,b,c");
        assert!(!v.pass);
        assert_eq!(v.reason.as_deref(), Some("d is not an allowed element"));
    }

    #[test]
    fn has_nothave_and_regex_work_on_substrings_and_patterns() {
        assert!(pass(Op::Has, Some("Node,RBAC"), "RBAC"));
        assert!(!pass(Op::Has, Some("Node"), "RBAC"));
        assert!(pass(Op::NotHave, Some("Node,RBAC"), "AlwaysAllow"));
        assert!(!pass(Op::NotHave, Some("AlwaysAllow"), "AlwaysAllow"));
        assert!(pass(Op::Regex, Some("v1.22.5"), r"^v1\.\d+"));
        assert!(!pass(Op::Regex, Some("1.22"), r"^v1"));
        let v = compare(Op::Regex, Some("x"), "(");
        assert!(!v.pass && v.reason.unwrap().contains("not a valid regular expression"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// bitmask passes exactly when the observed mode sets no bit outside
        /// the expected one.
        #[test]
        fn bitmask_is_subset_of_bits(have in 0u32..0o1000, limit in 0u32..0o1000) {
            let v = compare(Op::Bitmask, Some(&format!("{have:o}")), &format!("{limit:o}"));
            prop_assert_eq!(v.pass, have & !limit == 0);
        }

        /// valid_elements passes exactly when every observed element is allowed.
        #[test]
        fn valid_elements_is_subset_of_elements(
            have in proptest::collection::vec("[a-c]", 1..4),
            allowed in proptest::collection::vec("[a-c]", 1..4),
        ) {
            let v = compare(Op::ValidElements, Some(&have.join(",")), &allowed.join(","));
            prop_assert_eq!(v.pass, have.iter().all(|h| allowed.contains(h)));
        }

        /// noteq is the negation of eq, and gt/lte, lt/gte are complements.
        #[test]
        fn complementary_operators_disagree(a in -50i64..50, b in -50i64..50) {
            let (a, b) = (a.to_string(), b.to_string());
            prop_assert_ne!(compare(Op::Eq, Some(&a), &b).pass, compare(Op::NotEq, Some(&a), &b).pass);
            prop_assert_ne!(compare(Op::Gt, Some(&a), &b).pass, compare(Op::Lte, Some(&a), &b).pass);
            prop_assert_ne!(compare(Op::Lt, Some(&a), &b).pass, compare(Op::Gte, Some(&a), &b).pass);
        }
    }
}
