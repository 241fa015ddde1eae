//! `wasmtime serve`, exactly as wasmtime-cli 48.0.8 implements it (its `ServeCommand`), as a
//! binary of this workspace: `target/debug/wasmtime-serve [serve] ARGS…`. The edge tests run the
//! edge component under it (`host/tests/edge.rs`); building it with the workspace reuses the
//! wasmtime and cranelift the host already compiles, instead of a separate `cargo install`.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Accept `wasmtime serve ARGS` as well as `ARGS`.
    if args.get(1).is_some_and(|a| a == "serve") {
        args.remove(1);
    }
    match wasmtime_cli::commands::ServeCommand::parse_from(args).execute() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            std::process::ExitCode::FAILURE
        }
    }
}
