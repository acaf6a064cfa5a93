//! The network: the paper's lightweight residual CNN, defined once and used by training,
//! evaluation, prediction and export.
//!
//! ```text
//! input [n, 1, 48, 48]
//! stem    conv3x3(1->32) BN ReLU                                  out: [n, 32, 48, 48]
//! stage1  residual(32->32)  maxpool dropout                       out: [n, 32, 24, 24]
//! stage2  residual(32->64)  maxpool dropout                       out: [n, 64, 12, 12]
//! stage3  residual(64->128) maxpool dropout                       out: [n, 128, 6, 6]
//! head    global-avg-pool, linear(128->380) ReLU dropout(0.5), linear(380->7)   out: [n, 7]
//! residual(cin->c): [conv3x3 BN ReLU] x2, conv3x3 BN, + shortcut (identity or conv1x1 BN), ReLU
//! ```

use crate::emotion::{FACE_SIZE, NUM_CLASSES};
use crate::infer::{Dense, FastNetwork, FoldedConv, FoldedStage};
use crate::nn::conv::{Conv2d, ConvAlgorithm};
use crate::nn::layers::{self, Linear};
use crate::nn::norm::{BatchNorm2d, BatchNormTape};
use crate::nn::params::Layout;
use crate::nn::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Width, depth and regularisation of the network; saved beside the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub stem_channels: usize,
    /// Output channels of each residual stage; each stage halves the resolution.
    pub stage_channels: Vec<usize>,
    pub hidden_units: usize,
    pub classes: usize,
    /// Dropout after each stage's pooling.
    pub stage_dropout: f32,
    /// Dropout before the last linear layer.
    pub head_dropout: f32,
}

/// Widest layer (channels or hidden units) a config may ask for: 8x the paper's widest, and
/// what bounds the memory a weights file's header can make `load` allocate before its tensors
/// are checked.
pub const MAX_WIDTH: usize = 1024;
/// Each stage halves the 48 px input (48, 24, 12, 6, 3, 1): a sixth would leave no pixel.
pub const MAX_STAGES: usize = 5;

impl NetworkConfig {
    /// The paper's preset: 552,455 trainable parameters.
    pub fn paper() -> Self {
        NetworkConfig { stem_channels: 32, stage_channels: vec![32, 64, 128], hidden_units: 380, classes: NUM_CLASSES, stage_dropout: 0.1, head_dropout: 0.5 }
    }

    /// Why this config cannot be a network, if it cannot. Configs come from files (a weights
    /// file's metadata, `train --config`), so this runs before anything is allocated for one.
    pub fn check(&self) -> Result<(), String> {
        let widths = std::iter::once(("stem_channels", self.stem_channels)).chain(self.stage_channels.iter().map(|&c| ("stage_channels", c)));
        for (name, width) in widths.chain([("hidden_units", self.hidden_units)]) {
            if !(1..=MAX_WIDTH).contains(&width) {
                return Err(format!("{name} {width} is outside 1..={MAX_WIDTH}"));
            }
        }
        if !(1..=MAX_STAGES).contains(&self.stage_channels.len()) {
            return Err(format!("{} stages, expected 1 to {MAX_STAGES} (each halves the {FACE_SIZE} px input)", self.stage_channels.len()));
        }
        if self.classes != NUM_CLASSES {
            return Err(format!("{} classes, expected the {NUM_CLASSES} emotions", self.classes));
        }
        for (name, p) in [("stage_dropout", self.stage_dropout), ("head_dropout", self.head_dropout)] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} {p} is outside 0 to 1 (1 excluded)"));
            }
        }
        Ok(())
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self::paper()
    }
}

/// conv (no bias) followed by batch norm.
#[derive(Clone, Debug)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm2d,
}

struct ConvBnTape {
    input: Tensor,
    bn: BatchNormTape,
}

impl ConvBn {
    fn new(params: &mut Layout, buffers: &mut Layout, name: &str, cin: usize, cout: usize, kernel: usize) -> Self {
        ConvBn { conv: Conv2d::new(params, &format!("{name}.conv"), cin, cout, kernel), bn: BatchNorm2d::new(params, buffers, &format!("{name}.bn"), cout) }
    }

    fn forward_eval(&self, net: &Network, x: &Tensor) -> Tensor {
        let mut y = self.conv.forward(&net.params, x);
        self.bn.forward_eval(&net.params, &net.buffers, &mut y);
        y
    }

