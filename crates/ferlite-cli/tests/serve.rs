//! `ferlite serve` over a real loopback socket: the happy paths, every hardening error with its
//! status and JSON body, back-pressure, graceful shutdown on SIGTERM, and a bounded load test.

mod common;

use image::{GrayImage, ImageFormat, RgbImage};
use rand::SeedableRng;
use serde_json::Value;
use std::io::Cursor;
use std::time::{Duration, Instant};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(60))).build().into()
}

/// POSTs `body` and returns (status, Retry-After, JSON body).
fn post(url: &str, content_type: &str, body: &[u8]) -> (u16, Option<String>, Value) {
    let mut response = agent().post(url).header("Content-Type", content_type).send(body).expect("request completes");
    let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let text = response.body_mut().read_to_string().unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("body is not JSON: {text}"));
    (response.status().as_u16(), retry, json)
}

/// Sends only the headers of a POST to `path` that declares a `declared`-byte body, and reads the
/// answer: a server that refuses by the declared length answers without the body. (Sending the
/// body too races the server's early answer and close: the client can get a broken pipe instead.)
fn post_headers_only(url: &str, path: &str, declared: usize) -> (u16, Value) {
    use std::io::{Read, Write};
    let host = url.strip_prefix("http://").expect("http url");
    let mut stream = std::net::TcpStream::connect(host).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/jpeg\r\nContent-Length: {declared}\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()));
            if length.is_some_and(|n| body.len() >= n) {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, serde_json::from_str(body).unwrap_or_else(|_| panic!("body is not JSON: {body}")));
            }
        }
        let n = stream.read(&mut buf).unwrap_or_else(|e| panic!("no complete answer ({e}); got: {text}"));
        assert!(n > 0, "connection closed before a complete answer: {text}");
        answer.extend_from_slice(&buf[..n]);
    }
}

fn get(url: &str) -> (u16, String) {
    let mut response = agent().get(url).call().expect("request completes");
    (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
}

fn png(image: &GrayImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).unwrap();
    bytes
}

/// The demo photo twice, side by side: a photo with two faces.
fn two_face_photo() -> Vec<u8> {
    let one = image::open(common::demo_photo_path()).unwrap().to_rgb8();
    let mut both = RgbImage::new(one.width() * 2, one.height());
    image::imageops::replace(&mut both, &one, 0, 0);
    image::imageops::replace(&mut both, &one, one.width() as i64, 0);
    let mut bytes = Vec::new();
    both.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg).unwrap();
    bytes
}

fn assert_error(response: (u16, Option<String>, Value), status: u16, needle: &str) {
    let (got, _, body) = response;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["status"], status, "{body}");
    let message = body["error"].as_str().unwrap_or_else(|| panic!("no error message: {body}"));
    assert!(message.contains(needle), "`{message}` does not mention `{needle}`");
}

