//! Judging a kube-bench check from its audit outputs, as kube-bench does.
//!
//! Order of decisions for a check:
//! 1. scored, no `type` and no `tests` → WARN ("There are no tests");
//! 2. `type: skip` (or a skipped group) → INFO; `type: manual` → WARN;
//! 3. no test items → FAIL when scored, else WARN;
//! 4. the audits run: `audit_env` (when set), then `audit`, then
//!    `audit_config`. A failing audit (non-zero exit) fails the check (WARN
//!    when unscored), except that a failing `audit_config` whose error says
//!    the file is missing is ignored when `audit` or `audit_env` printed
//!    something;
//! 5. each test item looks for its keyword in the `audit` output (`flag`),
//!    and only when it is not found there, in the `audit_config` output
//!    (`path`, when `audit_config` is set), then in the `audit_env` output
//!    (`env`, when the item names one). A command-line flag therefore wins
//!    over the config file;
//! 6. `set: false` passes when the keyword is absent; `set: true` (the
//!    default) passes when it is present and, with a `compare`, when the
//!    comparison holds (a comparison is never made on an absent keyword);
//! 7. `use_multiple_values` judges every output line and fails on the first
//!    failing one;
//! 8. items combine with `bin_op` (`and` when empty, `or`); any other
//!    operator fails the check; PASS, else FAIL when scored, else WARN.
//!
//! The reported `actual_value` is the first item's output and
//! `expected_result` joins the items' expectations with ` AND ` / ` OR `.

use super::controls::{Check, TestItem};
use super::jsonpath::{self, Numbers};
use crate::compare::{compare, Op};

/// A check's kube-bench status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// PASS.
    Pass,
    /// FAIL.
    Fail,
    /// WARN.
    Warn,
    /// INFO.
    Info,
}

impl State {
    /// The name kube-bench prints.
    pub fn name(self) -> &'static str {
        match self {
            State::Pass => "PASS",
            State::Fail => "FAIL",
            State::Warn => "WARN",
            State::Info => "INFO",
        }
    }
}

/// What running one audit command gave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditResult {
    /// Standard output and standard error, together.
    pub output: String,
    /// Why it failed (`exit status 1`, a timeout), `None` on success.
    pub error: Option<String>,
    /// How the output was produced, for the evidence (`native: stat of
    /// /etc/...`, `exec: /bin/sh -c`).
    pub how: String,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Status.
    pub state: State,
    /// The audit output the first test item was judged on.
    pub actual_value: String,
    /// What the test items want.
    pub expected_result: String,
    /// Why, when the status is not a plain result of the tests.
    pub reason: String,
    /// How each audit that ran was answered.
    pub how: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Used {
    Command,
    Config,
    Env,
}

#[derive(Debug, Clone, Default)]
struct ItemResult {
    pass: bool,
    found: bool,
    actual: String,
    expected: String,
}

/// The command kube-bench generates to read a process's environment.
pub fn default_env_audit(bin: &str) -> String {
    format!("cat \"/proc/$(/bin/ps -C {bin} -o pid= | tr -d ' ')/environ\" | tr '\\0' '\\n'")
}

