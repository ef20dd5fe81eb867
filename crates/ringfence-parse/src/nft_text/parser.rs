//! nft scripts and `nft list ruleset` output: commands and blocks, run
//! against a ruleset state the way `nft -f` runs them, then printed as the
//! items of `nft -j list ruleset`.
//!
//! Commands: `table` blocks (with `chain`, `set`, `map` blocks inside),
//! `add`/`create`/`insert`/`delete`/`destroy`/`flush` of tables, chains,
//! sets, maps, rules and elements, `flush ruleset`, `define`/`redefine`/
//! `undefine` with `$name` uses. `include` is refused (each file is given
//! on its own), as is anything that needs a running kernel's rule handles.

use super::expr::Reader;
use super::lexer::{Kind, Pos, Tok};
use ringfence_diag::InputError;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The families nft knows.
const FAMILIES: [&str; 6] = ["ip", "ip6", "inet", "arp", "bridge", "netdev"];

/// A rule: its statements and comment, where it starts.
pub struct RuleDef {
    /// The first token of the rule.
    pub pos: Pos,
    /// The statements, each with where it starts.
    pub exprs: Vec<(Value, Pos)>,
    /// `comment "..."`.
    pub comment: Option<String>,
}

/// A chain and its rules.
pub struct ChainDef {
    name: String,
    pos: Pos,
    /// type, hook, prio, policy (as JSON members), for a base chain.
    spec: Map<String, Value>,
    rules: Vec<RuleDef>,
}

/// A named set or map.
pub struct SetDef {
    name: String,
    pos: Pos,
    map: bool,
    /// type, flags and the like (as JSON members).
    attrs: Map<String, Value>,
    elems: Vec<(Value, Pos)>,
}

/// A table and what it holds, in the order it was defined.
pub struct TableDef {
    family: String,
    name: String,
    pos: Pos,
    sets: Vec<SetDef>,
    chains: Vec<ChainDef>,
}

/// Where each item of the printed JSON came from, for locating what the
/// lowering reports: the item itself and its statements or elements.
pub struct ItemPos {
    /// The item's declaration.
    pub pos: Pos,
    /// Positions of `expr` entries (rules) or `elem` entries (sets, maps).
    pub parts: Vec<Pos>,
}

/// The ruleset the commands have built so far.
#[derive(Default)]
pub struct State {
    tables: Vec<TableDef>,
}

/// Reads commands from the tokens of one file into a [`State`].
pub struct Script<'s> {
    toks: Vec<Tok>,
    i: usize,
    file: &'s str,
    vars: HashMap<String, Vec<Tok>>,
    /// Tokens a variable expanded to, still to be read (last first).
    pending: Vec<Tok>,
    expansions: usize,
}

type R<T> = Result<T, InputError>;

const FIX: &str = "check the file with `nft -c -f FILE`, which reports the same problem";

impl<'s> Script<'s> {
    /// A script over the tokens of `file`.
    pub fn new(toks: Vec<Tok>, file: &'s str) -> Self {
        Script {
            toks,
            i: 0,
            file,
            vars: HashMap::new(),
            pending: Vec::new(),
            expansions: 0,
        }
    }

    fn err(&self, pos: Pos, msg: impl Into<String>) -> InputError {
        InputError::at(self.file, pos.line, pos.col, msg)
    }

