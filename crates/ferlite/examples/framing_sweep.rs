//! Which crop around a detector's box gives labels closest to the truth and to the 48x48
//! originals': val/ faces pasted into grid photos (as in `detection_recall`), each found face
//! classified through several crop strategies with the embedded model. This chose
//! `FaceBox::crop_margin` and `faces::FRAMING_SCALES` (docs/experiments.md, 2026-11-26).
//!
//! cargo run --release --example framing_sweep --features clap -- ../shared/data/fer2013 [yunet|accurate|ssd|seeta|mmod] [flip|none] [TILT] [level]
//!
//! TILT (degrees): each pasted face is turned by a random angle within ±TILT (seeded), as heads
//! tilt in real photos; the "turned" strategies level the crop along the detector's eye landmarks
//! (always, or only when the eye line slopes past a threshold). `level`: only the default
//! framings and their levelled variants.
//!
//! A strategy is a set of crops (side relative to a base side, centre shift as a fraction of it)
//! whose probabilities are averaged. Base sides: "long", the box's longer side with the
//! detector's `crop_margin`; "sqrt", the square root of the box area. `m` adds a margin to
//! either; `xK` crops at K times the base side.

use ferlite::data::{load, BadInput, Split};
use ferlite::emotion::FACE_PIXELS;
use ferlite::faces::{crop_face, crop_face_turned, Detector, FaceBox};
use rand::{Rng, SeedableRng};
use ferlite::predict::{Predictor, Tta};

mod common;
use common::{box_at, paste_grid_tilted, PER_ROW, SIDE};

struct Strategy {
    name: String,
    /// Base side from the box area instead of its longer side and the detector's margin.
    from_area: bool,
    /// (side relative to the base, centre shift x and y as fractions of the base side).
    crops: Vec<(f32, f32, f32)>,
    /// Crops turned so that the eye landmarks are level ([`FaceBox::eye_angle`]) when their slope
    /// exceeds this many degrees (`None`: never turned).
    level_past: Option<f32>,
}

/// The default three framings, as they are and levelled past several thresholds.
fn levelling_strategies() -> Vec<Strategy> {
    let crops = vec![(0.9, 0.0, 0.0), (1.0, 0.0, 0.0), (1.1, 0.0, 0.0)];
    [None, Some(0.0), Some(3.0), Some(5.0), Some(8.0), Some(12.0)]
        .into_iter()
        .map(|level_past| Strategy {
            name: match level_past {
                None => "long x0.9,1,1.1 (FRAMING_SCALES)".into(),
                Some(t) => format!("long x0.9,1,1.1 turned level past {t}°"),
            },
            from_area: false,
            crops: crops.clone(),
            level_past,
        })
        .collect()
}

fn strategies() -> Vec<Strategy> {
    let at = |m: f32, scales: &[f32]| scales.iter().map(|&k| (k * (1.0 + 2.0 * m), 0.0, 0.0)).collect::<Vec<_>>();
    let mut all = Vec::new();
    for m in [-0.06f32, -0.045, -0.03, -0.015, 0.0, 0.03, 0.06] {
        all.push(Strategy { name: format!("long m{m:+.3}"), from_area: false, crops: at(m, &[1.0]), level_past: None });
        all.push(Strategy { name: format!("sqrt m{m:+.3}"), from_area: true, crops: at(m, &[1.0]), level_past: None });
    }
    all.push(Strategy { name: "long x0.95,1,1.05".into(), from_area: false, crops: at(0.0, &[0.95, 1.0, 1.05]), level_past: None });
    all.push(Strategy { name: "long x0.9,1,1.1 (FRAMING_SCALES)".into(), from_area: false, crops: at(0.0, &[0.9, 1.0, 1.1]), level_past: None });
    all.push(Strategy { name: "long x0.9,1,1.1 turned level".into(), from_area: false, crops: at(0.0, &[0.9, 1.0, 1.1]), level_past: Some(0.0) });
    all.push(Strategy { name: "long x1 turned level".into(), from_area: false, crops: at(0.0, &[1.0]), level_past: Some(0.0) });
    all.push(Strategy { name: "long x0.9..1.1 (5)".into(), from_area: false, crops: at(0.0, &[0.9, 0.95, 1.0, 1.05, 1.1]), level_past: None });
    let mut shifted = at(0.0, &[0.9, 1.0, 1.1]);
    shifted.extend([(1.0, 0.05, 0.0), (1.0, -0.05, 0.0), (1.0, 0.0, 0.05), (1.0, 0.0, -0.05)]);
    all.push(Strategy { name: "long x0.9,1,1.1 + 4 shifts".into(), from_area: false, crops: shifted, level_past: None });
    all
}

/// A square box of side `side` centred on (`cx`, `cy`).
fn square(cx: f32, cy: f32, side: f32) -> FaceBox {
    let s = side.round().max(1.0) as u32;
    FaceBox { x: (cx - side / 2.0).round().max(0.0) as u32, y: (cy - side / 2.0).round().max(0.0) as u32, ..FaceBox::whole(s, s) }
}

