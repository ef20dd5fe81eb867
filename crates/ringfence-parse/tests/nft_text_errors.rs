//! Bad nft text is a located error (`file:line:column`, what was expected,
//! how to fix it), never a panic and never a silent guess.

use ringfence_parse::{parse_ruleset, RulesetFormat};

fn error(text: &str) -> String {
    match parse_ruleset(text, "fw.nft", RulesetFormat::Auto) {
        Ok(_) => panic!("parsed:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const HEAD: &str =
    "table inet t {\n  chain fw {\n    type filter hook forward priority 0; policy drop;\n";

#[test]
fn an_unclosed_table_names_where_it_opened() {
    assert_eq!(
        error("table inet t {\n  chain fw {\n  }\n"),
        "fw.nft:1:1: table t is never closed: expected `}`"
    );
}

#[test]
fn an_unknown_command_suggests_the_closest() {
    assert_eq!(
        error("flush ruleset\ntble inet t { }\n"),
        "fw.nft:2:1: unknown command `tble`: expected table, add, insert, delete, flush or define\n  help: did you mean `table`?"
    );
}

#[test]
fn include_is_refused_with_what_to_do_instead() {
    assert_eq!(
        error("flush ruleset\ninclude \"/etc/nftables.d/*.nft\"\n"),
        "fw.nft:2:1: `include` is not followed: ringfence reads only the files it is given\n  help: give each included file as its own --ruleset, in the order nft would read them (or the output of `nft list ruleset` after loading)"
    );
}

#[test]
fn an_undefined_variable_is_named() {
    assert_eq!(
        error("define web = { 80, 443 }\ntable inet t {\n  chain fw {\n    tcp dport $webb accept\n  }\n}\n"),
        "fw.nft:4:15: variable `$webb` is not defined\n  help: did you mean `$web`?"
    );
}

#[test]
fn a_jump_to_a_missing_chain_points_at_the_jump() {
    assert_eq!(
        error(&format!("{HEAD}    tcp dport 22 jump sshh\n  }}\n  chain ssh {{ accept; }}\n}}\n")),
        "fw.nft:4:18: jump to chain `sshh`, which table inet t does not define\n  help: did you mean `ssh`?"
    );
}

#[test]
fn a_missing_set_points_at_the_match() {
    assert_eq!(
        error(&format!(
            "{HEAD}    ip saddr @admins accept\n  }}\n  set admin {{ type ipv4_addr; }}\n}}\n"
        )),
        "fw.nft:4:5: set @admins is not defined in table inet t\n  help: did you mean @admin?"
    );
}

#[test]
fn a_bad_priority_lists_the_names() {
    assert_eq!(
        error("table inet t {\n  chain fw {\n    type filter hook forward priority fliter; policy drop;\n  }\n}\n"),
        "fw.nft:3:39: priority `fliter`: expected a number or a standard priority (raw, mangle, dstnat, filter, security, srcnat) with an optional `+ N` or `- N`"
    );
}

#[test]
fn a_rule_for_a_missing_table_says_which() {
    assert_eq!(
        error("add rule inet filtr input accept\n"),
        "fw.nft:1:10: table inet filtr does not exist (yet): expected a `table inet filtr` command before this one"
    );
}

#[test]
fn rule_handles_of_a_running_ruleset_are_refused() {
    assert_eq!(
        error("table ip f { chain c { } }\nadd rule ip f c position 4 accept\n"),
        "fw.nft:2:17: `position` places the rule by a running ruleset's rule handles, which a file does not have\n  help: give the output of `nft list ruleset` after loading, which lists every rule in order"
    );
}

#[test]
fn a_match_without_a_value_says_what_is_missing() {
    assert_eq!(
        error(&format!("{HEAD}    ip saddr\n  }}\n}}\n")),
        "fw.nft:4:8: `ip saddr` needs a value to compare with: expected for example `== 22` or `{ 22, 80 }`"
    );
}

#[test]
fn a_set_missing_its_brace_points_at_what_came_instead() {
    assert_eq!(
        error(&format!("{HEAD}    tcp dport {{ 22, 80 accept\n  }}\n}}\n")),
        "fw.nft:4:24: expected `,` or `}` after a set element, found `accept`"
    );
}
