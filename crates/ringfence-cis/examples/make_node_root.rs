//! Build a TKG-style node root for benchmarks and manual runs:
//! `cargo run -p ringfence-cis --features testkit --example make_node_root -- DIR [control-plane|worker-flags|worker-config]`.
fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: make_node_root DIR [control-plane|worker-flags|worker-config]");
        std::process::exit(2);
    };
    match args.next().as_deref().unwrap_or("control-plane") {
        "control-plane" => drop(ringfence_cis::testkit::tkg_control_plane(dir)),
        "worker-flags" => drop(ringfence_cis::testkit::worker(
            dir,
            ringfence_cis::testkit::KubeletStyle::FlagsOnly,
        )),
        "worker-config" => drop(ringfence_cis::testkit::worker(
            dir,
            ringfence_cis::testkit::KubeletStyle::ConfigOnly,
        )),
        other => {
            eprintln!("unknown node kind {other:?}");
            std::process::exit(2);
        }
    }
}
