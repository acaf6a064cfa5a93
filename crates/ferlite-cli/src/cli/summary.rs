use anyhow::Result;
use ferlite::model::{Network, NetworkConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct SummaryArgs {
    /// Summarise the network stored in this weights file instead of the paper preset.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: SummaryArgs) -> Result<ExitCode> {
    let net = match &args.model {
        Some(p) => Network::load(p)?,
        None => Network::new(NetworkConfig::paper(), 0),
    };
    let rows = net.summary();
    let total_params: usize = rows.iter().map(|r| r.params).sum();
    let total_macs: usize = rows.iter().map(|r| r.mult_adds).sum();
    if args.json {
        let json = serde_json::json!({ "layers": rows, "trainable_parameters": total_params, "mult_adds_per_image": total_macs, "config": net.config });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<46} {:>14} {:>10} {:>14}", "layer", "output", "params", "mult-adds");
    println!("{}", "-".repeat(87));
    println!("{:<46} {:>14} {:>10} {:>14}", "input (48x48 gray face)", "[1, 48, 48]", 0, 0);
    for r in &rows {
        let shape = format!("{:?}", r.output);
        println!("{:<46} {:>14} {:>10} {:>14}", r.name, shape, group(r.params), group(r.mult_adds));
    }
    println!("{}", "-".repeat(87));
    println!("trainable parameters: {} (batch-norm running statistics not counted: {})", group(total_params), group(net.buffers.len()));
    println!("multiply-adds per image: {} ({:.1} M)", group(total_macs), total_macs as f64 / 1e6);
    Ok(ExitCode::SUCCESS)
}

/// 552455 -> "552,455".
fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
