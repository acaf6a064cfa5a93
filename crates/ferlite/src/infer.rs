//! The inference fast path: the trained [`Network`](crate::model::Network) with every batch norm
//! folded into the convolution before it (`W' = W·γ/σ`, `b' = β − μ·γ/σ`), and each layer's
//! bias, residual add, ReLU and 2x2 max-pool applied in one pass over the GEMM output instead of
//! four. Images run one per thread with buffers reused across layers and calls.
//!
//! Built by `Network::fold` from the one network definition; `tests` pin that both give the same
//! logits. [`Predictor`](crate::predict::Predictor) uses this path.

use crate::emotion::{FACE_PIXELS, FACE_SIZE};
use crate::nn::conv::im2col_3x3;
use crate::nn::direct_conv::DirectConv3x3;
use crate::nn::gemm::{row_major, sgemm};
use crate::int8::{self, Int8Stages};
use crate::nn::Precision;
use crate::nn::winograd::Winograd3x3;
use crate::nn::Tensor;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A convolution with its batch norm folded in: `y = W' * x + b'`.
#[derive(Clone, Debug)]
pub struct FoldedConv {
    pub cin: usize,
    pub cout: usize,
    /// 1 or 3.
    pub kernel: usize,
    /// `[cout, cin * kernel * kernel]`.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    /// The same 3x3 weights prepared for an AVX2 kernel, when this CPU has it.
    fast: Option<Kernel3x3>,
}

/// The AVX2 kernels for a 3x3 convolution. Both take output channels in blocks of 16 and prepare
/// the input once per layer, so the threads of batch 1 share it.
#[derive(Clone, Debug)]
enum Kernel3x3 {
    /// Winograd F(4x4, 3x3): 4x fewer multiplications; needs `cin` a multiple of 8.
    Winograd(Winograd3x3),
    /// Direct convolution: the 1-channel stem.
    Direct(DirectConv3x3),
}

impl Kernel3x3 {
    fn new(weight: &[f32], cin: usize, cout: usize, precision: Precision) -> Option<Self> {
        Winograd3x3::with_precision(weight, cin, cout, precision)
            .map(Kernel3x3::Winograd)
            .or_else(|| DirectConv3x3::new(weight, cin, cout).map(Kernel3x3::Direct))
    }

    const CHANNEL_BLOCK: usize = DirectConv3x3::CHANNEL_BLOCK;

    /// Prepares `x` `[cin, h, w]` into `prepared` (`scratch` is working memory).
    fn prepare(&self, x: &[f32], hw: (usize, usize), scratch: &mut Vec<f32>, prepared: &mut Vec<f32>) {
        match self {
            Kernel3x3::Winograd(k) => k.transform_input(x, hw, scratch, prepared),
            Kernel3x3::Direct(k) => k.pad_input(x, hw, prepared),
        }
    }

    fn run(&self, prepared: &[f32], hw: (usize, usize), channels: std::ops::Range<usize>, out: &mut [f32]) {
        match self {
            Kernel3x3::Winograd(k) => k.run(prepared, hw, channels, out),
            Kernel3x3::Direct(k) => k.run(prepared, hw, channels, out),
        }
    }
}

/// One residual stage: `pool(relu(c(relu(b(relu(a(x))))) + shortcut(x)))`.
#[derive(Clone, Debug)]
pub struct FoldedStage {
    pub a: FoldedConv,
    pub b: FoldedConv,
    pub c: FoldedConv,
    /// 1x1 projection when the channel count changes; identity otherwise.
    pub shortcut: Option<FoldedConv>,
}

/// A fully connected layer, `weight` `[outputs, inputs]`.
#[derive(Clone, Debug)]
pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The inference-only network: see the module docs.
#[derive(Clone, Debug)]
pub struct FastNetwork {
    pub stem: FoldedConv,
    pub stages: Vec<FoldedStage>,
    pub fc1: Dense,
    pub fc2: Dense,
    /// Calibrated activation ranges for int8, from the model file (see [`crate::int8`]).
    pub int8_ranges: Option<Vec<f32>>,
    /// The residual stages in int8, when the precision is [`Precision::Int8`].
    pub(crate) int8: Option<Int8Stages>,
}

/// What to do with a convolution's output after the bias.
#[derive(Clone, Copy)]
enum Epilogue<'a> {
    None,
    Relu,
    /// Add the residual, then ReLU.
    AddRelu(&'a [f32]),
}

