#!/usr/bin/env python3
"""Generate a large iptables-save ruleset of realistic shapes and its nft JSON twin.

Shapes:
  * kube-proxy style: KUBE-SERVICES dispatches each service (cluster IP, port)
    to its own KUBE-SVC-<hash> chain, which accepts pod and node sources and
    rejects the rest; KUBE-FORWARD accepts established pod traffic.
  * enterprise ACL blocks: FORWARD dispatches each application subnet to its
    own ACL chain, which holds per-host service rules (single ports, port
    ranges, multiport lists, address ranges), logging and explicit denies.

Usage: gen_ruleset.py [--rules N] [--seed S] OUT_PREFIX
Writes OUT_PREFIX.rules (iptables-save) and OUT_PREFIX.nft.json (nft -j).
"""

import argparse
import hashlib
import json
import random


def svc_hash(i):
    return hashlib.sha256(str(i).encode()).hexdigest()[:16].upper()


class Builder:
    def __init__(self):
        self.chains = {}  # name -> list of rules
        self.order = []
        self.policies = {}
        self.count = 0

    def chain(self, name, policy=None):
        if name not in self.chains:
            self.chains[name] = []
            self.order.append(name)
            self.policies[name] = policy

    def add(self, chain, rule):
        """rule: dict with optional src, dst, proto, sport, dport, dports (list),
        src_range, iif, oif, ct (list), comment, target, target_arg."""
        self.chains[chain].append(rule)
        self.count += 1


def ipt_rule(chain, r):
    p = ["-A", chain]
    if "src" in r:
        p += (["!"] if r.get("src_neg") else []) + ["-s", r["src"]]
    if "dst" in r:
        p += ["-d", r["dst"]]
    if "iif" in r:
        p += ["-i", r["iif"]]
    if "oif" in r:
        p += ["-o", r["oif"]]
    if "proto" in r:
        p += ["-p", r["proto"]]
    if "src_range" in r:
        p += ["-m", "iprange", "--src-range", r["src_range"]]
    if "ct" in r:
        p += ["-m", "conntrack", "--ctstate", ",".join(s.upper() for s in r["ct"])]
    if "comment" in r:
        p += ["-m", "comment", "--comment", '"%s"' % r["comment"]]
    if "dports" in r:
        p += ["-m", "multiport", "--dports", ",".join(r["dports"])]
    elif "dport" in r or "sport" in r:
        p += ["-m", r["proto"]]
        if "sport" in r:
            p += ["--sport", r["sport"]]
        if "dport" in r:
            p += ["--dport", r["dport"]]
    t = r["target"]
    if t in ("ACCEPT", "DROP", "RETURN"):
        p += ["-j", t]
    elif t == "REJECT":
        p += ["-j", "REJECT", "--reject-with", r.get("with", "icmp-port-unreachable")]
    elif t == "LOG":
        p += ["-j", "LOG", "--log-prefix", '"%s"' % r.get("prefix", "acl ")]
    elif t == "JUMP":
        p += ["-j", r["to"]]
    elif t == "GOTO":
        p += ["-g", r["to"]]
    return " ".join(p)


def addr_json(a):
    if "/" in a:
        addr, plen = a.split("/")
        if plen == "32":
            return addr
        return {"prefix": {"addr": addr, "len": int(plen)}}
    return a


def port_json(p):
    if ":" in p:
        a, b = p.split(":")
        return {"range": [int(a), int(b)]}
    return int(p)


