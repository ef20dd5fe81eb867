//! Choosing checks by id: `--check IDS` and `--skip IDS`.
//!
//! An item is a check id (`1.2.6`), a group or section id (`1.2`, `4`: every
//! check below it) or a range of check ids (`4.2.1-4.2.6`: every check whose
//! id sorts between the two, numerically segment by segment, ends included).

use ringfence_diag::{closest, InputError};

/// One parsed selection item.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// A check, or everything below a group or section.
    Prefix(String),
    /// Every check from the first id to the second, inclusive.
    Range(Vec<u64>, Vec<u64>),
}

fn numeric(id: &str) -> Option<Vec<u64>> {
    id.split('.').map(|p| p.parse().ok()).collect()
}

impl Item {
    fn matches(&self, id: &str) -> bool {
        match self {
            Item::Prefix(p) => id == p || id.starts_with(&format!("{p}.")),
            Item::Range(lo, hi) => numeric(id).is_some_and(|n| *lo <= n && n <= *hi),
        }
    }
}

fn parse(
    bench: &str,
    flag: &str,
    raw: &str,
    ids: &[&str],
    headings: &dyn Fn(&str) -> bool,
) -> Result<Item, InputError> {
    let raw = raw.trim();
    let unknown = |what: &str| {
        let mut e = InputError::whole(flag, format!("{bench} has no check {what:?}"));
        if let Some(c) = closest(what, ids.iter().copied()) {
            e = e.with_help(format!("did you mean {c}?"));
        }
        e
    };
    if let Some((a, b)) = raw.split_once('-') {
        let (a, b) = (a.trim(), b.trim());
        for end in [a, b] {
            if !ids.contains(&end) {
                return Err(unknown(end));
            }
        }
        let (Some(lo), Some(hi)) = (numeric(a), numeric(b)) else {
            return Err(InputError::whole(
                flag,
                format!("range {raw:?} needs numeric check ids at both ends"),
            ));
        };
        if lo > hi {
            return Err(
                InputError::whole(flag, format!("range {raw:?} runs backwards"))
                    .with_help(format!("write it as {b}-{a}")),
            );
        }
        return Ok(Item::Range(lo, hi));
    }
    let item = Item::Prefix(raw.to_string());
    if ids.iter().any(|id| item.matches(id)) || headings(raw) {
        Ok(item)
    } else {
        Err(unknown(raw))
    }
}

/// The check ids of the benchmark `bench`, in benchmark order, that `check` (all when `None`) and
/// `skip` leave; an unknown id or a backwards range is an error naming the
/// flag (`--check`, `--skip`), and so is a selection that leaves nothing.
/// `headings` says whether an id is a group or section that exists (it may
/// hold no check of its own, as a skipped group does).
pub fn resolve(
    bench: &str,
    ids: &[&str],
    headings: &dyn Fn(&str) -> bool,
    check: Option<&[String]>,
    skip: Option<&[String]>,
) -> Result<Option<Vec<String>>, InputError> {
    if check.is_none() && skip.is_none() {
        return Ok(None);
    }
    let parse_all = |flag: &str, list: &[String]| -> Result<Vec<Item>, InputError> {
        list.iter()
            .map(|r| parse(bench, flag, r, ids, headings))
            .collect()
    };
    let keep = check.map(|c| parse_all("--check", c)).transpose()?;
    let drop = skip
        .map(|s| parse_all("--skip", s))
        .transpose()?
        .unwrap_or_default();
    let chosen: Vec<String> = ids
        .iter()
        .filter(|id| {
            keep.as_ref()
                .is_none_or(|k| k.iter().any(|i| i.matches(id)))
        })
        .filter(|id| !drop.iter().any(|i| i.matches(id)))
        .map(|id| id.to_string())
        .collect();
    if chosen.is_empty() {
        return Err(InputError::whole(
            if skip.is_some() { "--skip" } else { "--check" },
            "the selection leaves no check to run",
        ));
    }
    Ok(Some(chosen))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [&str; 9] = [
        "1.1.1", "1.1.2", "1.2.1", "1.2.9", "1.2.10", "2.1", "4.2.1", "4.2.6", "4.2.13",
    ];

    fn sel(check: Option<&[&str]>, skip: Option<&[&str]>) -> Result<Vec<String>, String> {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = check.map(own);
        let s = skip.map(own);
        resolve("cis-x", &IDS, &|_| false, c.as_deref(), s.as_deref())
            .map(|o| o.unwrap())
            .map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn ranges_compare_segments_as_numbers_and_include_both_ends() {
        assert_eq!(
            sel(Some(&["1.2.1-1.2.10"]), None).unwrap(),
            ["1.2.1", "1.2.9", "1.2.10"]
        );
        assert_eq!(
            sel(Some(&["4.2.1-4.2.6"]), None).unwrap(),
            ["4.2.1", "4.2.6"]
        );
    }

    #[test]
    fn sections_and_groups_select_everything_below_them_and_skip_removes() {
        assert_eq!(
            sel(Some(&["1.1", "2"]), None).unwrap(),
            ["1.1.1", "1.1.2", "2.1"]
        );
        assert_eq!(
            sel(None, Some(&["1", "4.2.1-4.2.6"])).unwrap(),
            ["2.1", "4.2.13"]
        );
        assert_eq!(
            sel(Some(&["4"]), Some(&["4.2.6"])).unwrap(),
            ["4.2.1", "4.2.13"]
        );
    }

    #[test]
    fn unknown_ids_backwards_ranges_and_empty_selections_are_errors() {
        assert!(sel(Some(&["4.2.7"]), None).unwrap_err().contains("--check"));
        assert!(sel(None, Some(&["1.2.1-1.2.11"]))
            .unwrap_err()
            .contains("--skip"));
        assert!(sel(Some(&["4.2.6-4.2.1"]), None)
            .unwrap_err()
            .contains("runs backwards"));
        assert!(sel(Some(&["2"]), Some(&["2.1"]))
            .unwrap_err()
            .contains("leaves no check"));
    }
}
