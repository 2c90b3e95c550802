//! Builds the kernel programs (`sensor-ebpf`) for the BPF target with aya-build, so that
//! `cargo build` of the daemon always embeds probes that match its sources.
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("sensor crate has no parent directory")?
        .join("sensor-ebpf");
    let root = root.to_str().context("non-UTF-8 path to sensor-ebpf")?;
    println!("cargo::rerun-if-changed={root}/src");
    println!("cargo::rerun-if-changed={root}/../sensor-common/src");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "sensor-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
}
