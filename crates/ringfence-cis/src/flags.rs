//! Reading flags from a component's argument list.
//!
//! Kubernetes components parse flags with pflag, and we read argument vectors
//! the same way, so a scan sees what the component sees:
//!
//! - `--name=value` and `--name value` both set a value;
//! - a boolean flag never takes the next argument as its value: `--name` is
//!   `true`, and `--profiling false` is `--profiling=true` followed by a stray
//!   argument `false` (only `--profiling=false` turns it off);
//! - a flag given several times: the last value wins, except for list flags
//!   (pflag's string slices, such as `--enable-admission-plugins`), whose
//!   values add up, and `--feature-gates`, whose gates merge (a later setting
//!   of the same gate wins);
//! - `--` ends the flags.
//!
//! A flag whose type we do not know takes the next argument as its value
//! unless that argument starts with `-`.

/// Boolean flags of the components (and the logging flags every one of them
/// has): given bare they mean `true`, and they never consume the next
/// argument.
const BOOLEAN: &[&str] = &[
    // Shared: component-base, klog.
    "profiling",
    "contention-profiling",
    "logtostderr",
    "alsologtostderr",
    "add-dir-header",
    "one-output",
    "skip-headers",
    "skip-log-headers",
    "help",
    "leader-elect",
    // kube-apiserver.
    "allow-privileged",
    "anonymous-auth",
    "audit-log-compress",
    "enable-aggregator-routing",
    "enable-bootstrap-token-auth",
    "enable-garbage-collector",
    "enable-priority-and-fairness",
    "enable-logs-handler",
    "kubelet-https",
    "service-account-lookup",
    "service-account-extend-token-expiration",
    "watch-cache",
    // kube-controller-manager.
    "use-service-account-credentials",
    "allocate-node-cidrs",
    "configure-cloud-routes",
    "enable-dynamic-provisioning",
    "enable-hostpath-provisioner",
    "enable-taint-manager",
    // kubelet.
    "protect-kernel-defaults",
    "make-iptables-util-chains",
    "rotate-certificates",
    "rotate-server-certificates",
    "fail-swap-on",
    "enable-server",
    "enable-debugging-handlers",
    "cgroups-per-qos",
    "enable-controller-attach-detach",
    "serialize-image-pulls",
    "register-node",
    "register-schedulable",
    "exit-on-lock-contention",
    "kernel-memcg-notification",
    "keep-terminated-pod-volumes",
    "seccomp-default",
    "enable-load-reader",
    "local-storage-capacity-isolation",
    // etcd.
    "client-cert-auth",
    "peer-client-cert-auth",
    "auto-tls",
    "peer-auto-tls",
    "enable-v2",
    "enable-pprof",
    "enable-grpc-gateway",
    "strict-reconfig-check",
    "force-new-cluster",
    "debug",
    "experimental-initial-corrupt-check",
    // kube-proxy.
    "masquerade-all",
    "cleanup",
    "cleanup-ipvs",
];

/// pflag string-slice flags: repeating one adds to the list.
const LISTS: &[&str] = &[
    "enable-admission-plugins",
    "disable-admission-plugins",
    "authorization-mode",
    "tls-cipher-suites",
    "etcd-servers",
    "api-audiences",
    "service-account-issuer",
    "service-account-key-file",
    "kubelet-preferred-address-types",
    "controllers",
    "enforce-node-allocatable",
];

/// Whether `name` (without dashes) is a boolean flag.
pub fn is_boolean(name: &str) -> bool {
    BOOLEAN.contains(&name)
}

/// The value of `flag` (written with or without leading dashes) in `args`,
/// read as pflag reads it: `None` when absent, `"true"` for a boolean given
/// bare, the last value of a repeated flag (list flags: every value, comma
/// separated; `--feature-gates`: the gates merged).
pub fn lookup(args: &[String], flag: &str) -> Option<String> {
    let name = flag.trim_start_matches('-');
    let mut found: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            break;
        }
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        let (key, value) = match body.split_once('=') {
            Some((k, v)) => (k, v.to_string()),
            None if is_boolean(body) => (body, "true".to_string()),
            None => match args.get(i) {
                Some(next) if !next.starts_with('-') => {
                    i += 1;
                    (body, next.clone())
                }
                _ => (body, "true".to_string()),
            },
        };
        if key != name {
            continue;
        }
        found = Some(match found {
            Some(prev) if LISTS.contains(&name) => format!("{prev},{value}"),
            Some(prev) if name == "feature-gates" => merge_gates(&prev, &value),
            _ => value,
        });
    }
    found
}

/// Two `--feature-gates` values merged: gates of `later` override the same
/// gates of `earlier`.
fn merge_gates(earlier: &str, later: &str) -> String {
    let mut gates: Vec<(String, String)> = Vec::new();
    for entry in earlier.split(',').chain(later.split(',')) {
        let Some((k, v)) = entry.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        match gates.iter_mut().find(|(g, _)| *g == k) {
            Some(slot) => slot.1 = v,
            None => gates.push((k, v)),
        }
    }
    gates
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The setting of one feature gate in a `--feature-gates` value
/// (`A=true,B=false`): the gate's value, or `None` when it is not listed
/// (the last setting of a gate listed twice).
pub fn feature_gate(gates: &str, gate: &str) -> Option<String> {
    gates.split(',').rev().find_map(|entry| {
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
    fn a_boolean_flag_never_takes_the_next_argument_as_its_value() {
        // pflag: `--profiling false` is --profiling=true and a stray "false".
        assert_eq!(
            lookup(&args("--profiling false --v=2"), "--profiling").as_deref(),
            Some("true")
        );
        assert_eq!(
            lookup(&args("--anonymous-auth false"), "--anonymous-auth").as_deref(),
            Some("true")
        );
        assert_eq!(
            lookup(&args("--profiling=false"), "--profiling").as_deref(),
            Some("false")
        );
        // A string flag does take it.
        assert_eq!(
            lookup(
                &args("--authorization-mode Node,RBAC"),
                "--authorization-mode"
            )
            .as_deref(),
            Some("Node,RBAC")
        );
    }

    #[test]
    fn list_flags_add_up_and_feature_gates_merge_when_repeated() {
        assert_eq!(
            lookup(
                &args("--enable-admission-plugins=NodeRestriction --enable-admission-plugins=AlwaysPullImages"),
                "--enable-admission-plugins"
            )
            .as_deref(),
            Some("NodeRestriction,AlwaysPullImages")
        );
        let gates = lookup(
            &args("--feature-gates=A=true,B=true --feature-gates=B=false"),
            "--feature-gates",
        )
        .unwrap();
        assert_eq!(gates, "A=true,B=false");
        assert_eq!(feature_gate(&gates, "B").as_deref(), Some("false"));
        assert_eq!(
            feature_gate("X=true,X=false", "X").as_deref(),
            Some("false")
        );
    }

    #[test]
    fn a_double_dash_ends_the_flags() {
        assert_eq!(
            lookup(&args("--v=2 -- --profiling=true"), "--profiling"),
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
