//! Face-detector recall on FER2013 faces: each face of a split is pasted (at 3x, 144 px) into a
//! grid photo on mid-gray, and a face counts as found when a detection's centre lies within a
//! fifth of the face side of where it was pasted. Prints recall overall and per class.
//!
//! cargo run --release --example detection_recall -- ../shared/data/fer2013 [val|train]

use ferlite::data::{load, BadInput, Split};
use ferlite::emotion::EMOTIONS;
use ferlite::faces::detect_faces;
use image::{GrayImage, Luma};

fn main() -> anyhow::Result<()> {
    let root = std::env::args().nth(1).unwrap_or_else(|| "../shared/data/fer2013".into());
    let split = match std::env::args().nth(2).as_deref() {
        Some("train") => Split::Train,
        _ => Split::Val,
    };
    let set = load(std::path::Path::new(&root), Some(split), BadInput::Abort)?;
    const SIDE: u32 = 144;
    const PER_ROW: u32 = 6;
    let (mut found, mut total) = ([0usize; 7], [0usize; 7]);
    let indices: Vec<usize> = (0..set.len()).collect();
    for chunk in indices.chunks((PER_ROW * PER_ROW) as usize) {
        let mut photo = GrayImage::from_pixel(PER_ROW * (SIDE + 60) + 60, PER_ROW * (SIDE + 60) + 60, Luma([128]));
        let mut placed = Vec::new();
        for (slot, &i) in chunk.iter().enumerate() {
            let face = GrayImage::from_raw(48, 48, set.face(i).to_vec()).unwrap();
            let big = image::imageops::resize(&face, SIDE, SIDE, image::imageops::FilterType::CatmullRom);
            let (x, y) = (60 + (slot as u32 % PER_ROW) * (SIDE + 60), 60 + (slot as u32 / PER_ROW) * (SIDE + 60));
            image::imageops::replace(&mut photo, &big, x as i64, y as i64);
            placed.push((i, x + SIDE / 2, y + SIDE / 2));
        }
        let boxes = detect_faces(&photo)?;
        for (i, cx, cy) in placed {
            let class = set.labels[i] as usize;
            total[class] += 1;
            if boxes.iter().any(|b| (b.x + b.width / 2).abs_diff(cx) < SIDE / 5 && (b.y + b.height / 2).abs_diff(cy) < SIDE / 5) {
                found[class] += 1;
            }
        }
    }
    let all: usize = found.iter().sum();
    println!("recall {:.1}% ({all} of {})", 100.0 * all as f64 / set.len() as f64, set.len());
    for c in 0..7 {
        println!("  {:<9} {:.1}% ({} of {})", EMOTIONS[c], 100.0 * found[c] as f64 / total[c].max(1) as f64, found[c], total[c]);
    }
    Ok(())
}
