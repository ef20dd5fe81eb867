//! Rule references in text output, each with what the rule says: the line of
//! a line-based file (`fw.rules:74: -A F_ssh -p tcp --dport 22 -j ACCEPT`),
//! the action of an nft handle or NSX rule (`inet filter fwd handle 12
//! (accept)`), the verdict of a chain policy (`policy of FORWARD (drop)`).
//! Used by the text output of `verify`, `trace` and `diff`.

use ringfence_model::{Action, Policy, RuleRef, Ruleset};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

/// Rule references of one ruleset, each with its text or action.
pub struct RuleQuoter {
    /// Reference -> what follows it (`: TEXT` or ` (ACTION)`).
    said: HashMap<String, String>,
}

/// Rules longer than this are cut (with `...`), to keep a finding on one line.
const MAX_TEXT: usize = 240;

fn action_text(rs: &Ruleset, a: &Action) -> String {
    let chain = |id: &ringfence_model::ChainId| {
        let name = &rs.chains[id.0].name;
        match name.strip_prefix(ringfence_model::Chain::UNKNOWN_TARGET_PREFIX) {
            Some(target) => format!("{target}, a target the model does not follow"),
            None => name.clone(),
        }
    };
    match a {
        Action::Accept => "accept".into(),
        Action::Drop => "drop".into(),
        Action::Reject { with: None } => "reject".into(),
        Action::Reject { with: Some(w) } => format!("reject with {w}"),
        Action::Return => "return".into(),
        Action::Jump { target } => format!("jump {}", chain(target)),
        Action::Goto { target } => format!("goto {}", chain(target)),
        Action::Continue => "continue".into(),
        Action::Nat(n) => n.to_string(),
        Action::Mark(m) => format!(
            "set {} mark (clear {:#x}, xor {:#x}{})",
            match m.field {
                ringfence_model::MarkField::Packet => "packet",
                ringfence_model::MarkField::Conn => "connection",
            },
            m.clear,
            m.xor,
            if m.copy == 0 {
                String::new()
            } else {
                format!(", copy {:#x} of the other mark", m.copy)
            }
        ),
    }
}

fn cut(line: &str) -> String {
    let line = line.trim();
    if line.chars().count() <= MAX_TEXT {
        return line.to_string();
    }
    let mut s: String = line.chars().take(MAX_TEXT).collect();
    s.push_str("...");
    s
}

impl RuleQuoter {
    /// Look up the references `refs` (as the reports render them) in `rs`,
    /// whose line-based rules come from `files` (the `--ruleset` paths; a
    /// file is read again here, once, for the lines asked for). A file that
    /// cannot be read again leaves its references without text.
    pub fn new<'r>(
        rs: &Ruleset,
        files: &[PathBuf],
        refs: impl IntoIterator<Item = &'r str>,
    ) -> Self {
        let wanted: HashSet<&str> = refs.into_iter().collect();
        let mut said = HashMap::new();
        let mut lines: HashMap<String, BTreeSet<u64>> = HashMap::new();
        if wanted.is_empty() {
            return RuleQuoter { said };
        }
        for chain in &rs.chains {
            for rule in &chain.rules {
                let name = rule.origin.to_string();
                if !wanted.contains(name.as_str()) || said.contains_key(&name) {
                    continue;
                }
                match &rule.origin {
                    RuleRef::Line { file, line } => {
                        lines.entry(file.clone()).or_default().insert(*line);
                        // Filled in from the file below.
                        said.insert(name, String::new());
                    }
                    RuleRef::Policy { .. } => {}
                    RuleRef::NftHandle { .. } | RuleRef::NsxPath { .. } => {
                        let mut what = action_text(rs, &rule.action);
                        if let Some(c) = rule.comment.as_deref().filter(|c| !c.is_empty()) {
                            what.push_str(&format!(", comment {c:?}"));
                        }
                        said.insert(name, format!(" ({what})"));
                    }
                }
            }
            if let Some(base) = &chain.base {
                let name = RuleRef::Policy {
                    chain: chain.name.clone(),
                }
                .to_string();
                if wanted.contains(name.as_str()) && !said.contains_key(&name) {
                    let verdict = match base.policy {
                        Policy::Accept => "accept",
                        Policy::Drop => "drop",
                    };
                    said.insert(name, format!(" ({verdict})"));
                }
            }
        }
        for (file, want) in lines {
            let Some(path) = files.iter().find(|p| p.display().to_string() == file) else {
                continue;
            };
            let Ok(text) = ringfence_diag::read_input(path, &file, "ruleset") else {
                continue;
            };
            for (i, line) in text.lines().enumerate() {
                let n = i as u64 + 1;
                if want.contains(&n) {
                    said.insert(
                        RuleRef::Line {
                            file: file.clone(),
                            line: n,
                        }
                        .to_string(),
                        format!(": {}", cut(line)),
                    );
                }
            }
        }
        RuleQuoter { said }
    }

    /// The reference with what the rule says; anything not found (such as
    /// `return at end of CHAIN`) as it is.
    pub fn quote(&self, r: &str) -> String {
        match self.said.get(r) {
            Some(what) => format!("{r}{what}"),
            None => r.to_string(),
        }
    }
}
