//! One nft rule (its statements) and set elements, from tokens to the
//! libnftables JSON that `nft -j list ruleset` prints for them, so the JSON
//! reader's lowering gives the text exactly the model it gives the dump.
//!
//! Matches (`LHS [op] RHS`), verdicts, verdict maps, `counter`, `log`,
//! `comment`, `reject with ...`, translations (`snat`, `dnat`, ...) and
//! `... set ...` statements are read into their JSON form. A statement this
//! reader does not know becomes a JSON statement the lowering treats as
//! not modelled (the rule may or may not match), keeping the rule's verdict.

use super::lexer::{Kind, Pos, Tok};
use ringfence_diag::InputError;
use serde_json::{json, Map, Value};

/// The statements of one rule, each with where it starts, and its comment.
pub struct RuleJson {
    /// The `expr` array, statement by statement, with positions.
    pub exprs: Vec<(Value, Pos)>,
    /// `comment "..."`.
    pub comment: Option<String>,
}

/// Verdict and statement keywords: they end the arguments of a statement
/// such as `log` or `limit` and start the next statement.
const STATEMENTS: &[&str] = &[
    "accept",
    "drop",
    "continue",
    "return",
    "jump",
    "goto",
    "reject",
    "queue",
    "comment",
    "counter",
    "log",
    "limit",
    "quota",
    "notrack",
    "snat",
    "dnat",
    "masquerade",
    "redirect",
    "tproxy",
    "synproxy",
    "dup",
    "fwd",
    "flow",
    "xt",
];

/// Where a match's left-hand side can start (besides the bare meta keys).
const PAYLOAD_PROTOCOLS: &[&str] = &[
    "ip", "ip6", "tcp", "udp", "udplite", "sctp", "dccp", "th", "icmp", "icmpv6", "igmp", "esp",
    "ah", "comp", "ether", "vlan", "arp", "gre", "ipcomp", "geneve", "vxlan", "gretap",
];

/// Meta keys nft accepts without the `meta` keyword.
const BARE_META: &[&str] = &[
    "iifname",
    "oifname",
    "iif",
    "oif",
    "mark",
    "l4proto",
    "nfproto",
    "skuid",
    "skgid",
    "iiftype",
    "oiftype",
    "iifgroup",
    "oifgroup",
    "iifkind",
    "oifkind",
    "priority",
    "pkttype",
    "cpu",
    "cgroup",
    "nftrace",
    "rtclassid",
    "ibrname",
    "obrname",
    "ibriport",
    "obriport",
    "ibrpvid",
    "ibrvproto",
    "sdif",
    "sdifname",
    "random",
    "ipsec",
    "time",
    "day",
    "hour",
];

/// Well-known service names nft resolves from /etc/services, for port
/// matches written with names in `nft -f` scripts (`tcp dport ssh`).
const SERVICES: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("bootps", 67),
    ("bootpc", 68),
    ("tftp", 69),
    ("http", 80),
    ("kerberos", 88),
    ("pop3", 110),
    ("ntp", 123),
    ("imap", 143),
    ("imap2", 143),
    ("snmp", 161),
    ("ldap", 389),
    ("https", 443),
    ("submissions", 465),
    ("syslog", 514),
    ("submission", 587),
    ("ldaps", 636),
    ("imaps", 993),
    ("pop3s", 995),
    ("mysql", 3306),
    ("postgresql", 5432),
];

/// A reader over the tokens of one rule (or one element list).
pub struct Reader<'t> {
    toks: &'t [Tok],
    i: usize,
    file: &'t str,
    /// Nesting of sets and parentheses (bounded: the reader recurses).
    depth: usize,
}

/// At most this many nested sets or parentheses.
const MAX_DEPTH: usize = 32;

type R<T> = Result<T, InputError>;

impl<'t> Reader<'t> {
    /// A reader over `toks` (no newlines: the caller drops those inside braces).
    pub fn new(toks: &'t [Tok], file: &'t str) -> Self {
        Reader {
            toks,
            i: 0,
            file,
            depth: 0,
        }
    }