fn main() -> anyhow::Result<()> {
    let root = std::env::args().nth(1).unwrap_or_else(|| "../shared/data/fer2013".into());
    let detector = std::env::args().nth(2).and_then(|name| <Detector as clap::ValueEnum>::from_str(&name, true).ok()).unwrap_or_default();
    let tta = if std::env::args().nth(3).as_deref() == Some("none") { Tta::None } else { Tta::Flip };
    let tilt: f32 = std::env::args().nth(4).map_or(Ok(0.0), |t| t.parse())?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let predictor = Predictor::load(None)?;
    let set = load(std::path::Path::new(&root), Some(Split::Val), BadInput::Abort)?;
    let strategies = if std::env::args().nth(5).as_deref() == Some("level") { levelling_strategies() } else { strategies() };
    // The label of one face from its crops (one or several), probabilities averaged.
    let label = |crops: &[u8]| predictor.predict_averaged(crops, crops.len() / FACE_PIXELS, tta)[0].class_index;
    // Per strategy: labels equal to the original's, and to the truth; per detector, the same for truth.
    let (mut agree, mut right) = (vec![0usize; strategies.len()], vec![0usize; strategies.len()]);
    let mut right_by_detector = std::collections::BTreeMap::<String, (usize, usize, Vec<usize>)>::new();
    let (mut found, mut right_original, mut right_exact, mut agree_exact) = (0usize, 0usize, 0usize, 0usize);
    let indices: Vec<usize> = (0..set.len()).collect();
    for chunk in indices.chunks((PER_ROW * PER_ROW) as usize) {
        let degrees: Vec<f32> = chunk.iter().map(|_| if tilt > 0.0 { rng.random_range(-tilt..=tilt) } else { 0.0 }).collect();
        let (photo, placed) = paste_grid_tilted(&set, chunk, &degrees);
        let boxes = detector.detect(&image::DynamicImage::ImageLuma8(photo.clone()))?;
        for (i, cx, cy) in placed {
            let Some(b) = box_at(&boxes, cx, cy) else { continue };
            let truth = set.labels[i] as usize;
            let original = label(set.face(i));
            let exact = label(&crop_face(&photo, &square(cx as f32, cy as f32, SIDE as f32), 0.0));
            found += 1;
            right_original += usize::from(original == truth);
            right_exact += usize::from(exact == truth);
            agree_exact += usize::from(exact == original);
            let by_detector = right_by_detector.entry(format!("{:?}", b.detector)).or_insert((0, 0, vec![0; strategies.len()]));
            by_detector.0 += 1;
            by_detector.1 += usize::from(original == truth);
            let (bcx, bcy) = (b.x as f32 + b.width as f32 / 2.0, b.y as f32 + b.height as f32 / 2.0);
            for (k, strategy) in strategies.iter().enumerate() {
                let base = if strategy.from_area { ((b.width * b.height) as f32).sqrt() } else { b.width.max(b.height) as f32 * (1.0 + 2.0 * b.crop_margin()) };
                let angle = match strategy.level_past {
                    Some(t) if b.eye_angle().abs().to_degrees() > t => b.eye_angle(),
                    _ => 0.0,
                };
                let crops: Vec<u8> = strategy.crops.iter().flat_map(|&(s, dx, dy)| crop_face_turned(&photo, &square(bcx + dx * base, bcy + dy * base, base * s), 0.0, angle)).collect();
                let l = label(&crops);
                agree[k] += usize::from(l == original);
                right[k] += usize::from(l == truth);
                by_detector.2[k] += usize::from(l == truth);
            }
        }
    }
    let pct = |k: usize, n: usize| 100.0 * k as f64 / n.max(1) as f64;
    let margin = |d| FaceBox { detector: Some(d), ..FaceBox::whole(1, 1) }.crop_margin();
    println!("{detector:?} detector, {tta:?} TTA, faces tilted within ±{tilt}°, crop_margin SSD {} SeetaFace {}: {found} of {} faces found", margin(Detector::Ssd), margin(Detector::Seeta), set.len());
    println!("accuracy: 48x48 originals {:.2}%, cropped at the exact paste place {:.2}% (label as the original's {:.1}%)", pct(right_original, found), pct(right_exact, found), pct(agree_exact, found));
    println!("| strategy | accuracy | label as the original's |{}", right_by_detector.keys().map(|d| format!(" accuracy, {d} boxes |")).collect::<String>());
    println!("|---|---|---|{}", "---|".repeat(right_by_detector.len()));
    for (k, strategy) in strategies.iter().enumerate() {
        let per_detector: String = right_by_detector.values().map(|(n, _, r)| format!(" {:.2}% |", pct(r[k], *n))).collect();
        println!("| {} | {:.2}% | {:.1}% |{per_detector}", strategy.name, pct(right[k], found), pct(agree[k], found));
    }
    for (d, (n, orig, _)) in &right_by_detector {
        println!("{d}: {n} faces, 48x48 originals {:.2}% right", pct(*orig, *n));
    }
    Ok(())
}