/// Judge `check` (variables already substituted); `run` answers audits.
/// `skip` forces INFO (a skipped group).
pub fn run_check(check: &Check, skip: bool, run: &mut dyn FnMut(&str) -> AuditResult) -> Outcome {
    let mut out = Outcome {
        state: State::Warn,
        actual_value: String::new(),
        expected_result: String::new(),
        reason: String::new(),
        how: Vec::new(),
    };
    let fail_or_warn = if check.scored {
        State::Fail
    } else {
        State::Warn
    };
    if check.scored && check.kind.is_empty() && check.tests.is_none() && !skip {
        out.reason = "There are no tests".into();
        return out;
    }
    if skip || check.kind == "skip" {
        out.state = State::Info;
        out.reason = "Test marked as skip".into();
        return out;
    }
    if check.kind == "manual" {
        out.reason = "Test marked as a manual test".into();
        return out;
    }
    let tests = match &check.tests {
        Some(t) if !t.items.is_empty() => t,
        _ => {
            out.state = fail_or_warn;
            out.reason = "No tests defined".into();
            return out;
        }
    };
    let mut exec = |cmd: &str, how: &mut Vec<String>| -> AuditResult {
        if cmd.trim().is_empty() {
            return AuditResult::default();
        }
        let r = run(cmd.trim());
        how.push(r.how.clone());
        r
    };
    let failed = |cmd: &str, r: &AuditResult| {
        format!(
            "failed to run: {:?}, output: {:?}, error: {}",
            cmd.trim(),
            r.output,
            r.error.as_deref().unwrap_or("")
        )
    };
    let mut env_out = String::new();
    if !check.audit_env.trim().is_empty() {
        let r = exec(&check.audit_env, &mut out.how);
        if r.error.is_some() {
            out.state = fail_or_warn;
            out.reason = failed(&check.audit_env, &r);
            return out;
        }
        env_out = r.output;
    }
    let r = exec(&check.audit, &mut out.how);
    if r.error.is_some() {
        out.state = fail_or_warn;
        out.reason = failed(&check.audit, &r);
        return out;
    }
    let audit_out = r.output;
    let r = exec(&check.audit_config, &mut out.how);
    let config_out = match &r.error {
        None => r.output,
        Some(e)
            if (e.contains("exit status 127")
                || r.output.contains("No such file or directory"))
                && (!env_out.is_empty() || !audit_out.is_empty()) =>
        {
            String::new()
        }
        Some(_) => {
            out.state = fail_or_warn;
            out.reason = failed(&check.audit_config, &r);
            return out;
        }
    };

    let mut results = Vec::new();
    for item in &tests.items {
        let mut res = execute(item, Used::Command, &audit_out, check.multiple);
        if !res.found && !check.audit_config.trim().is_empty() {
            res = execute(item, Used::Config, &config_out, check.multiple);
            if !res.found && !item.env.is_empty() {
                res = execute(item, Used::Env, &env_out, check.multiple);
            }
        }
        if !res.found && !item.env.is_empty() {
            res = execute(item, Used::Env, &env_out, check.multiple);
        }
        results.push(res);
    }
    let expected: Vec<&str> = results.iter().map(|r| r.expected.as_str()).collect();
    let pass = match tests.bin_op.as_str() {
        "" | "and" => {
            out.expected_result = expected.join(" AND ");
            results.iter().all(|r| r.pass)
        }
        "or" => {
            out.expected_result = expected.join(" OR ");
            results.iter().any(|r| r.pass)
        }
        other => {
            out.state = fail_or_warn;
            out.actual_value = format!("unknown binary operator for tests {other}\n");
            out.reason = format!("unknown binary operator for tests {other}");
            return out;
        }
    };
    out.actual_value = results[0].actual.clone();
    out.state = if pass { State::Pass } else { fail_or_warn };
    out
}

fn execute(item: &TestItem, used: Used, output: &str, multiple: bool) -> ItemResult {
    let s = output.trim_end_matches([' ', '\n']);
    let lines: Vec<&str> = if multiple {
        s.split('\n').collect()
    } else {
        vec![s]
    };
    let mut result = ItemResult::default();
    for line in lines {
        result = evaluate(item, used, line);
        if !result.pass {
            break;
        }
    }
    result.actual = s.to_string();
    result
}

fn keyword(item: &TestItem, used: Used) -> &str {
    match used {
        Used::Command => &item.flag,
        Used::Config => &item.path,
        Used::Env => &item.env,
    }
}

fn evaluate(item: &TestItem, used: Used, s: &str) -> ItemResult {
    let found = match used {
        Used::Command => flag_value(&item.flag, s),
        Used::Config => path_value(&item.path, s),
        Used::Env => Ok(env_value(&item.env, s)),
    };
    let (found, value) = match found {
        Ok(v) => v,
        Err(e) => {
            return ItemResult {
                pass: false,
                found: false,
                actual: e,
                expected: String::new(),
            }
        }
    };
    let name = keyword(item, used);
    let (expected, pass) = if item.set {
        match &item.compare {
            Some(c) if found && !c.op.is_empty() => compare_op(&c.op, &value, &c.value, name),
            _ => (format!("'{name}' is present"), found),
        }
    } else {
        (format!("'{name}' is not present"), !found)
    };
    ItemResult {
        pass,
        found,
        actual: String::new(),
        expected,
    }
}

/// Find a flag in audit output: a substring match, then its value from
/// `(flag)(=|: *)*([^\s]*)`; a bare `--flag` means `true`, any other bare
/// keyword means itself.
pub fn flag_value(flag: &str, s: &str) -> Result<(bool, String), String> {
    if s.is_empty() || flag.is_empty() || !s.contains(flag) {
        return Ok((false, String::new()));
    }
    let pattern = format!("({flag})(=|: *)*([^\\s]*) *");
    let re = regex::Regex::new(&pattern)
        .map_err(|e| format!("invalid flag in testItem definition: {flag}: {e}"))?;
    match re.captures(s) {
        Some(caps) => {
            let v = caps.get(3).map(|m| m.as_str()).unwrap_or("");
            if !v.is_empty() {
                Ok((true, v.to_string()))
            } else if flag.starts_with("--") {
                Ok((true, "true".to_string()))
            } else {
                Ok((
                    true,
                    caps.get(1).map(|m| m.as_str()).unwrap_or("").to_string(),
                ))
            }
        }
        None => Err(format!("invalid flag in testItem definition: {s}")),
    }
}

