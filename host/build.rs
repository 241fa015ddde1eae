//! Builds the guest component (`guest/`, target `wasm32-wasip2`, always optimised) with a nested
//! cargo in its own target dir under `OUT_DIR` — sharing the outer target dir would deadlock on
//! the lock the outer build holds — and copies it to `OUT_DIR/livesnap_guest.wasm` for
//! `include_bytes!`. As in wasmtime's `crates/test-programs/artifacts/build.rs`.

use std::path::PathBuf;
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let host_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = host_dir
        .parent()
        .expect("host/ lives in the workspace root")
        .to_path_buf();
    let guest_manifest = root.join("guest/Cargo.toml");
    let target_dir = out_dir.join("guest-target");

    for path in [
        "guest/src",
        "guest/Cargo.toml",
        "wit",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--profile=guest")
        .arg(format!("--target={TARGET}"))
        .arg("--package=livesnap-guest")
        .arg("--manifest-path")
        .arg(&guest_manifest)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_BUILD_BUILD_DIR", &target_dir)
        // The outer build's flags are for the host; the guest gets its own: wasm SIMD lets LLVM
        // vectorise the colour, scale and DCT loops (wasmtime enables SIMD by default).
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+simd128")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_PROFILE_RELEASE_DEBUG");
    let status = cmd
        .status()
        .expect("running the nested cargo that builds the guest");
    if !status.success() {
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(TARGET))
            .unwrap_or(true);
        if !installed {
            panic!(
                "the {TARGET} target is not installed, so the livesnap guest component cannot be \
                 built. Install it with `rustup target add {TARGET}` (rust-toolchain.toml asks \
                 rustup for it) and build again."
            );
        }
        panic!("building the livesnap guest component failed (see the cargo output above)");
    }
    let wasm = target_dir
        .join(TARGET)
        .join("guest")
        .join("livesnap_guest.wasm");
    std::fs::copy(&wasm, out_dir.join("livesnap_guest.wasm"))
        .unwrap_or_else(|e| panic!("copying {}: {e}", wasm.display()));
}
