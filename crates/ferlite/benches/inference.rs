//! Criterion benchmarks of the paper network: the same rows as `ferlite bench` (inference batch 1
//! and 256 on the fast path, in bfloat16 where the CPU has it, and the framework forward, one
//! training step at batch 64), with
//! criterion's confidence intervals, and the two halves of the Winograd kernel at each stage's
//! shape (input transform; products and output transform). `cargo bench --bench inference`; pin threads with
//! RAYON_NUM_THREADS=1 for the single-thread rows.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferlite::emotion::NUM_CLASSES;
use ferlite::model::{Network, NetworkConfig};
use ferlite::nn::conv::ConvAlgorithm;
use ferlite::nn::optim::Optimizer;
use ferlite::nn::Tensor;
use ferlite::rng::rng_for;
use ferlite::train::train_step;
use rand::Rng;
use std::hint::black_box;

fn faces(n: usize) -> Tensor {
    let mut rng = rng_for(&[n as u64]);
    Tensor::from_vec([n, 1, 48, 48], (0..n * 2304).map(|_| rng.random_range(-2.0..2.0)).collect())
}

fn inference(c: &mut Criterion) {
    use ferlite::nn::{bf16, Precision};
    let net = Network::new(NetworkConfig::paper(), 0);
    let fast = net.fold();
    let fast_bf16 = bf16::available().then(|| fast.clone().with_precision(Precision::Bf16).unwrap());
    let mut group = c.benchmark_group("inference");
    for n in [1usize, 256] {
        let x = faces(n);
        group.throughput(Throughput::Elements(n as u64));
        if n > 1 {
            group.sample_size(10);
        }
        group.bench_with_input(BenchmarkId::new("fast_path", n), &x, |b, x| b.iter(|| black_box(fast.forward(x))));
        if let Some(fast_bf16) = &fast_bf16 {
            group.bench_with_input(BenchmarkId::new("fast_path_bf16", n), &x, |b, x| b.iter(|| black_box(fast_bf16.forward(x))));
        }
        group.bench_with_input(BenchmarkId::new("framework", n), &x, |b, x| b.iter(|| black_box(net.forward(x))));
    }
    group.finish();
}

fn winograd(c: &mut Criterion) {
    use ferlite::nn::Precision;
    use ferlite::nn::winograd::Winograd3x3;
    let mut group = c.benchmark_group("winograd");
    for (cin, cout, side) in [(32, 32, 48), (64, 64, 24), (128, 128, 12)] {
        let mut rng = rng_for(&[side as u64]);
        let x: Vec<f32> = (0..cin * side * side).map(|_| rng.random_range(-1.0..1.0)).collect();
        let weight: Vec<f32> = (0..cout * cin * 9).map(|_| rng.random_range(-0.1..0.1)).collect();
        for (precision, suffix) in [(Precision::F32, ""), (Precision::Bf16, "_bf16")] {
            let Some(conv) = Winograd3x3::with_precision(&weight, cin, cout, precision) else {
                eprintln!("skipped {precision:?}: this CPU has no AVX2/FMA (or AVX-512 BF16)");
                continue;
            };
            let (mut scratch, mut v, mut out) = (Vec::new(), Vec::new(), vec![0.0; cout * side * side]);
            let shape = format!("{cin}x{side}x{side}");
            group.bench_function(BenchmarkId::new(format!("transform_input{suffix}"), &shape), |b| {
                b.iter(|| conv.transform_input(black_box(&x), (side, side), &mut scratch, &mut v))
            });
            group.bench_function(BenchmarkId::new(format!("products_and_output{suffix}"), &shape), |b| b.iter(|| conv.run(black_box(&v), (side, side), 0..cout, &mut out)));
        }
    }
    group.finish();
}

fn training_step(c: &mut Criterion) {
    let mut net = Network::new(NetworkConfig::paper(), 0);
    let x = faces(64);
    let labels: Vec<usize> = (0..64).map(|i| i % NUM_CLASSES).collect();
    let mut optimizer = Optimizer::new(Default::default(), net.param_layout.decay_mask());
    let mut grads = vec![0.0; net.num_params()];
    let mut group = c.benchmark_group("training");
    group.throughput(Throughput::Elements(64)).sample_size(10);
    // As `ferlite train` runs its steps.
    ferlite::train::retain_freed_memory();
    let mut step = 0u64;
    for algorithm in [ConvAlgorithm::Im2col, ConvAlgorithm::Winograd, ConvAlgorithm::WinogradFull] {
        net.set_conv_algorithm(algorithm);
        group.bench_function(BenchmarkId::new("step_batch_64", algorithm.flag_name()), |b| {
            b.iter(|| {
                step += 1;
                train_step(&mut net, &mut optimizer, &mut grads, x.clone(), &labels, 0.1, None, None, 0.01, &mut rng_for(&[step]));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, inference, winograd, training_step);
criterion_main!(benches);