    /// Expand a `$variable` at the head of the stream.
    fn fill(&mut self) -> R<()> {
        loop {
            let head = match self.pending.last() {
                Some(t) => t.clone(),
                None => match self.toks.get(self.i) {
                    Some(t) => t.clone(),
                    None => return Ok(()),
                },
            };
            let Some(name) = head.word().and_then(|w| w.strip_prefix('$')) else {
                return Ok(());
            };
            let Some(def) = self.vars.get(name) else {
                let mut e = self.err(head.pos, format!("variable `${name}` is not defined"));
                if let Some(c) = ringfence_diag::closest(name, self.vars.keys().map(String::as_str))
                {
                    e = e.with_help(format!("did you mean `${c}`?"));
                } else {
                    e = e.with_help(format!(
                        "define it before its first use: `define {name} = ...`"
                    ));
                }
                return Err(e);
            };
            self.expansions += 1;
            if self.expansions > 100_000 {
                return Err(self.err(
                    head.pos,
                    format!(
                        "variable `${name}` expands without end: a definition refers to itself"
                    ),
                ));
            }
            let def: Vec<Tok> = def
                .iter()
                .map(|t| Tok {
                    kind: t.kind.clone(),
                    pos: head.pos,
                })
                .collect();
            if self.pending.pop().is_none() {
                self.i += 1;
            }
            self.pending.extend(def.into_iter().rev());
        }
    }

    fn peek(&mut self) -> R<Option<Tok>> {
        self.fill()?;
        Ok(self
            .pending
            .last()
            .cloned()
            .or_else(|| self.toks.get(self.i).cloned()))
    }

    fn bump(&mut self) -> R<Option<Tok>> {
        self.fill()?;
        Ok(match self.pending.pop() {
            Some(t) => Some(t),
            None => {
                let t = self.toks.get(self.i).cloned();
                if t.is_some() {
                    self.i += 1;
                }
                t
            }
        })
    }

    /// Where the last token of the file is (for errors at the end).
    fn end_pos(&self) -> Pos {
        self.toks.last().map(|t| t.pos).unwrap_or(Pos {
            src: 0,
            line: 1,
            col: 1,
        })
    }

    fn word(&mut self, what: &str) -> R<(String, Pos)> {
        match self.bump()? {
            Some(Tok {
                kind: Kind::Word(w) | Kind::Str(w),
                pos,
            }) => Ok((w, pos)),
            Some(t) => Err(self.err(t.pos, format!("expected {what}, found {}", t.show()))),
            None => Err(self.err(
                self.end_pos(),
                format!("expected {what}, found the end of the file"),
            )),
        }
    }

    fn expect(&mut self, p: &str, what: &str) -> R<Pos> {
        match self.bump()? {
            Some(t) if t.is(p) => Ok(t.pos),
            Some(t) => Err(self.err(t.pos, format!("expected {what}, found {}", t.show()))),
            None => Err(self.err(
                self.end_pos(),
                format!("expected {what}, found the end of the file"),
            )),
        }
    }

    fn next_is(&mut self, p: &str) -> R<bool> {
        Ok(self.peek()?.is_some_and(|t| t.is(p)))
    }

    /// Skip newlines and `;`.
    fn skip_separators(&mut self) -> R<()> {
        while let Some(t) = self.peek()? {
            if t.kind == Kind::Newline || t.is(";") {
                self.bump()?;
            } else {
                break;
            }
        }
        Ok(())
    }

    /// The tokens up to the end of the statement: a newline or `;` outside
    /// braces, or a `}` that closes the enclosing block (not consumed).
    /// Newlines inside braces are dropped.
    fn statement_tokens(&mut self) -> R<Vec<Tok>> {
        let mut out = Vec::new();
        let mut open: Vec<Pos> = Vec::new();
        while let Some(t) = self.peek()? {
            if open.is_empty() && (t.kind == Kind::Newline || t.is(";") || t.is("}")) {
                break;
            }
            self.bump()?;
            if t.is("{") {
                open.push(t.pos);
            } else if t.is("}") {
                open.pop();
            }
            if t.kind != Kind::Newline {
                out.push(t);
            }
        }
        if let Some(p) = open.first() {
            return Err(self.err(*p, "this `{` is never closed: expected `}`"));
        }
        Ok(out)
    }

