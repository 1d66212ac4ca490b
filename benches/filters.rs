//! Criterion benchmarks of one filter update on the localization model (the same work as
//! `hdpf bench step`): RF-PF at n = 1000, SIR at n = 10⁵ and MCL at n = 1000, all at m = 10; and
//! the pair kernels alone (RF-PF pair sums and SVGD kernel sums) at n = 1000 and 10⁴, m = 10.

use criterion::{criterion_group, criterion_main, Criterion};
use hdpf::app::bench::step::StepBench;
use hdpf::core::filter::interaction::{epsilon, median_bandwidth, pair_sums, svgd_sums};
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

/// A deterministic `n × m` cloud in [−1, 1).
fn cloud(n: usize, m: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n * m)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn pair_kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("pair_kernel_m10");
    group.sample_size(10);
    let m = 10;
    for n in [1000, 10_000] {
        let p = cloud(n, m, 1);
        let g = cloud(n, m, 2);
        let eps = epsilon(0.5 * n as f64, m).expect("valid width");
        let mut out = vec![0.0; n * m];
        group.bench_function(format!("rfpf_pair_sums_n{n}"), |b| {
            b.iter(|| pair_sums(&p, n, m, eps, &mut out))
        });
        let h = median_bandwidth(&p, n, m);
        let (mut a, mut bb) = (vec![0.0; n * m], vec![0.0; n * m]);
        group.bench_function(format!("svgd_sums_n{n}"), |b| {
            b.iter(|| svgd_sums(&p, &g, n, m, h, &mut a, &mut bb))
        });
    }
    group.finish();
}

criterion_group!(benches, updates, pair_kernels);
criterion_main!(benches);