#[test]
fn predicts_a_face_crop_and_a_photo_with_two_faces() {
    let server = common::Server::start(&[]);
    let face = GrayImage::from_raw(48, 48, common::synthetic_face(3, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1))).unwrap();
    let (status, _, body) = post(&format!("{}/v1/predict?faces=whole", server.url), "image/png", &png(&face));
    assert_eq!(status, 200, "{body}");
    let faces = body["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 1);
    let probabilities = faces[0]["probabilities"].as_object().unwrap();
    assert_eq!(probabilities.len(), 7);
    assert!((probabilities.values().map(|v| v.as_f64().unwrap()).sum::<f64>() - 1.0).abs() < 1e-4);
    assert!(body["timing_ms"]["total"].as_f64().unwrap() > 0.0);

    // A real FER2013 face as users would send it (its JPEG file), when the data is beside the checkout.
    let val_happy = common::repo_root().join("../shared/data/fer2013/val/happy");
    match std::fs::read_dir(&val_happy).ok().and_then(|mut d| d.next()).and_then(Result::ok) {
        Some(entry) => {
            let (status, _, body) = post(&format!("{}/v1/predict", server.url), "image/jpeg", &std::fs::read(entry.path()).unwrap());
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["faces"].as_array().unwrap().len(), 1, "a 48x48 FER2013 file is one face crop: {body}");
            assert_eq!(body["image"]["width"], 48);
        }
        None => common::skip("the FER2013 file", &format!("{} not present", val_happy.display()), common::Provided::NotByCi),
    }

    let (status, _, body) = post(&format!("{}/v1/predict?tta=flip", server.url), "image/jpeg", &two_face_photo());
    assert_eq!(status, 200, "{body}");
    let faces = body["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 2, "{body}");
    let mut centres: Vec<f64> = faces.iter().map(|f| f["box"]["x"].as_f64().unwrap() + f["box"]["width"].as_f64().unwrap() / 2.0).collect();
    centres.sort_by(f64::total_cmp);
    assert!((centres[1] - centres[0] - 512.0).abs() < 8.0, "the two boxes are one photo-width apart: {centres:?}");

    // The SSD scores the demo face 0.97: a higher lowest score leaves it out.
    let (status, _, body) = post(&format!("{}/v1/predict?detector=ssd&min_face_score=0.99", server.url), "image/jpeg", &two_face_photo());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["faces"].as_array().unwrap().len(), 0, "{body}");
}

#[test]
fn accepts_multipart_uploads() {
    let server = common::Server::start(&[]);
    let photo = std::fs::read(common::demo_photo_path()).unwrap();
    let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
    body.extend_from_slice(&photo);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    let (status, _, json) = post(&format!("{}/v1/predict", server.url), "multipart/form-data; boundary=XyZ", &body);
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["faces"].as_array().unwrap().len(), 1, "{json}");
    // One schema: the service's faces are `ferlite predict --json`'s for the same photo, key for key.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_ferlite")).args(["predict", "--json", "--model"]).args([&server.model, &common::demo_photo_path()]).output().unwrap();
    let line: Value = serde_json::from_slice(cli.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(json["faces"], line["faces"]);
    assert_eq!(json["image"], line["image"]);
}

#[test]
fn every_bad_request_gets_its_status_and_a_json_error() {
    let server = common::Server::start(&["--max-body-mib", "1", "--max-megapixels", "4"]);
    let predict = format!("{}/v1/predict", server.url);
    let (status, body) = post_headers_only(&server.url, "/v1/predict", 2 * 1024 * 1024);
    assert_error((status, None, body), 413, "length limit");
    // 3000x3000 = 9 MP of zeros compresses to a few KB: a small upload that would decode big.
    assert_error(post(&predict, "image/png", &png(&GrayImage::new(3000, 3000))), 422, "3000x3000");
    // 2.25 MP fits the 4 MP limit, but at 16 bits and 4 channels it takes 27 MB to decode, over the 16 MB a 4 MP image may.
    let deep = image::ImageBuffer::<image::Rgba<u16>, Vec<u16>>::from_fn(1500, 1500, |x, y| image::Rgba([x as u16 * 40, y as u16 * 40, 0, 65535]));
    let mut deep_png = Vec::new();
    image::DynamicImage::ImageRgba16(deep).write_to(&mut Cursor::new(&mut deep_png), ImageFormat::Png).unwrap();
    assert_error(post(&predict, "image/png", &deep_png), 422, "1500x1500 Rgba16 image takes 27 MB");
    assert_error(post(&predict, "image/jpeg", b"this is not an image"), 400, "not an image");
    let mut truncated = png(&GrayImage::from_fn(200, 200, |x, y| image::Luma([(x * y) as u8])));
    truncated.truncate(truncated.len() / 2);
    assert_error(post(&predict, "image/png", &truncated), 400, "corrupt");
    assert_error(post(&predict, "image/png", b""), 400, "empty body");
    assert_error(post(&format!("{predict}?faces=sideways"), "image/png", b"x"), 400, "faces");
    assert_error(post(&format!("{predict}?faces=whole"), "image/png", &png(&GrayImage::new(4, 4))), 422, "too small for a face");
    assert_error(post(&format!("{predict}?min_face_score=1.5"), "image/png", b"x"), 400, "min_face_score");
    let (status, body) = get(&format!("{}/no/such/route", server.url));
    assert_eq!(status, 404, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].is_string());
    // Each of those was counted by status.
    let (_, metrics) = get(&format!("{}/metrics", server.url));
    for status in ["413", "422", "400"] {
        assert!(metrics.contains(&format!("route=\"/v1/predict\",status=\"{status}\"")), "{status} not counted:\n{metrics}");
    }
    // None of them was decoded: the server's peak memory stayed near its start (model, runtime, buffers).
    let peak = server.peak_rss_mib();
    assert!(peak < 300, "peak RSS {peak} MiB after the refused requests");
}

