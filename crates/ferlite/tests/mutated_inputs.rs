//! Damaged inputs never panic and never abort: valid images, animated GIFs, model files, training
//! checkpoints and CSVs with bytes flipped, inserted, deleted or cut off are each either read or
//! refused with an error. The
//! mutations are seeded, so a failure names the seed and the case that reproduces it;
//! `FERLITE_MUTATIONS=N` runs N per input instead of the default (a longer search than CI's).

use ferlite_testkit as common;

use ferlite::data::{load, BadInput};
use ferlite::image_io::decode_bytes;
use ferlite::model::Network;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};

fn mutations_per_input() -> usize {
    std::env::var("FERLITE_MUTATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

/// `valid` damaged in one to four places: a byte changed, a run of bytes deleted or inserted, or
/// the end cut off.
fn mutate(valid: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..4) {
            0 => bytes[at] = rng.random(),
            1 => {
                let end = (at + rng.random_range(1..64)).min(bytes.len());
                bytes.drain(at..end);
            }
            2 => {
                let run: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
                bytes.splice(at..at, run);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// Runs `read` on `mutations_per_input()` damaged copies of `valid`; fails on the first panic,
/// naming the case. Returns how many copies were refused (errors), to show the test bites.
fn survives_damage(what: &str, valid: &[u8], seed: u64, read: impl Fn(&[u8]) -> bool) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut refused = 0;
    for case in 0..mutations_per_input() {
        let damaged = mutate(valid, &mut rng);
        match catch_unwind(AssertUnwindSafe(|| read(&damaged))) {
            Ok(accepted) => refused += usize::from(!accepted),
            Err(_) => panic!("{what}: damaged copy {case} (seed {seed}, {} bytes) panicked", damaged.len()),
        }
    }
    eprintln!("{what} (seed {seed}): {refused} of {} damaged copies refused, the others read", mutations_per_input());
    refused
}

fn encoded(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

#[test]
fn damaged_images_of_every_format_decode_or_are_refused() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let face = image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(48, 48, common::synthetic_face(3, &mut rng)).unwrap());
    let formats = [image::ImageFormat::Png, image::ImageFormat::Jpeg, image::ImageFormat::Gif, image::ImageFormat::Bmp, image::ImageFormat::Tiff, image::ImageFormat::WebP];
    for (seed, format) in formats.into_iter().enumerate() {
        let valid = encoded(&face.to_rgb8().into(), format);
        assert!(decode_bytes(&valid, 1 << 20).is_ok(), "{format:?}: the undamaged image must decode");
        let refused = survives_damage(&format!("{format:?}"), &valid, seed as u64, |bytes| match decode_bytes(bytes, 1 << 20) {
            // What decodes goes on through the crop to a face, as `predict` does.
            Ok(img) => ferlite::image_io::face_pixels(&img).len() == 48 * 48,
            Err(_) => false,
        });
        assert!(refused > 0, "{format:?}: no damaged copy was refused");
    }
}

#[test]
fn damaged_animated_gifs_play_or_are_refused() {
    use image::codecs::gif::GifEncoder;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut valid = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut valid);
        for class in 0..4 {
            let face = image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(48, 48, common::synthetic_face(class, &mut rng)).unwrap());
            encoder.encode_frame(image::Frame::from_parts(face.to_rgba8(), 0, 0, image::Delay::from_numer_denom_ms(100, 1))).unwrap();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("clip.gif");
    let play = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        ferlite::image_io::for_each_gif_frame(&path, 10, |_, frame| {
            assert_eq!(ferlite::image_io::face_pixels(&frame).len(), 48 * 48);
            Ok(())
        })
        .is_ok()
    };
    assert!(play(&valid), "the undamaged GIF must play");
    let refused = survives_damage("animated GIF", &valid, 30, play);
    assert!(refused > 0, "no damaged GIF was refused");
}

#[test]
fn damaged_model_files_load_or_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.safetensors");
    common::untrained_model(&path);
    let file = std::fs::read(&path).unwrap();
    // Damage anywhere, and damage aimed at the header (tensor names, shapes, offsets and the
    // network config) with the tensor data left whole.
    let header_end = 8 + u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    for (seed, damaged_part) in [(10, file.len()), (11, header_end)] {
        let (part, rest) = file.split_at(damaged_part);
        let refused = survives_damage("model file", part, seed, |bytes| Network::from_bytes(&[bytes, rest].concat()).is_ok());
        assert!(refused > 0, "no damaged model file was refused");
    }
}

#[test]
fn damaged_csv_files_load_or_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("fer2013.csv");
    common::write_csv(&path, 1, 1);
    let valid = std::fs::read(&path).unwrap();
    let damaged_path = tmp.path().join("damaged.csv");
    let refused = survives_damage("CSV", &valid, 20, |bytes| {
        std::fs::write(&damaged_path, bytes).unwrap();
        load(&damaged_path, None, BadInput::Abort).is_ok()
    });
    assert!(refused > 0, "no damaged CSV was refused");
}

#[test]
fn damaged_checkpoints_resume_or_are_refused() {
    use ferlite::model::NetworkConfig;
    use ferlite::train::config::{TrainConfig, WeightAveraging};
    use ferlite::train::Trainer;
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    // One epoch of a narrow network, weight averaging on, so that every kind of tensor a
    // checkpoint holds (weights, optimiser moments, batch-norm statistics, averages) is there.
    let config = TrainConfig {
        network: NetworkConfig { stem_channels: 8, stage_channels: vec![8, 16], hidden_units: 16, ..NetworkConfig::paper() },
        epochs: 1,
        batch_size: 16,
        weight_averaging: Some(WeightAveraging { decay: 0.9, start_epoch: 1 }),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::start(&run, config).unwrap();
    trainer.progress = false;
    trainer.run(&common::synthetic_set(4, 1), &common::synthetic_set(2, 2)).unwrap();
    let path = run.join(ferlite::train::checkpoint::CHECKPOINT_FILE);
    let valid = std::fs::read(&path).unwrap();
    let damaged_run = tmp.path().join("damaged");
    std::fs::create_dir(&damaged_run).unwrap();
    let refused = survives_damage("checkpoint", &valid, 40, |bytes| {
        std::fs::write(damaged_run.join(ferlite::train::checkpoint::CHECKPOINT_FILE), bytes).unwrap();
        ferlite::train::checkpoint::Checkpoint::load(&damaged_run).is_ok()
    });
    assert!(refused > 0, "no damaged checkpoint was refused");
}