    /// `[family] name`: the family is optional and defaults to `ip`.
    fn family_and_table(&mut self) -> R<(String, String, Pos)> {
        let (first, pos) = self.word("a table family (ip, ip6, inet, ...) or a table name")?;
        if FAMILIES.contains(&first.as_str()) {
            let next_is_name = matches!(
                self.peek()?,
                Some(Tok {
                    kind: Kind::Word(_) | Kind::Str(_),
                    ..
                })
            );
            if next_is_name {
                let (name, _) = self.word("a table name")?;
                return Ok((first, name, pos));
            }
        }
        Ok(("ip".into(), first, pos))
    }

    /// Run every command of the file against `st`.
    pub fn run(&mut self, st: &mut State) -> R<()> {
        loop {
            self.skip_separators()?;
            let Some(t) = self.bump()? else {
                return Ok(());
            };
            let Some(cmd) = t.word().map(str::to_string) else {
                return Err(self.err(
                    t.pos,
                    format!("unexpected {}: expected a command such as `table`, `add rule` or `flush ruleset`", t.show()),
                ));
            };
            match cmd.as_str() {
                "table" => self.table_cmd(st, t.pos)?,
                "chain" | "set" | "map" | "rule" | "element" => {
                    // `nft -f` accepts objects without `add`.
                    self.add(st, &cmd, t.pos, false)?
                }
                "add" | "create" => {
                    let (what, pos) =
                        self.word("what to add: table, chain, set, map, rule or element")?;
                    if what == "table" {
                        self.table_cmd(st, pos)?;
                    } else {
                        self.add(st, &what, pos, false)?;
                    }
                }
                "insert" => {
                    let (what, pos) = self.word("`rule` after `insert`")?;
                    if what != "rule" {
                        return Err(
                            self.err(pos, format!("`insert {what}`: only rules can be inserted"))
                        );
                    }
                    self.add(st, "rule", pos, true)?;
                }
                "delete" | "destroy" => self.delete(st, cmd == "destroy")?,
                "flush" => self.flush(st)?,
                "define" | "redefine" => {
                    let (name, _) = self.word("a variable name after `define`")?;
                    self.expect("=", "`=` after the variable name")?;
                    let value = self.statement_tokens()?;
                    if value.is_empty() {
                        return Err(self.err(t.pos, format!("`define {name} =` has no value")));
                    }
                    self.vars.insert(name, value);
                }
                "undefine" => {
                    let (name, _) = self.word("a variable name after `undefine`")?;
                    self.vars.remove(&name);
                }
                "include" => {
                    return Err(self
                        .err(t.pos, "`include` is not followed: ringfence reads only the files it is given")
                        .with_help("give each included file as its own --ruleset, in the order nft would read them (or the output of `nft list ruleset` after loading)"));
                }
                "list" | "reset" | "monitor" | "export" | "import" | "describe" | "replace"
                | "rename" => {
                    return Err(self
                        .err(t.pos, format!("`{cmd}` does not build a ruleset: expected table, chain, set, map, rule and element commands"))
                        .with_help("give the script that loads the ruleset, or the output of `nft list ruleset`"));
                }
                other => {
                    let known = [
                        "table", "add", "create", "insert", "delete", "destroy", "flush", "define",
                        "redefine", "undefine", "chain", "set", "map", "rule", "element",
                    ];
                    let mut e = self.err(
                        t.pos,
                        format!("unknown command `{other}`: expected table, add, insert, delete, flush or define"),
                    );
                    if let Some(c) = ringfence_diag::closest(other, known) {
                        e = e.with_help(format!("did you mean `{c}`?"));
                    } else {
                        e = e.with_help("the file should be an `nft -f` script or the output of `nft list ruleset`");
                    }
                    return Err(e);
                }
            }
        }
    }

    /// `table [family] name [{ ... }]` (also after `add`/`create`).
    fn table_cmd(&mut self, st: &mut State, pos: Pos) -> R<()> {
        let (family, name, _) = self.family_and_table()?;
        let ti = st.table(&family, &name, pos);
        if self.next_is("{")? {
            self.bump()?;
            self.table_body(st, ti)?;
        }
        Ok(())
    }

