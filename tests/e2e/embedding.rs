//! The component as a product (README "Embedding"): it imports no WASI; the edge component is a
//! `wasi:http/proxy`; and other hosts — the Rust embedding example on plain wasmtime, Node
//! through jco — give byte-identical callbacks and JPEGs to `livesnap replay`.

use livesnap::replay::ReplayOptions;
use livesnap::runtime::{COMPONENT_WASM, EDGE_WASM};
use livesnap_tests::{
    Replayed, SESSION_ID, START_MS, fixture, fixture_names, options, replay_into_temp, root,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

fn names<T>(items: impl Iterator<Item = (impl AsRef<str>, T)>) -> Vec<String> {
    items.map(|(n, _)| n.as_ref().to_owned()).collect()
}

#[test]
fn the_component_imports_nothing_but_its_own_types() {
    let engine = Engine::default();
    let component = Component::new(&engine, COMPONENT_WASM).unwrap();
    let ty = component.component_type();
    let imports = names(ty.imports(&engine));
    assert!(
        imports.iter().all(|name| !name.starts_with("wasi:")),
        "the component imports WASI: {imports:?}"
    );
    assert_eq!(imports, ["livesnap:snap/types@0.6.0"], "imports");
    // That one import is types only: no function the host would have to provide.
    for (name, item) in ty.imports(&engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            panic!("import {name} is not an interface");
        };
        let funcs: Vec<String> = instance
            .exports(&engine)
            .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
            .map(|(n, _)| n.to_owned())
            .collect();
        assert!(funcs.is_empty(), "{name} imports functions {funcs:?}");
    }
    let exports = names(ty.exports(&engine));
    for wanted in ["livesnap:snap/capture@0.6.0", "livesnap:snap/render@0.6.0"] {
        assert!(
            exports.iter().any(|e| e == wanted),
            "{wanted} not in {exports:?}"
        );
    }
    // So an empty linker instantiates it.
    Linker::<()>::new(&engine)
        .instantiate(&mut Store::new(&engine, ()), &component)
        .unwrap();
}

#[test]
fn the_edge_component_is_a_wasi_http_proxy_without_disk_or_sockets() {
    let engine = Engine::default();
    let component = Component::new(&engine, EDGE_WASM).unwrap();
    let ty = component.component_type();
    let exports = names(ty.exports(&engine));
    assert!(
        exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2")),
        "exports {exports:?}"
    );
    let imports = names(ty.imports(&engine));
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:http/outgoing-handler@0.2")),
        "imports {imports:?}"
    );
    for forbidden in ["wasi:filesystem", "wasi:sockets", "livesnap:"] {
        assert!(
            imports.iter().all(|i| !i.starts_with(forbidden)),
            "the edge proxy imports {forbidden}: {imports:?}"
        );
    }
}

/// Replay `opts` in process (the code `livesnap replay` runs) into a fresh directory.
fn rust_replay(opts: ReplayOptions) -> Replayed {
    replay_into_temp(opts).unwrap()
}

/// Every file under `dir`: relative path → bytes.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("livesnap-embed-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The embedding example's binary, built by `cargo test` beside this test binary.
fn embed_example() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let profile_dir = deps.parent().and_then(Path::parent).unwrap();
    let exe = profile_dir
        .join("examples")
        .join(format!("embed{}", std::env::consts::EXE_SUFFIX));
    assert!(
        exe.exists(),
        "{} is missing: `cargo test -p livesnap-tests` builds it (examples/embed.rs)",
        exe.display()
    );
    exe
}

/// `livesnap component`'s artifacts in a directory of this process.
fn artifacts() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp("artifacts");
        livesnap::artifact::write(&dir).unwrap();
        dir
    })
}

