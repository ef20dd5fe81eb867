//! The Kubernetes JSONPath dialect kube-bench uses for `path` test items.
//!
//! A template is literal text with `{...}` actions. Supported actions: field
//! chains (`.a.b`, `['a']`, `.peer-transport-security`), indexes and slices
//! (`[0]`, `[-1]`, `[1:3]`, `[:]`, `[*]`), the current value (`{}`, `{@}`),
//! quoted literals (`{','}`) and `{range ...}...{end}`. Missing keys print
//! nothing (kube-bench turns missing keys into empty output). Values print as
//! Go's `fmt` prints decoded YAML/JSON: strings bare, maps as
//! `map[k:v ...]` with sorted keys, lists as `[a b]`, numbers from JSON as
//! Go floats (`1e+06`), several results separated by a space.

use serde_json::Value;

/// Where a number came from: JSON decodes every number to a float in Go,
/// YAML keeps integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbers {
    /// Decoded from JSON: all numbers are floats.
    Json,
    /// Decoded from YAML: integers stay integers.
    Yaml,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    All,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Literal(String),
    Range(Vec<Step>, Vec<Node>),
}

/// Evaluate `template` against `doc`; `Err` when the template does not parse.
pub fn execute(template: &str, doc: &Value, numbers: Numbers) -> Result<String, String> {
    let nodes = parse(template)?;
    let mut out = String::new();
    run(&nodes, doc, numbers, &mut out);
    Ok(out)
}

fn parse(template: &str) -> Result<Vec<Node>, String> {
    let mut tokens = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find('{') {
            None => {
                tokens.push(Tok::Text(rest.to_string()));
                break;
            }
            Some(i) => {
                if i > 0 {
                    tokens.push(Tok::Text(rest[..i].to_string()));
                }
                let inner = &rest[i + 1..];
                let end = find_close(inner).ok_or_else(|| "unclosed action".to_string())?;
                tokens.push(Tok::Action(inner[..end].trim().to_string()));
                rest = &inner[end + 1..];
            }
        }
    }
    let mut pos = 0;
    let nodes = build(&tokens, &mut pos, false)?;
    Ok(nodes)
}

enum Tok {
    Text(String),
    Action(String),
}

fn find_close(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '}' => return Some(i),
            None => {}
        }
    }
    None
}

fn build(tokens: &[Tok], pos: &mut usize, in_range: bool) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        let tok = &tokens[*pos];
        *pos += 1;
        match tok {
            Tok::Text(t) => nodes.push(Node::Text(t.clone())),
            Tok::Action(a) if a == "end" => {
                if in_range {
                    return Ok(nodes);
                }
                return Err("not in range, nothing to end".to_string());
            }
            Tok::Action(a) if a.starts_with("range ") || a == "range" => {
                let steps = steps(a.trim_start_matches("range").trim())?;
                let body = build(tokens, pos, true)?;
                nodes.push(Node::Range(steps, body));
            }
            Tok::Action(a) => {
                let a = a.as_str();
                if (a.starts_with('\'') && a.ends_with('\'') && a.len() >= 2)
                    || (a.starts_with('"') && a.ends_with('"') && a.len() >= 2)
                {
                    nodes.push(Node::Literal(a[1..a.len() - 1].to_string()));
                } else {
                    nodes.push(Node::Path(steps(a)?));
                }
            }
        }
    }
    if in_range {
        return Err("range without end".to_string());
    }
    Ok(nodes)
}

fn steps(expr: &str) -> Result<Vec<Step>, String> {
    let mut out = Vec::new();
    let mut s = expr.trim();
    s = s.strip_prefix('$').unwrap_or(s);
    s = s.strip_prefix('@').unwrap_or(s);
    while !s.is_empty() {
        if let Some(r) = s.strip_prefix('.') {
            let end = r.find(['.', '[', ' ']).unwrap_or(r.len());
            if end > 0 {
                out.push(Step::Field(r[..end].replace('\\', "")));
            }
            s = &r[end..];
        } else if let Some(r) = s.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("unterminated [ in {expr:?}"))?;
            let inner = r[..end].trim();
            s = &r[end + 1..];
            if inner == "*" {
                out.push(Step::All);
            } else if (inner.starts_with('\'') && inner.ends_with('\'') && inner.len() >= 2)
                || (inner.starts_with('"') && inner.ends_with('"') && inner.len() >= 2)
            {
                out.push(Step::Field(inner[1..inner.len() - 1].to_string()));
            } else if let Some((a, b)) = inner.split_once(':') {
                let num = |x: &str| -> Result<Option<i64>, String> {
                    let x = x.trim();
                    if x.is_empty() {
                        Ok(None)
                    } else {
                        x.parse()
                            .map(Some)
                            .map_err(|_| format!("bad slice {inner:?}"))
                    }
                };
                let b = b.split(':').next().unwrap_or("");
                out.push(Step::Slice(num(a)?, num(b)?));
            } else {
                let n: i64 = inner
                    .parse()
                    .map_err(|_| format!("unsupported subscript [{inner}]"))?;
                out.push(Step::Index(n));
            }
        } else if s.starts_with(' ') {
            s = s.trim_start();
        } else {
            return Err(format!("unrecognized character in action: {:?}", &s[..1]));
        }
    }
    Ok(out)
}