    fn table_body(&mut self, st: &mut State, ti: usize) -> R<()> {
        loop {
            self.skip_separators()?;
            let Some(t) = self.bump()? else {
                let p = st.tables[ti].pos;
                return Err(self.err(
                    p,
                    format!(
                        "table {} is never closed: expected `}}`",
                        st.tables[ti].name
                    ),
                ));
            };
            if t.is("}") {
                return Ok(());
            }
            let Some(w) = t.word().map(str::to_string) else {
                return Err(self.err(
                    t.pos,
                    format!(
                        "unexpected {} in a table: expected chain, set or map",
                        t.show()
                    ),
                ));
            };
            match w.as_str() {
                "chain" => {
                    let (name, _) = self.word("a chain name")?;
                    let ci = st.chain(ti, &name, t.pos);
                    self.expect("{", "`{` after the chain name")?;
                    self.chain_body(st, ti, ci)?;
                }
                "set" | "map" => {
                    let (name, _) = self.word(&format!("a {w} name"))?;
                    let si = st.set(ti, &name, w == "map", t.pos);
                    self.expect("{", &format!("`{{` after the {w} name"))?;
                    self.set_body(st, ti, si)?;
                }
                "flags" | "comment" => {
                    self.statement_tokens()?;
                }
                // Stateful objects and flowtables do not filter packets:
                // skip their block.
                "counter" | "quota" | "limit" | "ct" | "flowtable" | "secmark" | "synproxy"
                | "tunnel" => {
                    self.statement_tokens()?;
                }
                other => {
                    return Err(self.err(
                        t.pos,
                        format!("unexpected `{other}` in a table: expected chain, set, map, flags or comment"),
                    )
                    .with_help(FIX))
                }
            }
        }
    }

    fn chain_body(&mut self, st: &mut State, ti: usize, ci: usize) -> R<()> {
        loop {
            self.skip_separators()?;
            let Some(t) = self.peek()? else {
                let p = st.tables[ti].chains[ci].pos;
                return Err(self.err(
                    p,
                    format!(
                        "chain {} is never closed: expected `}}`",
                        st.tables[ti].chains[ci].name
                    ),
                ));
            };
            if t.is("}") {
                self.bump()?;
                return Ok(());
            }
            match t.word() {
                Some("type") => {
                    self.bump()?;
                    let spec = self.chain_spec(t.pos, &st.tables[ti].family)?;
                    st.tables[ti].chains[ci].spec.extend(spec);
                }
                Some("policy") => {
                    self.bump()?;
                    let (p, pos) = self.word("`accept` or `drop` after `policy`")?;
                    if p != "accept" && p != "drop" {
                        return Err(self.err(pos, format!("policy `{p}`: expected accept or drop")));
                    }
                    st.tables[ti].chains[ci]
                        .spec
                        .insert("policy".into(), p.into());
                }
                Some("comment" | "devices" | "device") => {
                    self.statement_tokens()?;
                }
                _ => {
                    let toks = self.statement_tokens()?;
                    let rule = self.rule(&toks)?;
                    st.tables[ti].chains[ci].rules.push(rule);
                }
            }
        }
    }