#[test]
fn a_request_over_the_whole_decode_budget_gets_422_and_one_within_it_is_served() {
    let server = common::Server::start(&["--max-decode-mib", "2"]);
    let predict = format!("{}/v1/predict?faces=whole", server.url);
    // 1200x1200 RGB: 4.3 MB of pixels, over the 2 MiB all requests may hold.
    let big = RgbImage::from_fn(1200, 1200, |x, y| image::Rgb([x as u8, y as u8, 0]));
    let mut bytes = Vec::new();
    big.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).unwrap();
    assert_error(post(&predict, "image/png", &bytes), 422, "decode budget");
    let (status, _, body) = post(&predict, "image/png", &png(&GrayImage::from_pixel(600, 600, image::Luma([90]))));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_request_over_the_time_limit_gets_503() {
    let server = common::Server::start(&["--timeout", "0.05"]);
    // A 4000x3000 photo takes far longer than 50 ms to decode and search for faces.
    let big = RgbImage::from_fn(4000, 3000, |x, y| image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8]));
    let mut bytes = Vec::new();
    big.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg).unwrap();
    let (status, _, body) = post(&format!("{}/v1/predict", server.url), "image/jpeg", &bytes);
    assert!(status == 503 || status == 408, "expected a timeout status, got {status}: {body}");
    assert!(body["error"].as_str().unwrap().contains("longer than"), "{body}");
}

#[test]
fn beyond_concurrency_and_queue_requests_get_503_with_retry_after() {
    let server = common::Server::start(&["--concurrency", "1", "--queue", "0"]);
    let url = format!("{}/v1/predict?faces=detect", server.url);
    let photo = std::fs::read(common::demo_photo_path()).unwrap();
    let results: Vec<(u16, Option<String>, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| post(&url, "image/jpeg", &photo))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let busy: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert_eq!(ok + busy.len(), 8, "only 200s and 503s: {:?}", results.iter().map(|r| r.0).collect::<Vec<_>>());
    assert!(ok >= 1 && !busy.is_empty(), "{ok} ok, {} busy", busy.len());
    for (_, retry, body) in busy {
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(body["error"].as_str().unwrap().contains("capacity"), "{body}");
    }
}

#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    let mut server = common::Server::start(&[]);
    let url = format!("{}/v1/predict?tta=ten-crop", server.url);
    let photo = two_face_photo();
    let in_flight = std::thread::spawn(move || post(&url, "image/jpeg", &photo));
    std::thread::sleep(Duration::from_millis(20));
    let exit = server.terminate();
    let (status, _, body) = in_flight.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(exit.success(), "server exit status {exit:?}");
}