fn select<'a>(doc: &'a Value, steps: &[Step]) -> Vec<&'a Value> {
    let mut cur = vec![doc];
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            match (step, v) {
                (Step::Field(f), Value::Object(m)) => {
                    if let Some(x) = m.get(f) {
                        next.push(x);
                    }
                }
                (Step::All, Value::Object(m)) => {
                    let mut keys: Vec<&String> = m.keys().collect();
                    keys.sort();
                    next.extend(keys.into_iter().map(|k| &m[k]));
                }
                (Step::All, Value::Array(a)) => next.extend(a.iter()),
                (Step::Index(i), Value::Array(a)) => {
                    let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                    if idx >= 0 && (idx as usize) < a.len() {
                        next.push(&a[idx as usize]);
                    }
                }
                (Step::Slice(from, to), Value::Array(a)) => {
                    let len = a.len() as i64;
                    let fix = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                    let f = from.map(fix).unwrap_or(0);
                    let t = to.map(fix).unwrap_or(len);
                    if f < t {
                        next.extend(a[f as usize..t as usize].iter());
                    }
                }
                _ => {}
            }
        }
        cur = next;
    }
    cur
}

fn run(nodes: &[Node], doc: &Value, numbers: Numbers, out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) | Node::Literal(t) => out.push_str(t),
            Node::Path(steps) => {
                let vals = select(doc, steps);
                let texts: Vec<String> = vals.iter().map(|v| go_print(v, numbers)).collect();
                out.push_str(&texts.join(" "));
            }
            Node::Range(steps, body) => {
                for v in select(doc, steps) {
                    let items: Vec<&Value> = match v {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    for item in items {
                        run(body, item, numbers, out);
                    }
                }
            }
        }
    }
}

/// Print a decoded value as Go's `fmt.Print` would.
pub fn go_print(v: &Value, numbers: Numbers) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => {
            if numbers == Numbers::Yaml && (n.is_i64() || n.is_u64()) {
                n.to_string()
            } else {
                go_float(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::Array(a) => {
            let inner: Vec<String> = a.iter().map(|x| go_print(x, numbers)).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_print(&m[k], numbers)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// Go's `%v` for a float64: shortest digits, exponent form when the
/// exponent is below -4 or at least 6 (`1e+06`).
pub fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".to_string();
    }
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let e = format!("{f:e}"); // shortest digits: "1.5e6"
    let (mant, exp) = e.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, v: Value) -> String {
        execute(t, &v, Numbers::Yaml).unwrap()
    }

    #[test]
    fn fields_missing_keys_and_literal_text() {
        let d = json!({"a": {"b-c": true}, "n": 10250});
        assert_eq!(run("{.a.b-c}", d.clone()), "true");
        assert_eq!(run("{.nope.x}", d.clone()), "");
        assert_eq!(run("{.n}", d.clone()), "10250");
        assert_eq!(
            run(".streamingConnectionIdleTimeout", d.clone()),
            ".streamingConnectionIdleTimeout"
        );
        assert_eq!(run("{.n}}", d), "10250}");
        assert!(execute("{.missingClosingBrace", &json!({}), Numbers::Yaml).is_err());
    }

    #[test]
    fn range_with_literals_joins_list_elements() {
        let d = json!({"tlsCipherSuites": ["A", "B"]});
        assert_eq!(run("{range .tlsCipherSuites[:]}{}{','}{end}", d), "A,B,");
    }

    #[test]
    fn wildcards_and_go_printing() {
        let d = json!({"resources": [{"providers": [{"aescbc": {"keys": [{"name": "k"}]}}]}]});
        assert_eq!(
            run("{.resources[*].providers[*].aescbc.keys[*]}", d.clone()),
            "map[name:k]"
        );
        assert_eq!(
            run("{.resources[0].providers}", d),
            "[map[aescbc:map[keys:[map[name:k]]]]]"
        );
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(10250.0), "10250");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(
            execute("{.n}", &json!({"n": 1000000}), Numbers::Json).unwrap(),
            "1e+06"
        );
    }
}
