#![no_main]
//! Static pod manifests, read by `ringfence_cis::node::discover` from
//! `ROOT/etc/kubernetes/manifests/`, then a scan of what was found.
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let root = common::scratch_root("manifest");
    common::put(&root, "etc/kubernetes/manifests/kube-apiserver.yaml", data);
    common::discover_and_scan(&root);
});
