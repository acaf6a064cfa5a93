//! Classification metrics from predicted probabilities: accuracy, per-class precision / recall /
//! F1, confusion matrix, one-vs-rest ROC curves with AUC (ties between scores handled exactly), and
//! calibration (whether a face given 80% confidence is right 80% of the time).

use serde::Serialize;

/// `matrix[true][predicted]` = number of faces.
pub fn confusion_matrix(labels: &[usize], predicted: &[usize], classes: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; classes]; classes];
    labels.iter().zip(predicted).for_each(|(&t, &p)| m[t][p] += 1);
    m
}

/// Index of the largest probability in each row.
pub fn argmax_rows(probs: &[f32], classes: usize) -> Vec<usize> {
    probs.chunks(classes).map(|row| (0..classes).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0)).collect()
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Faces of this class in the data.
    pub support: usize,
}

/// Precision, recall and F1 of each class from a confusion matrix (0 where undefined).
pub fn class_scores(matrix: &[Vec<usize>]) -> Vec<ClassScores> {
    let k = matrix.len();
    (0..k)
        .map(|c| {
            let tp = matrix[c][c] as f64;
            let support: usize = matrix[c].iter().sum();
            let predicted: usize = (0..k).map(|r| matrix[r][c]).sum();
            let ratio = |a: f64, b: usize| if b == 0 { 0.0 } else { a / b as f64 };
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            ClassScores { precision, recall, f1, support }
        })
        .collect()
}

/// A ROC curve: false- and true-positive rates from the highest threshold down.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RocCurve {
    pub fpr: Vec<f64>,
    pub tpr: Vec<f64>,
    /// Area under the curve; `None` when there are no positives or no negatives.
    pub auc: Option<f64>,
}

/// ROC of `scores` for the binary `positive` labels. Equal scores form one step (a diagonal
/// segment), so ties count half, as in the Mann-Whitney statistic.
pub fn roc_curve(scores: &[f32], positive: &[bool]) -> RocCurve {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let p = positive.iter().filter(|&&x| x).count() as f64;
    let n = positive.len() as f64 - p;
    let (mut tp, mut fp) = (0.0, 0.0);
    let (mut fpr, mut tpr) = (vec![0.0], vec![0.0]);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        // NaN scores (a diverged model) count as tied with each other, so every group takes at
        // least its first score and the loop moves on.
        while i < order.len() && (scores[order[i]] == s || (s.is_nan() && scores[order[i]].is_nan())) {
            if positive[order[i]] {
                tp += 1.0
            } else {
                fp += 1.0
            }
            i += 1;
        }
        fpr.push(if n > 0.0 { fp / n } else { 0.0 });
        tpr.push(if p > 0.0 { tp / p } else { 0.0 });
    }
    let auc = (p > 0.0 && n > 0.0).then(|| fpr.windows(2).zip(tpr.windows(2)).map(|(f, t)| (f[1] - f[0]) * (t[0] + t[1]) / 2.0).sum());
    RocCurve { fpr, tpr, auc }
}

impl RocCurve {
    /// At most about `max_points` points, keeping the ends (for reports and plots).
    pub fn thinned(&self, max_points: usize) -> RocCurve {
        let len = self.fpr.len();
        if len <= max_points {
            return self.clone();
        }
        let step = len.div_ceil(max_points);
        let keep: Vec<usize> = (0..len).step_by(step).chain(std::iter::once(len - 1)).collect();
        RocCurve { fpr: keep.iter().map(|&i| self.fpr[i]).collect(), tpr: keep.iter().map(|&i| self.tpr[i]).collect(), auc: self.auc }
    }
}

/// One-vs-rest ROC per class from `probs` (`n * classes`).
pub fn roc_per_class(probs: &[f32], labels: &[usize], classes: usize) -> Vec<RocCurve> {
    (0..classes)
        .map(|c| {
            let scores: Vec<f32> = probs.chunks(classes).map(|row| row[c]).collect();
            let positive: Vec<bool> = labels.iter().map(|&l| l == c).collect();
            roc_curve(&scores, &positive)
        })
        .collect()
}

/// Micro-averaged ROC: every (face, class) pair as one binary decision.
pub fn roc_micro(probs: &[f32], labels: &[usize], classes: usize) -> RocCurve {
    let positive: Vec<bool> = (0..probs.len()).map(|i| labels[i / classes] == i % classes).collect();
    roc_curve(probs, &positive)
}

/// Faces whose top-class confidence fell in `[from, to)` (the last bin includes 1).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CalibrationBin {
    pub from: f64,
    pub to: f64,
    pub faces: usize,
    /// Mean top-class confidence of those faces (`None` when there are none).
    pub mean_confidence: Option<f64>,
    /// Share of them whose top class is the true one.
    pub accuracy: Option<f64>,
}

/// Calibration of the top-class confidence: equal-width bins and the expected calibration error
/// (ECE: the faces-weighted mean of |accuracy − mean confidence| over the bins; Guo et al. 2017).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Calibration {
    pub ece: f64,
    pub bins: Vec<CalibrationBin>,
}

