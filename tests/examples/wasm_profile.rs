//! Run the render stages of `tests/wasm-bench` in a loop under wasmtime with a perf map, for
//! `perf record`: `cargo run --example wasm-profile -- STAGE ROUNDS`.

use livesnap_tests::keyframes;
use wasmtime::{Config, Engine, Instance, Module, ProfilingStrategy, Store};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let stage = args.get(1).map_or("all", String::as_str);
    let rounds: u32 = args.get(2).map_or(Ok(50), |s| s.parse())?;
    let path = std::env::var("WASM_BENCH").unwrap_or_else(|_| {
        "target/tmp/wasm-bench/wasm32-unknown-unknown/guest/livesnap_h264_wasm_bench.wasm".into()
    });
    if stage == "component" {
        // The product path: the embedded component's render, every keyframe once per round.
        let rt = livesnap_tests::runtime();
        let mut renderer = rt.renderer()?;
        let shots = keyframes("high_1080p");
        let mut best = f64::INFINITY;
        for _ in 0..rounds {
            let t = std::time::Instant::now();
            let mut each = Vec::new();
            for shot in &shots {
                let t = std::time::Instant::now();
                renderer
                    .render(rt, shot)?
                    .map_err(|f| anyhow::anyhow!(f.text()))?;
                each.push(format!("{:.1}", t.elapsed().as_secs_f64() * 1e3));
            }
            eprintln!("{}", each.join(" "));
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "component: best round {best:.2} ms for {} keyframes",
            shots.len()
        );
        return Ok(());
    }
    let mut config = Config::new();
    config.profiler(ProfilingStrategy::PerfMap);
    let epochs = std::env::var_os("EPOCHS").is_some();
    config.epoch_interruption(epochs);
    // WASM_PROFILE_CACHE=DIR: wasmtime's compilation cache, so a run under valgrind (counting
    // the instructions of a change, repeatable on a noisy machine) does not compile again.
    if let Some(dir) = std::env::var_os("WASM_PROFILE_CACHE") {
        let mut cache = wasmtime::CacheConfig::new();
        cache.with_directory(dir);
        config.cache(Some(wasmtime::Cache::new(cache)?));
    }
    let engine = Engine::new(&config)?;
    if let Ok(out) = std::env::var("DUMP_CWASM") {
        std::fs::write(out, engine.precompile_module(&std::fs::read(&path)?)?)?;
        return Ok(());
    }
    let module = Module::from_file(&engine, &path)?;
    let mut store = Store::new(&engine, ());
    if epochs {
        store.set_epoch_deadline(u64::MAX / 2);
    }
    let instance = Instance::new(&mut store, &module, &[])?;
    let buffer = instance.get_typed_func::<u32, u32>(&mut store, "input_buffer")?;
    let memory = instance
        .get_memory(&mut store, "memory")
        .ok_or_else(|| anyhow::anyhow!("the module exports no memory"))?;
    let shots = keyframes("high_1080p");
    let load = |store: &mut Store<()>, i: usize| -> anyhow::Result<()> {
        let shot = &shots[i % shots.len()];
        let input = livesnap_h264_wasm_bench::encode_render_input(&shot.config, &shot.access_unit);
        let at = buffer.call(&mut *store, input.len() as u32)?;
        memory.write(&mut *store, at as usize, &input)?;
        Ok(())
    };
    load(&mut store, 0)?;
    let decode = instance.get_typed_func::<(), u32>(&mut store, "stage_decode")?;
    let colour = instance.get_typed_func::<(), u32>(&mut store, "stage_colour")?;
    let encode = instance.get_typed_func::<u32, u32>(&mut store, "stage_encode")?;
    decode.call(&mut store, ())?;
    colour.call(&mut store, ())?;
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        if stage == "colour" {
            // A fresh picture in its own colour space, outside the timed part.
            decode.call(&mut store, ())?;
        }
        let t = std::time::Instant::now();
        match stage {
            "colour" => {
                colour.call(&mut store, ())?;
            }
            "decode" => {
                decode.call(&mut store, ())?;
            }
            "encode" => {
                encode.call(&mut store, 80)?;
            }
            "every" => {
                // Each keyframe of the clip once per round.
                for i in 0..shots.len() {
                    load(&mut store, i)?;
                    decode.call(&mut store, ())?;
                    colour.call(&mut store, ())?;
                    encode.call(&mut store, 80)?;
                }
            }
            _ => {
                decode.call(&mut store, ())?;
                colour.call(&mut store, ())?;
                encode.call(&mut store, 80)?;
            }
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("{stage}: best round {best:.2} ms");
    Ok(())
}
