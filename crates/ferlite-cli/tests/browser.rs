//! The web page of `ferlite serve` in real headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from `tests/browser/`): upload a photo and see its box and label drawn, then
//! start the webcam (Chromium's fake camera playing the demo photo) and see live results, with
//! track ids and the frame rate the page gets.
//! Screenshots are left in `target/browser-artifacts/`. `.ci/run` installs both; elsewhere the
//! test skips, saying what is missing.

mod common;

use std::path::Path;
use std::process::Command;

fn missing_tools(browser_dir: &Path) -> Option<String> {
    if !Path::new("/usr/bin/chromium").exists() && std::env::var_os("CHROMIUM").is_none() {
        return Some("/usr/bin/chromium (apt-get install chromium)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node".into());
    }
    if !browser_dir.join("node_modules/playwright-core").is_dir() {
        return Some(format!("playwright-core (npm ci --prefix {})", browser_dir.display()));
    }
    None
}

/// The demo photo as a few frames of a Y4M (4:2:0) video, the format Chromium's fake camera plays.
fn write_fake_camera(path: &Path) {
    let rgb = image::open(common::demo_photo_path()).unwrap().to_rgb8();
    let (w, h) = rgb.dimensions();
    let mut y4m = format!("YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n").into_bytes();
    let px = |x: u32, y: u32| rgb.get_pixel(x, y).0.map(|v| v as f32);
    let luma: Vec<u8> = (0..h).flat_map(|y| (0..w).map(move |x| (y, x))).map(|(y, x)| {
        let [r, g, b] = px(x, y);
        (0.299 * r + 0.587 * g + 0.114 * b).round() as u8
    }).collect();
    let chroma = |weights: [f32; 3]| -> Vec<u8> {
        (0..h / 2).flat_map(|y| (0..w / 2).map(move |x| (y, x))).map(|(y, x)| {
            let [r, g, b] = px(2 * x, 2 * y);
            (weights[0] * r + weights[1] * g + weights[2] * b + 128.0).round().clamp(0.0, 255.0) as u8
        }).collect()
    };
    let (u, v) = (chroma([-0.169, -0.331, 0.5]), chroma([0.5, -0.419, -0.081]));
    for _ in 0..10 {
        y4m.extend_from_slice(b"FRAME\n");
        y4m.extend_from_slice(&luma);
        y4m.extend_from_slice(&u);
        y4m.extend_from_slice(&v);
    }
    std::fs::write(path, y4m).unwrap();
}

#[test]
fn page_draws_faces_for_an_uploaded_photo_and_the_live_webcam() {
    let root = common::repo_root();
    let browser_dir = root.join("crates/ferlite-cli/tests/browser");
    if let Some(missing) = missing_tools(&browser_dir) {
        common::skip("the browser test", &format!("{missing} is not installed"), common::Provided::ByCi);
        return;
    }
    let server = common::Server::start(&[]);
    let artifacts = root.join("target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let camera = artifacts.join("camera.y4m");
    write_fake_camera(&camera);
    let out = Command::new("node")
        .arg(browser_dir.join("page.mjs"))
        .args([server.url.as_str(), common::demo_photo_path().to_str().unwrap(), camera.to_str().unwrap(), artifacts.to_str().unwrap()])
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "page script failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    eprintln!("browser saw: {result}");
    assert!(result.get("pageErrors").is_none(), "JavaScript errors: {result}");
    for mode in ["photo", "webcam"] {
        let seen = &result[mode];
        assert_eq!(seen["faces"], 1, "{mode}: {seen}");
        assert!(seen["text"].as_str().unwrap().starts_with("face 1: "), "{mode}: {seen}");
        // A box outline, a label and seven bars: thousands of pixels, not the whole overlay.
        let drawn = seen["drawnPixels"].as_u64().unwrap();
        assert!(drawn > 2000 && drawn < 150_000, "{mode}: {drawn} overlay pixels drawn");
    }
    assert_eq!(result["webcam"]["button"], "Stop webcam");
    // Live frames are one stream: the face keeps track id 1, and the page shows the frame rate
    // it gets (one request in flight, the next frame when the answer is in).
    assert!(result["webcam"]["text"].as_str().unwrap().starts_with("face 1: #1 "), "{result}");
    let rate = result["webcam"]["framesPerSecond"].as_f64().unwrap();
    assert!(rate > 0.0, "{result}");
    eprintln!("the live page ran at {rate:.1} frames a second");
    assert!(artifacts.join("photo.png").exists() && artifacts.join("webcam.png").exists());
}
