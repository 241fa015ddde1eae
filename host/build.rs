//! Builds the two wasm artifacts the host embeds, each with a nested cargo into one target dir
//! under `OUT_DIR` (sharing the outer target dir would deadlock on the lock the outer build
//! holds), always optimised — as in wasmtime's `crates/test-programs/artifacts/build.rs`:
//!
//! - `livesnap.wasm`, the capability-free component: `guest/` built for `wasm32-unknown-unknown`
//!   (so the core module imports nothing: no WASI, no clock, no environment) and componentized
//!   here with `wit-component` against `wit/`;
//! - `livesnap-edge.wasm`, the `wasi:http/proxy` edge component: `edge/` built for
//!   `wasm32-wasip2` (rustc emits the component itself), and once more with its `passthrough`
//!   feature as the benchmark's baseline (`livesnap-edge-passthrough.wasm`).
//!
//! Both land in `OUT_DIR` for `include_bytes!`.

use std::path::{Path, PathBuf};
use std::process::Command;

const GUEST_TARGET: &str = "wasm32-unknown-unknown";
const EDGE_TARGET: &str = "wasm32-wasip2";

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let host_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = host_dir
        .parent()
        .expect("host/ lives in the workspace root")
        .to_path_buf();
    let target_dir = out_dir.join("guest-target");

    for path in [
        "guest/src",
        "guest/Cargo.toml",
        "h264dec/src",
        "h264dec/Cargo.toml",
        "edge/src",
        "edge/Cargo.toml",
        "wit",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }

    // The capture + render component.
    nested_build(
        &root.join("guest/Cargo.toml"),
        "livesnap-guest",
        GUEST_TARGET,
        &["--features=component"],
        &target_dir,
    );
    let core = target_dir
        .join(GUEST_TARGET)
        .join("guest")
        .join("livesnap_guest.wasm");
    let module = std::fs::read(&core).unwrap_or_else(|e| panic!("reading {}: {e}", core.display()));
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .unwrap_or_else(|e| panic!("componentizing {}: {e:#}", core.display()));
    std::fs::write(out_dir.join("livesnap.wasm"), component)
        .unwrap_or_else(|e| panic!("writing livesnap.wasm: {e}"));

    // The edge proxy.
    nested_build(
        &root.join("edge/Cargo.toml"),
        "livesnap-edge",
        EDGE_TARGET,
        &[],
        &target_dir,
    );
    let edge = target_dir
        .join(EDGE_TARGET)
        .join("guest")
        .join("livesnap_edge.wasm");
    std::fs::copy(&edge, out_dir.join("livesnap-edge.wasm"))
        .unwrap_or_else(|e| panic!("copying {}: {e}", edge.display()));

    // The same proxy without capture: the benchmark's pass-through baseline. Its own target dir,
    // so the two feature sets do not rebuild each other.
    let passthrough_dir = target_dir.join("passthrough");
    nested_build(
        &root.join("edge/Cargo.toml"),
        "livesnap-edge",
        EDGE_TARGET,
        &["--features=passthrough"],
        &passthrough_dir,
    );
    let edge = passthrough_dir
        .join(EDGE_TARGET)
        .join("guest")
        .join("livesnap_edge.wasm");
    std::fs::copy(&edge, out_dir.join("livesnap-edge-passthrough.wasm"))
        .unwrap_or_else(|e| panic!("copying {}: {e}", edge.display()));
}

fn nested_build(manifest: &Path, package: &str, target: &str, extra: &[&str], target_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--profile=guest")
        .arg(format!("--target={target}"))
        .arg(format!("--package={package}"))
        .args(extra)
        .arg("--manifest-path")
        .arg(manifest)
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO_BUILD_BUILD_DIR", target_dir)
        // The outer build's flags are for the host; the guest gets its own: wasm SIMD lets LLVM
        // vectorise the colour, scale and DCT loops (wasmtime and V8 enable SIMD by default).
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+simd128")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_PROFILE_RELEASE_DEBUG");
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running the nested cargo that builds {package}: {e}"));
    if !status.success() {
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(target))
            .unwrap_or(true);
        if !installed {
            panic!(
                "the {target} target is not installed, so {package} cannot be built. Install it \
                 with `rustup target add {target}` (rust-toolchain.toml lists it; rustup here \
                 does not add targets by itself) and build again."
            );
        }
        panic!("building {package} for {target} failed (see the cargo output above)");
    }
}