/// Evaluate a JSONPath on audit output read as JSON, else as YAML; found
/// when the result is not empty.
pub fn path_value(path: &str, s: &str) -> Result<(bool, String), String> {
    let (doc, numbers) = match serde_json::from_str::<serde_json::Value>(s) {
        Ok(v) => (v, Numbers::Json),
        Err(_) if s.trim().is_empty() => (serde_json::Value::Null, Numbers::Yaml),
        Err(_) => match serde_saphyr::from_str::<serde_json::Value>(s) {
            Ok(v) => (v, Numbers::Yaml),
            Err(e) => {
                let first = e.to_string();
                let first = first.lines().next().unwrap_or("");
                return Err(format!(
                    "failed to load YAML or JSON from input \"{s}\": {first}"
                ));
            }
        },
    };
    let value = jsonpath::execute(path, &doc, numbers)
        .map_err(|e| format!("unable to parse path expression \"{path}\": {e}"))?;
    Ok((!value.is_empty(), value))
}

/// Find `NAME=value` in environment output (one variable per line).
pub fn env_value(env: &str, s: &str) -> (bool, String) {
    if s.is_empty() || env.is_empty() {
        return (false, String::new());
    }
    let Ok(re) = regex::Regex::new(&format!("{env}=.*(?:$|\\n)")) else {
        return (false, String::new());
    };
    let found = re.find(s).map(|m| m.as_str()).unwrap_or("");
    let found = found
        .replacen('\n', "", 1)
        .replacen(&format!("{env}="), "", 1);
    if found.is_empty() {
        (false, String::new())
    } else {
        (true, found)
    }
}

/// kube-bench's comparison: the expected-result text and whether it holds.
/// Booleans compare case-insensitively on the observed side only (`False`
/// equals `false`, but `false` does not equal `False`); an unknown operator
/// fails with an empty expectation.
pub fn compare_op(op: &str, value: &str, want: &str, name: &str) -> (String, bool) {
    let bool_eq = || {
        let lower = value.to_ascii_lowercase();
        if lower == "true" || lower == "false" {
            lower == want
        } else {
            value == want
        }
    };
    match op {
        "eq" => (format!("'{name}' is equal to '{want}'"), bool_eq()),
        "noteq" => (format!("'{name}' is not equal to '{want}'"), !bool_eq()),
        "gt" | "gte" | "lt" | "lte" => {
            let numeric = value.trim().parse::<i64>().is_ok() && want.trim().parse::<i64>().is_ok();
            if !numeric {
                return (
                    format!("Invalid Number(s) used for comparison: '{value}' '{want}'"),
                    false,
                );
            }
            let text = match op {
                "gt" => format!("'{name}' is greater than {want}"),
                "gte" => format!("'{name}' is greater or equal to {want}"),
                "lt" => format!("'{name}' is lower than {want}"),
                _ => format!("'{name}' is lower or equal to {want}"),
            };
            let op = Op::parse(op).expect("numeric operator");
            (text, compare(op, Some(value), want).pass)
        }
        "has" => (
            format!("'{name}' has '{want}'"),
            compare(Op::Has, Some(value), want).pass,
        ),
        "nothave" => (
            format!("'{name}' does not have '{want}'"),
            compare(Op::NotHave, Some(value), want).pass,
        ),
        "regex" => (
            format!("'{name}' matched by regex expression '{want}'"),
            compare(Op::Regex, Some(value), want).pass,
        ),
        "valid_elements" => (
            format!("'{name}' contains valid elements from '{want}'"),
            compare(Op::ValidElements, Some(value), want).pass,
        ),
        "bitmask" => {
            if i64::from_str_radix(value, 8).is_err() {
                return (format!("Not numeric value - flag: {value}"), false);
            }
            if i64::from_str_radix(want, 8).is_err() {
                return (format!("Not numeric value - flag: {want}"), false);
            }
            (
                format!("{name} has permissions {value}, expected {want} or more restrictive"),
                compare(Op::Bitmask, Some(value), want).pass,
            )
        }
        _ => (String::new(), false),
    }
}