/// A convolution's prepared input (im2col columns, padded planes or Winograd tiles) and the
/// working memory used to make it.
#[derive(Default)]
struct ConvBuffers {
    cols: Vec<f32>,
    scratch: Vec<f32>,
}

/// Per-thread scratch memory, kept between layers and calls.
#[derive(Default)]
struct Workspace {
    conv: ConvBuffers,
    x: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    shortcut: Vec<f32>,
    int8: int8::Workspace,
    /// Output-channel blocks per convolution, run in parallel (see `FoldedConv::run`).
    split: usize,
}

impl FoldedConv {
    /// `weight` `[cout, cin * kernel * kernel]`, `kernel` 1 or 3.
    pub fn new(cin: usize, cout: usize, kernel: usize, weight: Vec<f32>, bias: Vec<f32>) -> Self {
        let fast = if kernel == 3 { Kernel3x3::new(&weight, cin, cout, Precision::F32) } else { None };
        FoldedConv { cin, cout, kernel, weight, bias, fast }
    }

    /// Re-prepares the Winograd kernel for products in `precision` (the caller checked the CPU
    /// has it: see [`FastNetwork::with_precision`]).
    fn set_precision(&mut self, precision: Precision) {
        self.fast = match self.fast.take() {
            Some(Kernel3x3::Winograd(kernel)) => {
                kernel.in_precision(precision).map(Kernel3x3::Winograd).or_else(|| Kernel3x3::new(&self.weight, self.cin, self.cout, precision))
            }
            other => other,
        };
    }

    /// `out[cout, h*w]` for `x[cin, h*w]`, then the epilogue. `split` blocks of output channels run
    /// on separate threads (for batch 1); 1 keeps it all on this thread.
    fn run(&self, x: &[f32], (h, w): (usize, usize), ws: &mut ConvBuffers, out: &mut Vec<f32>, epilogue: Epilogue, split: usize) {
        let hw = h * w;
        out.resize(self.cout * hw, 0.0);
        let fast = self.fast.as_ref();
        let mut rows = self.cout.div_ceil(split.clamp(1, self.cout));
        if fast.is_some() {
            // The AVX2 kernels take output channels in blocks.
            rows = rows.next_multiple_of(Kernel3x3::CHANNEL_BLOCK);
        }
        let ConvBuffers { cols, scratch } = ws;
        let patches: &[f32] = if let Some(fast) = fast {
            fast.prepare(x, (h, w), scratch, cols);
            cols
        } else if self.kernel == 1 {
            x
        } else {
            im2col_3x3(x, self.cin, h, w, cols);
            cols
        };
        let k = self.cin * self.kernel * self.kernel;
        // Output channels `first..first + block.len() / hw`: their GEMM rows, then the epilogue.
        let run_block = |(index, block): (usize, &mut [f32])| {
            let first = index * rows;
            let channels = first..first + block.len() / hw;
            if let Some(fast) = fast {
                fast.run(patches, (h, w), channels.clone(), block);
            } else {
                let weight = &self.weight[channels.start * k..channels.end * k];
                sgemm(channels.len(), k, hw, weight, row_major(k), patches, row_major(hw), 0.0, block, row_major(hw));
            }
            for (row, co) in block.chunks_mut(hw).zip(channels) {
                let bias = self.bias[co];
                match epilogue {
                    Epilogue::None => row.iter_mut().for_each(|v| *v += bias),
                    Epilogue::Relu => row.iter_mut().for_each(|v| *v = (*v + bias).max(0.0)),
                    Epilogue::AddRelu(residual) => {
                        row.iter_mut().zip(&residual[co * hw..(co + 1) * hw]).for_each(|(v, r)| *v = (*v + bias + r).max(0.0))
                    }
                }
            }
        };
        if rows == self.cout {
            out.chunks_mut(rows * hw).enumerate().for_each(run_block);
        } else {
            out.par_chunks_mut(rows * hw).enumerate().for_each(run_block);
        }
    }
}

/// 2x2 max-pool of `[c, h, w]` into `out`.
fn max_pool_2x2(x: &[f32], c: usize, h: usize, w: usize, out: &mut Vec<f32>) {
    let (oh, ow) = (h / 2, w / 2);
    out.resize(c * oh * ow, 0.0);
    for (plane, o) in x.chunks(h * w).zip(out.chunks_mut(oh * ow)) {
        for y in 0..oh {
            let (top, bottom) = (&plane[2 * y * w..][..w], &plane[(2 * y + 1) * w..][..w]);
            for xx in 0..ow {
                o[y * ow + xx] = top[2 * xx].max(top[2 * xx + 1]).max(bottom[2 * xx]).max(bottom[2 * xx + 1]);
            }
        }
    }
}

