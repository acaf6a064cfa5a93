use anyhow::{Context, Result};
use ferlite::analyze::{analyze, FaceMode, FaceSearch};
use ferlite::faces::Detector;
use ferlite::emotion::NUM_CLASSES;
use ferlite::predict::Tta;
use ferlite::model::{Network, NetworkConfig};
use ferlite::nn::conv::ConvAlgorithm;
use ferlite::nn::optim::Optimizer;
use ferlite::nn::Precision;
use ferlite::nn::Tensor;
use ferlite::rng::rng_for;
use ferlite::train::train_step;
use rand::Rng;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Timed repetitions per measurement (after one warm-up).
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// Training batch size.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Skip the training rows (on a slow machine they take most of the time).
    #[arg(long)]
    inference_only: bool,
    /// Also print where one batch-1 inference spends its time, layer by layer (fast path).
    #[arg(long)]
    layers: bool,
    /// Also time the whole job of a video frame (decode, detect, crop, classify with the embedded
    /// model) on this photo, resized to 640x480 and encoded as a JPEG, e.g. assets/demo/astronaut.jpg.
    #[arg(long, value_name = "FILE")]
    photo: Option<std::path::PathBuf>,
    /// The face detectors to time with --photo (repeat the flag; default: every one).
    #[arg(long, value_enum, requires = "photo")]
    detector: Vec<Detector>,
    /// Test-time augmentation of the faces in the --photo job (as `predict --tta`, whose default
    /// it has).
    #[arg(long, value_enum, default_value_t = Tta::default(), requires = "photo")]
    tta: Tta,
}

/// Median and spread of repeated timings.
fn stats(mut seconds: Vec<f64>) -> (f64, f64, f64) {
    seconds.sort_by(f64::total_cmp);
    (seconds[seconds.len() / 2], seconds[0], seconds[seconds.len() - 1])
}

fn time(repeats: usize, mut f: impl FnMut()) -> (f64, f64, f64) {
    f();
    stats((0..repeats.max(1)).map(|_| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    }).collect())
}

