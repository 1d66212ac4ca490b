//! Criterion benchmarks of one filter update on the localization model (the same work as
//! `hdpf bench step`): RF-PF at n = 1000, SIR at n = 10⁵ and MCL at n = 1000, all at m = 10.

use criterion::{criterion_group, criterion_main, Criterion};
use hdpf::app::bench::step::StepBench;
use hdpf::core::filter::{FilterKind, Substeps};

fn updates(c: &mut Criterion) {
    let mut group = c.benchmark_group("update_localization_m10");
    group.sample_size(20);
    for (kind, n) in [
        (FilterKind::Rfpf, 1000),
        (FilterKind::Grad, 1000),
        (FilterKind::Sir, 100_000),
        (FilterKind::Mcl, 1000),
    ] {
        let mut bench =
            StepBench::new(kind, n, 10, Substeps::Fixed(1), 0).expect("valid benchmark setup");
        group.bench_function(format!("{kind}_n{n}"), |b| {
            b.iter(|| bench.advance().expect("finite update"))
        });
    }
    group.finish();
}

criterion_group!(benches, updates);
criterion_main!(benches);