    /// The convolution with this batch norm's inference-time affine map folded into it.
    fn fold(&self, net: &Network) -> FoldedConv {
        let (scale, shift) = self.bn.folded(&net.params, &net.buffers);
        let weight = self.conv.weight.of(&net.params);
        let patch = weight.len() / self.conv.cout;
        let weight = weight.chunks(patch).zip(&scale).flat_map(|(row, s)| row.iter().map(move |w| w * s)).collect();
        FoldedConv::new(self.conv.cin, self.conv.cout, self.conv.kernel, weight, shift)
    }

    fn forward_train(&self, params: &[f32], buffers: &mut [f32], x: Tensor) -> (Tensor, ConvBnTape) {
        let mut y = self.conv.forward(params, &x);
        let bn = self.bn.forward_train(params, buffers, &mut y);
        (y, ConvBnTape { input: x, bn })
    }

    fn backward(&self, params: &[f32], tape: &ConvBnTape, mut dy: Tensor, grads: &mut [f32], need_input_grad: bool) -> Option<Tensor> {
        self.bn.backward(params, &tape.bn, &mut dy, grads);
        self.conv.backward(params, &tape.input, &dy, grads, need_input_grad)
    }
}

#[derive(Clone, Debug)]
struct ResidualStage {
    a: ConvBn,
    b: ConvBn,
    c: ConvBn,
    shortcut: Option<ConvBn>,
}

struct StageTape {
    a: ConvBnTape,
    b: ConvBnTape,
    c: ConvBnTape,
    shortcut: Option<ConvBnTape>,
    /// ReLU(main + shortcut), before pooling.
    sum_relu: Tensor,
    argmax: Vec<u8>,
    dropout_mask: Option<Vec<f32>>,
}

impl ResidualStage {
    fn new(params: &mut Layout, buffers: &mut Layout, name: &str, cin: usize, c: usize) -> Self {
        ResidualStage {
            a: ConvBn::new(params, buffers, &format!("{name}.a"), cin, c, 3),
            b: ConvBn::new(params, buffers, &format!("{name}.b"), c, c, 3),
            c: ConvBn::new(params, buffers, &format!("{name}.c"), c, c, 3),
            shortcut: (cin != c).then(|| ConvBn::new(params, buffers, &format!("{name}.shortcut"), cin, c, 1)),
        }
    }

    fn convs(&self) -> impl Iterator<Item = (&'static str, &ConvBn)> {
        [("a", &self.a), ("b", &self.b), ("c", &self.c)].into_iter().chain(self.shortcut.as_ref().map(|s| ("shortcut", s)))
    }

    fn forward_eval(&self, net: &Network, x: &Tensor) -> Tensor {
        let shortcut = match &self.shortcut {
            Some(s) => s.forward_eval(net, x),
            None => x.clone(),
        };
        let mut y = self.a.forward_eval(net, x);
        layers::relu_in_place(&mut y);
        let mut y = self.b.forward_eval(net, &y);
        layers::relu_in_place(&mut y);
        let mut y = self.c.forward_eval(net, &y);
        y.add_assign(&shortcut);
        layers::relu_in_place(&mut y);
        layers::max_pool_2x2(&y).0
    }

    fn forward_train(&self, params: &[f32], buffers: &mut [f32], x: Tensor, dropout: f32, rng: &mut impl Rng) -> (Tensor, StageTape) {
        let (shortcut, shortcut_tape) = match &self.shortcut {
            Some(s) => {
                let (y, t) = s.forward_train(params, buffers, x.clone());
                (y, Some(t))
            }
            None => (x.clone(), None),
        };
        let (mut y, a) = self.a.forward_train(params, buffers, x);
        layers::relu_in_place(&mut y);
        let (mut y, b) = self.b.forward_train(params, buffers, y);
        layers::relu_in_place(&mut y);
        let (mut y, c) = self.c.forward_train(params, buffers, y);
        y.add_assign(&shortcut);
        layers::relu_in_place(&mut y);
        let (mut pooled, argmax) = layers::max_pool_2x2(&y);
        let dropout_mask = (dropout > 0.0).then(|| layers::dropout_in_place(&mut pooled, dropout, rng));
        (pooled, StageTape { a, b, c, shortcut: shortcut_tape, sum_relu: y, argmax, dropout_mask })
    }