#[test]
fn the_rust_embedding_example_matches_replay_on_every_fixture() {
    for name in fixture_names() {
        let out = temp(&format!("rs-{name}"));
        let run = Command::new(embed_example())
            .arg(artifacts().join("livesnap.wasm"))
            .arg(fixture(&name))
            .arg(&out)
            .arg(START_MS.to_string())
            .arg(SESSION_ID.to_string())
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let lines: Vec<String> = String::from_utf8(run.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        // The example uses replay's defaults: interval 20, bucket livesnap, tenant local.
        let mut opts = options(&name);
        opts.interval_s = 20;
        opts.bucket = "livesnap".into();
        opts.uniqname = "local".into();
        let reference = rust_replay(opts);
        assert_eq!(lines, reference.callbacks, "{name}: callback lines");
        assert_eq!(
            tree(&out),
            tree(&reference.out.join("objects")),
            "{name}: JPEG files"
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// jco's output for `livesnap.wasm`, transpiled once per process with the committed lock's jco.
fn transpiled() -> PathBuf {
    static GEN: OnceLock<PathBuf> = OnceLock::new();
    GEN.get_or_init(|| {
        let node_dir = root().join("examples/node");
        let jco = node_dir.join("node_modules/.bin/jco");
        assert!(
            jco.exists(),
            "{} is missing: install the Node host's tools with `npm ci --prefix examples/node` \
             (Node >= 20; .ci/run does this)",
            jco.display()
        );
        let gen_dir = temp("jco");
        let run = Command::new(&jco)
            .arg("transpile")
            .arg(artifacts().join("livesnap.wasm"))
            .args(["--no-typescript", "-o"])
            .arg(&gen_dir)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "jco transpile: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        gen_dir.join("livesnap.js")
    })
    .clone()
}

/// Run the Node host (examples/node/replay.mjs) like `livesnap replay` with `opts`.
fn node_replay(opts: &ReplayOptions, tag: &str) -> (Vec<String>, PathBuf) {
    let out = temp(&format!("node-{tag}"));
    let mut cmd = Command::new("node");
    cmd.arg(root().join("examples/node/replay.mjs"))
        .arg(&opts.input)
        .arg("--module")
        .arg(transpiled())
        .arg("--out")
        .arg(out.join("objects"))
        .args(["--callbacks", "-"])
        .args(["--app", &opts.app])
        .args(["--interval", &opts.interval_s.to_string()])
        .args(["--start-ms", &opts.start_ms.unwrap().to_string()])
        .args(["--session-id", &opts.session_id.unwrap().to_string()])
        .args(["--bucket", &opts.bucket])
        .args(["--uniqname", &opts.uniqname]);
    if opts.overwrite {
        cmd.arg("--overwrite");
    }
    if let Some(n) = opts.shortside_px {
        cmd.args(["--shortside", &n.to_string()]);
    }
    if let Some(q) = opts.quality {
        cmd.args(["--quality", &q.to_string()]);
    }
    let run = cmd
        .output()
        .expect("node runs (install Node >= 20: apt-get install nodejs)");
    assert!(
        run.status.success(),
        "node host on {}: {}",
        opts.input.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    let lines = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    (lines, out)
}

#[test]
fn the_node_host_matches_replay_byte_for_byte_on_every_fixture() {
    let mut cases: Vec<(String, ReplayOptions)> = fixture_names()
        .into_iter()
        .map(|name| {
            // Every I-frame the rule allows at 1 s: as many pictures as the fixtures have.
            let mut opts = options(&name);
            opts.interval_s = 1;
            (name, opts)
        })
        .collect();
    let mut variant = options("high_720p");
    (variant.overwrite, variant.shortside_px, variant.quality) = (true, Some(360), Some(5));
    cases.push(("high_720p-overwrite-360-q5".into(), variant));
    let mut pictures = 0;
    for (tag, opts) in cases {
        let reference = rust_replay(opts.clone());
        let (lines, out) = node_replay(&opts, &tag);
        assert_eq!(lines, reference.callbacks, "{tag}: callback lines");
        let files = tree(&out.join("objects"));
        assert_eq!(
            files,
            tree(&reference.out.join("objects")),
            "{tag}: JPEG files"
        );
        pictures += files.len();
        let _ = std::fs::remove_dir_all(&out);
    }
    assert!(pictures > 50, "only {pictures} pictures compared");
}
