#![no_main]
//! The kubelet's systemd unit and a drop-in (split at the first NUL byte),
//! from which `ringfence_cis::node::discover` rebuilds its command line.
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let root = common::scratch_root("unit");
    let (unit, dropin) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    common::put(&root, "lib/systemd/system/kubelet.service", unit);
    common::put(&root, "etc/systemd/system/kubelet.service.d/10-kubeadm.conf", dropin);
    common::put(&root, "etc/default/kubelet", b"KUBELET_EXTRA_ARGS=--node-ip=198.18.0.10\n");
    common::discover_and_scan(&root);
});
