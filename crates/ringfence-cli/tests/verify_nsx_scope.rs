//! `verify` of a scoped NSX DFW body (issue 16): the DFW runs a policy
//! applied to the site's groups only at those VMs' vNICs, so `verify` judges
//! excess only for packets with the source or the destination there, and
//! says so in one line (text note and JSON `enforced_at`). A scope it cannot
//! resolve, or a body at scope ANY, is judged everywhere, as before.

mod common;
use common::{json, ok, run, write};

use serde_json::Value;
use std::path::Path;

/// The NSX body `generate --example --target nsxt` writes, parsed.
fn generated_body() -> Value {
    let out = ok(&["generate", "--example", "--target", "nsxt"]);
    json(&out)
}

/// `verify --example --ruleset <body>` in text and JSON: (exit code, text,
/// JSON report).
fn verify(dir: &Path, body: &Value) -> (i32, String, Value) {
    let file = write(
        dir,
        "dfw.json",
        &serde_json::to_string_pretty(body).unwrap(),
    );
    let f = file.to_str().unwrap();
    let (code, text, err) = run(&["verify", "--example", "--ruleset", f]);
    assert!(code == 0 || code == 1, "exit {code}: {err}");
    let (jcode, out, err) = run(&["verify", "--example", "--ruleset", f, "--format", "json"]);
    assert_eq!(jcode, code, "{err}");
    (code, text, json(&out))
}

/// Every object in `v` whose `resource_type` is `ty`, mutably.
fn objects_mut<'a>(v: &'a mut Value, ty: &str, out: &mut Vec<&'a mut Value>) {
    match v {
        Value::Object(o) if o.get("resource_type").and_then(Value::as_str) == Some(ty) => {
            out.push(v)
        }
        Value::Object(o) => o.values_mut().for_each(|x| objects_mut(x, ty, out)),
        Value::Array(a) => a.iter_mut().for_each(|x| objects_mut(x, ty, out)),
        _ => {}
    }
}

/// The one security policy of the generated body.
fn policy(body: &mut Value) -> &mut Value {
    let mut ps = Vec::new();
    objects_mut(body, "SecurityPolicy", &mut ps);
    assert_eq!(ps.len(), 1, "one security policy");
    ps.pop().unwrap()
}

fn scope_line(text: &str) -> Option<&str> {
    text.lines().find(|l| l.starts_with("note: scope: "))
}

#[test]
fn generated_scoped_body_verifies_ok_with_the_scope_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text, json) = verify(dir.path(), &generated_body());
    assert_eq!(code, 0, "{text}");
    assert_eq!(json["summary"]["excess"], 0, "{text}");
    assert_eq!(json["summary"]["ok"], true);
    let line = scope_line(&text).unwrap_or_else(|| panic!("no scope line:\n{text}"));
    for zone in ["management", "workload", "jumpbox", "bootstrap"] {
        assert!(
            line.contains(&format!("rf-example-dc-zone-{zone}")),
            "{line}"
        );
    }
    assert!(
        line.ends_with("traffic with neither end there is not judged"),
        "{line}"
    );
    // The JSON carries the same line, once in `enforced_at` and once in notes.
    let enforced = json["enforced_at"].as_str().expect("enforced_at string");
    assert_eq!(format!("note: {enforced}"), line);
    assert!(json["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == enforced));
}

#[test]
fn an_extra_allow_inside_the_scope_is_excess_and_exits_1() {
    let mut body = generated_body();
    let jumpbox = "/infra/domains/default/groups/rf-example-dc-zone-jumpbox";
    {
        let p = policy(&mut body);
        let children = p["children"].as_array_mut().expect("policy children");
        let mut wrapper = children
            .iter()
            .find(|c| c["resource_type"] == "ChildRule")
            .expect("a ChildRule")
            .clone();
        let extra = &mut wrapper["Rule"];
        extra["id"] = "extra-any-to-jumpbox".into();
        extra["display_name"] = "extra-any-to-jumpbox".into();
        extra["source_groups"] = serde_json::json!(["ANY"]);
        extra["destination_groups"] = serde_json::json!([jumpbox]);
        extra["services"] = serde_json::json!(["ANY"]);
        extra.as_object_mut().unwrap().remove("service_entries");
        extra["sequence_number"] = 0.into();
        children.insert(0, wrapper);
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, text, json) = verify(dir.path(), &body);
    assert_eq!(code, 1, "{text}");
    assert!(scope_line(&text).is_some(), "{text}");
    let excess = json["summary"]["excess"].as_u64().unwrap();
    assert!(excess > 0, "{text}");
    // Every excess region ends at the jumpbox zone, the one the extra rule opens.
    for g in json["excess_summary"].as_array().unwrap() {
        assert_eq!(g["to"], "jumpbox", "{g}");
    }
    assert!(text.contains("extra-any-to-jumpbox"), "{text}");
}

#[test]
fn a_body_at_scope_any_is_judged_everywhere_without_a_scope_line() {
    let mut body = generated_body();
    for ty in ["SecurityPolicy", "Rule"] {
        let mut objs = Vec::new();
        objects_mut(&mut body, ty, &mut objs);
        for o in objs {
            o["scope"] = serde_json::json!(["ANY"]);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, text, json) = verify(dir.path(), &body);
    // At scope ANY the deny-all closes every vNIC: exactly the flows.
    assert_eq!(code, 0, "{text}");
    assert_eq!(scope_line(&text), None, "{text}");
    assert!(json["enforced_at"].is_null());
}

#[test]
fn an_unresolvable_scope_group_keeps_outside_traffic_as_excess() {
    let mut body = generated_body();
    {
        let p = policy(&mut body);
        p["scope"]
            .as_array_mut()
            .unwrap()
            .push("/infra/domains/default/groups/tkg-vms".into());
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, text, json) = verify(dir.path(), &body);
    assert_eq!(code, 1, "{text}");
    assert_eq!(scope_line(&text), None, "{text}");
    assert!(json["enforced_at"].is_null());
    assert!(json["summary"]["excess"].as_u64().unwrap() > 0, "{text}");
}

#[test]
fn an_iptables_ruleset_has_no_scope_line() {
    let out = ok(&[
        "generate",
        "--example",
        "--target",
        "iptables",
        "--family",
        "4",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "rules.v4", &out);
    let f = file.to_str().unwrap();
    let (_, json, err) = run(&["verify", "--example", "--ruleset", f, "--format", "json"]);
    let json: Value = serde_json::from_str(&json).unwrap_or_else(|_| panic!("{err}"));
    assert!(json["enforced_at"].is_null());
    assert!(!json["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().starts_with("scope: ")));
}
