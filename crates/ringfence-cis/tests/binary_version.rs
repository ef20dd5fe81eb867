//! The Kubernetes version comes from a component binary's build stamp when
//! no image tag or --k8s-version tells it (worker nodes have no manifests).

use ringfence_cis::node::{discover, DiscoverOptions};

fn root_with_kubelet(stamp: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/hostname"), "worker-1\n").unwrap();
    let mut bin: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    bin.extend_from_slice(stamp.as_bytes());
    bin.extend_from_slice(&[0u8; 4096]);
    std::fs::write(dir.path().join("usr/bin/kubelet"), bin).unwrap();
    dir
}

#[test]
fn a_worker_root_gets_its_version_from_the_kubelet_binary() {
    let dir = root_with_kubelet("-X 'k8s.io/component-base/version.gitVersion=v1.22.9+vmware.1'");
    let node = discover(&DiscoverOptions {
        root: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(node.kubernetes_version.as_deref(), Some("1.22.9"));
}

#[test]
fn the_user_given_version_wins_over_the_binary() {
    let dir = root_with_kubelet("k8s.io/component-base/version.gitVersion=v1.22.9");
    let node = discover(&DiscoverOptions {
        root: Some(dir.path().to_path_buf()),
        kubernetes_version: Some("1.28.4".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(node.kubernetes_version.as_deref(), Some("1.28.4"));
}

#[test]
fn a_kubelet_symlink_out_of_the_root_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
    // Points at the scanning host's own binary: must resolve inside the root.
    std::os::unix::fs::symlink("/proc/self/exe", dir.path().join("usr/bin/kubelet")).unwrap();
    let node = discover(&DiscoverOptions {
        root: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(node.kubernetes_version, None);
}

/// `--benchmark auto` on a worker root: the kubelet binary's v1.22.9 picks
/// cis-1.23, as kube-bench does, and the reason names the binary.
#[test]
fn auto_picks_by_the_kubelet_binarys_version_and_names_where_it_was_read() {
    let dir = root_with_kubelet("k8s.io/component-base/version.gitVersion=v1.22.9");
    let node = discover(&DiscoverOptions {
        root: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        node.kubernetes_version_source.as_deref(),
        Some("the kubelet binary at /usr/bin/kubelet")
    );
    let choice = ringfence_cis::versions::choose(
        node.kubernetes_version.as_deref(),
        node.kubernetes_version_source.as_deref(),
    )
    .unwrap();
    assert_eq!(choice.benchmark, "cis-1.23");
    assert_eq!(
        choice.reason,
        "Kubernetes v1.22.9 from the kubelet binary at /usr/bin/kubelet; kube-bench maps 1.22 to cis-1.23"
    );
}
