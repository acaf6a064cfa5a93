//! Damaged inputs never panic and never abort: valid images, animated GIFs, model files, training
//! checkpoints and CSVs with bytes flipped, inserted, deleted or cut off are each either read or
//! refused with an error. The mutations are seeded, so a failure names the seed and the case that reproduces it;
//! `FERLITE_MUTATIONS=N` runs N per input instead of the default (a longer search than CI's).
//! Uploads to the service are damaged the same way in ferlite-serve's `mutated_uploads`.

use ferlite_testkit as common;
use ferlite_testkit::mutation::survives_damage;

use ferlite::data::{load, BadInput};
use ferlite::image_io::decode_bytes;
use ferlite::model::Network;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

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

/// `file` (a weights or checkpoint file) without its checksum, as files written before checksums
/// were: its damaged copies reach the parser and the checks behind the checksum.
fn without_checksum(file: &[u8]) -> Vec<u8> {
    let header_end = 8 + u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&file[8..header_end]).unwrap();
    header["__metadata__"].as_object_mut().unwrap().remove(ferlite::weights::CHECKSUM_KEY).expect("a checksum to remove");
    let mut json = serde_json::to_vec(&header).unwrap();
    json.resize(json.len().next_multiple_of(8), b' ');
    [&(json.len() as u64).to_le_bytes()[..], &json, &file[header_end..]].concat()
}

#[test]
fn damaged_model_files_load_or_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.safetensors");
    common::untrained_model(&path);
    let checked = std::fs::read(&path).unwrap();
    let unchecked = without_checksum(&checked);
    assert!(Network::from_bytes(&unchecked).is_ok(), "a model file without its checksum must load");
    // Damage anywhere, and damage aimed at the header (tensor names, shapes, offsets and the
    // network config) with the tensor data left whole; with and without the checksum.
    for (seed, file) in [(10, &checked), (12, &unchecked)] {
        let header_end = 8 + u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
        for (seed, damaged_part) in [(seed, file.len()), (seed + 1, header_end)] {
            let (part, rest) = file.split_at(damaged_part);
            let refused = survives_damage("model file", part, seed, |bytes| Network::from_bytes(&[bytes, rest].concat()).is_ok());
            assert!(refused > 0, "no damaged model file was refused");
        }
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
    let checked = std::fs::read(&path).unwrap();
    let damaged_run = tmp.path().join("damaged");
    std::fs::create_dir(&damaged_run).unwrap();
    let resumes = |bytes: &[u8]| {
        std::fs::write(damaged_run.join(ferlite::train::checkpoint::CHECKPOINT_FILE), bytes).unwrap();
        ferlite::train::checkpoint::Checkpoint::load(&damaged_run).is_ok()
    };
    let unchecked = without_checksum(&checked);
    assert!(resumes(&unchecked), "a checkpoint without its checksum must load");
    for (seed, file) in [(40, &checked), (41, &unchecked)] {
        let refused = survives_damage("checkpoint", file, seed, resumes);
        assert!(refused > 0, "no damaged checkpoint was refused");
    }
}
