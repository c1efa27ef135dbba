//! The benchmark's main logic in quick mode: it runs, and every ratio is finite. No timing
//! assertion (timings on shared machines say nothing).

#[path = "../examples/bench_vae.rs"]
mod bench_vae;

#[test]
fn bench_vae_quick_runs_with_finite_ratios() {
    let report = bench_vae::run(&bench_vae::Options::quick()).expect("bench_vae --quick");
    for (name, r) in [
        ("train", report.train_ratio),
        ("plain", report.plain_ratio),
        ("sample", report.sample_ratio),
        ("save", report.save_ratio),
        ("save vs fsync", report.save_sync_ratio),
        ("save without fsync", report.save_no_sync_ratio),
        ("load", report.load_ratio),
        ("ours steps/s", report.ours_steps_per_s),
        ("ref steps/s", report.ref_steps_per_s),
    ] {
        assert!(r.is_finite() && r > 0.0, "{name}: {r}");
    }
    assert!(report.memory_ratio.is_none_or(f64::is_finite));
    assert!(bench_vae::flops_per_step(128) > 0.0);
}