    fn backward(&self, params: &[f32], tape: &StageTape, mut dy: Tensor, grads: &mut [f32]) -> Tensor {
        if let Some(mask) = &tape.dropout_mask {
            layers::dropout_backward(mask, &mut dy);
        }
        let mut d_sum = layers::max_pool_2x2_backward(tape.sum_relu.shape, &tape.argmax, &dy);
        layers::relu_backward(&tape.sum_relu, &mut d_sum);
        let d_shortcut = match (&self.shortcut, &tape.shortcut) {
            (Some(s), Some(t)) => s.backward(params, t, d_sum.clone(), grads, true).expect("input grad requested"),
            _ => d_sum.clone(),
        };
        // Each ConvBn's saved input is the ReLU output of the one before it: its mask.
        let mut d = self.c.backward(params, &tape.c, d_sum, grads, true).expect("input grad requested");
        layers::relu_backward(&tape.c.input, &mut d);
        let mut d = self.b.backward(params, &tape.b, d, grads, true).expect("input grad requested");
        layers::relu_backward(&tape.b.input, &mut d);
        let mut dx = self.a.backward(params, &tape.a, d, grads, true).expect("input grad requested");
        dx.add_assign(&d_shortcut);
        dx
    }
}

/// Everything the backward pass needs from one training forward pass.
pub struct Tape {
    stem: ConvBnTape,
    stages: Vec<StageTape>,
    /// Stem output after ReLU (the first stage's input).
    stem_relu: Tensor,
    pooled_shape: [usize; 4],
    pooled: Tensor,
    hidden: Tensor,
    head_mask: Option<Vec<f32>>,
}

/// The network with its parameters (trainable) and buffers (batch-norm running statistics).
#[derive(Clone, Debug)]
pub struct Network {
    pub config: NetworkConfig,
    pub param_layout: Layout,
    pub buffer_layout: Layout,
    pub params: Vec<f32>,
    pub buffers: Vec<f32>,
    /// Calibrated activation ranges for `--precision int8` (`ferlite calibrate`), saved in the
    /// model file; `None` until calibrated, and cleared when the weights change.
    pub int8_ranges: Option<Vec<f32>>,
    stem: ConvBn,
    stages: Vec<ResidualStage>,
    fc1: Linear,
    fc2: Linear,
}

impl Network {
    /// A freshly initialised network (He-normal convolutions), reproducible from `seed`.
    pub fn new(config: NetworkConfig, seed: u64) -> Self {
        let mut net = Self::uninitialized(config);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        net.params = net.param_layout.initial_values(&mut rng);
        net.buffers = net.buffer_layout.initial_values(&mut rng);
        net
    }

    /// The structure with zeroed values, ready to have weights loaded into it.
    pub fn uninitialized(config: NetworkConfig) -> Self {
        let mut p = Layout::default();
        let mut b = Layout::default();
        let stem = ConvBn::new(&mut p, &mut b, "stem", 1, config.stem_channels, 3);
        let mut stages = Vec::new();
        let mut cin = config.stem_channels;
        for (i, &c) in config.stage_channels.iter().enumerate() {
            stages.push(ResidualStage::new(&mut p, &mut b, &format!("stage{}", i + 1), cin, c));
            cin = c;
        }
        let fc1 = Linear::new(&mut p, "head.fc1", cin, config.hidden_units);
        let fc2 = Linear::new(&mut p, "head.fc2", config.hidden_units, config.classes);
        let (params, buffers) = (vec![0.0; p.len()], vec![0.0; b.len()]);
        Network { config, param_layout: p, buffer_layout: b, params, buffers, int8_ranges: None, stem, stages, fc1, fc2 }
    }

    /// How the 3x3 convolutions of [`forward`](Self::forward), [`forward_train`](Self::forward_train)
    /// and [`backward`](Self::backward) are computed (a new network uses the `Im2col` reference).
    pub fn set_conv_algorithm(&mut self, algorithm: ConvAlgorithm) {
        let stage_convs = self.stages.iter_mut().flat_map(|s| [Some(&mut s.a), Some(&mut s.b), Some(&mut s.c), s.shortcut.as_mut()]);
        for conv_bn in std::iter::once(&mut self.stem).chain(stage_convs.flatten()) {
            conv_bn.conv.algorithm = algorithm;
        }
    }

