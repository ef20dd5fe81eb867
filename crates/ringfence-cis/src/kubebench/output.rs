//! kube-bench's JSON layout, so pipelines that read kube-bench keep working.
//!
//! `{"Controls": [{"id", "version", "detected_version", "text", "node_type",
//! "tests": [{"section", "type", "pass", "fail", "warn", "info", "desc",
//! "results": [{"test_number", "test_desc", "audit", "AuditEnv",
//! "AuditConfig", "type", "remediation", "test_info", "status",
//! "actual_value", "scored", "IsMultiple", "expected_result", "reason"}]}],
//! "total_pass", "total_fail", "total_warn", "total_info"}], "Totals":
//! {"total_pass", "total_fail", "total_warn", "total_info"}}`.
//!
//! Statuses are kube-bench's. When a profile or waiver covers a failure, the
//! result also carries `"expected_failure": true` or `"waiver": {...}`
//! (extra keys that kube-bench readers ignore).

use super::eval::State;
use super::KubeBenchReport;
use serde_json::{json, Map, Value};

#[derive(Default, Clone, Copy)]
struct Counts {
    pass: usize,
    fail: usize,
    warn: usize,
    info: usize,
}

impl Counts {
    fn add(&mut self, s: State) {
        match s {
            State::Pass => self.pass += 1,
            State::Fail => self.fail += 1,
            State::Warn => self.warn += 1,
            State::Info => self.info += 1,
        }
    }
    fn totals(&self, m: &mut Map<String, Value>) {
        m.insert("total_pass".into(), json!(self.pass));
        m.insert("total_fail".into(), json!(self.fail));
        m.insert("total_warn".into(), json!(self.warn));
        m.insert("total_info".into(), json!(self.info));
    }
}

/// kube-bench's JSON for a scan, pretty-printed with a trailing newline.
pub fn kube_bench_json(r: &KubeBenchReport) -> String {
    let mut controls: Vec<Value> = Vec::new();
    let mut all = Counts::default();
    let mut i = 0;
    while i < r.ran.len() {
        let target = r.ran[i].planned.target;
        let (id, version, text) = r.ran[i].planned.controls.clone();
        let mut counts = Counts::default();
        let mut groups: Vec<Value> = Vec::new();
        while i < r.ran.len() && r.ran[i].planned.target == target {
            let gid = r.ran[i].planned.group.0.clone();
            let gtext = r.ran[i].planned.group.1.clone();
            let mut gc = Counts::default();
            let mut results = Vec::new();
            while i < r.ran.len()
                && r.ran[i].planned.target == target
                && r.ran[i].planned.group.0 == gid
            {
                let ran = &r.ran[i];
                let c = &ran.planned.check;
                let o = &ran.outcome;
                gc.add(o.state);
                counts.add(o.state);
                all.add(o.state);
                let mut m = Map::new();
                m.insert("test_number".into(), json!(c.id));
                m.insert("test_desc".into(), json!(c.text));
                m.insert("audit".into(), json!(c.audit));
                m.insert("AuditEnv".into(), json!(c.audit_env));
                m.insert("AuditConfig".into(), json!(c.audit_config));
                m.insert("type".into(), json!(c.kind));
                m.insert("remediation".into(), json!(c.remediation));
                m.insert("test_info".into(), json!([c.remediation]));
                m.insert("status".into(), json!(o.state.name()));
                m.insert("actual_value".into(), json!(o.actual_value));
                m.insert("scored".into(), json!(c.scored));
                m.insert("IsMultiple".into(), json!(c.multiple));
                m.insert("expected_result".into(), json!(o.expected_result));
                if !o.reason.is_empty() {
                    m.insert("reason".into(), json!(o.reason));
                }
                if let Some(res) = r.report.checks.get(i) {
                    if res.expected {
                        m.insert("expected_failure".into(), json!(true));
                    }
                    if let Some(w) = &res.waiver {
                        m.insert(
                            "waiver".into(),
                            serde_json::to_value(w).expect("waiver serializes"),
                        );
                    }
                }
                results.push(Value::Object(m));
                i += 1;
            }
            groups.push(json!({
                "section": gid,
                "type": "",
                "pass": gc.pass,
                "fail": gc.fail,
                "warn": gc.warn,
                "info": gc.info,
                "desc": gtext,
                "results": results,
            }));
        }
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        m.insert("version".into(), json!(version));
        if let Some(v) = &r.report.node.kubernetes_version {
            m.insert("detected_version".into(), json!(v));
        }
        m.insert("text".into(), json!(text));
        m.insert("node_type".into(), json!(target.name()));
        m.insert("tests".into(), Value::Array(groups));
        counts.totals(&mut m);
        controls.push(Value::Object(m));
    }
    let mut totals = Map::new();
    all.totals(&mut totals);
    let doc = json!({ "Controls": controls, "Totals": totals });
    let mut s = serde_json::to_string_pretty(&doc).expect("JSON serializes");
    s.push('\n');
    s
}