fn random_batch(n: usize) -> Tensor {
    let mut rng = rng_for(&[n as u64]);
    Tensor::from_vec([n, 1, 48, 48], (0..n * 2304).map(|_| rng.random_range(-2.0..2.0)).collect())
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let threads = rayon::current_num_threads();
    println!("ferlite bench: paper network, {threads} thread(s), median of {} (min..max)", args.repeats);
    let mut net = Network::new(NetworkConfig::paper(), 0);

    // Training step: forward, loss, backward, SGD update.
    let bs = args.batch_size;
    let x = random_batch(bs);
    let labels: Vec<usize> = (0..bs).map(|i| i % NUM_CLASSES).collect();
    let mut opt = Optimizer::new(Default::default(), net.param_layout.decay_mask());
    let mut grads = vec![0.0; net.num_params()];
    let mut step = 0u64;
    let algorithms = if args.inference_only { &[][..] } else { &[ConvAlgorithm::Im2col, ConvAlgorithm::Winograd, ConvAlgorithm::WinogradFull][..] };
    // As `ferlite train` runs its steps.
    ferlite::train::retain_freed_memory();
    for &algorithm in algorithms {
        net.set_conv_algorithm(algorithm);
        let (med, lo, hi) = time(args.repeats, || {
            step += 1;
            train_step(&mut net, &mut opt, &mut grads, x.clone(), &labels, 0.1, None, None, 0.01, &mut rng_for(&[step]));
        });
        println!("train  batch {bs:>3}: {:>8.1} img/s  ({:.1} ms/step, {:.1}..{:.1})  3x3 convolutions by {}", bs as f64 / med, med * 1e3, lo * 1e3, hi * 1e3, algorithm.flag_name());
    }
    // The framework forward below is the im2col reference.
    net.set_conv_algorithm(ConvAlgorithm::Im2col);

    // int8 needs activation ranges; these random weights get them from random faces (the speed
    // does not depend on their values).
    net.int8_ranges = Some(ferlite::int8::calibrate(&net.fold(), &random_batch(16)));
    let fast = net.fold();
    // bfloat16 and int8 products where the CPU has them, timed beside f32.
    let precisions: Vec<Precision> = [Precision::F32, Precision::Bf16, Precision::Int8].into_iter().filter(|p| p.check().is_ok()).collect();
    let label = |p| precision_flag(p).map_or(" (folded, fused)".into(), |flag| format!(", {} products ({flag})", ferlite::choice::name_of(&p)));
    let fast_paths = precisions.iter().map(|&p| Ok((fast.clone().with_precision(p)?, format!("fast path{}", label(p))))).collect::<Result<Vec<_>>>()?;
    for n in [1usize, 256] {
        let x = random_batch(n);
        let repeats = if n == 1 { args.repeats * 20 } else { args.repeats };
        let (med, lo, hi) = time(repeats, || {
            std::hint::black_box(net.forward(&x));
        });
        println!("infer  batch {n:>3}: {:>8.1} img/s  ({:.2} ms/batch, {:.2}..{:.2})  framework forward", n as f64 / med, med * 1e3, lo * 1e3, hi * 1e3);
        for (fast, label) in &fast_paths {
            let (med, lo, hi) = time(repeats, || {
                std::hint::black_box(fast.forward(&x));
            });
            println!("infer  batch {n:>3}: {:>8.1} img/s  ({:.2} ms/batch, {:.2}..{:.2})  {label}", n as f64 / med, med * 1e3, lo * 1e3, hi * 1e3);
        }
    }
    if args.layers {
        let face = random_batch(1).data;
        for (fast, label) in &fast_paths {
            let runs: Vec<Vec<(String, std::time::Duration)>> = (0..args.repeats * 20).map(|_| fast.profile(&face).1).collect();
            let total: f64 = runs.iter().map(|r| r.iter().map(|t| t.1.as_secs_f64()).sum::<f64>()).sum::<f64>() / runs.len() as f64;
            println!("{label}, batch 1, per layer (median of {}):", runs.len());
            for (i, (name, _)) in runs[0].iter().enumerate() {
                let (med, _, _) = stats(runs.iter().map(|r| r[i].1.as_secs_f64()).collect());
                println!("  {name:<28} {:>7.3} ms  {:>5.1}%", med * 1e3, 100.0 * med / total);
            }
        }
    }
    if let Some(path) = &args.photo {
        let photo = ferlite::image_io::open_image(path)?.resize_exact(640, 480, image::imageops::FilterType::Triangle);
        let mut jpeg = Vec::new();
        photo.to_rgb8().write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)?;
        let detectors = if args.detector.is_empty() { vec![Detector::Yunet, Detector::Accurate, Detector::Ssd, Detector::Seeta, Detector::Mmod] } else { args.detector.clone() };
        let (decode, _, _) = time(args.repeats * 5, || {
            std::hint::black_box(ferlite::image_io::decode_bytes(&jpeg, u64::MAX).ok());
        });
        println!("photo  640x480 JPEG: {:.1} ms to decode", decode * 1e3);
        for &precision in &precisions {
            // The embedded model, not the random weights above: how many framings a face takes
            // depends on how sure the model is (`analyze::OTHER_FRAMINGS_BELOW`).
            let predictor = ferlite::predict::Predictor::load(None)?.with_precision(precision)?;
            let label = precision_flag(precision).map_or(String::new(), |flag| format!(", {flag}"));
            for &detector in &detectors {
                let search = FaceSearch { mode: FaceMode::Detect, detector, ..FaceSearch::default() };
                let job = || -> Result<usize> {
                    let frame = ferlite::image_io::decode_bytes(&jpeg, u64::MAX)?;
                    Ok(analyze(&predictor, &frame, search, args.tta)?.len())
                };
                // Once outside the timing, so that a detector's error is reported, not timed.
                let faces = job().with_context(|| format!("{detector:?} detector"))?;
                let (med, lo, hi) = time(args.repeats * 5, || {
                    std::hint::black_box(job().ok());
                });
                let (det, _, _) = time(args.repeats * 5, || {
                    std::hint::black_box(detector.detect_with(&photo, None, precision).ok());
                });
                println!(
                    "photo  640x480 JPEG, {detector:?} detector{label}, {faces} face(s), --tta {}: {:.1} ms decode + detect + crop + classify ({:.1}..{:.1}), of which detection {:.1} ms",
                    clap::ValueEnum::to_possible_value(&args.tta).expect("a flag value").get_name(),
                    med * 1e3,
                    lo * 1e3,
                    hi * 1e3,
                    det * 1e3
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--precision NAME` for a precision other than the default f32, as the timings' labels name it.
fn precision_flag(precision: Precision) -> Option<String> {
    (precision != Precision::F32).then(|| format!("--precision {}", ferlite::choice::name_of(&precision)))
}
