//! Evaluation: run a model over labelled faces and report accuracy, per-class scores, the
//! confusion matrix, ROC/AUC and calibration as `report.json`, `confusion_matrix.png`,
//! `roc_curves.png` and `calibration.png`.

pub mod metrics;
pub mod plots;

use crate::data::FaceSet;
use crate::emotion::{EMOTIONS, NUM_CLASSES};
use crate::predict::{Predictor, Tta};
use anyhow::{Context, Result};
use metrics::{argmax_rows, calibration, class_scores, confusion_matrix, roc_micro, roc_per_class, Calibration, ClassScores, RocCurve};
use serde_json::{json, Map, Value};
use std::path::Path;

/// Everything measured on one data set.
pub struct Evaluation {
    pub n_images: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassScores>,
    pub confusion: Vec<Vec<usize>>,
    pub roc: Vec<RocCurve>,
    pub roc_micro: RocCurve,
    /// Mean of the per-class AUCs that are defined.
    pub auc_macro: Option<f64>,
    /// Mean cross-entropy of the true class (no smoothing).
    pub loss: f64,
    /// Top-class confidence against accuracy, in [`CALIBRATION_BINS`] bins.
    pub calibration: Calibration,
}

/// Equal-width confidence bins of the calibration report (the usual 10 of the ECE literature).
pub const CALIBRATION_BINS: usize = 10;

impl Evaluation {
    /// Scores probabilities (`n * 7`) against labels.
    pub fn from_probabilities(probs: &[f32], labels: &[usize]) -> Self {
        let predicted = argmax_rows(probs, NUM_CLASSES);
        let confusion = confusion_matrix(labels, &predicted, NUM_CLASSES);
        let per_class = class_scores(&confusion);
        let n = labels.len();
        let correct = labels.iter().zip(&predicted).filter(|(a, b)| a == b).count();
        let roc = roc_per_class(probs, labels, NUM_CLASSES);
        let aucs: Vec<f64> = roc.iter().filter_map(|r| r.auc).collect();
        let loss = labels.iter().enumerate().map(|(i, &l)| -(probs[i * NUM_CLASSES + l].max(1e-12) as f64).ln()).sum::<f64>() / n.max(1) as f64;
        Evaluation {
            n_images: n,
            accuracy: correct as f64 / n.max(1) as f64,
            macro_f1: per_class.iter().map(|c| c.f1).sum::<f64>() / NUM_CLASSES as f64,
            per_class,
            confusion,
            roc_micro: roc_micro(probs, labels, NUM_CLASSES),
            auc_macro: (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64),
            roc,
            loss,
            calibration: calibration(probs, labels, NUM_CLASSES, CALIBRATION_BINS),
        }
    }

    pub fn run(predictor: &Predictor, set: &FaceSet, tta: Tta) -> Self {
        let probs = predictor.probabilities(&set.pixels, tta);
        let labels: Vec<usize> = set.labels.iter().map(|&l| l as usize).collect();
        Self::from_probabilities(&probs, &labels)
    }

    /// The machine-readable report. `context` (model, data, options) is merged in at the top level.
    pub fn to_json(&self, context: Value) -> Value {
        let mut per_class = Map::new();
        let mut auc_per_class = Map::new();
        for (i, name) in EMOTIONS.iter().enumerate() {
            let mut scores = serde_json::to_value(&self.per_class[i]).expect("serialisable");
            scores["auc"] = json!(self.roc[i].auc);
            per_class.insert(name.to_string(), scores);
            auc_per_class.insert(name.to_string(), json!(self.roc[i].auc));
        }
        let normalized: Vec<Vec<f64>> = self
            .confusion
            .iter()
            .map(|row| {
                let total = row.iter().sum::<usize>().max(1) as f64;
                row.iter().map(|&c| c as f64 / total).collect()
            })
            .collect();
        let curves: Map<String, Value> = EMOTIONS.iter().zip(&self.roc).map(|(n, r)| (n.to_string(), roc_json(r))).collect();
        let mut report = json!({
            "accuracy": self.accuracy,
            "n_images": self.n_images,
            "macro_f1": self.macro_f1,
            "loss": self.loss,
            "classes": EMOTIONS,
            "per_class": per_class,
            "confusion_matrix": { "rows": "true class", "columns": "predicted class", "counts": self.confusion, "normalized": normalized },
            "auc": { "per_class": auc_per_class, "micro": self.roc_micro.auc, "macro": self.auc_macro },
            "roc_curves": { "per_class": curves, "micro": roc_json(&self.roc_micro) },
            "calibration": self.calibration,
        });
        if let (Value::Object(r), Value::Object(c)) = (&mut report, context) {
            for (k, v) in c {
                r.insert(k, v);
            }
        }
        report
    }

    /// Writes `report.json`, `confusion_matrix.png`, `roc_curves.png` and `calibration.png` into `dir`.
    pub fn write(&self, dir: &Path, context: Value, title: &str) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create folder", dir.display()))?;
        let report = serde_json::to_string_pretty(&self.to_json(context))?;
        std::fs::write(dir.join("report.json"), report).with_context(|| format!("{}: cannot write report.json", dir.display()))?;
        let classes: Vec<&str> = EMOTIONS.to_vec();
        plots::confusion_matrix_png(&dir.join("confusion_matrix.png"), &classes, &self.confusion, &format!("Confusion matrix: {title}"))?;
        let thinned: Vec<RocCurve> = self.roc.iter().map(|r| r.thinned(400)).collect();
        plots::roc_png(&dir.join("roc_curves.png"), &classes, &thinned, &self.roc_micro.thinned(400), &format!("ROC (one-vs-rest): {title}"))?;
        plots::calibration_png(&dir.join("calibration.png"), &self.calibration, &format!("Calibration: {title}"))?;
        Ok(())
    }

    /// A human-readable table for the terminal.
    pub fn table(&self) -> String {
        let mut s = format!("{:<10} {:>9} {:>7} {:>7} {:>8} {:>7}\n", "class", "precision", "recall", "f1", "support", "auc");
        for (i, name) in EMOTIONS.iter().enumerate() {
            let c = &self.per_class[i];
            let auc = self.roc[i].auc.map_or("-".into(), |a| format!("{a:.3}"));
            s += &format!("{name:<10} {:>9.3} {:>7.3} {:>7.3} {:>8} {:>7}\n", c.precision, c.recall, c.f1, c.support, auc);
        }
        let opt = |a: Option<f64>| a.map_or("-".into(), |a| format!("{a:.3}"));
        s += &format!(
            "\naccuracy {:.2}% on {} faces   macro-F1 {:.3}   AUC micro {} macro {}\n",
            self.accuracy * 100.0,
            self.n_images,
            self.macro_f1,
            opt(self.roc_micro.auc),
            opt(self.auc_macro)
        );
        let confidence = self.calibration.bins.iter().map(|b| b.mean_confidence.unwrap_or(0.0) * b.faces as f64).sum::<f64>() / self.n_images.max(1) as f64;
        s += &format!("mean confidence {:.1}% against {:.1}% right   calibration error (ECE) {:.3}\n", confidence * 100.0, self.accuracy * 100.0, self.calibration.ece);
        s
    }
}

fn roc_json(r: &RocCurve) -> Value {
    let t = r.thinned(200);
    json!({ "fpr": t.fpr, "tpr": t.tpr, "auc": r.auc })
}
