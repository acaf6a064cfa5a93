use anyhow::{Context, Result};
use ferlite_serve::{serve, AppState, ServeConfig};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
#[command(after_help = "Routes: POST /v1/predict (image body or multipart; ?faces=auto|detect|whole&tta=none|flip|ten-crop), \
GET /v1/model, GET /healthz, GET /metrics (Prometheus), GET / (web page: photo upload and live webcam).\n\n\
Binds to loopback by default. To reach it from other machines, bind all interfaces (--addr 0.0.0.0:8080) \
behind a reverse proxy that adds TLS and authentication; ferlite itself has neither.")]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    #[command(flatten)]
    model: super::ModelArgs,
    /// Largest request body in MiB (over 0, at most 4096); larger uploads get 413.
    #[arg(long, default_value_t = 10.0, value_parser = over_zero_at_most(4096.0))]
    max_body_mib: f64,
    /// Largest image in megapixels (over 0, at most 100, predict's limit); larger get 422 before decoding.
    /// The default takes a 24 MP camera's photos; detection works on at most ~1280 px a side anyway.
    #[arg(long, default_value_t = 25.0, value_parser = over_zero_at_most(100.0))]
    max_megapixels: f64,
    /// MiB of decoded pixels all requests may hold at once (over 0, at most 1,048,576); a request
    /// waits for its share, and one that alone needs more (a 16-bit or RGBA image counts its bytes) gets 422.
    #[arg(long, default_value_t = 1024.0, value_parser = over_zero_at_most(1_048_576.0))]
    max_decode_mib: f64,
    /// Requests processed at once, 1 to 1024 (default: number of cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: Option<u16>,
    /// Requests allowed to wait for a free worker (0 to 1,000,000); more get 503 with Retry-After.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    queue: u32,
    /// Seconds a request may take in all (over 0, at most a day); past it, 503 (or 408 while still uploading).
    #[arg(long, default_value_t = 30.0, value_parser = over_zero_at_most(86_400.0))]
    timeout: f64,
    /// Seconds to wait for a complete request header, from when the connection opens or its last
    /// answer was sent: closes slow-header and idle keep-alive connections (over 0, at most an hour).
    #[arg(long, default_value_t = 10.0, value_parser = over_zero_at_most(3_600.0))]
    header_timeout: f64,
    /// Connections open at once, 1 to 1,000,000; more are answered 503 and closed (keep it under the fd limit, `ulimit -n`).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Seconds open connections get to finish after SIGTERM or Ctrl-C (over 0, at most an hour); a second signal exits at once.
    #[arg(long, default_value_t = 10.0, value_parser = over_zero_at_most(3_600.0))]
    shutdown_timeout: f64,
}

/// A flag's number: finite, over 0 and at most `max` (a limit of 0, NaN or 1e300 is a typo, and
/// would refuse every request or overflow a duration).
fn over_zero_at_most(max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone {
    move |value| {
        let v: f64 = value.parse().map_err(|e| format!("{e}"))?;
        if v > 0.0 && v <= max {
            Ok(v)
        } else {
            Err(format!("expected a number over 0 and at most {max}, not {value}"))
        }
    }
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let predictor = args.model.load()?;
    let config = ServeConfig {
        max_body_bytes: (args.max_body_mib * 1024.0 * 1024.0) as usize,
        max_pixels: (args.max_megapixels * 1e6) as u64,
        max_decode_bytes: (args.max_decode_mib * 1024.0 * 1024.0) as u64,
        concurrency: args.concurrency.map_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()), usize::from),
        queue: args.queue as usize,
        request_timeout: Duration::from_secs_f64(args.timeout),
        header_timeout: Duration::from_secs_f64(args.header_timeout),
        max_connections: args.max_connections as usize,
        shutdown_timeout: Duration::from_secs_f64(args.shutdown_timeout),
    };
    // Folded now rather than on the first request, which would otherwise wait for it.
    predictor.fast();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("cannot listen on {}", args.addr))?;
        let addr = listener.local_addr()?;
        let c = &config;
        tracing::info!(
            "model {} ({} parameters); limits: body {} MiB, image {} MP, decoding {} MiB, {} requests at once and {} waiting, {} s a request, {} s for a header, {} connections",
            predictor.source,
            predictor.network.num_params(),
            args.max_body_mib,
            args.max_megapixels,
            args.max_decode_mib,
            c.concurrency,
            c.queue,
            args.timeout,
            args.header_timeout,
            c.max_connections
        );
        // On stdout so scripts and tests can read the address when they asked for port 0.
        println!("listening on http://{addr}");
        serve(listener, AppState::new(predictor, config)).await
    })?;
    // Inference still running on the blocking pool after the deadline is abandoned, not awaited.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(ExitCode::SUCCESS)
}
