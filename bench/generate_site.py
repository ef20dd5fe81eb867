#!/usr/bin/env python3
"""Write the benchmark site for `ringfence generate`: the example site's
settings with WORKLOADS workload networks (/27s in 198.19.0.0/16) and ten
extra flows. Usage: generate_site.py [WORKLOADS] > site.yaml"""
import ipaddress
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
nets = list(ipaddress.ip_network("198.19.0.0/16").subnets(new_prefix=27))[:n]
assert len(nets) == n, "at most 2048 /27 workload networks fit in 198.19.0.0/16"

print(f"""# Benchmark site: {n} workload networks and 10 extra flows.
name: bench-dc
tkg:
  version: "1.5"
  api_server_port: 6443
  service_cidr: 100.64.0.0/13
  cluster_cidr: 100.96.0.0/11
  nsx: false
  identity: ldap
  avi:
    enabled: true
    mode: nodeport
    nsxt_cloud: true
zones:
  management: [198.18.10.0/24]
  jumpbox: [198.18.1.10]
  bootstrap: [198.18.1.10]
  harbor: [198.18.1.20]
  vcenter: [198.18.1.30]
  dns: [198.18.1.53]
  ntp: [198.18.1.123]
  dhcp: [198.18.1.67]
  avi-controller: [198.18.1.40]
  avi-se: [198.18.30.0/24]
  nsx-manager: [198.18.1.50]
  monitoring: [198.18.40.0/28]
  logging: [198.18.41.0/28]
  backup: [198.18.42.5]""")
print("  workload:")
for net in nets:
    print(f"    - {net}")
extra = [
    ("monitoring-nodes", "monitoring", "workload", '{ protocol: tcp, ports: "9100" }'),
    ("monitoring-kubelet", "monitoring", "workload", '{ protocol: tcp, ports: "10250" }'),
    ("monitoring-mgmt", "monitoring", "management", '{ protocol: tcp, ports: "9100-9110" }'),
    ("logs-to-collector", "workload", "logging", '{ protocol: tcp, ports: "24224" }'),
    ("logs-syslog", "workload", "logging", '{ protocol: udp, ports: "514" }'),
    ("mgmt-logs", "management", "logging", '{ protocol: tcp, ports: "24224" }'),
    ("backup-workload", "workload", "backup", '{ protocol: tcp, ports: "2049" }'),
    ("backup-mgmt", "management", "backup", '{ protocol: tcp, ports: "2049" }'),
    ("ping-nodes", "monitoring", "workload", "{ protocol: icmp, ports: any }"),
    ("jumpbox-ssh-nodes", "jumpbox", "workload", "SSH"),
]
print("extra_flows:")
for fid, src, dst, svc in extra:
    print(f"""  - id: {fid}
    sources: [{src}]
    destinations: [{dst}]
    services: [{svc}]
    purpose: Benchmark extra flow {fid}.""")
