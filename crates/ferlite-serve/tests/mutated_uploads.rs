//! Damaged multipart uploads never panic the service and never answer 5xx: a form holding a face
//! PNG, with bytes flipped, inserted, deleted or cut off anywhere (or only in the form's framing),
//! is answered 200 or a 4xx with a JSON error. Same seeded damage as `mutated_inputs`
//! (`FERLITE_MUTATIONS=N` for a longer search).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ferlite::predict::Predictor;
use ferlite_serve::{api::router, AppState, ServeConfig};
use ferlite_testkit::mutation::survives_damage;
use rand::SeedableRng;
use std::time::Duration;
use tower::ServiceExt;

const BOUNDARY: &str = "ferlite-test-boundary";

fn face_png() -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let face = image::GrayImage::from_raw(48, 48, ferlite_testkit::synthetic_face(3, &mut rng)).unwrap();
    let mut png = std::io::Cursor::new(Vec::new());
    face.write_to(&mut png, image::ImageFormat::Png).unwrap();
    png.into_inner()
}

/// A form with a text field, then the image as a file field: (the bytes before the image, the
/// image, the bytes after it).
fn form(image: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"face.png\"\r\nContent-Type: image/png\r\n\r\n"
    );
    (head.into_bytes(), image.to_vec(), format!("\r\n--{BOUNDARY}--\r\n").into_bytes())
}

#[test]
fn damaged_multipart_uploads_are_answered_200_or_4xx() {
    let config = ServeConfig {
        max_body_bytes: 1 << 20,
        max_pixels: 1 << 22,
        max_decode_bytes: 1 << 26,
        concurrency: 1,
        queue: 4,
        request_timeout: Duration::from_secs(30),
        header_timeout: Duration::from_secs(10),
        max_connections: 16,
        shutdown_timeout: Duration::from_secs(1),
    };
    let app = router(AppState::new(Predictor::load(None).unwrap(), config));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Whether the server accepted the upload (200); panics on a 5xx or a body that is not JSON.
    let send = |body: &[u8]| {
        let request = Request::post("/v1/predict")
            .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
            .body(Body::from(body.to_vec()))
            .unwrap();
        let (status, text) = runtime.block_on(async {
            let response = app.clone().oneshot(request).await.unwrap();
            let status = response.status();
            (status, axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap())
        });
        assert!(status.is_success() || status.is_client_error(), "answered {status}: {}", String::from_utf8_lossy(&text));
        let json: serde_json::Value = serde_json::from_slice(&text).unwrap_or_else(|_| panic!("{status} body is not JSON: {}", String::from_utf8_lossy(&text)));
        if status == StatusCode::OK {
            assert!(json["faces"].is_array(), "{json}");
        }
        status == StatusCode::OK
    };
    let (head, image, tail) = form(&face_png());
    assert!(send(&[head.as_slice(), &image, &tail].concat()), "the undamaged form must be answered 200");
    let anywhere = survives_damage("multipart upload", &[head.as_slice(), &image, &tail].concat(), 50, send);
    assert!(anywhere > 0, "no damaged upload was refused");
    // The framing only (boundaries, part headers), the image whole: the multipart parser's paths.
    let framing = survives_damage("multipart framing", &head, 51, |damaged_head| send(&[damaged_head, &image, &tail].concat()));
    assert!(framing > 0, "no damaged form framing was refused");
}
