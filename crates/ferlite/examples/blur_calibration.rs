//! The table behind `data::blur::estimate_sigma`: for sharp faces (FER2013's `val/`) blurred by
//! σ = 0, 0.25, ..., 6 with ferlite's own blur, the median share of gradient energy that a further
//! σ 1 blur keeps. Prints the table to paste into `KEPT_BY_SIGMA`, then how the estimate scatters
//! per face at a few known blurs, and what it reads on `train/`.
//!
//! cargo run --release --example blur_calibration -- ../shared/data/fer2013

use ferlite::data::blur::{estimated_sigma_percentiles, gaussian_blur, share_kept_by_unit_blur, SIGMA_STEP};
use ferlite::data::{load, BadInput, Split};
use ferlite::emotion::FACE_PIXELS;

fn main() -> anyhow::Result<()> {
    let root = std::env::args().nth(1).unwrap_or_else(|| "../shared/data/fer2013".into());
    let val = load(root.as_ref(), Some(Split::Val), BadInput::Abort)?;
    let faces: Vec<&[u8]> = val.pixels.chunks(FACE_PIXELS).collect();
    let table: Vec<f32> = (0..25)
        .map(|i| {
            let sigma = i as f32 * SIGMA_STEP;
            let mut kept: Vec<f32> = faces.iter().filter_map(|f| share_kept_by_unit_blur(&gaussian_blur(f, sigma))).collect();
            kept.sort_by(f32::total_cmp);
            kept[kept.len() / 2]
        })
        .collect();
    println!("const KEPT_BY_SIGMA: [f32; 25] = [{}];", table.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(", "));
    for sigma in [0.0, 1.0, 2.0, 3.0] {
        let blurred: Vec<u8> = faces.iter().flat_map(|f| gaussian_blur(f, sigma)).collect();
        println!("val/ blurred by σ {sigma}: estimate p10/p50/p90 {:?}", estimated_sigma_percentiles(&blurred));
    }
    let train = load(root.as_ref(), Some(Split::Train), BadInput::Abort)?;
    println!("train/: estimate p10/p50/p90 {:?}", estimated_sigma_percentiles(&train.pixels));
    Ok(())
}