/// Calibration of `probs` (`n * classes`) against `labels` in `bins` equal-width bins.
pub fn calibration(probs: &[f32], labels: &[usize], classes: usize, bins: usize) -> Calibration {
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins]; // faces, confidence sum, correct
    for (row, &label) in probs.chunks(classes).zip(labels) {
        let top = argmax_rows(row, classes)[0];
        let confidence = row[top] as f64;
        let bin = ((confidence * bins as f64) as usize).min(bins - 1);
        sums[bin].0 += 1;
        sums[bin].1 += confidence;
        sums[bin].2 += usize::from(top == label);
    }
    let n = labels.len().max(1) as f64;
    let ece = sums.iter().filter(|b| b.0 > 0).map(|&(_, conf, correct)| (correct as f64 - conf).abs() / n).sum();
    let bins = sums
        .iter()
        .enumerate()
        .map(|(i, &(faces, conf, correct))| CalibrationBin {
            from: i as f64 / bins as f64,
            to: (i + 1) as f64 / bins as f64,
            faces,
            mean_confidence: (faces > 0).then(|| conf / faces as f64),
            accuracy: (faces > 0).then(|| correct as f64 / faces as f64),
        })
        .collect();
    Calibration { ece, bins }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_matrix_rows_sum_to_class_counts() {
        let labels = [0, 0, 1, 2, 2, 2];
        let predicted = [0, 1, 1, 2, 0, 2];
        let m = confusion_matrix(&labels, &predicted, 3);
        assert_eq!(m, vec![vec![1, 1, 0], vec![0, 1, 0], vec![1, 0, 2]]);
        assert_eq!(m.iter().map(|r| r.iter().sum::<usize>()).collect::<Vec<_>>(), vec![2, 1, 3]);
    }

    #[test]
    fn class_scores_match_hand_computation() {
        // class 0: tp 1, predicted 2, support 2 -> p 0.5, r 0.5; class 1: tp 1, predicted 2, support 1 -> p 0.5, r 1
        let m = vec![vec![1, 1, 0], vec![0, 1, 0], vec![1, 0, 2]];
        let s = class_scores(&m);
        assert_eq!((s[0].precision, s[0].recall, s[0].f1), (0.5, 0.5, 0.5));
        assert_eq!((s[1].precision, s[1].recall), (0.5, 1.0));
        assert!((s[1].f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((s[2].precision, s[2].recall, s[2].support), (1.0, 2.0 / 3.0, 3));
    }

    #[test]
    fn roc_of_nan_scores_ends() {
        // A diverged model's probabilities are NaN: one tied group, not an endless loop.
        let roc = roc_curve(&[f32::NAN, f32::NAN, 0.5], &[true, false, true]);
        assert_eq!(roc.fpr.len(), 3);
        assert_eq!((roc.fpr.last(), roc.tpr.last()), (Some(&1.0), Some(&1.0)));
    }

    #[test]
    fn roc_auc_counts_tied_scores_as_half() {
        // pairs (pos, neg): 0.9>0.8, 0.9>0.3, 0.8=0.8 (half), 0.8>0.3 -> 3.5 / 4
        let roc = roc_curve(&[0.9, 0.8, 0.8, 0.3], &[true, false, true, false]);
        assert_eq!(roc.auc, Some(0.875));
        assert_eq!(roc.fpr, vec![0.0, 0.0, 0.5, 1.0]);
        assert_eq!(roc.tpr, vec![0.0, 0.5, 1.0, 1.0]);
    }

    #[test]
    fn roc_auc_is_one_for_perfect_and_half_for_constant_scores() {
        assert_eq!(roc_curve(&[0.9, 0.1], &[true, false]).auc, Some(1.0));
        assert_eq!(roc_curve(&[0.5, 0.5, 0.5], &[true, false, false]).auc, Some(0.5));
        assert_eq!(roc_curve(&[0.5, 0.4], &[true, true]).auc, None);
    }

    #[test]
    fn calibration_bins_confidence_and_weighs_the_gaps_by_faces() {
        // Three faces at 0.95 confidence (two right) and one at 0.55 (wrong), two classes.
        let probs = [0.95, 0.05, 0.95, 0.05, 0.05, 0.95, 0.55, 0.45];
        let labels = [0, 0, 0, 1];
        let c = calibration(&probs, &labels, 2, 10);
        let (high, mid) = (&c.bins[9], &c.bins[5]);
        assert_eq!((high.faces, mid.faces, c.bins[0].faces), (3, 1, 0));
        assert!((high.mean_confidence.unwrap() - 0.95).abs() < 1e-6 && (high.accuracy.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((mid.accuracy, c.bins[0].accuracy), (Some(0.0), None));
        // ECE = 3/4 · |2/3 − 0.95| + 1/4 · |0 − 0.55|
        assert!((c.ece - (0.75 * (0.95 - 2.0 / 3.0) + 0.25 * 0.55)).abs() < 1e-6, "{}", c.ece);
        // A confidence of exactly 1 falls in the last bin, and right answers at 1.0 are perfectly calibrated.
        let perfect = calibration(&[1.0, 0.0], &[0], 2, 10);
        assert_eq!((perfect.bins[9].faces, perfect.ece), (1, 0.0));
    }

    #[test]
    fn thinning_keeps_both_ends() {
        let scores: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let positive: Vec<bool> = (0..1000).map(|i| i % 3 == 0).collect();
        let roc = roc_curve(&scores, &positive).thinned(50);
        assert!(roc.fpr.len() <= 52);
        assert_eq!((roc.fpr[0], *roc.fpr.last().unwrap()), (0.0, 1.0));
    }
}
