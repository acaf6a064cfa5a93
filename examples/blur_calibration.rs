//! The table behind `data::blur::estimate_sigma`: for sharp faces (FER2013's `val/`) blurred by
//! σ = 0, 0.25, ..., 6 with ferlite's own blur, the median share of gradient energy that a further
//! σ 1 blur keeps. Prints the table to paste into `KEPT_BY_SIGMA`, then how the estimate scatters
//! per face at a few known blurs, and what it reads on `train/`.
//!
//! cargo run --release --example blur_calibration -- ../shared/data/fer2013

use ferlite::data::blur::{estimate_sigma, gaussian_blur, share_kept_by_unit_blur, SIGMA_STEP};
use ferlite::data::{load, BadInput, Split};
use ferlite::emotion::FACE_PIXELS;

fn percentiles(mut values: Vec<f32>, at: &[f32]) -> Vec<f32> {
    values.sort_by(f32::total_cmp);
    at.iter().map(|p| values[((values.len() - 1) as f32 * p).round() as usize]).collect()
}

fn main() -> anyhow::Result<()> {
    let root = std::env::args().nth(1).unwrap_or_else(|| "../shared/data/fer2013".into());
    let val = load(root.as_ref(), Some(Split::Val), BadInput::Abort)?;
    let faces: Vec<&[u8]> = val.pixels.chunks(FACE_PIXELS).collect();
    let table: Vec<f32> = (0..25)
        .map(|i| {
            let sigma = i as f32 * SIGMA_STEP;
            let kept = faces.iter().filter_map(|f| share_kept_by_unit_blur(&gaussian_blur(f, sigma))).collect();
            percentiles(kept, &[0.5])[0]
        })
        .collect();
    println!("const KEPT_BY_SIGMA: [f32; 25] = [{}];", table.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(", "));
    for sigma in [0.0, 1.0, 2.0, 3.0] {
        let estimates = faces.iter().map(|f| estimate_sigma(&gaussian_blur(f, sigma))).collect();
        println!("val/ blurred by σ {sigma}: estimate p10/p50/p90 {:?}", percentiles(estimates, &[0.1, 0.5, 0.9]));
    }
    let train = load(root.as_ref(), Some(Split::Train), BadInput::Abort)?;
    let estimates = train.pixels.chunks(FACE_PIXELS).map(estimate_sigma).collect();
    println!("train/: estimate p10/p50/p90 {:?}", percentiles(estimates, &[0.1, 0.5, 0.9]));
    Ok(())
}