    /// Trainable parameters (batch-norm gamma and beta count; running statistics do not).
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// Logits `[n, classes]` in inference mode (running statistics, no dropout).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.check_input(x);
        let mut y = self.stem.forward_eval(self, x);
        layers::relu_in_place(&mut y);
        for stage in &self.stages {
            y = stage.forward_eval(self, &y);
        }
        let pooled = layers::global_avg_pool(&y);
        let mut hidden = self.fc1.forward(&self.params, &pooled);
        layers::relu_in_place(&mut hidden);
        self.fc2.forward(&self.params, &hidden)
    }

    /// The inference fast path for these weights (batch norms folded, layers fused): see [`crate::infer`].
    pub fn fold(&self) -> FastNetwork {
        let dense = |l: &Linear| Dense { inputs: l.inputs, outputs: l.outputs, weight: l.weight.of(&self.params).to_vec(), bias: l.bias.of(&self.params).to_vec() };
        FastNetwork {
            stem: self.stem.fold(self),
            stages: self
                .stages
                .iter()
                .map(|s| FoldedStage { a: s.a.fold(self), b: s.b.fold(self), c: s.c.fold(self), shortcut: s.shortcut.as_ref().map(|c| c.fold(self)) })
                .collect(),
            fc1: dense(&self.fc1),
            fc2: dense(&self.fc2),
            int8_ranges: self.int8_ranges.clone(),
            int8: None,
        }
    }

    /// Logits in training mode: batch statistics (updating the running ones), dropout drawn from
    /// `rng`; returns the tape for [`Network::backward`].
    pub fn forward_train(&mut self, x: Tensor, rng: &mut impl Rng) -> (Tensor, Tape) {
        self.check_input(&x);
        let (params, buffers) = (&self.params, &mut self.buffers);
        let (mut y, stem) = self.stem.forward_train(params, buffers, x);
        layers::relu_in_place(&mut y);
        let stem_relu = y.clone();
        let mut stage_tapes = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            let (out, tape) = stage.forward_train(params, buffers, y, self.config.stage_dropout, rng);
            stage_tapes.push(tape);
            y = out;
        }
        let pooled_shape = y.shape;
        let pooled = layers::global_avg_pool(&y);
        let mut hidden = self.fc1.forward(params, &pooled);
        layers::relu_in_place(&mut hidden);
        let head_mask = (self.config.head_dropout > 0.0).then(|| layers::dropout_in_place(&mut hidden, self.config.head_dropout, rng));
        let logits = self.fc2.forward(params, &hidden);
        (logits, Tape { stem, stages: stage_tapes, stem_relu, pooled_shape, pooled, hidden, head_mask })
    }

    /// Adds the gradient of the loss into `grads` (same layout as `params`), given `d loss / d logits`.
    pub fn backward(&self, tape: &Tape, d_logits: Tensor, grads: &mut [f32]) {
        assert_eq!(grads.len(), self.params.len());
        let params = &self.params;
        let mut d_hidden = self.fc2.backward(params, &tape.hidden, &d_logits, grads);
        if let Some(mask) = &tape.head_mask {
            layers::dropout_backward(mask, &mut d_hidden);
        }
        // `hidden` was saved after dropout; zeros there also mark where the ReLU was off or dropped.
        layers::relu_backward(&tape.hidden, &mut d_hidden);
        let d_pooled = self.fc1.backward(params, &tape.pooled, &d_hidden, grads);
        let mut d = layers::global_avg_pool_backward(tape.pooled_shape, &d_pooled);
        for (stage, stage_tape) in self.stages.iter().zip(&tape.stages).rev() {
            d = stage.backward(params, stage_tape, d, grads);
        }
        layers::relu_backward(&tape.stem_relu, &mut d);
        self.stem.backward(params, &tape.stem, d, grads, false);
    }

    fn check_input(&self, x: &Tensor) {
        assert_eq!(x.shape[1..], [1, FACE_SIZE, FACE_SIZE], "network input must be [n, 1, {FACE_SIZE}, {FACE_SIZE}]");
    }

    /// One row per layer: output shape, trainable parameters and multiply-adds per image.
    pub fn summary(&self) -> Vec<LayerSummary> {
        let mut rows = Vec::new();
        let mut size = FACE_SIZE;
        let conv_row = |name: String, cb: &ConvBn, size: usize| LayerSummary {
            name,
            output: vec![cb.conv.cout, size, size],
            params: cb.conv.weight.len + 2 * cb.bn.channels,
            mult_adds: cb.conv.mult_adds(size, size),
        };
        rows.push(conv_row("stem conv3x3+BN+ReLU".into(), &self.stem, size));
        for (i, stage) in self.stages.iter().enumerate() {
            for (part, cb) in stage.convs() {
                let kind = if cb.conv.kernel == 1 { "conv1x1+BN" } else { "conv3x3+BN" };
                rows.push(conv_row(format!("stage{} {part} {kind}", i + 1), cb, size));
            }
            size /= 2;
            let c = stage.a.conv.cout;
            rows.push(LayerSummary { name: format!("stage{} add+ReLU, maxpool, dropout", i + 1), output: vec![c, size, size], params: 0, mult_adds: 0 });
        }
        for (name, fc) in [("head fc1+ReLU+dropout (after global avg pool)", &self.fc1), ("head fc2 (logits)", &self.fc2)] {
            rows.push(LayerSummary { name: name.into(), output: vec![fc.outputs], params: fc.weight.len + fc.bias.len, mult_adds: fc.inputs * fc.outputs });
        }
        rows
    }
}

