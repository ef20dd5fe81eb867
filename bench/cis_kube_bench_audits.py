#!/usr/bin/env python3
"""Time kube-bench-style audits of a benchmark (default cis-1.6) against a node root.

kube-bench runs each check's `audit` (and `audit_config`) as `/bin/sh -c`.
This script does the same for every check of kube-bench's cfg/BENCHMARK, with
kube-bench's variables ($apiserverconf, $kubeletsvc, ...) substituted the way
kube-bench would on that node, and absolute paths pointed into the root. It
prints `total_ms=... shells=... checks=...`. It only times the shell work; it
does not judge results. Audits that query the cluster (kubectl) are left out:
they are no part of a node scan, and kubectl must not reach a real cluster.

usage: cis_kube_bench_audits.py KUBE_BENCH_CFG_DIR NODE_ROOT [RUNS] [BENCHMARK]
"""
import os, subprocess, sys, time
import yaml

cfg, root = sys.argv[1], sys.argv[2].rstrip('/')
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
bench = sys.argv[4] if len(sys.argv) > 4 else 'cis-1.6'

VARS = {
    '$apiserverbin': 'kube-apiserver', '$controllermanagerbin': 'kube-controller-manager',
    '$schedulerbin': 'kube-scheduler', '$etcdbin': 'etcd', '$kubeletbin': 'kubelet', '$proxybin': 'kube-proxy',
    '$apiserverconf': '/etc/kubernetes/manifests/kube-apiserver.yaml',
    '$controllermanagerconf': '/etc/kubernetes/manifests/kube-controller-manager.yaml',
    '$schedulerconf': '/etc/kubernetes/manifests/kube-scheduler.yaml',
    '$etcdconf': '/etc/kubernetes/manifests/etcd.yaml',
    '$etcddatadir': '/var/lib/etcd',
    '$schedulerkubeconfig': '/etc/kubernetes/scheduler.conf',
    '$controllermanagerkubeconfig': '/etc/kubernetes/controller-manager.conf',
    '$kubeletsvc': '/etc/systemd/system/kubelet.service.d/10-kubeadm.conf',
    '$kubeletkubeconfig': '/etc/kubernetes/kubelet.conf',
    '$kubeletconf': '/var/lib/kubelet/config.yaml',
    '$kubeletcafile': '/etc/kubernetes/pki/ca.crt',
    '$proxykubeconfig': '/etc/kubernetes/proxy.conf',
}

def rooted(cmd):
    # Longest names first so $kubeletconf does not eat $kubeletconfig-like names.
    for k in sorted(VARS, key=len, reverse=True):
        cmd = cmd.replace(k, VARS[k])
    for prefix in ('/etc/kubernetes', '/var/lib/etcd', '/var/lib/kubelet', '/var/lib/cni', '/etc/systemd'):
        cmd = cmd.replace(' ' + prefix, ' ' + root + prefix).replace('=' + prefix, '=' + root + prefix)
    return cmd

commands = []
checks = 0
for target in ('master', 'etcd', 'controlplane', 'node', 'policies'):
    doc = yaml.safe_load(open(os.path.join(cfg, bench, target + '.yaml')))
    for group in doc['groups']:
        for check in group.get('checks') or []:
            checks += 1
            if check.get('type') in ('manual', 'skip'):
                continue
            for key in ('audit', 'audit_config'):
                if check.get(key) and 'kubectl' not in check[key]:
                    commands.append(rooted(check[key]))

best = None
for _ in range(runs):
    start = time.perf_counter()
    for cmd in commands:
        subprocess.run(['/bin/sh', '-c', cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = (time.perf_counter() - start) * 1000
    best = elapsed if best is None else min(best, elapsed)
print(f"total_ms={best:.1f} shells={len(commands)} checks={checks}")
