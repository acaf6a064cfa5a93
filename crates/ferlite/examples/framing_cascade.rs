//! How often a detected face needs more than its detector's own framing: val/ faces pasted into
//! grid photos (as in `detection_recall`), each face YuNet finds classified at the three framings
//! of `faces::FRAMING_SCALES`, with and without the mirror. For each threshold, the rule of
//! `analyze::classify_detected` (the other framings only when no probability at the own framing
//! reaches it) against always averaging all three: accuracy, labels unchanged, network passes a
//! face. Then `classify_detected` itself at `analyze::OTHER_FRAMINGS_BELOW`, which must agree with
//! the rule. Chose that threshold (docs/experiments.md, 2026-12-08); rerun it for a new model.
//!
//! cargo run --release --example framing_cascade --features clap -- ../shared/data/fer2013 [TILT]
//!
//! TILT (degrees): each pasted face is turned by a random angle within ±TILT (seeded).

use ferlite::analyze::{classify_detected, OTHER_FRAMINGS_BELOW};
use ferlite::data::{load, BadInput, Split};
use ferlite::emotion::{FACE_SIZE, NUM_CLASSES};
use ferlite::eval::metrics::argmax_rows;
use ferlite::faces::{framed_crops_of_faces, Detector, FRAMING_SCALES};
use ferlite::predict::{Predictor, Tta};
use rand::{Rng, SeedableRng};

mod common;
use common::{box_at, paste_grid_tilted, PER_ROW};

/// Index in `FRAMING_SCALES` of the detector's own framing (scale 1), as in `classify_detected`.
const OWN_FRAMING: usize = 1;

/// One found face: its true class, its probabilities at each framing (plain, then mirrored), and
/// the labels `classify_detected` gave it without and with the mirror.
struct Found {
    truth: usize,
    plain: Vec<f32>,
    mirrored: Vec<f32>,
    library: [usize; 2],
}

fn main() -> anyhow::Result<()> {
    let root = std::env::args().nth(1).unwrap_or_else(|| "../shared/data/fer2013".into());
    let tilt: f32 = std::env::args().nth(2).map_or(Ok(0.0), |t| t.parse())?;
    let predictor = Predictor::load(None)?;
    let set = load(std::path::Path::new(&root), Some(Split::Val), BadInput::Abort)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut found = Vec::new();
    let indices: Vec<usize> = (0..set.len()).collect();
    for chunk in indices.chunks((PER_ROW * PER_ROW) as usize) {
        let degrees: Vec<f32> = chunk.iter().map(|_| if tilt > 0.0 { rng.random_range(-tilt..=tilt) } else { 0.0 }).collect();
        let (photo, placed) = paste_grid_tilted(&set, chunk, &degrees);
        let photo = image::DynamicImage::ImageLuma8(photo);
        let boxes = Detector::Yunet.detect(&photo)?;
        for (i, cx, cy) in placed {
            let Some(b) = box_at(&boxes, cx, cy) else { continue };
            let face = std::slice::from_ref(b);
            let crops = framed_crops_of_faces(&photo, face);
            let mirrored: Vec<u8> = crops.chunks(FACE_SIZE).flat_map(|row| row.iter().rev().copied()).collect();
            let library = [Tta::None, Tta::Flip].map(|tta| classify_detected(&predictor, &photo, face, tta)[0].class_index);
            found.push(Found { truth: set.labels[i] as usize, plain: predictor.probabilities(&crops, Tta::None), mirrored: predictor.probabilities(&mirrored, Tta::None), library });
        }
    }
    let n = found.len();
    let pct = |k: usize| 100.0 * k as f64 / n as f64;
    println!("{n} of {} val faces found by YuNet, tilted within ±{tilt}°; framings {FRAMING_SCALES:?}", set.len());
    println!("| TTA | other framings when the top probability is under | accuracy | all three framings | labels as all three's | network passes a face |");
    println!("|---|---|---|---|---|---|");
    for (mirror, name) in [(false, "none"), (true, "flip")] {
        // Each framing's probabilities for every face, with the mirror averaged in when asked.
        let framing = |f: &Found, k: usize| -> Vec<f32> {
            let plain = &f.plain[k * NUM_CLASSES..][..NUM_CLASSES];
            let mirrored = &f.mirrored[k * NUM_CLASSES..][..NUM_CLASSES];
            plain.iter().zip(mirrored).map(|(p, m)| if mirror { (p + m) / 2.0 } else { *p }).collect()
        };
        let mean = |rows: Vec<Vec<f32>>| -> Vec<f32> { (0..NUM_CLASSES).map(|c| rows.iter().map(|r| r[c]).sum::<f32>() / rows.len() as f32).collect() };
        let views = if mirror { 2 } else { 1 };
        let all: Vec<f32> = found.iter().flat_map(|f| mean((0..FRAMING_SCALES.len()).map(|k| framing(f, k)).collect())).collect();
        let all_labels = argmax_rows(&all, NUM_CLASSES);
        let right_all = found.iter().zip(&all_labels).filter(|(f, l)| f.truth == **l).count();
        // `classify_detected`'s rule at `threshold`: the face's label, and whether the own framing sufficed.
        let by_rule = |f: &Found, all_label: usize, threshold: f32| -> (usize, bool) {
            let own = framing(f, OWN_FRAMING);
            let sure = own.iter().any(|&p| p >= threshold);
            (if sure { argmax_rows(&own, NUM_CLASSES)[0] } else { all_label }, sure)
        };
        for threshold in [0.5f32, 0.6, 0.7, 0.8, 0.9] {
            let (mut right, mut same, mut passes) = (0, 0, 0);
            for (f, all_label) in found.iter().zip(&all_labels) {
                let (label, sure) = by_rule(f, *all_label, threshold);
                passes += views * if sure { 1 } else { FRAMING_SCALES.len() };
                right += usize::from(label == f.truth);
                same += usize::from(label == *all_label);
            }
            println!("| {name} | {threshold} | {:.2}% | {:.2}% | {:.2}% | {:.2} |", pct(right), pct(right_all), pct(same), passes as f64 / n as f64);
        }
        // The library at its threshold against the rule simulated here.
        let library_right = found.iter().filter(|f| f.library[usize::from(mirror)] == f.truth).count();
        let simulated_same = found.iter().zip(&all_labels).filter(|(f, l)| by_rule(f, **l, OTHER_FRAMINGS_BELOW).0 == f.library[usize::from(mirror)]).count();
        println!("`classify_detected`, --tta {name}, threshold {OTHER_FRAMINGS_BELOW}: {:.2}% right; its label is the rule's for {:.2}% of faces", pct(library_right), pct(simulated_same));
    }
    Ok(())
}