/// A row of `ferlite summary`.
#[derive(Clone, Debug, Serialize)]
pub struct LayerSummary {
    pub name: String,
    /// Per-image output shape (channels, height, width) or (features).
    pub output: Vec<usize>,
    pub params: usize,
    pub mult_adds: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::loss::cross_entropy;

    #[test]
    fn paper_preset_has_552455_trainable_parameters() {
        let net = Network::new(NetworkConfig::paper(), 0);
        assert_eq!(net.num_params(), 552_455);
        assert_eq!(net.summary().iter().map(|r| r.params).sum::<usize>(), 552_455);
    }

    #[test]
    fn forward_maps_a_batch_to_seven_logits() {
        let net = Network::new(NetworkConfig::paper(), 0);
        let out = net.forward(&Tensor::zeros([3, 1, 48, 48]));
        assert_eq!(out.shape, [3, 7, 1, 1]);
        assert!(out.data.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn config_check_refuses_what_cannot_be_a_network() {
        let paper = NetworkConfig::paper();
        assert_eq!(paper.check(), Ok(()));
        assert_eq!(NetworkConfig { stage_channels: vec![MAX_WIDTH; MAX_STAGES], hidden_units: MAX_WIDTH, ..paper.clone() }.check(), Ok(()));
        let refused = [
            (NetworkConfig { stem_channels: 1 << 40, ..paper.clone() }, "stem_channels"),
            (NetworkConfig { stem_channels: 0, ..paper.clone() }, "stem_channels"),
            (NetworkConfig { stage_channels: vec![32, MAX_WIDTH + 1], ..paper.clone() }, "stage_channels"),
            (NetworkConfig { stage_channels: vec![], ..paper.clone() }, "0 stages"),
            (NetworkConfig { stage_channels: vec![8; MAX_STAGES + 1], ..paper.clone() }, "6 stages"),
            (NetworkConfig { hidden_units: usize::MAX, ..paper.clone() }, "hidden_units"),
            (NetworkConfig { classes: 3, ..paper.clone() }, "3 classes"),
            (NetworkConfig { stage_dropout: 1.0, ..paper.clone() }, "stage_dropout"),
            (NetworkConfig { head_dropout: f32::NAN, ..paper.clone() }, "head_dropout"),
        ];
        for (config, named) in refused {
            let problem = config.check().expect_err(named);
            assert!(problem.contains(named), "`{problem}` does not name {named}");
        }
    }

    /// Checks every parameter group's analytic gradient against central differences on a small
    /// network (dropout off so the loss is a deterministic function of the parameters).
    #[test]
    fn backward_matches_finite_differences() {
        let config = NetworkConfig { stem_channels: 4, stage_channels: vec![4, 6, 8], hidden_units: 5, classes: 7, stage_dropout: 0.0, head_dropout: 0.0 };
        let mut net = Network::new(config, 7);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x = Tensor::from_vec([3, 1, 48, 48], (0..3 * 2304).map(|_| rng.random_range(-1.0..1.0)).collect());
        let labels = [0usize, 3, 6];
        let loss_of = |net: &mut Network| {
            let buffers = net.buffers.clone();
            let (logits, _) = net.forward_train(x.clone(), &mut ChaCha8Rng::seed_from_u64(0));
            net.buffers = buffers;
            cross_entropy(&logits.data, &labels, 7, 0.1, None, None).loss as f64
        };
        let (logits, tape) = net.forward_train(x.clone(), &mut ChaCha8Rng::seed_from_u64(0));
        let out = cross_entropy(&logits.data, &labels, 7, 0.1, None, None);
        let mut grads = vec![0.0; net.num_params()];
        net.backward(&tape, Tensor::from_vec(logits.shape, out.grad), &mut grads);

        // Directional derivative along the gradient: (L(p + h·g/|g|) - L(p - h·g/|g|)) / 2h = |g|.
        let norm = grads.iter().map(|g| (*g as f64).powi(2)).sum::<f64>().sqrt();
        let original = net.params.clone();
        let h = 1e-2;
        let shifted = |sign: f64| original.iter().zip(&grads).map(|(p, g)| p + (sign * h * *g as f64 / norm) as f32).collect::<Vec<_>>();
        net.params = shifted(1.0);
        let plus = loss_of(&mut net);
        net.params = shifted(-1.0);
        let minus = loss_of(&mut net);
        net.params = original;
        let directional = (plus - minus) / (2.0 * h);
        assert!((directional - norm).abs() < 0.02 * norm, "directional derivative {directional:.6} vs |grad| {norm:.6}");

        // Entry by entry, a few entries of every tensor; ReLU and max-pool kinks make single entries
        // noisy in the first layers, so the entries must agree as a whole (cosine) and the deep ones closely.
        let (mut numeric_all, mut analytic_all) = (Vec::new(), Vec::new());
        for spec in net.param_layout.specs.clone() {
            for j in [0, spec.slot.len / 2, spec.slot.len - 1] {
                let i = spec.slot.offset + j;
                let orig = net.params[i];
                net.params[i] = orig + h as f32;
                let plus = loss_of(&mut net);
                net.params[i] = orig - h as f32;
                let minus = loss_of(&mut net);
                net.params[i] = orig;
                let numeric = (plus - minus) / (2.0 * h);
                let analytic = grads[i] as f64;
                if ["stage3.c.", "stage3.shortcut.", "head."].iter().any(|p| spec.name.starts_with(p)) {
                    let tol = 1e-4 + 2e-2 * numeric.abs();
                    assert!((numeric - analytic).abs() < tol, "{}[{j}]: numeric {numeric:.6} vs analytic {analytic:.6}", spec.name);
                }
                numeric_all.push(numeric);
                analytic_all.push(analytic);
            }
        }
        let dot: f64 = numeric_all.iter().zip(&analytic_all).map(|(a, b)| a * b).sum();
        let norm_of = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let cosine = dot / (norm_of(&numeric_all) * norm_of(&analytic_all));
        assert!(cosine > 0.99, "numeric and analytic gradients disagree: cosine {cosine:.4}");
    }

    #[test]
    fn winograd_training_step_matches_im2col() {
        if !crate::nn::direct_conv::available() {
            eprintln!("skipped: this CPU lacks AVX2/FMA, so Winograd falls back to im2col");
            return;
        }
        let mut net = Network::new(NetworkConfig { stage_dropout: 0.0, head_dropout: 0.0, ..NetworkConfig::paper() }, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let x = Tensor::from_vec([4, 1, 48, 48], (0..4 * 2304).map(|_| rng.random_range(-1.0..1.0)).collect());
        let mut step = |algorithm| {
            net.set_conv_algorithm(algorithm);
            let buffers = net.buffers.clone();
            let (logits, tape) = net.forward_train(x.clone(), &mut ChaCha8Rng::seed_from_u64(0));
            net.buffers = buffers;
            let out = cross_entropy(&logits.data, &[0, 2, 4, 6], 7, 0.1, None, None);
            let mut grads = vec![0.0; net.num_params()];
            net.backward(&tape, Tensor::from_vec(logits.shape, out.grad), &mut grads);
            (logits.data, grads)
        };
        let (logits, grads) = step(ConvAlgorithm::Im2col);
        let worst = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max) / a.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
        let mut all_grads = vec![];
        for algorithm in [ConvAlgorithm::Winograd, ConvAlgorithm::WinogradFull] {
            let (winograd_logits, winograd_grads) = step(algorithm);
            assert!(worst(&logits, &winograd_logits) < 1e-4, "{algorithm:?}: logits differ by {} of their range", worst(&logits, &winograd_logits));
            assert!(worst(&grads, &winograd_grads) < 1e-3, "{algorithm:?}: gradients differ by {} of their range", worst(&grads, &winograd_grads));
            assert_ne!(grads, winograd_grads, "{algorithm:?}: both steps ran the same kernel: Winograd was not used");
            all_grads.push(winograd_grads);
        }
        assert_ne!(all_grads[0], all_grads[1], "WinogradFull computed Winograd's weight gradients");
    }
}