    /// `type T hook H [device D] priority P` (after `type`).
    fn chain_spec(&mut self, pos: Pos, family: &str) -> R<Map<String, Value>> {
        let mut spec = Map::new();
        let (ty, _) = self.word("a chain type: filter, nat or route")?;
        spec.insert("type".into(), ty.into());
        while let Some(t) = self.peek()? {
            match t.word() {
                Some("hook") => {
                    self.bump()?;
                    let (h, _) =
                        self.word("a hook: prerouting, input, forward, output, postrouting")?;
                    spec.insert("hook".into(), h.into());
                }
                Some("device") => {
                    self.bump()?;
                    self.word("a device name")?;
                }
                Some("devices") => {
                    self.bump()?;
                    self.expect("=", "`=` after `devices`")?;
                    let toks = self.statement_tokens()?;
                    drop(toks);
                }
                Some("priority") => {
                    self.bump()?;
                    let mut words = Vec::new();
                    let mut at = t.pos;
                    while let Some(x) = self.peek()? {
                        match &x.kind {
                            Kind::Word(w) => {
                                if words.is_empty() {
                                    at = x.pos;
                                }
                                words.push(w.clone());
                                self.bump()?;
                            }
                            _ => break,
                        }
                    }
                    let text = words.join(" ");
                    let prio = match crate::nft::priority_name(&text) {
                        Some(n) => Value::from(n),
                        // Other families have their own names; those
                        // tables are not modelled, so keep the text.
                        None if !matches!(family, "ip" | "ip6" | "inet") => Value::from(text),
                        None => {
                            return Err(self.err(
                                at,
                                format!("priority `{text}`: expected a number or a standard priority (raw, mangle, dstnat, filter, security, srcnat) with an optional `+ N` or `- N`"),
                            ))
                        }
                    };
                    spec.insert("prio".into(), prio);
                }
                _ => break,
            }
        }
        if !spec.contains_key("hook") {
            return Err(self.err(
                pos,
                "a chain `type` needs a `hook`: expected `type filter hook input priority 0`",
            ));
        }
        Ok(spec)
    }

    fn set_body(&mut self, st: &mut State, ti: usize, si: usize) -> R<()> {
        loop {
            self.skip_separators()?;
            let Some(t) = self.peek()? else {
                let p = st.tables[ti].sets[si].pos;
                return Err(self.err(
                    p,
                    format!(
                        "set {} is never closed: expected `}}`",
                        st.tables[ti].sets[si].name
                    ),
                ));
            };
            if t.is("}") {
                self.bump()?;
                return Ok(());
            }
            match t.word() {
                Some("elements") => {
                    self.bump()?;
                    self.expect("=", "`=` after `elements`")?;
                    let toks = self.statement_tokens()?;
                    let map = st.tables[ti].sets[si].map;
                    let elems = Reader::new(&toks, self.file).elements(map)?;
                    st.tables[ti].sets[si].elems.extend(elems);
                }
                Some(w @ ("type" | "typeof" | "flags")) => {
                    let w = w.to_string();
                    self.bump()?;
                    let toks = self.statement_tokens()?;
                    let words: Vec<String> = toks
                        .iter()
                        .filter_map(|t| t.word().map(str::to_string))
                        .collect();
                    let v = if w == "flags" {
                        Value::from(
                            words
                                .iter()
                                .filter(|w| *w != ",")
                                .cloned()
                                .collect::<Vec<_>>(),
                        )
                    } else {
                        Value::from(words.join(" "))
                    };
                    st.tables[ti].sets[si].attrs.insert(w, v);
                }
                Some(_) => {
                    // size, policy, auto-merge, timeout, gc-interval, counter, comment.
                    self.statement_tokens()?;
                }
                None => {
                    return Err(self.err(
                        t.pos,
                        format!(
                            "unexpected {} in a set: expected type, flags or elements",
                            t.show()
                        ),
                    ));
                }
            }
        }
    }

    fn rule(&self, toks: &[Tok]) -> R<RuleDef> {
        let pos = toks
            .first()
            .map(|t| t.pos)
            .unwrap_or_else(|| self.end_pos());
        let r = Reader::new(toks, self.file).rule()?;
        Ok(RuleDef {
            pos,
            exprs: r.exprs,
            comment: r.comment,
        })
    }

    /// `[family] table chain-or-set`: indexes, or a located error naming
    /// what is missing.
    fn table_ref(&mut self, st: &State) -> R<(usize, Pos)> {
        let (family, name, pos) = self.family_and_table()?;
        match st.find_table(&family, &name) {
            Some(ti) => Ok((ti, pos)),
            None => {
                let mut e = self.err(pos, format!("table {family} {name} does not exist (yet): expected a `table {family} {name}` command before this one"));
                let names = st
                    .tables
                    .iter()
                    .filter(|t| t.family == family)
                    .map(|t| t.name.as_str());
                if let Some(c) = ringfence_diag::closest(&name, names) {
                    e = e.with_help(format!("did you mean table {family} {c}?"));
                }
                Err(e)
            }
        }
    }

