//! kube-bench definitions: loading, kube-bench's judging rules, and the
//! same fixture nodes judged natively and through the repository's
//! kube-bench-format definitions of every built-in benchmark.

use ringfence_cis::benchmark::{Benchmark, Target};
use ringfence_cis::kubebench::controls::{self, Check};
use ringfence_cis::kubebench::eval::{
    compare_op, flag_value, path_value, run_check, AuditResult, State,
};
use ringfence_cis::kubebench::{self, Definitions, Mode};
use ringfence_cis::node::{discover, DiscoverOptions};
use ringfence_cis::profile::Date;
use ringfence_cis::report::{self, Status};
use ringfence_cis::testkit;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// ringfence's own kube-bench-format fixtures (`tests/fixtures/kube-bench`):
/// `cfg/` holds one folder per built-in benchmark (every check's facts, our
/// own text) and `judging.yaml` the judging cases.
fn fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/kube-bench"
    ))
}

/// The fixture's `cfg` directory.
fn cfg() -> PathBuf {
    fixtures().join("cfg")
}

/// kube-bench's own `cfg` directory, named by `RINGFENCE_KUBE_BENCH_CFG`,
/// for the opt-in tests against the whole corpus (`#[ignore]`d by default).
fn corpus_cfg() -> PathBuf {
    let Some(dir) = std::env::var_os("RINGFENCE_KUBE_BENCH_CFG").filter(|v| !v.is_empty()) else {
        panic!(
            "RINGFENCE_KUBE_BENCH_CFG is not set: this opt-in test needs kube-bench's cfg directory \
             (the one holding config.yaml and cis-1.6/); see docs/kube-bench.md"
        );
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("config.yaml").is_file(),
        "RINGFENCE_KUBE_BENCH_CFG={} has no config.yaml: it must name kube-bench's cfg directory",
        dir.display()
    );
    dir
}

#[test]
fn the_fixture_cis_1_6_loads_with_all_122_checks() {
    let defs = Definitions::load(&cfg(), "cis-1.6").unwrap_or_else(|e| panic!("{e:?}"));
    // Scalars keep their text: group ids such as 1.10 are not read as numbers.
    let ids: Vec<&str> = defs
        .controls
        .iter()
        .flat_map(|c| c.checks())
        .map(|(_, c)| c.id.as_str())
        .collect();
    assert_eq!(ids.len(), 122);
    assert!(
        ids.contains(&"1.1.10") && ids.contains(&"4.2.13"),
        "{ids:?}"
    );
    assert_eq!(defs.mapped_targets().len(), 5);
    // The same ids, titles and remediation as the native benchmark.
    let native = Benchmark::embedded("cis-1.6").unwrap();
    let ours: BTreeMap<&str, (&str, &str)> = defs
        .controls
        .iter()
        .flat_map(|c| c.checks())
        .map(|(_, c)| (c.id.as_str(), (c.text.as_str(), c.remediation.as_str())))
        .collect();
    let mut n = 0;
    for s in &native.sections {
        for g in &s.groups {
            for c in &g.checks {
                assert_eq!(
                    ours.get(c.id.as_str()),
                    Some(&(c.title.as_str(), c.remediation.as_str())),
                    "{}",
                    c.id
                );
                n += 1;
            }
        }
    }
    assert_eq!(n, 122);
}

/// The fixture folder of a built-in benchmark, or a message naming what is
/// missing.
fn fixture_for(name: &str) -> Result<Definitions, String> {
    let dir = cfg().join(name);
    if !dir.is_dir() {
        return Err(format!(
            "{name} is built in but has no kube-bench-format fixture: add {} (see tests/fixtures/kube-bench/README.md)",
            dir.display()
        ));
    }
    Definitions::load(&cfg(), name).map_err(|e| format!("{name}: {e:?}"))
}

/// The fixture's config.yaml maps Kubernetes versions to benchmarks as
/// benchmarks/versions.yaml (kube-bench's mapping, which `--benchmark auto`
/// follows) does, for every version from 1.16 on.
#[test]
fn the_fixture_config_maps_versions_as_benchmarks_versions_yaml_does() {
    let defs = Definitions::load(&cfg(), "cis-1.6").unwrap();
    let mut n = 0;
    for (m, name) in ringfence_cis::versions::kube_bench_mapping() {
        if m >= 16 {
            assert_eq!(
                defs.config.benchmark_for_version(&format!("1.{m}.0")),
                Some(name),
                "1.{m}"
            );
            n += 1;
        }
    }
    assert_eq!(n, 19);
}