impl Dense {
    /// `out = weight · x + bias`, then ReLU if asked. One image at a time, so a dot product per
    /// output: a GEMM call would repack the 128x380 weights on every image (0.03-0.05 ms of a
    /// face's ~1.5 ms).
    fn run(&self, x: &[f32], out: &mut [f32], relu: bool) {
        for ((o, row), b) in out.iter_mut().zip(self.weight.chunks_exact(self.inputs)).zip(&self.bias) {
            let sum = dot(x, row) + b;
            *o = if relu { sum.max(0.0) } else { sum };
        }
    }
}

/// `Σ a·b` with eight partial sums (vector lanes), added pairwise at the end.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_whole, b_whole) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_whole.remainder().iter().zip(b_whole.remainder()).map(|(x, y)| x * y).sum();
    for (a, b) in a_whole.zip(b_whole) {
        for i in 0..8 {
            lanes[i] += a[i] * b[i];
        }
    }
    let [l0, l1, l2, l3, l4, l5, l6, l7] = lanes;
    ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)) + tail
}

impl FastNetwork {
    pub fn classes(&self) -> usize {
        self.fc2.outputs
    }

    /// The same network with its products in `precision`: the Winograd products for f32 and
    /// bf16, the residual stages' for int8. An error when this CPU lacks the instructions, or for
    /// int8 when the model carries no activation ranges.
    pub fn with_precision(mut self, precision: Precision) -> anyhow::Result<Self> {
        precision.check()?;
        self.int8 = None;
        if precision == Precision::Int8 {
            let Some(ranges) = &self.int8_ranges else { return Err(int8::missing_ranges()) };
            self.int8 = Some(Int8Stages::new(&self, ranges)?);
        }
        // With int8 the Winograd kernels stay f32 (unused by the int8 pass, kept for `observe`).
        let winograd_precision = if precision == Precision::Int8 { Precision::F32 } else { precision };
        let convs = std::iter::once(&mut self.stem).chain(self.stages.iter_mut().flat_map(|s| [&mut s.a, &mut s.b, &mut s.c]));
        convs.for_each(|conv| conv.set_precision(winograd_precision));
        Ok(self)
    }

    /// Runs one standardised face through the layers, calling `f(layer, stage, output)` after
    /// each (what [`crate::int8::calibrate`] measures, on the f32 layers).
    pub fn observe(&self, face: &[f32], f: &mut dyn FnMut(&str, usize, &[f32])) {
        let mut ws = Workspace { split: 1, ..Workspace::default() };
        let mut out = vec![0.0; self.classes()];
        self.forward_one(face, &mut ws, &mut out, f);
    }

