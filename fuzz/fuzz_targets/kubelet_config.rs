#![no_main]
//! The kubelet's `--config` file (KubeletConfiguration YAML), read by
//! `ringfence_cis::node::discover` and evaluated by a node scan.
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let root = common::scratch_root("kubelet-config");
    common::put(
        &root,
        "etc/systemd/system/kubelet.service",
        b"[Service]\nExecStart=/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml --kubeconfig=/etc/kubernetes/kubelet.conf\n",
    );
    common::put(&root, "var/lib/kubelet/config.yaml", data);
    common::discover_and_scan(&root);
});