#[test]
fn model_health_and_metrics_describe_the_service() {
    let server = common::Server::start(&[]);
    let (status, body) = get(&format!("{}/healthz", server.url));
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = get(&format!("{}/v1/model", server.url));
    let model: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200);
    assert_eq!(model["parameters"], 552_455);
    assert_eq!(model["classes"].as_array().unwrap().len(), 7);
    assert_eq!(model["version"], env!("CARGO_PKG_VERSION"));
    let (status, page) = get(&format!("{}/", server.url));
    assert_eq!(status, 200);
    assert!(page.contains("getUserMedia") && !page.contains("https://"), "page must work offline, without CDN assets");
    // The annotated PNGs' palette, written in by the server; an empty state that says what to do.
    assert!(page.contains(r##"const EMOTION_COLORS = {"angry":"#d62728","disgust":"#8c564b","fear":"#9467bd","happy":"#2ca02c""##), "palette not filled in");
    assert!(page.contains("Drop a photo here"), "no empty state");
    let (_, metrics) = get(&format!("{}/metrics", server.url));
    for name in ["ferlite_http_requests_total", "ferlite_http_request_duration_seconds_bucket", "ferlite_http_requests_in_flight"] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
}

/// 32 clients for 20 s: nothing but 200s (the queue holds them all) and the latency is printed.
#[test]
fn load_of_32_clients_for_20_seconds_has_no_server_errors() {
    let server = common::Server::start(&[]);
    let url = format!("{}/v1/predict", server.url);
    let photo = std::fs::read(common::demo_photo_path()).unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    let mut outcomes: Vec<(u16, f64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|_| {
                s.spawn(|| {
                    let mut seen = Vec::new();
                    while Instant::now() < until {
                        let t = Instant::now();
                        let (status, _, body) = post(&url, "image/jpeg", &photo);
                        if status != 200 {
                            eprintln!("{status}: {body}");
                        }
                        seen.push((status, t.elapsed().as_secs_f64() * 1000.0));
                    }
                    seen
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let failures: Vec<u16> = outcomes.iter().map(|o| o.0).filter(|s| *s != 200).collect();
    assert!(failures.is_empty(), "non-200 answers under load: {failures:?}");
    outcomes.sort_by(|a, b| a.1.total_cmp(&b.1));
    let pct = |p: f64| outcomes[((outcomes.len() - 1) as f64 * p) as usize].1;
    eprintln!("load: {} requests in 20 s from 32 clients, p50 {:.0} ms, p99 {:.0} ms", outcomes.len(), pct(0.5), pct(0.99));
    assert!(outcomes.len() >= 32);
}

/// A raw connection to the server, for what an HTTP client library will not do (drip, idle, half-close).
fn connect(url: &str) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(url.strip_prefix("http://").expect("http url")).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream
}

/// Everything the server sends until it closes the connection (or 30 s pass: then it panics).
fn read_to_close(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap_or_else(|e| panic!("server did not close the connection ({e}); got: {}", String::from_utf8_lossy(&answer)));
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn slow_headers_and_idle_keep_alive_connections_are_closed_at_the_header_timeout() {
    use std::io::Write;
    let server = common::Server::start(&["--header-timeout", "1"]);
    // A header dripped a byte every 200 ms: closed after about a second, long before the drip would end.
    let mut slow = connect(&server.url);
    let started = Instant::now();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    for byte in request {
        if slow.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(10), "a dripped header kept the connection open past 10 s");
    assert!(!read_to_close(&mut slow).contains("200 OK"), "the dripped request was answered");

    // One request answered, then silence: the server closes the keep-alive connection.
    let mut idle = connect(&server.url);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let answer = read_to_close(&mut idle);
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains(r#"{"status":"ok"}"#), "{answer}");
}

#[test]
fn connections_over_the_cap_get_a_json_503_and_the_server_recovers() {
    use std::io::Write;
    let server = common::Server::start(&["--max-connections", "2", "--header-timeout", "60"]);
    let held: Vec<_> = (0..2).map(|_| connect(&server.url)).collect();
    std::thread::sleep(Duration::from_millis(200)); // both accepted before the third arrives
    let mut third = connect(&server.url);
    let _ = third.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let answer = read_to_close(&mut third);
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("--max-connections 2") && answer.contains("\"status\":503"), "{answer}");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(&format!("{}/healthz", server.url)).0, 200, "served again once the held connections closed");
    let (_, metrics) = get(&format!("{}/metrics", server.url));
    assert!(metrics.contains("ferlite_connections_refused_total 1"), "{metrics}");
}

#[test]
fn a_client_that_half_closes_after_its_request_gets_the_answer_and_a_cut_upload_gets_400() {
    use std::io::Write;
    let server = common::Server::start(&[]);
    let face = png(&GrayImage::from_raw(48, 48, common::synthetic_face(3, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1))).unwrap());
    let head = |length: usize| format!("POST /v1/predict?faces=whole HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
    let mut whole = connect(&server.url);
    whole.write_all(head(face.len()).as_bytes()).unwrap();
    whole.write_all(&face).unwrap();
    whole.shutdown(std::net::Shutdown::Write).unwrap();
    let answer = read_to_close(&mut whole);
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("\"faces\""), "{answer}");

    let mut cut = connect(&server.url);
    cut.write_all(head(face.len()).as_bytes()).unwrap();
    cut.write_all(&face[..face.len() / 2]).unwrap();
    cut.shutdown(std::net::Shutdown::Write).unwrap();
    let answer = read_to_close(&mut cut);
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("\"status\":400"), "{answer}");
}

#[test]
fn a_wrong_method_gets_a_json_405() {
    let (status, body) = {
        let server = common::Server::start(&[]);
        let mut response = agent().get(&format!("{}/v1/predict", server.url)).call().expect("request completes");
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
    };
    assert_eq!(status, 405, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(json["status"], 405);
    assert!(json["error"].as_str().unwrap().contains("GET is not allowed on /v1/predict"), "{json}");
}

#[test]
fn shutdown_closes_a_stalled_upload_at_its_deadline_and_a_second_signal_exits_at_once() {
    use std::io::Write;
    for (flags, signals) in [(["--shutdown-timeout", "1"], 1), (["--shutdown-timeout", "600"], 2)] {
        let mut server = common::Server::start(&flags);
        // Half an upload, then nothing: graceful shutdown alone would wait for it forever.
        let mut stalled = connect(&server.url);
        write!(stalled, "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n").unwrap();
        stalled.write_all(&[0u8; 500]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        for _ in 0..signals {
            server.signal(libc::SIGTERM);
            std::thread::sleep(Duration::from_millis(300));
        }
        let exit = server.wait();
        assert!(exit.success(), "{flags:?}: exit status {exit:?}");
        assert!(started.elapsed() < Duration::from_secs(15), "{flags:?}, {signals} signal(s): exit took {:?}", started.elapsed());
    }
}

#[test]
fn a_request_whose_client_resets_the_connection_counts_as_abandoned() {
    use std::io::Write;
    let server = common::Server::start(&[]);
    let photo = two_face_photo();
    let mut gone = connect(&server.url);
    write!(gone, "POST /v1/predict?tta=ten-crop HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", photo.len()).unwrap();
    gone.write_all(&photo).unwrap();
    // Reset only once the request runs (the gauge counts it beside the /metrics request asking):
    // a reset before the server read the upload discards it unread.
    let metrics = || get(&format!("{}/metrics", server.url)).1;
    let running = (0..300).any(|_| metrics().contains("ferlite_http_requests_in_flight 2") || { std::thread::sleep(Duration::from_millis(10)); false });
    assert!(running, "the request never started: {}", metrics());
    // SO_LINGER 0: close sends a reset, as a killed client's kernel does.
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a socket we own, with a correctly sized linger struct.
    let set = unsafe { libc::setsockopt(std::os::fd::AsRawFd::as_raw_fd(&gone), libc::SOL_SOCKET, libc::SO_LINGER, (&linger as *const libc::linger).cast(), std::mem::size_of::<libc::linger>() as u32) };
    assert_eq!(set, 0);
    drop(gone);
    let counted = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        metrics().contains("ferlite_http_requests_abandoned_total 1")
    });
    assert!(counted, "{}", metrics());
}

/// Multipart uploads damaged in one to four places (bytes changed, cut, inserted: boundaries,
/// headers and image alike) each get a client error or an answer, never a 5xx, and the server
/// stays up. Seeded: a failure names the case.
#[test]
fn damaged_multipart_bodies_get_client_errors_never_server_errors() {
    use rand::Rng;
    let server = common::Server::start(&[]);
    let predict = format!("{}/v1/predict?faces=whole", server.url);
    let face = png(&GrayImage::from_raw(48, 48, common::synthetic_face(2, &mut rand_chacha::ChaCha8Rng::seed_from_u64(3))).unwrap());
    let mut valid = b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n".to_vec();
    valid.extend_from_slice(&face);
    valid.extend_from_slice(b"\r\n--XyZ--\r\n");
    assert_eq!(post(&predict, "multipart/form-data; boundary=XyZ", &valid).0, 200);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(40);
    let mut refused = 0;
    for case in 0..200 {
        let mut body = valid.clone();
        for _ in 0..rng.random_range(1..=4) {
            let at = rng.random_range(0..body.len());
            match rng.random_range(0..4) {
                0 => body[at] = rng.random(),
                1 => drop(body.drain(at..(at + rng.random_range(1..64)).min(body.len()))),
                2 => drop(body.splice(at..at, (0..rng.random_range(1..64)).map(|_| rng.random::<u8>()).collect::<Vec<_>>())),
                _ => body.truncate(at.max(1)),
            }
        }
        let (status, _, json) = post(&predict, "multipart/form-data; boundary=XyZ", &body);
        assert!(status == 200 || (400..500).contains(&status), "case {case}: {status} {json}");
        assert_eq!(json["status"].as_u64().unwrap_or(200), status as u64, "case {case}: {json}");
        refused += usize::from(status != 200);
    }
    assert!(refused > 0, "no damaged body was refused");
    assert_eq!(get(&format!("{}/healthz", server.url)).0, 200);
}

#[test]
fn frames_of_one_stream_keep_their_faces_track_ids_and_other_streams_start_their_own() {
    let server = common::Server::start(&[]);
    let photo = two_face_photo();
    let track_ids = |query: &str| -> Vec<u64> {
        let (status, _, body) = post(&format!("{}/v1/predict?{query}", server.url), "image/jpeg", &photo);
        assert_eq!(status, 200, "{body}");
        let mut by_x: Vec<(i64, u64)> = body["faces"].as_array().unwrap().iter().map(|f| (f["box"]["x"].as_i64().unwrap(), f["track_id"].as_u64().unwrap())).collect();
        by_x.sort();
        by_x.into_iter().map(|(_, id)| id).collect()
    };
    let first = track_ids("stream=cam-a&smooth=0.5");
    assert_eq!(first.len(), 2);
    for _ in 0..3 {
        assert_eq!(track_ids("stream=cam-a&smooth=0.5"), first, "the same faces keep their ids");
    }
    // Another stream numbers its own faces; a still photo (no stream) gets no track ids.
    let mut other = track_ids("stream=cam-b");
    other.sort();
    assert_eq!(other, [1, 2]);
    let (status, _, body) = post(&format!("{}/v1/predict", server.url), "image/jpeg", &photo);
    assert_eq!(status, 200);
    assert!(body["faces"].as_array().unwrap().iter().all(|f| f.get("track_id").is_none()), "{body}");
    assert_error(post(&format!("{}/v1/predict?smooth=1", server.url), "image/jpeg", &photo), 400, "smooth needs stream");
    assert_error(post(&format!("{}/v1/predict?stream=a%20b", server.url), "image/jpeg", &photo), 400, "stream");
    assert_error(post(&format!("{}/v1/predict?stream=a&smooth=100", server.url), "image/jpeg", &photo), 400, "smooth");
}