    /// Logits `[n, classes]` for standardised faces `[n, 1, 48, 48]`, images spread over threads.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        assert_eq!(x.shape[1..], [1, FACE_SIZE, FACE_SIZE], "network input must be [n, 1, 48, 48]");
        let classes = self.classes();
        let mut logits = Tensor::zeros([x.batch(), classes, 1, 1]);
        let threads = rayon::current_num_threads();
        if x.batch() >= threads {
            // Enough images: one per thread.
            logits.data.par_chunks_mut(classes).zip(x.data.par_chunks(FACE_PIXELS)).for_each_init(Workspace::default, |ws, (out, face)| {
                self.forward_one(face, ws, out, &mut |_, _, _| {});
            });
        } else {
            // Fewer images than threads (batch 1: a live frame): split each layer's channels instead,
            // from inside the pool, so that each layer's blocks start on this worker and the others
            // steal them, instead of each layer being handed over from a thread outside the pool.
            // For the pass, helper tasks keep the other workers awake, taking the blocks as they
            // are queued (`yield_now`), rather than sleeping between layers of 0.1-0.3 ms and
            // being woken for each (ONNX Runtime's workers spin likewise); at most one helper
            // per channel block of the widest layer.
            let widest = self.stages.iter().map(|s| s.c.cout).chain([self.stem.cout]).max().unwrap_or(1);
            let helpers = (threads - 1).min(widest.div_ceil(Kernel3x3::CHANNEL_BLOCK) - 1);
            let mut ws = Workspace { split: threads, ..Workspace::default() };
            let done = AtomicBool::new(false);
            // Why this cannot deadlock: the helpers are the first jobs this worker queues and
            // thieves take the oldest job first, so a layer block is never stolen while a helper
            // still sits in this worker's queue, where this worker, waiting for that block, could
            // pop the helper and spin inside its own pass. A helper no worker took ends at once.
            rayon::scope(|scope| {
                for _ in 0..helpers {
                    scope.spawn(|_| {
                        while !done.load(Ordering::Acquire) {
                            if rayon::yield_now() == Some(rayon::Yield::Idle) {
                                std::hint::spin_loop();
                            }
                        }
                    });
                }
                for (out, face) in logits.data.chunks_mut(classes).zip(x.data.chunks(FACE_PIXELS)) {
                    self.forward_one(face, &mut ws, out, &mut |_, _, _| {});
                }
                done.store(true, Ordering::Release);
            });
        }
        logits
    }

    /// Batch-1 forward pass timing each layer: `(layer name, time)` in order, plus the logits.
    pub fn profile(&self, face: &[f32]) -> (Vec<f32>, Vec<(String, Duration)>) {
        let mut ws = Workspace { split: rayon::current_num_threads(), ..Workspace::default() };
        let mut out = vec![0.0; self.classes()];
        let mut times = Vec::new();
        let mut last = Instant::now();
        let stages = self.stages.len();
        self.forward_one(face, &mut ws, &mut out, &mut |name, stage, _| {
            let name = if stage < stages && name != "stem" { format!("stage {} {name}", stage + 1) } else { name.to_string() };
            times.push((name, last.elapsed()));
            last = Instant::now();
        });
        (out, times)
    }

    /// One image; `lap(layer, index, output)` is called after each layer (for profiling and
    /// calibration).
    fn forward_one(&self, face: &[f32], ws: &mut Workspace, logits: &mut [f32], lap: &mut dyn FnMut(&str, usize, &[f32])) {
        let (mut h, mut w) = (FACE_SIZE, FACE_SIZE);
        let Workspace { conv, x, a, b, shortcut, int8: int8_ws, split } = ws;
        let pooled = if let Some(int8) = &self.int8 {
            let mut pooled = Vec::new();
            int8.run(face, int8_ws, &mut pooled);
            lap("stem and residual stages (int8)", 0, &pooled);
            pooled
        } else {
            self.stem.run(face, (h, w), conv, x, Epilogue::Relu, *split);
            lap("stem", 0, x);
            for (i, stage) in self.stages.iter().enumerate() {
                // `shortcut` holds the residual: the 1x1 projection of the input, or the input itself.
                match &stage.shortcut {
                    Some(s) => {
                        s.run(x, (h, w), conv, shortcut, Epilogue::None, *split);
                        lap("shortcut 1x1", i, shortcut);
                    }
                    None => std::mem::swap(x, shortcut),
                }
                let input: &[f32] = if stage.shortcut.is_some() { x } else { shortcut };
                stage.a.run(input, (h, w), conv, a, Epilogue::Relu, *split);
                lap("conv a", i, a);
                stage.b.run(a, (h, w), conv, b, Epilogue::Relu, *split);
                lap("conv b", i, b);
                stage.c.run(b, (h, w), conv, a, Epilogue::AddRelu(shortcut), *split);
                lap("conv c + add + relu", i, a);
                max_pool_2x2(a, stage.c.cout, h, w, x);
                (h, w) = (h / 2, w / 2);
                lap("max-pool", i, x);
            }
            let plane = (h * w) as f32;
            x.chunks(h * w).take(self.fc1.inputs).map(|p| p.iter().sum::<f32>() / plane).collect()
        };
        let mut hidden = vec![0.0; self.fc1.outputs];
        self.fc1.run(&pooled, &mut hidden, true);
        self.fc2.run(&hidden, logits, false);
        lap("pool + fc1 + fc2", self.stages.len(), logits);
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Network, NetworkConfig};
    use crate::nn::Precision;
    use crate::nn::Tensor;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A network whose batch norms are far from identity: perturbed weights (γ, β included) and
    /// running statistics moved by a few training-mode passes.
    fn trained_like_network() -> Network {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut net = Network::new(NetworkConfig::paper(), 3);
        net.params.iter_mut().for_each(|p| *p += rng.random_range(-0.1..0.1));
        for _ in 0..3 {
            let x = Tensor::from_vec([8, 1, 48, 48], (0..8 * 2304).map(|_| rng.random_range(-1.5..2.5)).collect());
            net.forward_train(x, &mut rng);
        }
        net
    }

    #[test]
    fn fast_path_gives_the_frameworks_logits() {
        let net = trained_like_network();
        let fast = net.fold();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let x = Tensor::from_vec([5, 1, 48, 48], (0..5 * 2304).map(|_| rng.random_range(-2.0..2.0)).collect());
        let (reference, folded) = (net.forward(&x), fast.forward(&x));
        let scale = reference.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = reference.data.iter().zip(&folded.data).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 0.1, "logits should not be trivially small: {scale}");
        assert!(worst <= 1e-4 * scale.max(1.0), "max |logit difference| {worst} (logit scale {scale})");
        let (one, times) = fast.profile(&x.data[..2304]);
        assert_eq!(one, folded.data[..7]);
        assert_eq!(times.len(), 1 + 4 + 5 + 5 + 1, "stem, 3 stages (two with shortcuts), head: {times:?}");
    }

    #[test]
    fn bf16_fast_path_stays_near_the_frameworks_logits() {
        if !crate::nn::bf16::available() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        let net = trained_like_network();
        let fast = net.fold().with_precision(Precision::Bf16).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let x = Tensor::from_vec([5, 1, 48, 48], (0..5 * 2304).map(|_| rng.random_range(-2.0..2.0)).collect());
        let (reference, bf16) = (net.forward(&x), fast.forward(&x));
        let scale = reference.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = reference.data.iter().zip(&bf16.data).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        eprintln!("bf16: max |logit difference| {worst:.2e} (logit scale {scale:.2})");
        // Nine convolutions each rounding to 8 significant bits: per cent, not 1e-4.
        assert!(worst > 1e-6 && worst <= 3e-2 * scale.max(1.0), "max |logit difference| {worst} (logit scale {scale})");
        // One thread splitting nothing, and batch 1 split over threads, agree as f32 does.
        let on = |threads: usize| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| fast.forward(&Tensor::from_vec([1, 1, 48, 48], x.data[..2304].to_vec())));
        let (single, split) = (on(1), on(3));
        assert!(single.data.iter().zip(&split.data).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn batch_one_split_over_threads_gives_the_single_thread_logits() {
        let fast = trained_like_network().fold();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let x = Tensor::from_vec([1, 1, 48, 48], (0..2304).map(|_| rng.random_range(-2.0..2.0)).collect());
        let on = |threads: usize| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| fast.forward(&x));
        let (single, split) = (on(1), on(3));
        let worst = single.data.iter().zip(&split.data).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst < 1e-5, "max |logit difference| {worst}");
    }

    /// Single faces from several threads at once on one small pool (as `serve`'s requests
    /// arrive): each pass's helpers, which keep the pool's workers awake, never wait on one
    /// another, and every pass gives the logits it gives alone.
    #[test]
    fn concurrent_single_face_passes_all_finish_with_the_same_logits() {
        let fast = std::sync::Arc::new(trained_like_network().fold());
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let x = std::sync::Arc::new(Tensor::from_vec([1, 1, 48, 48], (0..2304).map(|_| rng.random_range(-2.0..2.0)).collect()));
        let alone = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| fast.forward(&x));
        for threads in [2, 4] {
            let pool = std::sync::Arc::new(rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap());
            let (fast, x, alone) = (fast.clone(), x.clone(), alone.data.clone());
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let passes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    std::thread::scope(|s| {
                        for _ in 0..3 * threads {
                            s.spawn(|| {
                                for _ in 0..20 {
                                    let logits = pool.install(|| fast.forward(&x));
                                    let worst = alone.iter().zip(&logits.data).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                                    assert!(worst < 1e-5, "max |logit difference| {worst}");
                                }
                            });
                        }
                    })
                }));
                tx.send(passes.is_ok()).unwrap();
            });
            let finished = rx.recv_timeout(std::time::Duration::from_secs(120)).unwrap_or_else(|_| panic!("{threads} threads: the passes did not all finish (deadlock)"));
            assert!(finished, "{threads} threads: a pass gave other logits (see the panic above)");
        }
    }
}
