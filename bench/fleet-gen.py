#!/usr/bin/env python3
"""Write N synthetic node results (the JSON shape of `ringfence cis scan
--format json`, docs of issue 6) into DIR, for benchmarking the fleet merge.

Each node carries 122 checks (the size of cis-1.6); the seven TKG 1.5
checks fail as expected, and every 50th node fails 1.2.9 unexpectedly.
"""
import json
import os
import sys

EXPECTED = {"1.1.12", "1.2.6", "1.2.16", "1.2.21", "1.3.2", "1.4.1", "4.2.6"}


def check_ids():
    ids = []
    for sec, count in ((1, 21), (2, 35), (3, 7), (4, 6), (5, 25), (6, 28)):
        for i in range(1, count + 1):
            ids.append(f"1.{sec}.{i}" if sec <= 4 else f"{sec - 3}.{(i - 1) // 10 + 1}.{(i - 1) % 10 + 1}")
    ids = sorted(set(ids) | EXPECTED)
    return ids[:122]


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out, exist_ok=True)
    ids = check_ids()
    for k in range(n):
        checks = []
        for cid in ids:
            exp = cid in EXPECTED
            status = "fail" if exp or (cid == "1.2.9" and k % 50 == 0) else "pass"
            checks.append({
                "id": cid, "title": f"Recommendation {cid} of the benchmark", "target": "master",
                "status": status, "expected": exp, "waiver": None,
                "actual": "--profiling=true", "expected_value": "--profiling=false",
                "evidence": {"source": "manifest", "path": "/host/etc/kubernetes/manifests/kube-apiserver.yaml"},
                "remediation": "Edit the manifest and set the flag as the benchmark recommends.",
            })
        doc = {
            "benchmark": "cis-1.6", "profile": "tkg-1.5",
            "node": {"name": f"node-{k}", "roles": ["master", "etcd"], "kubernetes_version": "1.22.9", "root": "/host"},
            "checks": checks,
            "summary": {"pass": 0, "fail": 0, "warn": 0, "info": 0, "expected_fail": 7, "unexpected_fail": 0},
        }
        with open(os.path.join(out, f"node-{k}.json"), "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