    fn chain_ref(&mut self, st: &State, ti: usize) -> R<usize> {
        let (name, pos) = self.word("a chain name")?;
        match st.tables[ti].chains.iter().position(|c| c.name == name) {
            Some(ci) => Ok(ci),
            None => {
                let t = &st.tables[ti];
                let mut e = self.err(
                    pos,
                    format!(
                        "chain {name} does not exist in table {} {}",
                        t.family, t.name
                    ),
                );
                if let Some(c) =
                    ringfence_diag::closest(&name, t.chains.iter().map(|c| c.name.as_str()))
                {
                    e = e.with_help(format!("did you mean `{c}`?"));
                }
                Err(e)
            }
        }
    }

    fn set_ref(&mut self, st: &State, ti: usize) -> R<usize> {
        let (name, pos) = self.word("a set name")?;
        match st.tables[ti].sets.iter().position(|s| s.name == name) {
            Some(si) => Ok(si),
            None => {
                let t = &st.tables[ti];
                let mut e = self.err(
                    pos,
                    format!("set {name} does not exist in table {} {}", t.family, t.name),
                );
                if let Some(c) =
                    ringfence_diag::closest(&name, t.sets.iter().map(|s| s.name.as_str()))
                {
                    e = e.with_help(format!("did you mean `{c}`?"));
                }
                Err(e)
            }
        }
    }

    /// `add chain|set|map|rule|element ...` (`insert` for rules at the head).
    fn add(&mut self, st: &mut State, what: &str, pos: Pos, insert: bool) -> R<()> {
        match what {
            "chain" => {
                let (ti, _) = self.table_ref(st)?;
                let (name, _) = self.word("a chain name")?;
                let ci = st.chain(ti, &name, pos);
                if self.next_is("{")? {
                    self.bump()?;
                    self.chain_body(st, ti, ci)?;
                }
            }
            "set" | "map" => {
                let (ti, _) = self.table_ref(st)?;
                let (name, _) = self.word(&format!("a {what} name"))?;
                let si = st.set(ti, &name, what == "map", pos);
                if self.next_is("{")? {
                    self.bump()?;
                    self.set_body(st, ti, si)?;
                }
            }
            "rule" => {
                let (ti, _) = self.table_ref(st)?;
                let ci = self.chain_ref(st, ti)?;
                if let Some(t) = self.peek()? {
                    if let Some(w @ ("position" | "handle" | "index")) = t.word() {
                        return Err(self
                            .err(t.pos, format!("`{w}` places the rule by a running ruleset's rule handles, which a file does not have"))
                            .with_help("give the output of `nft list ruleset` after loading, which lists every rule in order"));
                    }
                }
                let toks = self.statement_tokens()?;
                if toks.is_empty() {
                    return Err(self.err(pos, "a rule with no statements: expected a match or a verdict after the chain name"));
                }
                let rule = self.rule(&toks)?;
                let rules = &mut st.tables[ti].chains[ci].rules;
                if insert {
                    rules.insert(0, rule);
                } else {
                    rules.push(rule);
                }
            }
            "element" => {
                let (ti, _) = self.table_ref(st)?;
                let si = self.set_ref(st, ti)?;
                let toks = self.statement_tokens()?;
                let map = st.tables[ti].sets[si].map;
                let elems = Reader::new(&toks, self.file).elements(map)?;
                st.tables[ti].sets[si].elems.extend(elems);
            }
            other => {
                return Err(self.err(
                    pos,
                    format!(
                        "cannot add `{other}`: expected table, chain, set, map, rule or element"
                    ),
                ))
            }
        }
        Ok(())
    }