/// Every built-in benchmark has a kube-bench-format fixture whose checks are
/// the native benchmark's, one for one, with the same titles, remediation,
/// `scored` and targets; the fixture's config.yaml maps it to the five
/// targets.
#[test]
fn every_built_in_benchmark_has_a_fixture_with_its_ids_text_and_scoring() {
    let mut problems = Vec::new();
    for name in Benchmark::embedded_names() {
        let defs = match fixture_for(name) {
            Ok(d) => d,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        if defs.mapped_targets().len() != 5 {
            problems.push(format!(
                "{name}: config.yaml's target_mapping gives {:?}",
                defs.mapped_targets()
            ));
        }
        let native = Benchmark::embedded(name).unwrap();
        let theirs: BTreeMap<&str, (Target, &Check)> = defs
            .controls
            .iter()
            .flat_map(|c| {
                c.checks()
                    .map(move |(_, k)| (k.id.as_str(), (c.node_type, k)))
            })
            .collect();
        let ours: Vec<&str> = native.checks().map(|c| c.id.as_str()).collect();
        let extra: Vec<&&str> = theirs.keys().filter(|id| !ours.contains(id)).collect();
        if !extra.is_empty() {
            problems.push(format!(
                "{name}: the fixture has checks the native benchmark lacks: {extra:?}"
            ));
        }
        for c in native.checks() {
            let Some((target, k)) = theirs.get(c.id.as_str()) else {
                problems.push(format!("{name} {}: not in the fixture", c.id));
                continue;
            };
            if (k.text.as_str(), k.remediation.as_str())
                != (c.title.as_str(), c.remediation.as_str())
                || *target != c.target
                || k.scored != c.scored
            {
                problems.push(format!(
                    "{name} {}: fixture ({target}, scored {}, {:?}) and native ({}, scored {}, {:?}) differ",
                    c.id, k.scored, k.text, c.target, c.scored, c.title
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
#[ignore = "opt-in: set RINGFENCE_KUBE_BENCH_CFG=<kube-bench cfg dir> and run with --ignored"]
fn every_benchmark_folder_of_kube_bench_loads() {
    let cfg = corpus_cfg();
    let mut names: Vec<String> = std::fs::read_dir(&cfg)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() > 40, "{names:?}");
    let mut total = 0;
    for name in &names {
        let defs = Definitions::load(&cfg, name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let checks: usize = defs.controls.iter().map(|c| c.checks().count()).sum();
        assert!(checks > 0, "{name} has no checks");
        total += checks;
    }
    assert!(total > 3000, "{total}");
    // Scalars keep their text: group ids such as 1.10 are not read as numbers.
    let defs = Definitions::load(&cfg, "cis-1.6").unwrap();
    let ids: Vec<&str> = defs
        .controls
        .iter()
        .flat_map(|c| c.checks())
        .map(|(_, c)| c.id.as_str())
        .collect();
    assert!(
        ids.contains(&"1.1.10") && ids.contains(&"4.2.13"),
        "{ids:?}"
    );
    assert_eq!(defs.mapped_targets().len(), 5);
}

/// Every built-in benchmark's fixture carries kube-bench's facts unchanged:
/// every check's audits, tests, type and scoring, and the components of
/// config.yaml; only prose (text, remediation) and line numbers differ.
#[test]
#[ignore = "opt-in: set RINGFENCE_KUBE_BENCH_CFG=<kube-bench cfg dir> and run with --ignored"]
fn every_fixture_has_the_facts_of_kube_bench() {
    let corpus = corpus_cfg();
    let facts = |d: &Definitions| -> Vec<(Target, String, String, Check)> {
        d.controls
            .iter()
            .flat_map(|c| {
                c.checks().map(move |(g, k)| {
                    let mut k = k.clone();
                    k.text.clear();
                    k.remediation.clear();
                    k.line = 0;
                    (c.node_type, c.version.clone(), g.id.clone(), k)
                })
            })
            .collect()
    };
    for name in Benchmark::embedded_names() {
        let theirs = Definitions::load(&corpus, name).unwrap();
        let ours = fixture_for(name).unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (facts(&theirs), facts(&ours));
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "{name}");
        }
        assert_eq!(a.len(), b.len(), "{name}");
        for node_type in ["master", "node", "etcd", "controlplane", "policies"] {
            assert_eq!(
                theirs.config.doc.get(node_type),
                ours.config.doc.get(node_type),
                "{node_type} section of config.yaml"
            );
        }
        assert_eq!(theirs.mapped_targets(), ours.mapped_targets(), "{name}");
    }
    let (theirs, ours) = (
        Definitions::load(&corpus, "cis-1.6").unwrap(),
        Definitions::load(&cfg(), "cis-1.6").unwrap(),
    );
    assert_eq!(
        theirs.config.doc.get("version_mapping").map(|m| m
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("1.") && k.as_str() >= "1.16")
            .count()),
        ours.config
            .doc
            .get("version_mapping")
            .map(|m| m.as_object().unwrap().len()),
    );
}

/// Every built-in benchmark has exactly kube-bench's check ids, scoring and
/// targets: no check left out, none invented.
#[test]
#[ignore = "opt-in: set RINGFENCE_KUBE_BENCH_CFG=<kube-bench cfg dir> and run with --ignored"]
fn every_built_in_benchmark_has_the_check_ids_of_kube_bench() {
    let corpus = corpus_cfg();
    for name in Benchmark::embedded_names() {
        let theirs = Definitions::load(&corpus, name).unwrap();
        let kb: Vec<(String, Target, bool)> = theirs
            .controls
            .iter()
            .flat_map(|c| {
                c.checks()
                    .map(move |(_, k)| (k.id.clone(), c.node_type, k.scored))
            })
            .collect();
        let native = Benchmark::embedded(name).unwrap();
        let ours: Vec<(String, Target, bool)> = native
            .checks()
            .map(|c| (c.id.clone(), c.target, c.scored))
            .collect();
        assert_eq!(
            ours,
            kb,
            "{name}: {} native checks, {} in kube-bench",
            ours.len(),
            kb.len()
        );
    }
}

fn write(dir: &std::path::Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn definitions_kube_bench_would_reject_are_rejected_with_a_location() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "config.yaml", "master:\n  components: []\n");
    // A node file that says it is a master file.
    write(
        d.path(),
        "b1/node.yaml",
        "controls:\nid: 4\ntext: x\ntype: \"master\"\ngroups: []\n",
    );
    let e = Definitions::load(d.path(), "b1").unwrap_err();
    let msg = format!("{:?}", e.0[0]);
    assert!(msg.contains("non-node controls file"), "{msg}");
    assert_eq!(
        e.0[0].position(),
        format!("{}:4:7", d.path().join("b1/node.yaml").display())
    );

    // A regex kube-bench would panic on.
    write(
        d.path(),
        "b2/master.yaml",
        "controls:\ntype: master\ngroups:\n- id: 1.1\n  checks:\n  - id: 1.1.1\n    audit: x\n    tests:\n      test_items:\n      - flag: --a\n        compare:\n          op: regex\n          value: '(['\n",
    );
    let e = Definitions::load(d.path(), "b2").unwrap_err();
    assert!(
        e.0[0].position().ends_with("master.yaml:12:15"),
        "{}",
        e.0[0].position()
    );
    assert!(format!("{:?}", e.0[0]).contains("does not compile"));

    // Wrong shapes: tests as a string, scored not a boolean.
    write(
        d.path(),
        "b3/master.yaml",
        "controls:\ntype: master\ngroups:\n- id: 1\n  checks:\n  - id: 1.1\n    tests: \"yes\"\n",
    );
    let e = Definitions::load(d.path(), "b3").unwrap_err();
    assert!(
        e.0[0].position().ends_with("master.yaml:7:12"),
        "{}",
        e.0[0].position()
    );
    write(
        d.path(),
        "b4/master.yaml",
        "controls:\ntype: master\ngroups:\n- id: 1\n  checks:\n  - id: 1.1\n    scored: maybe\n",
    );
    let e = Definitions::load(d.path(), "b4").unwrap_err();
    assert!(
        e.0[0].position().ends_with("master.yaml:7:13"),
        "{}",
        e.0[0].position()
    );

    // A missing benchmark folder suggests the closest one.
    write(
        d.path(),
        "cis-1.6/master.yaml",
        "controls:\ntype: master\ngroups: []\n",
    );
    let e = Definitions::load(d.path(), "cis-1.5").unwrap_err();
    assert!(format!("{:?}", e.0[0]).contains("did you mean cis-1.6"));
}

/// Judge a check with hand-made outputs for its audit, audit_config and
/// audit_env commands.
fn judge(check: &Check, audit: &str, config: &str, env: &str) -> State {
    let mut c = check.clone();
    c.audit = if c.audit.is_empty() {
        String::new()
    } else {
        "A".into()
    };
    c.audit_config = if c.audit_config.is_empty() {
        String::new()
    } else {
        "C".into()
    };
    let wants_env = c
        .tests
        .as_ref()
        .is_some_and(|t| t.items.iter().any(|i| !i.env.is_empty()));
    c.audit_env = if wants_env || !c.audit_env.is_empty() {
        "E".into()
    } else {
        String::new()
    };
    let mut run = |cmd: &str| AuditResult {
        output: match cmd {
            "A" => audit,
            "C" => config,
            _ => env,
        }
        .to_string(),
        error: None,
        how: "test".into(),
    };
    run_check(&c, false, &mut run).state
}

/// The judging cases (`tests/fixtures/kube-bench/judging.yaml`) by (group, id).
fn check_data() -> BTreeMap<(String, String), Check> {
    let text = std::fs::read_to_string(fixtures().join("judging.yaml")).unwrap();
    let c = controls::parse("judging.yaml", &text, Some(Target::Master)).unwrap();
    c.checks()
        .map(|(g, k)| ((g.id.clone(), k.id.clone()), k.clone()))
        .collect()
}

#[test]
fn check_data_flag_tests_follow_kube_bench() {
    use State::*;
    let all = check_data();
    let c = |id: &str| &all[&("1.1".to_string(), id.to_string())];
    // Unscored checks: a failure is WARN.
    let cases: &[(&str, &str, State)] = &[
        ("0", "--allow-privileged=true", Pass),
        ("0", "--something-else", Warn),
        ("1", "--profiling=false", Pass),
        ("1", "--basic-auth=foo", Warn),
        ("2", "--insecure-port=0", Pass),
        ("2", "--insecure-port=1", Warn),
        ("2", "--insecure-port 0", Warn), // a space-separated value reads as "true"
        ("3", "--audit-log-maxage=40", Pass),
        ("3", "--audit-log-maxage=30", Pass),
        ("3", "--audit-log-maxage=29", Warn),
        ("3", "--audit-log-maxage=thirty", Warn),
        ("4", "--max-backlog=20", Pass),
        ("4", "--max-backlog=30", Warn),
        ("5", "--admission-control=Something,RBAC", Pass),
        ("5", "--admission-control=AlwaysAdmit,RBAC", Warn),
        ("5", "", Warn), // compare never runs on an absent flag
        (
            "6",
            "--kubelet-client-certificate=a --kubelet-clientkey=b",
            Pass,
        ),
        ("6", "--kubelet-client-certificate=a", Warn),
        ("8", "permissions=SomeValue", Pass),
        ("8", "permissions=somevalue", Warn),
        ("9", "permissions=600", Pass),
        ("9", "permissions=644", Pass),
        ("9", "permissions=666", Warn),
        ("10", "--admission-control=WebHook,RBAC", Pass),
        ("11", "--admission-control=WebHook,RBAC", Pass),
        ("12", "--admission-control=WebHook,Something,RBAC", Pass),
        ("13", "--admission-control=Something", Pass),
        ("13", "--admission-control=Nothing", Warn),
        ("14", "some-arg: some-val", Pass),
        ("14", "some-arg:some-val", Pass),
        ("14", "some-arg=other", Warn),
        ("27", "--peer-client-cert-auth", Pass),
        ("27", "--peer-client-cert-auth=true", Pass),
        ("28", "--peer-client-cert-auth", Warn),
        ("28", "--peer-client-cert-auth=False", Pass),
    ];
    for (id, out, want) in cases {
        assert_eq!(judge(c(id), out, "", ""), *want, "1.1.{id} on {out:?}");
    }
}

#[test]
fn check_data_path_tests_follow_kube_bench() {
    use State::*;
    let all = check_data();
    let c = |id: &str| &all[&("1.1".to_string(), id.to_string())];
    let cases: &[(&str, &str, State)] = &[
        ("15", r#"{"readOnlyPort": 15000}"#, Pass),
        ("15", "readOnlyPort: 15000", Pass),
        ("15", r#"{"readOnlyPort": 14999}"#, Pass), // or: lte 15000 holds
        ("16", r#"{"stringValue": "WebHook,Something,RBAC"}"#, Pass),
        ("16", r#"{"stringValue": "webhook,Something,RBAC"}"#, Warn),
        ("17", r#"{"trueValue": true}"#, Pass),
        ("17", r#"{"trueValue": "True"}"#, Pass),
        ("17", r#"{"trueValue": false}"#, Warn),
        ("18", r#"{"readOnlyPort": 15000}"#, Pass),
        ("18", r#"{"notARealField": "x"}"#, Warn),
        (
            "19",
            r#"{"authentication": {"anonymous": {"enabled": false}}}"#,
            Pass,
        ),
        (
            "19",
            r#"{"authentication": {"anonymous": {"enabled": true}}}"#,
            Warn,
        ),
        ("20", "readOnlyPort: 15000", Pass),
        ("20", "readOnlyPort: 14999", Warn),
        ("21", "readOnlyPort: 15000", Pass),
        (
            "22",
            "authentication:\n  anonymous:\n    enabled: false\n",
            Pass,
        ),
        (
            "23",
            "{\"authentication\" : {\"anonymous\" : {\"enabled\" : \"false\"}}",
            Warn,
        ),
        (
            "24",
            "authentication:\n  anonymous:\n    enabled: false\n",
            Warn,
        ),
        (
            "25",
            "authentication:\n  anonymous:\n    enabled: false\n",
            Warn,
        ),
        ("26", "currentMasterVersion: 1.12.7", Pass),
        ("26", "currentMasterVersion: 1.12", Pass),
        ("26", "currentMasterVersion: 1.11.3", Warn),
    ];
    for (id, out, want) in cases {
        assert_eq!(judge(c(id), "", out, ""), *want, "1.1.{id} on {out:?}");
    }
}

#[test]
fn check_data_env_tests_follow_kube_bench() {
    use State::*;
    let all = check_data();
    let c = |id: &str| &all[&("1.1".to_string(), id.to_string())];
    let cases: &[(&str, &str, &str, State)] = &[
        ("29", "", "ALLOW_PRIVILEGED=true\n", Pass),
        ("29", "", "OTHER=1\n", Warn),
        ("30", "", "OTHER=1\n", Pass),
        ("30", "", "BASIC_AUTH=x\n", Warn),
        ("30", "", "BASIC_AUTH=\n", Pass), // an empty value is absent
        ("31", "", "INSECURE_PORT=0\n", Pass),
        ("31", "", "INSECURE_PORT=1\n", Warn),
        ("32", "", "A=1\nAUDIT_LOG_MAXAGE=40\nB=2", Pass),
        ("32", "", "AUDIT_LOG_MAXAGE=4\n", Warn),
        ("33", "", "MAX_BACKLOG=20", Pass),
        ("33", "", "MAX_BACKLOG=31", Warn),
    ];
    for (id, audit, env, want) in cases {
        assert_eq!(
            judge(c(id), audit, "", env),
            *want,
            "1.1.{id} on {audit:?} / {env:?}"
        );
    }
}

/// Groups 2.1 and 3.1 say at the end of their text what kube-bench gives
/// (`... => pass`, `... => fail`); their audits are `echo`/`printf` of
/// fixed text, reproduced here by hand.
#[test]
fn check_data_audit_precedence_matches_each_checks_stated_result() {
    let all = check_data();
    fn echo(cmd: &str) -> String {
        let cmd = cmd.trim();
        if let Some(rest) = cmd.strip_prefix("printf ") {
            return rest.trim_matches('\'').replace("\\n", "\n");
        }
        let rest = cmd.strip_prefix("echo ").expect("echo or printf");
        format!("{}\n", rest.trim_matches('\''))
    }
    let mut seen = 0;
    for ((g, id), check) in &all {
        if g != "2.1" && g != "3.1" {
            continue;
        }
        let want = match check.text.rsplit_once("=> ").map(|(_, v)| v) {
            Some("pass") => State::Pass,
            Some("fail") => State::Fail,
            _ => panic!("{g}.{id}: the text must end with `=> pass` or `=> fail`"),
        };
        let got = judge(
            check,
            &if check.audit.is_empty() {
                String::new()
            } else {
                echo(&check.audit)
            },
            &if check.audit_config.is_empty() {
                String::new()
            } else {
                echo(&check.audit_config)
            },
            &if check.audit_env.is_empty() {
                String::new()
            } else {
                echo(&check.audit_env)
            },
        );
        assert_eq!(got, want, "{g}.{id}: {}", check.text);
        seen += 1;
    }
    assert_eq!(seen, 17 + 7);
}

#[test]
fn eq_ignores_case_of_a_boolean_only_on_the_observed_side() {
    assert!(compare_op("eq", "False", "false", "--x").1);
    assert!(compare_op("eq", "TRUE", "true", "--x").1);
    assert!(!compare_op("eq", "false", "False", "--x").1);
    assert!(!compare_op("eq", "Node", "node", "--x").1);
    assert!(compare_op("noteq", "Node", "node", "--x").1);
    assert!(!compare_op("noteq", "FALSE", "false", "--x").1);
    assert_eq!(compare_op("eq", "1", "0", "--p").0, "'--p' is equal to '0'");
}

#[test]
fn numeric_operators_fail_on_non_numbers_with_kube_bench_wording() {
    assert_eq!(
        compare_op("gte", "30s", "30", "--x"),
        (
            "Invalid Number(s) used for comparison: '30s' '30'".to_string(),
            false
        )
    );
    assert!(!compare_op("lt", "5", "five", "--x").1);
    assert!(compare_op("gt", " 31 ", "30", "--x").1);
    assert!(!compare_op("gt", "30", "30", "--x").1);
    assert!(compare_op("lte", "-1", "0", "--x").1);
    assert_eq!(
        compare_op("gte", "40", "30", "--x").0,
        "'--x' is greater or equal to 30"
    );
}

#[test]
fn bitmask_allows_only_narrower_modes() {
    assert!(compare_op("bitmask", "600", "644", "permissions").1);
    assert!(!compare_op("bitmask", "666", "644", "permissions").1);
    assert!(!compare_op("bitmask", "700", "644", "permissions").1);
    assert!(compare_op("bitmask", "0", "600", "permissions").1);
    assert_eq!(
        compare_op("bitmask", "rw", "644", "permissions"),
        ("Not numeric value - flag: rw".to_string(), false)
    );
    assert_eq!(
        compare_op("bitmask", "600", "644", "permissions").0,
        "permissions has permissions 600, expected 644 or more restrictive"
    );
}

#[test]
fn valid_elements_with_empty_lists_and_trailing_commas() {
    assert!(compare_op("valid_elements", "", "", "p").1);
    assert!(!compare_op("valid_elements", "", "a,b", "p").1);
    assert!(!compare_op("valid_elements", "a", "", "p").1);
    assert!(compare_op("valid_elements", "a,b,", "a,b,c", "p").1);
    assert!(!compare_op("valid_elements", "a,d", "a,b,c", "p").1);
}

#[test]
fn has_nothave_regex_and_an_unknown_operator() {
    assert!(compare_op("has", "Node,RBAC", "RBAC", "f").1);
    assert!(!compare_op("nothave", "Node,AlwaysAllow", "AlwaysAllow", "f").1);
    assert!(compare_op("regex", "v1.12.3", r"^v1\.12", "f").1);
    assert!(!compare_op("regex", "v1.13", r"^v1\.12", "f").1);
    // kube-bench ships one `noteqx`; it fails with no expectation text.
    assert_eq!(compare_op("noteqx", "a", "b", "f"), (String::new(), false));
}

#[test]
fn flag_lookup_is_a_substring_search_then_kube_bench_pattern() {
    let v = |f: &str, s: &str| flag_value(f, s).unwrap();
    assert_eq!(
        v("--profiling", "kube-apiserver --profiling"),
        (true, "true".into())
    );
    assert_eq!(
        v("--profiling", "x --profiling=false"),
        (true, "false".into())
    );
    assert_eq!(v("--port", "x --port 10"), (true, "true".into()));
    assert_eq!(v("readOnlyPort", "readOnlyPort: 0"), (true, "0".into()));
    assert_eq!(
        v("permissions", "permissions"),
        (true, "permissions".into())
    );
    // Substring semantics: the first occurrence wins, even inside a longer flag.
    assert_eq!(
        v(
            "client-ca-file",
            "x --kubelet-client-ca-file=/a --client-ca-file=/b"
        ),
        (true, "/a".into())
    );
    assert_eq!(v("--x", ""), (false, String::new()));
}

#[test]
fn path_lookup_reads_json_or_yaml_and_prints_like_go() {
    assert_eq!(
        path_value("{.a}", r#"{"a": 1000000}"#).unwrap(),
        (true, "1e+06".into())
    );
    assert_eq!(
        path_value("{.a}", "a: 1000000").unwrap(),
        (true, "1000000".into())
    );
    assert_eq!(
        path_value("{.a.b}", "a:\n  b: [x, z]").unwrap(),
        (true, "[x z]".into())
    );
    assert_eq!(
        path_value("{.missing}", "a: 1").unwrap(),
        (false, String::new())
    );
    assert!(path_value("{.a", "a: 1").is_err());
    assert_eq!(
        path_value("{range .s[:]}{}{','}{end}", "s: [A, B]").unwrap(),
        (true, "A,B,".into())
    );
}

#[test]
fn multiple_values_fail_on_any_line_and_types_decide_first() {
    let all = check_data();
    let c = &all[&("2.1".to_string(), "9".to_string())];
    assert_eq!(
        judge(c, "permissions=600\npermissions=600\n", "", ""),
        State::Pass
    );
    assert_eq!(
        judge(c, "permissions=600\npermissions=644", "", ""),
        State::Fail
    );
    assert_eq!(
        judge(c, "permissions=600\n\npermissions=600", "", ""),
        State::Fail
    );
    let mut m = c.clone();
    m.kind = "manual".into();
    assert_eq!(judge(&m, "permissions=600", "", ""), State::Warn);
    m.kind = "skip".into();
    assert_eq!(judge(&m, "permissions=600", "", ""), State::Info);
    let mut none = c.clone();
    none.kind.clear();
    none.tests = None;
    assert_eq!(judge(&none, "", "", ""), State::Warn); // scored, no tests
    none.scored = false;
    assert_eq!(judge(&none, "", "", ""), State::Warn);
    let mut bad = c.clone();
    bad.tests.as_mut().unwrap().bin_op = "xor".into();
    assert_eq!(judge(&bad, "permissions=600", "", ""), State::Fail);
    // A failing audit fails the check.
    let mut run = |_: &str| AuditResult {
        output: "boom".into(),
        error: Some("exit status 1".into()),
        how: String::new(),
    };
    assert_eq!(run_check(c, false, &mut run).state, State::Fail);
    assert_eq!(run_check(c, true, &mut run).state, State::Info);
}

/// Scan the node under `root` natively with the built-in benchmark `name`
/// and through the kube-bench-format definitions of the same name under
/// `cfg` (read-only idioms, no shell); return every check id whose status
/// differs, with both sides' evidence.
fn native_vs_kube_bench(
    name: &str,
    root: &std::path::Path,
    cfg: &std::path::Path,
) -> Vec<(String, String)> {
    let node = discover(&DiscoverOptions {
        root: Some(root.to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    let today = Date::parse("2026-01-01").unwrap();
    let bench = Benchmark::embedded(name).unwrap();
    let native = report::scan(
        &bench,
        &node,
        &report::ScanOptions {
            targets: None,
            checks: None,
            profile: None,
            waivers: &[],
            today,
        },
    );
    let defs = Definitions::load(cfg, name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let targets: Vec<Target> = native
        .checks
        .iter()
        .map(|c| c.target)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let kb_scan = |checks: Option<Vec<String>>| {
        kubebench::scan(
            &defs,
            &node,
            &report::ScanOptions {
                targets: Some(targets.clone()),
                checks,
                profile: None,
                waivers: &[],
                today,
            },
            &Mode::Native,
        )
    };
    // Audits that query the cluster (kubectl) are no read-only idiom: without
    // --allow-exec the kube-bench mode refuses them. They may only be checks
    // the native benchmark also leaves to the cluster API (no node test);
    // the rest is compared.
    let mut api_only = Vec::new();
    let kb = match kb_scan(None) {
        Ok(kb) => kb,
        Err(refusal) => {
            for (id, audit) in &refusal.needs_shell {
                let c = bench
                    .check(id)
                    .unwrap_or_else(|| panic!("{name}: no check {id}"));
                assert!(
                    c.test.is_none() && c.needs.as_deref() == Some("cluster-api"),
                    "{name} {id}: its kube-bench audit needs a shell ({audit}) but the native check judges the node"
                );
                api_only.push(id.clone());
            }
            let rest: Vec<String> = native
                .checks
                .iter()
                .map(|c| c.id.clone())
                .filter(|id| !api_only.contains(id))
                .collect();
            kb_scan(Some(rest)).unwrap_or_else(|r| panic!("{name}: {}", r.message()))
        }
    };
    let in_targets = bench
        .checks()
        .filter(|c| native.checks.iter().any(|r| r.target == c.target))
        .count();
    assert_eq!(
        native.checks.len(),
        in_targets,
        "{name}: every check of the node's targets is compared"
    );
    assert_eq!(
        kb.report.checks.len() + api_only.len(),
        native.checks.len(),
        "{name}"
    );
    // The evidence says the answers were native.
    assert!(kb
        .report
        .checks
        .iter()
        .filter_map(|c| c.evidence.as_ref())
        .all(|e| e.source == "native"));
    assert!(
        kb.report.checks.iter().any(|c| c.status == Status::Pass),
        "{name}"
    );
    let theirs: BTreeMap<&str, &report::CheckResult> = kb
        .report
        .checks
        .iter()
        .map(|c| (c.id.as_str(), c))
        .collect();
    let mut differ = Vec::new();
    for c in native.checks.iter().filter(|c| !api_only.contains(&c.id)) {
        let Some(k) = theirs.get(c.id.as_str()) else {
            panic!("the kube-bench-format {name} has no check {}", c.id);
        };
        if c.status != k.status {
            differ.push((
                c.id.clone(),
                format!(
                    "native {:?} ({:?}), kube-bench {:?} ({:?} / {:?} / {:?})",
                    c.status, c.actual, k.status, k.actual, k.expected_value, k.reason
                ),
            ));
        }
    }
    differ
}

/// Replace text in a file of a node root, keeping its mode.
fn edit(root: &std::path::Path, rel: &str, from: &str, to: &str) {
    let p = root.join(rel.trim_start_matches('/'));
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{rel} has no {from:?}");
    std::fs::write(&p, text.replace(from, to)).unwrap();
}

/// The TKG control plane with kube-proxy, loosened so that many checks fail
/// on both sides: world-writable manifests, kubeconfigs, keys and kubelet
/// config; admission plugins, ciphers, bind addresses, the secure port,
/// anonymous kubelet access, the read-only port and kube-proxy's metrics
/// address all set the wrong way.
fn loosened_control_plane(root: &std::path::Path) {
    let n = testkit::tkg_control_plane(root);
    testkit::with_kube_proxy(&n);
    for f in [
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "/etc/kubernetes/manifests/kube-controller-manager.yaml",
        "/etc/kubernetes/manifests/kube-scheduler.yaml",
        "/etc/kubernetes/manifests/etcd.yaml",
        "/etc/kubernetes/admin.conf",
        "/etc/kubernetes/scheduler.conf",
        "/etc/kubernetes/controller-manager.conf",
        "/etc/kubernetes/proxy.conf",
        "/etc/kubernetes/pki/apiserver.key",
        "/etc/kubernetes/pki/ca.crt",
        "/var/lib/kubelet/config.yaml",
    ] {
        n.chmod(f, 0o666);
    }
    n.chmod("/var/lib/etcd", 0o755);
    let api = "/etc/kubernetes/manifests/kube-apiserver.yaml";
    edit(
        root,
        api,
        "--enable-admission-plugins=NodeRestriction",
        "--enable-admission-plugins=AlwaysAdmit,DenyServiceExternalIPs",
    );
    edit(
        root,
        api,
        "--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,",
        "--tls-cipher-suites=TLS_RSA_WITH_RC4_128_SHA,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,",
    );
    edit(root, api, "--secure-port=6443", "--secure-port=0");
    edit(
        root,
        api,
        "--authorization-mode=Node,RBAC",
        "--authorization-mode=AlwaysAllow",
    );
    edit(
        root,
        "/etc/kubernetes/manifests/kube-controller-manager.yaml",
        "--bind-address=127.0.0.1",
        "--bind-address=0.0.0.0",
    );
    edit(
        root,
        "/etc/kubernetes/manifests/kube-scheduler.yaml",
        "    - --bind-address=127.0.0.1\n",
        "",
    );
    edit(
        root,
        "/etc/kubernetes/manifests/etcd.yaml",
        "--client-cert-auth=true",
        "--client-cert-auth=false",
    );
    edit(
        root,
        "/var/lib/kubelet/config.yaml",
        "enabled: false",
        "enabled: true",
    );
    edit(
        root,
        "/proc/4711/cmdline",
        "--metrics-bind-address=127.0.0.1:10249",
        "--metrics-bind-address=0.0.0.0:10249",
    );
}

/// The fixture nodes every benchmark is judged on: the TKG control plane
/// (all five targets), a worker whose kubelet is configured by its config
/// file only, both with kube-proxy running as its DaemonSet pod does, and
/// the loosened control plane, on which many checks fail.
fn fixture_nodes() -> Vec<(&'static str, tempfile::TempDir)> {
    let cp = tempfile::tempdir().unwrap();
    testkit::with_kube_proxy(&testkit::tkg_control_plane(cp.path()));
    let config = tempfile::tempdir().unwrap();
    testkit::with_kube_proxy(&testkit::worker(
        config.path(),
        testkit::KubeletStyle::ConfigOnly,
    ));
    let loose = tempfile::tempdir().unwrap();
    loosened_control_plane(loose.path());
    vec![
        ("TKG control plane", cp),
        ("worker (config file only)", config),
        ("loosened control plane", loose),
    ]
}

/// kube-bench definitions that cannot fail, where the native check judges
/// what the recommendation asks: (benchmark, check, why). On the loosened
/// control plane the native check must warn and kube-bench pass; on the
/// other fixture nodes both agree.
const KUBE_BENCH_CANNOT_FAIL: [(&str, &str, &str); 1] = [(
    "cis-1.6",
    "4.1.3",
    "its second test item passes when the kubeconfig's path is absent from the audit's output, \
     which only ever prints the file's mode, so the check passes whatever the mode",
)];

/// For every built-in benchmark, each fixture node gets the same status for
/// every check natively and through the benchmark's kube-bench-format
/// fixture; a built-in benchmark without a fixture fails the test by name.
/// Compare every built-in benchmark natively and through the definitions
/// under `cfg` on every fixture node; return the differences that are not
/// pinned in [`KUBE_BENCH_CANNOT_FAIL`] (a missing fixture folder is one),
/// and how many pinned ones showed.
fn compare_every_benchmark(cfg: &std::path::Path) -> (Vec<String>, usize) {
    let nodes = fixture_nodes();
    let mut problems = Vec::new();
    let mut pinned = 0;
    for name in Benchmark::embedded_names() {
        if !cfg.join(name).is_dir() {
            problems.push(format!(
                "{name} is built in but has no kube-bench-format folder {}",
                cfg.join(name).display()
            ));
            continue;
        }
        for (what, dir) in &nodes {
            for (id, d) in native_vs_kube_bench(name, dir.path(), cfg) {
                let known = KUBE_BENCH_CANNOT_FAIL
                    .iter()
                    .any(|(b, c, _)| *b == name && *c == id);
                if known
                    && *what == "loosened control plane"
                    && d.starts_with("native Warn")
                    && d.contains("kube-bench Pass")
                {
                    pinned += 1;
                } else {
                    problems.push(format!("{name} on the {what}: {id}: {d}"));
                }
            }
        }
    }
    (problems, pinned)
}

/// For every built-in benchmark, each fixture node gets the same status for
/// every check natively and through the benchmark's kube-bench-format
/// fixture; a built-in benchmark without a fixture fails the test by name.
#[test]
fn every_built_in_benchmark_gets_the_same_status_natively_and_through_its_kube_bench_fixture() {
    let (problems, pinned) = compare_every_benchmark(&cfg());
    assert!(
        problems.is_empty(),
        "status differs:\n{}",
        problems.join("\n")
    );
    assert_eq!(
        pinned,
        KUBE_BENCH_CANNOT_FAIL.len(),
        "each definition that cannot fail shows on the loosened control plane"
    );
}

/// The same comparison through kube-bench's own definitions of every
/// built-in benchmark.
#[test]
#[ignore = "opt-in: set RINGFENCE_KUBE_BENCH_CFG=<kube-bench cfg dir> and run with --ignored"]
fn fixture_nodes_get_the_same_status_natively_and_through_the_kube_bench_corpus() {
    let (problems, pinned) = compare_every_benchmark(&corpus_cfg());
    assert!(
        problems.is_empty(),
        "status differs:\n{}",
        problems.join("\n")
    );
    assert_eq!(pinned, KUBE_BENCH_CANNOT_FAIL.len());
}

/// Where the two part ways on purpose: a kubelet configured by flags only,
/// with no config file. kube-bench's `$kubeletconf` then falls back to the
/// next candidate that exists, the kubeadm systemd drop-in, so its checks of
/// the kubelet config file judge the drop-in's mode and owner, and its
/// RotateKubeletServerCertificate check reads the drop-in as the kubelet's
/// configuration and finds no gate (warn). The native scanner says the
/// config file checks do not apply (info) and judges the gate from the
/// kubelet's flags, where it is unset and defaults to true (pass). Every
/// other check must agree on this worker, for every built-in benchmark.
#[test]
fn a_kubelet_without_config_file_is_where_kube_bench_judges_the_systemd_drop_in() {
    let dir = tempfile::tempdir().unwrap();
    testkit::with_kube_proxy(&testkit::worker(
        dir.path(),
        testkit::KubeletStyle::FlagsOnly,
    ));
    let mut problems = Vec::new();
    for name in Benchmark::embedded_names() {
        let defs = match fixture_for(name) {
            Ok(d) => d,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let checks: BTreeMap<&str, &Check> = defs
            .controls
            .iter()
            .flat_map(|c| c.checks())
            .map(|(_, k)| (k.id.as_str(), k))
            .collect();
        let mut config_file_checks = 0;
        for (id, d) in native_vs_kube_bench(name, dir.path(), &cfg()) {
            let k = checks[id.as_str()];
            let stats_config = k.audit.contains("stat") && k.audit.contains("$kubeletconf");
            let rotate_gate = k.tests.as_ref().is_some_and(|t| {
                t.items
                    .iter()
                    .any(|i| i.flag.contains("RotateKubeletServerCertificate"))
            });
            if stats_config && d.starts_with("native Info") {
                config_file_checks += 1;
            } else if !(rotate_gate
                && d.starts_with("native Pass")
                && d.contains("kube-bench Warn"))
            {
                problems.push(format!("{name} {id}: {d}"));
            }
        }
        if config_file_checks != 2 {
            problems.push(format!(
                "{name}: expected the kubelet config file's mode and owner checks to part ways, saw {config_file_checks}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Where the two part ways on purpose: on a node where kube-proxy does not
/// run, kube-bench fails its checks (`ps -fC kube-proxy` exits 1, the
/// kubeconfig it would stat is absent) while the native scanner says the
/// component is not there (info) or that the evidence is missing
/// (not-assessed). Every check that differs there must be a kube-proxy check
/// and kube-bench must be the stricter side; anything else is a real
/// disagreement.
#[test]
fn without_kube_proxy_only_kube_proxy_checks_differ_and_kube_bench_is_stricter() {
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let mut problems = Vec::new();
    let mut parted = 0;
    for name in Benchmark::embedded_names() {
        let defs = match fixture_for(name) {
            Ok(d) => d,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let audits: BTreeMap<&str, String> = defs
            .controls
            .iter()
            .flat_map(|c| c.checks())
            .map(|(_, k)| (k.id.as_str(), format!("{} {}", k.audit, k.audit_config)))
            .collect();
        for (id, d) in native_vs_kube_bench(name, dir.path(), &cfg()) {
            let proxy = audits
                .get(id.as_str())
                .is_some_and(|a| a.contains("$proxy"));
            let stricter = (d.starts_with("native NotAssessed") || d.starts_with("native Info"))
                && (d.contains("kube-bench Warn") || d.contains("kube-bench Fail"));
            if proxy && stricter {
                parted += 1;
            } else {
                problems.push(format!("{name} {id}: {d}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        parted > 0,
        "kube-bench is expected to fail kube-proxy checks on this node"
    );
}

/// kube-bench's `stat -c %a FILE` does not follow symlinks, so a manifest or
/// config reached through a link reports the link's own mode, 777, and fails;
/// the native scanner judges the file the link resolves to (inside the root).
/// Only the two checks whose files are links may differ, and both must.
#[test]
fn symlinked_files_are_where_kube_bench_and_the_native_scanner_part_ways() {
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane_linked(dir.path());
    let differ = native_vs_kube_bench("cis-1.6", dir.path(), &cfg());
    let ids: Vec<&str> = differ.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["1.1.1", "4.1.9"], "{differ:#?}");
    for (_, d) in &differ {
        assert!(
            d.contains("native Pass") && d.contains("kube-bench Fail"),
            "{d}"
        );
        assert!(
            d.contains("777"),
            "the link's own mode is what kube-bench saw: {d}"
        );
    }
}

/// The fixture's config.yaml with one extra benchmark, `exec`, whose master
/// checks are the given controls text.
fn cfg_with_master(master: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(cfg().join("config.yaml"), d.path().join("config.yaml")).unwrap();
    write(d.path(), "exec/master.yaml", master);
    d
}

fn scan_master(defs: &Definitions) -> Result<kubebench::KubeBenchReport, kubebench::Refusal> {
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let node = discover(&DiscoverOptions {
        root: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    let opts = report::ScanOptions {
        targets: Some(vec![Target::Master]),
        checks: None,
        profile: None,
        waivers: &[],
        today: Date::parse("2026-01-01").unwrap(),
    };
    kubebench::scan(defs, &node, &opts, &Mode::Native)
}

#[test]
fn without_allow_exec_an_unrecognized_audit_is_refused_before_anything_runs() {
    // 1.1.1 is a read-only idiom (stat of $apiserverconf); 1.1.2 pipes
    // through a command no idiom covers.
    let d = cfg_with_master(
        "controls:\nid: 1\ntext: exec\ntype: master\ngroups:\n- id: 1.1\n  text: g\n  checks:\n  \
         - id: 1.1.1\n    text: idiom\n    audit: \"/bin/sh -c 'if test -e $apiserverconf; then stat -c permissions=%a $apiserverconf; fi'\"\n    \
         tests:\n      test_items:\n      - flag: permissions\n        compare:\n          op: bitmask\n          value: \"644\"\n    scored: true\n  \
         - id: 1.1.2\n    text: not an idiom\n    audit: \"ls -l /etc/kubernetes | wc -l\"\n    \
         tests:\n      test_items:\n      - flag: \"0\"\n    scored: true\n",
    );
    let defs = Definitions::load(d.path(), "exec").unwrap_or_else(|e| panic!("{e:?}"));
    match scan_master(&defs) {
        Err(r) => {
            let m = r.message();
            assert!(m.contains("--allow-exec"), "{m}");
            let ids: Vec<&str> = r.needs_shell.iter().map(|(id, _)| id.as_str()).collect();
            assert_eq!(ids, ["1.1.2"], "{m}");
        }
        Ok(_) => panic!("an audit no idiom covers ran without --allow-exec"),
    }
}

/// kube-bench's cis-1.10 master audits, refused or all idioms.
#[test]
#[ignore = "opt-in: set RINGFENCE_KUBE_BENCH_CFG=<kube-bench cfg dir> and run with --ignored"]
fn without_allow_exec_kube_bench_cis_1_10_master_is_refused_or_all_idioms() {
    let defs = Definitions::load(&corpus_cfg(), "cis-1.10").unwrap();
    match scan_master(&defs) {
        Err(r) => {
            let m = r.message();
            assert!(m.contains("--allow-exec"), "{m}");
            assert!(
                r.needs_shell.iter().any(|(id, _)| id.starts_with("1.")),
                "{m}"
            );
        }
        Ok(_) => {
            // Every master audit in cis-1.10 is an idiom: then nothing is refused.
        }
    }
}
