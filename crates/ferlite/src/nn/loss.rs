//! Softmax cross-entropy with label smoothing and optional class weights.

/// Softmax of each row of `logits` (`[n, classes]` row-major).
pub fn softmax_rows(logits: &[f32], classes: usize) -> Vec<f32> {
    let mut probs = logits.to_vec();
    for row in probs.chunks_mut(classes) {
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        row.iter_mut().for_each(|v| {
            *v = (*v - max).exp();
            sum += *v;
        });
        row.iter_mut().for_each(|v| *v /= sum);
    }
    probs
}

/// The loss on a batch and its gradient with respect to the logits.
pub struct LossOutput {
    pub loss: f32,
    pub grad: Vec<f32>,
    pub probs: Vec<f32>,
}

/// A teacher's probabilities for each sample of a batch (`[n, classes]`, knowledge distillation)
/// and their share of each target.
#[derive(Clone, Copy)]
pub struct SoftTargets<'a> {
    pub probs: &'a [f32],
    pub weight: f32,
}

/// Mean cross-entropy between `softmax(logits)` and targets smoothed by `smoothing`
/// (`(1 - s)` on the label, `s / classes` spread over all classes), mixed with a teacher's
/// probabilities when `soft` is given (`(1 - weight)` smoothed label + `weight` teacher). With
/// `class_weights`, each sample counts by its label's weight and the mean divides by the total
/// weight, as PyTorch does.
pub fn cross_entropy(logits: &[f32], labels: &[usize], classes: usize, smoothing: f32, class_weights: Option<&[f32]>, soft: Option<SoftTargets>) -> LossOutput {
    let probs = softmax_rows(logits, classes);
    let weight_of = |label: usize| class_weights.map_or(1.0, |w| w[label]);
    let total_weight: f32 = labels.iter().map(|&l| weight_of(l)).sum();
    let mut grad = vec![0.0; probs.len()];
    let mut loss = 0.0f64;
    for (i, ((p, g), &label)) in probs.chunks(classes).zip(grad.chunks_mut(classes)).zip(labels).enumerate() {
        let w = weight_of(label) / total_weight;
        for k in 0..classes {
            let hard = smoothing / classes as f32 + if k == label { 1.0 - smoothing } else { 0.0 };
            let target = match soft {
                Some(s) => (1.0 - s.weight) * hard + s.weight * s.probs[i * classes + k],
                None => hard,
            };
            // clamp, not max: a NaN probability (a diverged network) must give a NaN loss, which
            // the trainer stops on, not the finite ln(1e-12) that max would make of it.
            loss -= (w * target * p[k].clamp(1e-12, 1.0).ln()) as f64;
            g[k] = w * (p[k] - target);
        }
    }
    LossOutput { loss: loss as f32, grad, probs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_give_log_classes_loss() {
        let out = cross_entropy(&[0.0; 7], &[3], 7, 0.0, None, None);
        assert!((out.loss - 7f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn a_full_weight_teacher_replaces_the_label() {
        // The loss is minimal (its gradient zero) where the softmax equals the teacher's probabilities.
        let teacher = [0.2f32, 0.3, 0.5];
        let logits: Vec<f32> = teacher.iter().map(|p| p.ln()).collect();
        let out = cross_entropy(&logits, &[0], 3, 0.1, None, Some(SoftTargets { probs: &teacher, weight: 1.0 }));
        assert!(out.grad.iter().all(|g| g.abs() < 1e-6), "{:?}", out.grad);
        let half = cross_entropy(&logits, &[0], 3, 0.0, None, Some(SoftTargets { probs: &teacher, weight: 0.5 }));
        assert!((half.grad[0] - (0.2 - 0.6)).abs() < 1e-6, "target 0.6 on the label: {:?}", half.grad);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let logits = [0.3, -1.2, 2.0, 0.1];
        let labels = [2usize];
        let weights = [1.0, 2.0, 0.5, 1.0];
        let teacher = [0.1, 0.2, 0.6, 0.1];
        for soft in [None, Some(SoftTargets { probs: &teacher, weight: 0.5 })] {
            let out = cross_entropy(&logits, &labels, 4, 0.1, Some(&weights), soft);
            for k in 0..4 {
                let mut plus = logits;
                plus[k] += 1e-3;
                let mut minus = logits;
                minus[k] -= 1e-3;
                let numeric = (cross_entropy(&plus, &labels, 4, 0.1, Some(&weights), soft).loss
                    - cross_entropy(&minus, &labels, 4, 0.1, Some(&weights), soft).loss)
                    / 2e-3;
                assert!((numeric - out.grad[k]).abs() < 1e-3, "class {k}: {numeric} vs {}", out.grad[k]);
            }
        }
    }
}