    fn delete(&mut self, st: &mut State, lenient: bool) -> R<()> {
        let (what, pos) = self.word("what to delete: table, chain, set, map, rule or element")?;
        match what.as_str() {
            "table" => {
                let (family, name, tpos) = self.family_and_table()?;
                match st.find_table(&family, &name) {
                    Some(ti) => {
                        st.tables.remove(ti);
                    }
                    None if lenient => {}
                    None => {
                        return Err(self
                            .err(
                                tpos,
                                format!(
                                "table {family} {name} does not exist, so nft refuses to delete it"
                            ),
                            )
                            .with_help(format!(
                                "create it first (`table {family} {name}`) or use `destroy table`"
                            )))
                    }
                }
            }
            "chain" => {
                let (ti, _) = self.table_ref(st)?;
                let ci = self.chain_ref(st, ti)?;
                st.tables[ti].chains.remove(ci);
            }
            "set" | "map" => {
                let (ti, _) = self.table_ref(st)?;
                let si = self.set_ref(st, ti)?;
                st.tables[ti].sets.remove(si);
            }
            "element" => {
                let (ti, _) = self.table_ref(st)?;
                let si = self.set_ref(st, ti)?;
                let toks = self.statement_tokens()?;
                let map = st.tables[ti].sets[si].map;
                let gone = Reader::new(&toks, self.file).elements(map)?;
                st.tables[ti].sets[si]
                    .elems
                    .retain(|(v, _)| !gone.iter().any(|(g, _)| g == v));
            }
            "rule" => {
                return Err(self
                    .err(pos, "`delete rule` names a rule by a running ruleset's handle, which a file does not have")
                    .with_help("give the output of `nft list ruleset` after loading"));
            }
            other => {
                return Err(self.err(
                    pos,
                    format!("cannot delete `{other}`: expected table, chain, set, map or element"),
                ));
            }
        }
        self.statement_tokens()?;
        Ok(())
    }

    fn flush(&mut self, st: &mut State) -> R<()> {
        let (what, pos) = self.word("what to flush: ruleset, table, chain, set or map")?;
        match what.as_str() {
            "ruleset" => {
                let fam = match self.peek()? {
                    Some(t) => t
                        .word()
                        .filter(|w| FAMILIES.contains(w))
                        .map(str::to_string),
                    None => None,
                };
                if let Some(f) = &fam {
                    self.bump()?;
                    st.tables.retain(|t| &t.family != f);
                } else {
                    st.tables.clear();
                }
            }
            "table" => {
                let (ti, _) = self.table_ref(st)?;
                for c in &mut st.tables[ti].chains {
                    c.rules.clear();
                }
            }
            "chain" => {
                let (ti, _) = self.table_ref(st)?;
                let ci = self.chain_ref(st, ti)?;
                st.tables[ti].chains[ci].rules.clear();
            }
            "set" | "map" => {
                let (ti, _) = self.table_ref(st)?;
                let si = self.set_ref(st, ti)?;
                st.tables[ti].sets[si].elems.clear();
            }
            other => {
                return Err(self.err(
                    pos,
                    format!("cannot flush `{other}`: expected ruleset, table, chain, set or map"),
                ));
            }
        }
        Ok(())
    }
}

impl State {
    fn find_table(&self, family: &str, name: &str) -> Option<usize> {
        self.tables
            .iter()
            .position(|t| t.family == family && t.name == name)
    }

    /// The table, created if new.
    fn table(&mut self, family: &str, name: &str, pos: Pos) -> usize {
        if let Some(i) = self.find_table(family, name) {
            return i;
        }
        self.tables.push(TableDef {
            family: family.into(),
            name: name.into(),
            pos,
            sets: Vec::new(),
            chains: Vec::new(),
        });
        self.tables.len() - 1
    }