    fn peek(&self) -> Option<&'t Tok> {
        self.toks.get(self.i)
    }

    fn peek_at(&self, k: usize) -> Option<&'t Tok> {
        self.toks.get(self.i + k)
    }

    fn bump(&mut self) -> Option<&'t Tok> {
        let t = self.toks.get(self.i);
        if t.is_some() {
            self.i += 1;
        }
        t
    }

    fn at_end(&self) -> bool {
        self.i >= self.toks.len()
    }

    /// Where the next token starts (or just after the last one).
    fn here(&self) -> Pos {
        match self.peek().or(self.toks.last()) {
            Some(t) => t.pos,
            None => Pos {
                src: 0,
                line: 1,
                col: 1,
            },
        }
    }

    /// An error at `pos` (the file name is fixed up by the caller).
    pub fn err(&self, pos: Pos, msg: impl Into<String>) -> InputError {
        InputError::at(self.file, pos.line, pos.col, msg)
    }

    fn found(&self) -> String {
        self.peek()
            .map(Tok::show)
            .unwrap_or_else(|| "the end of the rule".into())
    }

    fn expect_word(&mut self, what: &str) -> R<&'t str> {
        match self.peek() {
            Some(Tok {
                kind: Kind::Word(w),
                ..
            }) => {
                self.i += 1;
                Ok(w)
            }
            _ => Err(self.err(
                self.here(),
                format!("expected {what}, found {}", self.found()),
            )),
        }
    }

    fn expect_name(&mut self, what: &str) -> R<&'t str> {
        match self.peek() {
            Some(Tok {
                kind: Kind::Word(w) | Kind::Str(w),
                ..
            }) => {
                self.i += 1;
                Ok(w)
            }
            _ => Err(self.err(
                self.here(),
                format!("expected {what}, found {}", self.found()),
            )),
        }
    }

    fn next_is_word(&self, w: &str) -> bool {
        self.peek().is_some_and(|t| t.is_word(w))
    }

    fn next_is(&self, p: &str) -> bool {
        self.peek().is_some_and(|t| t.is(p))
    }

    /// The source text of tokens `from..self.i`, for messages and opaque texts.
    fn text_since(&self, from: usize) -> String {
        self.toks[from..self.i]
            .iter()
            .map(|t| match &t.kind {
                Kind::Word(w) => w.clone(),
                Kind::Str(s) => format!("\"{s}\""),
                Kind::Punct(p) => p.to_string(),
                Kind::Newline => String::new(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Read a whole rule.
    pub fn rule(&mut self) -> R<RuleJson> {
        let mut exprs = Vec::new();
        let mut comment = None;
        while let Some(t) = self.peek() {
            let pos = t.pos;
            if t.is(";") {
                self.i += 1;
                continue;
            }
            if t.is_word("comment") {
                self.i += 1;
                comment = Some(
                    self.expect_name("a quoted comment after `comment`")?
                        .to_string(),
                );
                continue;
            }
            match self.statement()? {
                Some(v) => exprs.push((v, pos)),
                None => continue,
            }
        }
        if exprs.is_empty() {
            return Err(self.err(
                self.here(),
                "a rule with no statements: expected a match or a verdict such as `accept`",
            ));
        }
        Ok(RuleJson { exprs, comment })
    }

    /// One statement as JSON; `None` for statements with nothing to keep.
    fn statement(&mut self) -> R<Option<Value>> {
        let start = self.i;
        let t = self.peek().expect("caller checked");
        let Some(w) = t.word() else {
            return Err(self.err(
                t.pos,
                format!(
                    "unexpected {}: expected a match (such as `ip saddr 198.18.0.0/16`) or a statement (such as `accept`)",
                    t.show()
                ),
            ));
        };
        let v = match w {
            "accept" | "drop" | "continue" | "return" | "notrack" => {
                self.i += 1;
                json!({ w: null })
            }
            "jump" | "goto" => {
                self.i += 1;
                let target = self.expect_name(&format!("a chain name after `{w}`"))?;
                json!({ w: { "target": target } })
            }
            "reject" => {
                self.i += 1;
                self.reject()?
            }
            "counter" => {
                self.i += 1;
                if self.next_is_word("packets") {
                    self.i += 1;
                    let p = self.expect_word("a packet count")?;
                    if self.next_is_word("bytes") {
                        self.i += 2;
                    }
                    json!({"counter": {"packets": number_or_string(p)}})
                } else if self.next_is_word("name") {
                    self.i += 1;
                    json!({"counter": self.expect_name("a counter name")?})
                } else {
                    json!({"counter": null})
                }
            }
            "log" => {
                self.i += 1;
                self.skip_args(STATEMENTS);
                json!({"log": {}})
            }
            "snat" | "dnat" | "masquerade" | "redirect" => {
                self.i += 1;
                self.nat(w)?
            }
            "tproxy" | "synproxy" | "queue" => {
                self.i += 1;
                self.skip_args(&[
                    "accept", "drop", "continue", "return", "jump", "goto", "comment", "counter",
                    "log",
                ]);
                json!({ w: { "text": self.text_since(start) } })
            }
            "xt" => {
                self.i += 1;
                let kind = self.expect_word("`match` or `target` after `xt`")?;
                let name = self.expect_name("the extension's name")?;
                json!({"xt": {"type": kind, "name": name}})
            }
            "ct" if self.peek_at(1).is_some_and(|t| t.is_word("count")) => {
                self.i += 2;
                self.skip_args(STATEMENTS);
                json!({"ct count": {"text": self.text_since(start)}})
            }
            "limit" | "quota" | "dup" | "fwd" | "flow" | "meter" => {
                self.i += 1;
                self.skip_args(STATEMENTS);
                json!({ w: { "text": self.text_since(start) } })
            }
            "add" | "update" | "delete"
                if self
                    .peek_at(1)
                    .and_then(Tok::word)
                    .is_some_and(|n| n.starts_with('@')) =>
            {
                // A dynamic set statement (`add @blocked { ip saddr }`).
                self.i += 2;
                if self.next_is("{") {
                    self.skip_block()?;
                }
                json!({"set": {"op": w, "text": self.text_since(start)}})
            }
            _ => match self.lhs()? {
                Some(left) => return self.after_lhs(left, start).map(Some),
                None => {
                    // Not known here: kept as a statement the lowering
                    // reads as "may or may not match"; the verdict after it
                    // still applies.
                    self.i += 1;
                    self.skip_args(&[
                        "accept", "drop", "continue", "return", "jump", "goto", "reject", "queue",
                        "comment",
                    ]);
                    json!({ w: { "text": self.text_since(start) } })
                }
            },
        };
        Ok(Some(v))
    }

    /// The arguments of `snat`, `dnat`, `masquerade` or `redirect` (the
    /// keyword already read), as `nft -j` prints the statement:
    /// `[ip|ip6] [addr . port] to ADDR[-ADDR][:PORT[-PORT]]`, `to
    /// [ADDR]:PORT` for IPv6, `to :PORT` (redirect, masquerade), `to EXPR
    /// map { KEY : ADDR [. PORT], ... }`, then the flags `random`,
    /// `fully-random`, `persistent`.
    fn nat(&mut self, w: &str) -> R<Value> {
        let mut o = Map::new();
        let fam_next = self.peek().and_then(Tok::word);
        if matches!(fam_next, Some("ip" | "ip6"))
            && self
                .peek_at(1)
                .and_then(Tok::word)
                .is_some_and(|x| matches!(x, "to" | "addr" | "prefix"))
        {
            o.insert("family".into(), fam_next.expect("checked").into());
            self.i += 1;
        }
        if self.next_is_word("addr") {
            // `addr . port to ... map { k : a . p }`: the data is concatenated.
            self.i += 1;
            for want in [".", "port"] {
                if !self.next_is_word(want) {
                    return Err(self.err(
                        self.here(),
                        format!("expected `addr . port to ...`, found {}", self.found()),
                    ));
                }
                self.i += 1;
            }
            o.insert("type_flags".into(), json!(["concat"]));
        } else if self.next_is_word("prefix") {
            self.i += 1;
            o.insert("type_flags".into(), json!(["prefix"]));
        }
        if self.next_is_word("to") {
            self.i += 1;
            let save = self.i;
            let mapped = match self.lhs()? {
                Some(left) if self.next_is_word("map") => {
                    self.i += 1;
                    let data = if self.next_is("{") {
                        self.set(true)?
                    } else {
                        Value::from(
                            self.expect_word("`{ key : address, ... }` or `@map` after `map`")?,
                        )
                    };
                    o.insert("addr".into(), json!({"map": {"key": left, "data": data}}));
                    true
                }
                _ => false,
            };
            if !mapped {
                self.i = save;
                let pos = self.here();
                let word = self.expect_word(&format!("an address or `:port` after `{w} to`"))?;
                let (addr, port) = nat_target_word(word).ok_or_else(|| {
                    self.err(
                        pos,
                        format!("`{w} to {word}`: expected ADDR[-ADDR][:PORT[-PORT]], [IPV6-ADDR]:PORT or :PORT"),
                    )
                })?;
                if let Some(a) = addr {
                    o.insert("addr".into(), a);
                }
                if let Some(p) = port {
                    o.insert("port".into(), p);
                }
            }
        }
        let mut flags = Vec::new();
        while let Some(f) = self
            .peek()
            .and_then(Tok::word)
            .filter(|f| matches!(*f, "random" | "fully-random" | "persistent"))
        {
            flags.push(Value::from(f));
            self.i += 1;
            if self.next_is(",") {
                self.i += 1;
            }
        }
        if !flags.is_empty() {
            o.insert("flags".into(), Value::Array(flags));
        }
        Ok(if o.is_empty() {
            json!({ w: null })
        } else {
            json!({ w: o })
        })
    }

    /// `reject [with tcp reset | with icmp|icmpv6|icmpx [type] CODE]`.
    fn reject(&mut self) -> R<Value> {
        if !self.next_is_word("with") {
            return Ok(json!({"reject": null}));
        }
        self.i += 1;
        let kind = self.expect_word("`tcp reset`, `icmp`, `icmpv6` or `icmpx` after `with`")?;
        match kind {
            "tcp" => {
                let pos = self.here();
                if self.bump().is_some_and(|t| t.is_word("reset")) {
                    Ok(json!({"reject": {"type": "tcp reset"}}))
                } else {
                    Err(self.err(pos, "expected `reset` after `reject with tcp`"))
                }
            }
            "icmp" | "icmpv6" | "icmpx" => {
                if self.next_is_word("type") {
                    self.i += 1;
                }
                let code = self.expect_word("an ICMP code such as `port-unreachable`")?;
                Ok(json!({"reject": {"type": kind, "expr": code}}))
            }
            other => Err(self.err(
                self.toks[self.i - 1].pos,
                format!("`reject with {other}`: expected `tcp reset`, `icmp`, `icmpv6` or `icmpx`"),
            )),
        }
    }

    /// Skip a statement's arguments up to the next statement keyword (at
    /// brace depth 0) or the end of the rule.
    fn skip_args(&mut self, stop: &[&str]) {
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            if depth == 0 && (t.word().is_some_and(|w| stop.contains(&w)) || t.is(";")) {
                break;
            }
            if t.is("{") || t.is("(") {
                depth += 1;
            } else if (t.is("}") || t.is(")")) && depth > 0 {
                depth -= 1;
            }
            self.i += 1;
        }
    }

    /// Skip `{ ... }` (the reader is at `{`).
    fn skip_block(&mut self) -> R<()> {
        let open = self.here();
        let mut depth = 0usize;
        while let Some(t) = self.bump() {
            if t.is("{") {
                depth += 1;
            } else if t.is("}") {
                depth -= 1;
                if depth == 0 {
                    return Ok(());
                }
            }
        }
        Err(self.err(open, "this `{` is never closed: expected `}`"))
    }

    /// The left-hand side of a match: one or more expressions joined with
    /// `.`, then binary operators (`& mask`, `| bits`, ...). `None` when the
    /// next token does not start an expression this reader knows.
    fn lhs(&mut self) -> R<Option<Value>> {
        let Some(first) = self.lhs_primary()? else {
            return Ok(None);
        };
        let mut parts = vec![first];
        while self.next_is_word(".") {
            self.i += 1;
            match self.lhs_primary()? {
                Some(p) => parts.push(p),
                None => {
                    return Err(self.err(
                        self.here(),
                        format!(
                            "expected a header field after `.` (a concatenation), found {}",
                            self.found()
                        ),
                    ))
                }
            }
        }
        let mut left = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            json!({"concat": parts})
        };
        while let Some(op) = self
            .peek()
            .and_then(|t| ["&", "|", "^", "<<", ">>"].into_iter().find(|p| t.is(p)))
        {
            self.i += 1;
            let right = self.value_primary()?;
            left = json!({ op: [left, right] });
        }
        Ok(Some(left))
    }

    fn lhs_primary(&mut self) -> R<Option<Value>> {
        let Some(w) = self.peek().and_then(Tok::word) else {
            return Ok(None);
        };
        let next_word = self.peek_at(1).and_then(Tok::word);
        let v = match w {
            p if PAYLOAD_PROTOCOLS.contains(&p) => {
                self.i += 1;
                let field = self.expect_word(&format!("a header field after `{p}`"))?;
                if field == "option" && matches!(p, "tcp" | "ip") {
                    let name = self.expect_word("an option name")?;
                    let mut o = Map::new();
                    o.insert("name".into(), name.into());
                    if let Some(f) = self.peek().and_then(Tok::word) {
                        if !STATEMENTS.contains(&f)
                            && !matches!(f, "set" | "exists" | "missing" | "vmap")
                            && self.peek_at(1).is_some_and(|t| t.word().is_some())
                        {
                            o.insert("field".into(), f.into());
                            self.i += 1;
                        }
                    }
                    json!({ format!("{p} option"): o })
                } else {
                    json!({"payload": {"protocol": p, "field": field}})
                }
            }
            "meta" => {
                self.i += 1;
                let key = self.expect_word("a meta key such as `iifname` or `l4proto`")?;
                json!({"meta": {"key": key}})
            }
            k if BARE_META.contains(&k) => {
                self.i += 1;
                json!({"meta": {"key": k}})
            }
            "ct" => {
                self.i += 1;
                let mut o = Map::new();
                let mut key = self.expect_word("a conntrack key such as `state`")?;
                if matches!(key, "original" | "reply") {
                    o.insert("dir".into(), key.into());
                    key = self.expect_word("a conntrack key after the direction")?;
                }
                if matches!(key, "ip" | "ip6") {
                    o.insert("family".into(), key.into());
                    key = self.expect_word("an address key such as `saddr`")?;
                }
                o.insert("key".into(), key.into());
                json!({ "ct": o })
            }
            "fib" => {
                self.i += 1;
                let mut flags = vec![Value::from(self.expect_word("a fib key such as `daddr`")?)];
                while self.next_is_word(".") {
                    self.i += 1;
                    flags.push(self.expect_word("a fib key")?.into());
                }
                let result = self.expect_word("a fib result: oif, oifname or type")?;
                json!({"fib": {"flags": flags, "result": result}})
            }
            "socket" | "rt" | "osf" | "ipsec" | "exthdr" | "hbh" | "rt0" | "rt2" | "srh"
            | "frag" | "dst" | "mh" | "tunnel"
                if next_word.is_some() =>
            {
                self.i += 1;
                let mut words = vec![self.expect_word("a key")?.to_string()];
                // Keys of two words (`rt ip nexthop`, `ipsec in reqid`, `osf ttl loose name`).
                while let Some(n) = self.peek().and_then(Tok::word) {
                    let more = self.peek_at(1).and_then(Tok::word).is_some()
                        && matches!(
                            words.last().map(String::as_str),
                            Some("ip" | "ip6" | "in" | "out" | "ttl" | "loose" | "skip" | "level")
                        );
                    if !more {
                        break;
                    }
                    words.push(n.to_string());
                    self.i += 1;
                }
                json!({ w: { "key": words.join(" ") } })
            }
            "numgen" | "jhash" | "symhash" => {
                self.i += 1;
                while let Some(t) = self.peek() {
                    if t.is_word("mod") {
                        self.i += 2;
                        if self.next_is_word("offset") {
                            self.i += 2;
                        }
                        break;
                    }
                    self.i += 1;
                }
                json!({ w: {} })
            }
            raw if matches!(raw, "@ll" | "@nh" | "@th" | "@ih") => {
                self.i += 1;
                let mut nums = Vec::new();
                for _ in 0..2 {
                    if !self.next_is(",") {
                        return Err(self.err(
                            self.here(),
                            format!("expected `,OFFSET,LENGTH` after `{raw}`"),
                        ));
                    }
                    self.i += 1;
                    nums.push(number_or_string(self.expect_word("a number")?));
                }
                json!({"payload": {"base": &raw[1..], "offset": nums[0], "len": nums[1]}})
            }
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    /// What follows a left-hand side: a verdict map, a `set` statement, or
    /// an operator and a value.
    fn after_lhs(&mut self, left: Value, start: usize) -> R<Value> {
        if self.next_is_word("vmap") {
            self.i += 1;
            let data = if self.next_is("{") {
                self.set(true)?
            } else {
                let name = self.expect_word("`{ key : verdict, ... }` or `@map` after `vmap`")?;
                Value::from(name)
            };
            return Ok(json!({"vmap": {"key": left, "data": data}}));
        }
        if self.next_is_word("set") {
            self.i += 1;
            // A mark is set to an expression the model follows: parse it.
            let mark = |k: &str| {
                left.get(k)
                    .and_then(|m| m.get("key"))
                    .is_some_and(|x| x == "mark")
            };
            if mark("meta") || mark("ct") {
                let save = self.i;
                match self.mark_value() {
                    Some(v) => return Ok(json!({"mangle": {"key": left, "value": v}})),
                    None => self.i = save,
                }
            }
            self.skip_args(STATEMENTS);
            return Ok(json!({"mangle": {"key": left, "value": self.text_since(start)}}));
        }
        if self.next_is_word("map") {
            // A data map lookup outside a statement that uses it.
            self.i += 1;
            self.skip_args(STATEMENTS);
            return Ok(json!({"map lookup": {"text": self.text_since(start)}}));
        }
        let op = match self.peek() {
            Some(t) => match &t.kind {
                Kind::Punct(p) if matches!(*p, "==" | "!=" | "<" | ">" | "<=" | ">=") => {
                    self.i += 1;
                    Some(*p)
                }
                Kind::Word(w) if matches!(w.as_str(), "eq" | "ne" | "lt" | "gt" | "le" | "ge") => {
                    self.i += 1;
                    Some(match w.as_str() {
                        "eq" => "==",
                        "ne" => "!=",
                        "lt" => "<",
                        "gt" => ">",
                        "le" => "<=",
                        _ => ">=",
                    })
                }
                _ => None,
            },
            None => None,
        };
        if self.at_end() || self.next_is(";") {
            return Err(self.err(
                self.here(),
                format!(
                    "`{}` needs a value to compare with: expected for example `== 22` or `{{ 22, 80 }}`",
                    self.text_since(start)
                ),
            ));
        }
        let (mut right, list) = self.value_expr(true)?;
        let mut left = left;
        // `tcp flags syn / syn,rst`: the value under a mask.
        if self.next_is("/") {
            self.i += 1;
            let (mask, _) = self.value_expr(true)?;
            left = json!({"&": [left, mask]});
        }
        fix_services(&left, &mut right);
        // Bitmask fields: a bare value means "any of these bits is set"
        // (`ct state established,related`, `ct status dnat`, `tcp flags syn`).
        let is_ct_state = left
            .get("ct")
            .and_then(|c| c.get("key"))
            .is_some_and(|k| k == "state" || k == "status")
            || left.get("payload").is_some_and(|p| {
                p.get("protocol") == Some(&json!("tcp")) && p.get("field") == Some(&json!("flags"))
            });
        let op = match op {
            Some(o) => o,
            None if list => "in",
            None if right.get("|").is_some() => "==",
            None if is_ct_state => "in",
            None => "==",
        };
        let right = match (list, op) {
            // `== a,b` compares with the bits together, like `a | b`.
            (true, "==" | "!=") => match right {
                Value::Array(a) => json!({ "|": a }),
                v => v,
            },
            _ => right,
        };
        Ok(json!({"match": {"op": op, "left": left, "right": right}}))
    }

    /// A mark value: a number, `meta mark` or `ct mark`, then any number of
    /// `&`/`and`, `|`/`or`, `^`/`xor` with a number (left to right, as nft
    /// applies them). `None` when it is anything else.
    fn mark_value(&mut self) -> Option<Value> {
        let numeric = |w: &str| w.starts_with(|c: char| c.is_ascii_digit());
        let w = self.peek()?.word()?;
        let mut v = if numeric(w) {
            self.i += 1;
            word_value(w)
        } else if matches!(w, "meta" | "ct") && self.peek_at(1).and_then(Tok::word) == Some("mark")
        {
            self.i += 2;
            json!({ w: {"key": "mark"} })
        } else {
            return None;
        };
        while let Some(t) = self.peek() {
            let op = if t.is("&") || t.word() == Some("and") {
                "&"
            } else if t.is("|") || t.word() == Some("or") {
                "|"
            } else if t.is("^") || t.word() == Some("xor") {
                "^"
            } else {
                break;
            };
            self.i += 1;
            let n = self.peek()?.word().filter(|w| numeric(w))?;
            self.i += 1;
            v = json!({ op: [v, word_value(n)] });
        }
        Some(v)
    }

    /// A value with `|` and, when `list_ok`, a comma list (`established,related`);
    /// the flag says whether it was a list.
    fn value_expr(&mut self, list_ok: bool) -> R<(Value, bool)> {
        let first = self.value_concat()?;
        if self.next_is("|") {
            let mut parts = vec![first];
            while self.next_is("|") {
                self.i += 1;
                parts.push(self.value_concat()?);
            }
            return Ok((json!({ "|": parts }), false));
        }
        if list_ok && self.next_is(",") {
            let mut parts = vec![first];
            while self.next_is(",") {
                self.i += 1;
                parts.push(self.value_concat()?);
            }
            return Ok((Value::Array(parts), true));
        }
        Ok((first, false))
    }

    fn value_concat(&mut self) -> R<Value> {
        let first = self.value_range()?;
        if !self.next_is_word(".") {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.next_is_word(".") {
            self.i += 1;
            parts.push(self.value_range()?);
        }
        Ok(json!({ "concat": parts }))
    }

    /// A primary value, or `a - b` written with blanks (or `""-""`).
    fn value_range(&mut self) -> R<Value> {
        let lo = self.value_primary()?;
        if self.next_is_word("-") {
            self.i += 1;
            let hi = self.value_primary()?;
            return Ok(json!({"range": [lo, hi]}));
        }
        Ok(lo)
    }

    fn value_primary(&mut self) -> R<Value> {
        let Some(t) = self.peek() else {
            return Err(self.err(self.here(), "expected a value, found the end of the rule"));
        };
        match &t.kind {
            Kind::Str(s) => {
                self.i += 1;
                Ok(Value::from(s.as_str()))
            }
            Kind::Word(w) => {
                self.i += 1;
                Ok(word_value(w))
            }
            Kind::Punct("{") => self.set(false),
            Kind::Punct("(") => {
                if self.depth >= MAX_DEPTH {
                    return Err(self.err(
                        t.pos,
                        format!("parentheses nest more than {MAX_DEPTH} deep"),
                    ));
                }
                self.i += 1;
                self.depth += 1;
                let inner = self.value_expr(true);
                self.depth -= 1;
                let (v, _) = inner?;
                if !self.next_is(")") {
                    return Err(
                        self.err(self.here(), format!("expected `)`, found {}", self.found()))
                    );
                }
                self.i += 1;
                Ok(v)
            }
            _ => Err(self.err(
                t.pos,
                format!(
                    "expected a value (a number, address, name or `{{ set }}`), found {}",
                    t.show()
                ),
            )),
        }
    }

    /// `{ e, e, ... }` as `{"set": [...]}`; with `map`, elements are
    /// `key : data`. Nested sets (from variables) are flattened.
    pub fn set(&mut self, map: bool) -> R<Value> {
        let elems = self.elements(map)?;
        Ok(json!({ "set": elems.into_iter().map(|(v, _)| v).collect::<Vec<_>>() }))
    }

    /// The elements of `{ ... }`, each with where it starts.
    pub fn elements(&mut self, map: bool) -> R<Vec<(Value, Pos)>> {
        let open = self.here();
        if self.depth >= MAX_DEPTH {
            return Err(self.err(open, format!("sets nest more than {MAX_DEPTH} deep")));
        }
        self.depth += 1;
        let r = self.elements_inner(map, open);
        self.depth -= 1;
        r
    }

    fn elements_inner(&mut self, map: bool, open: Pos) -> R<Vec<(Value, Pos)>> {
        if !self.next_is("{") {
            return Err(self.err(open, format!("expected `{{`, found {}", self.found())));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(t) = self.peek() else {
                return Err(self.err(open, "this `{` is never closed: expected `}`"));
            };
            if t.is("}") {
                self.i += 1;
                return Ok(out);
            }
            if t.is(",") {
                self.i += 1;
                continue;
            }
            if t.is("{") {
                out.extend(self.elements(map)?);
                continue;
            }
            let pos = t.pos;
            let mut key = self.value_concat()?;
            // A bitmask element: `syn | ack` (as `nft list` prints flag sets).
            if self.next_is("|") {
                let mut parts = vec![key];
                while self.next_is("|") {
                    self.i += 1;
                    parts.push(self.value_concat()?);
                }
                key = json!({ "|": parts });
            }
            let mut elem = Map::new();
            // Element options, as `nft list` prints them.
            loop {
                match self.peek().and_then(Tok::word) {
                    Some("timeout" | "expires") => self.i += 2,
                    Some("comment") => {
                        self.i += 1;
                        let c = self.expect_name("a quoted comment")?;
                        elem.insert("comment".into(), c.into());
                    }
                    Some("counter") => {
                        self.i += 1;
                        if self.next_is_word("packets") {
                            self.i += 4;
                        }
                    }
                    _ => break,
                }
            }
            let key = if elem.is_empty() {
                key
            } else {
                elem.insert("val".into(), key);
                json!({ "elem": elem })
            };
            if self.next_is_word(":") {
                self.i += 1;
                let data = self.map_data()?;
                out.push((json!([key, data]), pos));
            } else if map {
                return Err(self.err(
                    self.here(),
                    format!(
                        "expected `: verdict` after a map element's key, found {}",
                        self.found()
                    ),
                ));
            } else {
                out.push((key, pos));
            }
            if !(self.next_is(",") || self.next_is("}")) {
                return Err(self.err(
                    self.here(),
                    format!(
                        "expected `,` or `}}` after a set element, found {}",
                        self.found()
                    ),
                ));
            }
        }
    }

    fn map_data(&mut self) -> R<Value> {
        match self.peek().and_then(Tok::word) {
            Some(v @ ("accept" | "drop" | "continue" | "return")) => {
                self.i += 1;
                Ok(json!({ v: null }))
            }
            Some(v @ ("jump" | "goto")) => {
                self.i += 1;
                let target = self.expect_name(&format!("a chain name after `{v}`"))?;
                Ok(json!({ v: { "target": target } }))
            }
            _ => self.value_concat(),
        }
    }
}

/// A word as a JSON value the way `nft -j` prints it: numbers as numbers,
/// `a/len` as a prefix, `a-b` as a range when both ends are numbers or
/// addresses, everything else as a string.
pub fn word_value(w: &str) -> Value {
    if let Some(n) = number(w) {
        return Value::from(n);
    }
    if let Some((addr, len)) = w.rsplit_once('/') {
        if let (true, Ok(len)) = (is_addr(addr), len.parse::<u64>()) {
            return json!({"prefix": {"addr": addr, "len": len}});
        }
    }
    for (i, _) in w.match_indices('-') {
        let (a, b) = (&w[..i], &w[i + 1..]);
        if !a.is_empty() && scalar_like(a) && scalar_like(b) {
            return json!({"range": [word_value(a), word_value(b)]});
        }
    }
    Value::from(w)
}

fn number(w: &str) -> Option<u64> {
    if let Some(h) = w.strip_prefix("0x") {
        return u64::from_str_radix(h, 16).ok();
    }
    if w.bytes().all(|b| b.is_ascii_digit()) && !w.is_empty() {
        return w.parse().ok();
    }
    None
}

fn is_addr(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

fn scalar_like(s: &str) -> bool {
    number(s).is_some() || is_addr(s)
}

fn number_or_string(w: &str) -> Value {
    number(w).map(Value::from).unwrap_or_else(|| Value::from(w))
}

/// Service names on the right of a port match (`tcp dport { ssh, http }`)
/// become numbers, as nft resolves them when it loads the script.
fn fix_services(left: &Value, right: &mut Value) {
    let is_port = left
        .get("payload")
        .and_then(|p| p.get("field"))
        .and_then(Value::as_str)
        .is_some_and(|f| matches!(f, "sport" | "dport"));
    if is_port {
        resolve_services(right);
    }
}

fn resolve_services(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let Some(&(_, n)) = SERVICES.iter().find(|(name, _)| name == s) {
                *v = Value::from(n);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(resolve_services),
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if matches!(k.as_str(), "set" | "range" | "elem" | "val") {
                    resolve_services(x);
                }
            }
        }
        _ => {}
    }
}

/// The target of `dnat to WORD` as `nft -j` prints it: the address (a
/// string, or `{"range": [a, b]}`) and the port (a number or a range).
fn nat_target_word(w: &str) -> Option<(Option<Value>, Option<Value>)> {
    let port = |p: &str| -> Option<Value> {
        let (a, b) = p.split_once('-').unwrap_or((p, p));
        let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
        Some(if a == b {
            Value::from(a)
        } else {
            json!({"range": [a, b]})
        })
    };
    let addr = |a: &str| -> Option<Value> {
        let a = a.trim_start_matches('[').trim_end_matches(']');
        if is_addr(a) {
            return Some(Value::from(a));
        }
        // A range; IPv6 ends may be bracketed (`[a]-[b]`).
        let (x, y) = a.split_once("]-[").or_else(|| a.split_once('-'))?;
        (is_addr(x) && is_addr(y)).then(|| json!({"range": [x, y]}))
    };
    // An address first: `::1` is IPv6 loopback, not port 1 (nft prints an
    // IPv6 address without a port unbracketed: `dnat to ::1`).
    if let Some(a) = addr(w) {
        return Some((Some(a), None));
    }
    if let Some(p) = w.strip_prefix(':') {
        return Some((None, Some(port(p)?)));
    }
    if w.starts_with('[') {
        // `[v6]:port` or `[v6-v6]:port`.
        let close = w.rfind(']')?;
        let rest = &w[close + 1..];
        let p = match rest {
            "" => None,
            r => Some(port(r.strip_prefix(':')?)?),
        };
        return Some((Some(addr(&w[..=close])?), p));
    }
    // IPv4 with a port: one colon.
    let (a, p) = w.rsplit_once(':')?;
    if a.contains(':') {
        return None;
    }
    Some((Some(addr(a)?), Some(port(p)?)))
}

#[cfg(test)]
mod tests {
    use super::super::lexer::lex;
    use super::*;

    fn rule(s: &str) -> Vec<Value> {
        let toks: Vec<Tok> = lex(s, 0, "t")
            .unwrap()
            .into_iter()
            .filter(|t| t.kind != Kind::Newline)
            .collect();
        Reader::new(&toks, "t")
            .rule()
            .unwrap_or_else(|e| panic!("{e}"))
            .exprs
            .into_iter()
            .map(|(v, _)| v)
            .collect()
    }

    #[test]
    fn matches_read_as_nft_prints_them_in_json() {
        assert_eq!(
            rule("ip saddr 198.18.1.0/24 tcp dport { 22, 80-88 } accept"),
            vec![
                json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "198.18.1.0", "len": 24}}}}),
                json!({"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [22, {"range": [80, 88]}]}}}),
                json!({"accept": null}),
            ]
        );
        assert_eq!(
            rule("ct state established,related accept")[0],
            json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}})
        );
        assert_eq!(
            rule("ct state != established | new counter")[0],
            json!({"match": {"op": "!=", "left": {"ct": {"key": "state"}}, "right": {"|": ["established", "new"]}}})
        );
        assert_eq!(
            rule("ct state & new == new")[0],
            json!({"match": {"op": "==", "left": {"&": [{"ct": {"key": "state"}}, "new"]}, "right": "new"}})
        );
        assert_eq!(
            rule("iifname != { \"a*\", \"b\" } drop")[0],
            json!({"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": {"set": ["a*", "b"]}}})
        );
    }

    #[test]
    fn concatenations_and_verdict_maps() {
        assert_eq!(
            rule("ip saddr . tcp dport vmap { 198.18.0.1 . 22 : accept, 198.18.0.3 . 4000 : jump sub }")[0],
            json!({"vmap": {"key": {"concat": [{"payload": {"protocol": "ip", "field": "saddr"}}, {"payload": {"protocol": "tcp", "field": "dport"}}]},
                "data": {"set": [[{"concat": ["198.18.0.1", 22]}, {"accept": null}], [{"concat": ["198.18.0.3", 4000]}, {"jump": {"target": "sub"}}]]}}})
        );
    }

    #[test]
    fn service_names_on_ports_become_numbers() {
        assert_eq!(
            rule("tcp dport { ssh, https } accept")[0]["match"]["right"],
            json!({"set": [22, 443]})
        );
    }

    #[test]
    fn unknown_statements_stay_before_their_verdict() {
        let r = rule("ip saddr 1.2.3.4 frobnicate 7 accept");
        assert_eq!(r[1], json!({"frobnicate": {"text": "frobnicate 7"}}));
        assert_eq!(r[2], json!({"accept": null}));
    }

    #[test]
    fn a_match_without_a_value_is_a_located_error() {
        let toks: Vec<Tok> = lex("ip saddr", 0, "t")
            .unwrap()
            .into_iter()
            .filter(|t| t.kind != Kind::Newline)
            .collect();
        let e = Reader::new(&toks, "t").rule().err().unwrap();
        assert_eq!(e.position(), "t:1:4");
        assert!(e.message.contains("needs a value"), "{}", e.message);
    }
}
