//! Reading flags from a component's argument list.
//!
//! Kubernetes components parse flags with pflag: `--name=value` and
//! `--name value` both set a value, a boolean flag given bare (`--name`) means
//! `true`, and when a flag is repeated the last occurrence wins. We read
//! argument vectors exactly that way, so a scan sees what the component sees.

/// The value of `flag` (written with or without leading dashes) in `args`:
/// `None` when absent, `"true"` when given bare, otherwise the last value.
pub fn lookup(args: &[String], flag: &str) -> Option<String> {
    let name = flag.trim_start_matches('-');
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        if let Some((key, value)) = body.split_once('=') {
            if key == name {
                found = Some(value.to_string());
            }
        } else if body == name {
            match args.get(i) {
                Some(next) if !next.starts_with('-') => {
                    found = Some(next.clone());
                    i += 1;
                }
                _ => found = Some("true".to_string()),
            }
        }
    }
    found
}

/// The setting of one feature gate in a `--feature-gates` value
/// (`A=true,B=false`): the gate's value, or `None` when it is not listed.
pub fn feature_gate(gates: &str, gate: &str) -> Option<String> {
    gates.split(',').find_map(|entry| {
        let (k, v) = entry.split_once('=')?;
        (k.trim() == gate).then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn bare_flag_means_true() {
        assert_eq!(
            lookup(&args("--profiling --v=2"), "--profiling").as_deref(),
            Some("true")
        );
        assert_eq!(
            lookup(&args("--v=2 --profiling"), "profiling").as_deref(),
            Some("true")
        );
    }

    #[test]
    fn equals_and_space_separated_values_are_both_read() {
        assert_eq!(
            lookup(&args("--profiling=false"), "--profiling").as_deref(),
            Some("false")
        );
        assert_eq!(
            lookup(&args("--secure-port 6443 --x"), "--secure-port").as_deref(),
            Some("6443")
        );
        assert_eq!(lookup(&args("--a=b=c"), "--a").as_deref(), Some("b=c"));
        assert_eq!(lookup(&args("--empty="), "--empty").as_deref(), Some(""));
    }

    #[test]
    fn repeated_flag_takes_the_last_value_as_pflag_does() {
        assert_eq!(
            lookup(&args("--profiling=true --profiling=false"), "--profiling").as_deref(),
            Some("false")
        );
        assert_eq!(lookup(&args("--x 1 --x 2"), "--x").as_deref(), Some("2"));
    }

    #[test]
    fn a_flag_that_only_shares_a_prefix_is_not_a_match() {
        assert_eq!(lookup(&args("--profiling-port=1"), "--profiling"), None);
        assert_eq!(
            lookup(&args("kube-apiserver profiling"), "--profiling"),
            None
        );
    }

    #[test]
    fn feature_gates_are_looked_up_by_name() {
        let g = "Foo=true, RotateKubeletServerCertificate=false";
        assert_eq!(
            feature_gate(g, "RotateKubeletServerCertificate").as_deref(),
            Some("false")
        );
        assert_eq!(feature_gate(g, "Bar"), None);
    }
}

#[cfg(test)]
mod properties {
    use super::lookup;
    use proptest::prelude::*;

    proptest! {
        /// `--name=value` and `--name value` read the same value wherever the
        /// flag sits among other flags, and the last of repeated flags wins.
        #[test]
        fn both_spellings_agree_and_the_last_repeat_wins(
            value in "[a-zA-Z0-9_.,/:]{1,12}",
            other in "[a-zA-Z0-9]{1,8}",
            before in 0usize..3,
        ) {
            let mut eq: Vec<String> = (0..before).map(|i| format!("--x{i}={other}")).collect();
            let mut sp = eq.clone();
            eq.push(format!("--name={value}"));
            sp.push("--name".to_string());
            sp.push(value.clone());
            prop_assert_eq!(lookup(&eq, "--name"), Some(value.clone()));
            prop_assert_eq!(lookup(&sp, "--name"), Some(value.clone()));
            eq.push(format!("--name={other}"));
            prop_assert_eq!(lookup(&eq, "--name"), Some(other));
        }
    }
}