    /// The chain of table `ti`, created if new.
    fn chain(&mut self, ti: usize, name: &str, pos: Pos) -> usize {
        let t = &mut self.tables[ti];
        if let Some(i) = t.chains.iter().position(|c| c.name == name) {
            return i;
        }
        t.chains.push(ChainDef {
            name: name.into(),
            pos,
            spec: Map::new(),
            rules: Vec::new(),
        });
        t.chains.len() - 1
    }

    /// The set or map of table `ti`, created if new.
    fn set(&mut self, ti: usize, name: &str, map: bool, pos: Pos) -> usize {
        let t = &mut self.tables[ti];
        if let Some(i) = t.sets.iter().position(|s| s.name == name) {
            return i;
        }
        t.sets.push(SetDef {
            name: name.into(),
            pos,
            map,
            attrs: Map::new(),
            elems: Vec::new(),
        });
        t.sets.len() - 1
    }

    /// The items of `nft -j list ruleset` for this state, with where each
    /// came from; rule handles count from 1 in the order printed, and
    /// `rule_pos[handle - 1]` is where that rule starts.
    pub fn to_json(&self) -> (Vec<Value>, Vec<ItemPos>, Vec<Pos>) {
        let mut items = Vec::new();
        let mut where_ = Vec::new();
        let mut rule_pos = Vec::new();
        for (th, t) in self.tables.iter().enumerate() {
            items.push(json!({"table": {"family": t.family, "name": t.name, "handle": th + 1}}));
            where_.push(ItemPos {
                pos: t.pos,
                parts: Vec::new(),
            });
            for (sh, s) in t.sets.iter().enumerate() {
                let mut o = Map::new();
                o.insert("family".into(), t.family.clone().into());
                o.insert("name".into(), s.name.clone().into());
                o.insert("table".into(), t.name.clone().into());
                o.insert("handle".into(), (sh + 1).into());
                for (k, v) in &s.attrs {
                    o.insert(k.clone(), v.clone());
                }
                if !s.elems.is_empty() {
                    o.insert(
                        "elem".into(),
                        Value::Array(s.elems.iter().map(|(v, _)| v.clone()).collect()),
                    );
                }
                items.push(json!({ if s.map { "map" } else { "set" }: o }));
                where_.push(ItemPos {
                    pos: s.pos,
                    parts: s.elems.iter().map(|(_, p)| *p).collect(),
                });
            }
            for (ch, c) in t.chains.iter().enumerate() {
                let mut o = Map::new();
                o.insert("family".into(), t.family.clone().into());
                o.insert("table".into(), t.name.clone().into());
                o.insert("name".into(), c.name.clone().into());
                o.insert("handle".into(), (ch + 1).into());
                for (k, v) in &c.spec {
                    o.insert(k.clone(), v.clone());
                }
                if c.spec.contains_key("hook") && !c.spec.contains_key("policy") {
                    o.insert("policy".into(), "accept".into());
                }
                items.push(json!({ "chain": o }));
                where_.push(ItemPos {
                    pos: c.pos,
                    parts: Vec::new(),
                });
            }
        }
        for t in &self.tables {
            for c in &t.chains {
                for r in &c.rules {
                    rule_pos.push(r.pos);
                    let mut o = Map::new();
                    o.insert("family".into(), t.family.clone().into());
                    o.insert("table".into(), t.name.clone().into());
                    o.insert("chain".into(), c.name.clone().into());
                    o.insert("handle".into(), rule_pos.len().into());
                    o.insert(
                        "expr".into(),
                        Value::Array(r.exprs.iter().map(|(v, _)| v.clone()).collect()),
                    );
                    if let Some(cm) = &r.comment {
                        o.insert("comment".into(), cm.clone().into());
                    }
                    items.push(json!({ "rule": o }));
                    where_.push(ItemPos {
                        pos: r.pos,
                        parts: r.exprs.iter().map(|(_, p)| *p).collect(),
                    });
                }
            }
        }
        (items, where_, rule_pos)
    }
}
