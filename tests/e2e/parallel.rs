//! Parallel replay (`--render-workers N`): renders overlap, but pictures are stored, completed
//! and called back in capture order, so every output byte is the same for any N.

use livesnap_tests::{options, replay_into_temp};

#[test]
fn render_workers_change_nothing_in_the_output() {
    for (name, overwrite) in [
        ("high_1080p", false),
        ("res_change", false),
        ("high_720p", true),
    ] {
        let run = |workers: usize| {
            let mut opts = options(name);
            opts.interval_s = 1;
            opts.overwrite = overwrite;
            opts.render_workers = workers;
            let r = replay_into_temp(opts).unwrap();
            let files: Vec<(String, Vec<u8>)> = r
                .objects
                .iter()
                .map(|o| {
                    (
                        o.clone(),
                        std::fs::read(r.out.join("objects").join(o)).unwrap(),
                    )
                })
                .collect();
            (r.callbacks.clone(), files, r.summary.stored)
        };
        let one = run(1);
        assert!(one.2 > 1, "{name}: only {} pictures", one.2);
        for workers in [2, 5] {
            assert_eq!(run(workers), one, "{name} with {workers} render workers");
        }
    }
}
