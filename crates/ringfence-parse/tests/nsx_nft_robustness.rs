//! Damaged input never panics: random edits of real fixtures either parse or
//! give input errors that point somewhere inside the document.

use proptest::prelude::*;
use serde_json::Value;

fn fixture(rel: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/tests/data/{rel}", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every node of a JSON document, as a JSON pointer.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                pointers(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        _ => {}
    }
}

fn replacement(kind: u8, n: i64) -> Value {
    match kind % 9 {
        0 => Value::Null,
        1 => Value::from(n),
        2 => Value::from(-n),
        3 => Value::from(format!("@x{n}")),
        4 => Value::from("198.18.0.0/99"),
        5 => serde_json::json!([]),
        6 => serde_json::json!({}),
        7 => serde_json::json!({"range": [n, -n]}),
        _ => serde_json::json!({"set": [{"prefix": {"addr": "::", "len": n}}]}),
    }
}

fn mutate(doc: &Value, picks: &[(usize, u8, i64)]) -> Value {
    let mut d = doc.clone();
    for &(idx, kind, n) in picks {
        let mut ptrs = Vec::new();
        pointers(&d, String::new(), &mut ptrs);
        let p = &ptrs[idx % ptrs.len()];
        if let Some(slot) = d.pointer_mut(p) {
            *slot = replacement(kind, n);
        }
    }
    d
}

fn check(result: Result<ringfence_model::Ruleset, ringfence_diag::InputErrors>, doc: &Value) {
    if let Err(errs) = result {
        assert!(!errs.0.is_empty());
        for e in errs.0 {
            if let ringfence_diag::Locus::Pointer(p) = &e.locus {
                // The pointer names a node that exists (or whose parent exists).
                let parent = p.rsplit_once('/').map(|(a, _)| a).unwrap_or("");
                assert!(
                    doc.pointer(p).is_some() || doc.pointer(parent).is_some(),
                    "error points nowhere: {e}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn damaged_nft_dumps_never_panic(picks in proptest::collection::vec((any::<usize>(), any::<u8>(), -5i64..300), 1..4)) {
        for name in ["nft/kube.json", "nft/mixed.json", "nft/vmap.json"] {
            let doc = mutate(&fixture(name), &picks);
            check(ringfence_parse::nft::parse(&doc.to_string(), "x.json"), &doc);
        }
    }

    #[test]
    fn damaged_nsx_exports_never_panic(picks in proptest::collection::vec((any::<usize>(), any::<u8>(), -5i64..300), 1..4)) {
        for name in ["nsx/infra.json", "nsx/flat.json"] {
            let doc = mutate(&fixture(name), &picks);
            check(ringfence_parse::nsx::parse(&doc.to_string(), "x.json"), &doc);
        }
    }
}