def nft_exprs(r):
    e = []
    m = lambda left, right, op="==": e.append({"match": {"op": op, "left": left, "right": right}})
    if "src" in r:
        m({"payload": {"protocol": "ip", "field": "saddr"}}, addr_json(r["src"]), "!=" if r.get("src_neg") else "==")
    if "dst" in r:
        m({"payload": {"protocol": "ip", "field": "daddr"}}, addr_json(r["dst"]))
    if "iif" in r:
        m({"meta": {"key": "iifname"}}, r["iif"].replace("+", "*"))
    if "oif" in r:
        m({"meta": {"key": "oifname"}}, r["oif"].replace("+", "*"))
    if "src_range" in r:
        a, b = r["src_range"].split("-")
        m({"payload": {"protocol": "ip", "field": "saddr"}}, {"range": [a, b]})
    if "ct" in r:
        m({"ct": {"key": "state"}}, r["ct"] if len(r["ct"]) > 1 else r["ct"][0], "in")
    proto = r.get("proto")
    if "dports" in r:
        m({"payload": {"protocol": proto, "field": "dport"}}, {"set": [port_json(p) for p in r["dports"]]})
    elif "dport" in r or "sport" in r:
        if "sport" in r:
            m({"payload": {"protocol": proto, "field": "sport"}}, port_json(r["sport"]))
        if "dport" in r:
            m({"payload": {"protocol": proto, "field": "dport"}}, port_json(r["dport"]))
    elif proto:
        m({"meta": {"key": "l4proto"}}, proto)
    e.append({"counter": {"packets": 0, "bytes": 0}})
    t = r["target"]
    if t == "ACCEPT":
        e.append({"accept": None})
    elif t == "DROP":
        e.append({"drop": None})
    elif t == "RETURN":
        e.append({"return": None})
    elif t == "REJECT":
        e.append({"reject": {"type": "icmp", "expr": "port-unreachable"}})
    elif t == "LOG":
        e.append({"log": {"prefix": r.get("prefix", "acl ")}})
    elif t == "JUMP":
        e.append({"jump": {"target": r["to"]}})
    elif t == "GOTO":
        e.append({"goto": {"target": r["to"]}})
    return e


def build(total, seed):
    rnd = random.Random(seed)
    b = Builder()
    for base, pol in (("INPUT", "ACCEPT"), ("FORWARD", "DROP"), ("OUTPUT", "ACCEPT")):
        b.chain(base, pol)
    for c in ("KUBE-FORWARD", "KUBE-SERVICES"):
        b.chain(c)
    b.add("FORWARD", {"ct": ["related", "established"], "target": "ACCEPT"})
    b.add("FORWARD", {"comment": "kubernetes forwarding rules", "target": "JUMP", "to": "KUBE-FORWARD"})
    b.add("FORWARD", {"ct": ["new"], "comment": "kubernetes service portals", "target": "JUMP", "to": "KUBE-SERVICES"})
    b.add("KUBE-FORWARD", {"ct": ["invalid"], "target": "DROP"})
    b.add("KUBE-FORWARD", {"src": "10.244.0.0/16", "comment": "kubernetes forwarding conntrack rule", "ct": ["related", "established"], "target": "ACCEPT"})
    b.add("KUBE-FORWARD", {"dst": "10.244.0.0/16", "comment": "kubernetes forwarding conntrack rule", "ct": ["related", "established"], "target": "ACCEPT"})

    kube_share = total * 45 // 100
    services = kube_share // 4  # one dispatch rule + three rules per service chain
    for i in range(services):
        ip = "10.%d.%d.%d/32" % (96 + (i >> 16) % 16, (i >> 8) & 255, i & 255)
        port = rnd.choice(["80", "443", "8080", "9090", "53", "6443", "5432", "3306"])
        proto = "udp" if port == "53" and rnd.random() < 0.5 else "tcp"
        svc = "KUBE-SVC-" + svc_hash(i)
        b.chain(svc)
        b.add("KUBE-SERVICES", {"dst": ip, "proto": proto, "dport": port,
                                "comment": "ns%d/svc%d:p cluster IP" % (i % 97, i), "target": "JUMP", "to": svc})
        b.add(svc, {"src": "10.244.0.0/16", "comment": "pods to ns%d/svc%d" % (i % 97, i), "target": "ACCEPT"})
        b.add(svc, {"src": "192.168.0.0/22", "comment": "nodes to ns%d/svc%d" % (i % 97, i), "target": "ACCEPT"})
        b.add(svc, {"proto": proto, "comment": "ns%d/svc%d has no other clients" % (i % 97, i),
                    "target": "REJECT", "with": "icmp-port-unreachable"})

    # Enterprise ACL blocks for the rest.
    remaining = total - b.count - 2
    per_chain = 120
    n_chains = max(1, -(-remaining // (per_chain + 1)))
    ports = ["22", "80", "443", "8443", "1521", "1433", "5432", "3306", "9200", "6379", "25", "389", "636"]
    for c in range(n_chains):
        name = "ACL-APP-%04d" % c
        b.chain(name)
        subnet = "172.%d.%d" % (16 + (c >> 8) % 16, c & 255)
        b.add("FORWARD", {"dst": subnet + ".0/24", "comment": "application block %d" % c, "target": "JUMP", "to": name})
        for k in range(per_chain - 2):
            host = "%s.%d/32" % (subnet, 1 + rnd.randrange(250))
            src = rnd.choice(["10.%d.0.0/16" % rnd.randrange(8), "192.168.%d.0/24" % rnd.randrange(64),
                              "172.%d.%d.0/24" % (16 + rnd.randrange(16), rnd.randrange(256)), "10.10.%d.%d/32" % (rnd.randrange(256), rnd.randrange(256))])
            kind = rnd.random()
            r = {"src": src, "dst": host, "proto": "tcp"}
            if kind < 0.55:
                r["dport"] = rnd.choice(ports)
            elif kind < 0.75:
                r["dports"] = rnd.sample(ports, 3)
            elif kind < 0.85:
                lo = rnd.choice([1024, 8000, 30000])
                r["dport"] = "%d:%d" % (lo, lo + rnd.choice([10, 100, 999]))
            elif kind < 0.92:
                a = rnd.randrange(1, 200)
                r = {"src_range": "10.20.%d.%d-10.20.%d.%d" % (a, 1, a, 100), "dst": host, "proto": "udp", "dport": rnd.choice(["53", "123", "514"])}
            else:
                r["dport"] = rnd.choice(ports)
                r["target"] = rnd.choice(["DROP", "REJECT"])
            r.setdefault("target", "ACCEPT")
            if rnd.random() < 0.1:
                r["comment"] = "change %d" % rnd.randrange(100000)
            b.add(name, r)
        b.add(name, {"prefix": "acl-deny ", "target": "LOG"})
        b.add(name, {"target": "DROP"})
    b.add("FORWARD", {"prefix": "fwd-drop ", "target": "LOG"})
    b.add("FORWARD", {"target": "DROP"})
    return b


def write_iptables(b, path):
    out = ["# Generated by iptables-save v1.8.9 (nf_tables) -- ringfence bench/gen_ruleset.py", "*filter"]
    for c in b.order:
        out.append(":%s %s [0:0]" % (c, b.policies[c] or "-"))
    for c in b.order:
        for r in b.chains[c]:
            out.append(ipt_rule(c, r))
    out.append("COMMIT")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def write_nft(b, path):
    items = [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
             {"table": {"family": "ip", "name": "filter", "handle": 1}}]
    hooks = {"INPUT": "input", "FORWARD": "forward", "OUTPUT": "output"}
    handle = 1
    for c in b.order:
        handle += 1
        ch = {"family": "ip", "table": "filter", "name": c, "handle": handle}
        if c in hooks:
            ch.update({"type": "filter", "hook": hooks[c], "prio": 0, "policy": b.policies[c].lower()})
        items.append({"chain": ch})
    for c in b.order:
        for r in b.chains[c]:
            handle += 1
            rule = {"family": "ip", "table": "filter", "chain": c, "handle": handle, "expr": nft_exprs(r)}
            if "comment" in r:
                rule["comment"] = r["comment"]
            items.append({"rule": rule})
    with open(path, "w") as f:
        json.dump({"nftables": items}, f, separators=(",", ":"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("out_prefix")
    a = ap.parse_args()
    b = build(a.rules, a.seed)
    write_iptables(b, a.out_prefix + ".rules")
    write_nft(b, a.out_prefix + ".nft.json")
    print("%d rules in %d chains" % (b.count, len(b.order)))


if __name__ == "__main__":
    main()
