//! Stand-alone runner of `hdpf learn` until the CLI wires it: `cargo run --release --example learn -- --out DIR`.
//! `--speed N` runs the WPF-vs-SGD speed benchmark with N particles instead.

use clap::Parser;
use hdpf::learn::{bench, run, LearnArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    learn: LearnArgs,
    /// Run the speed benchmark with this many particles instead of the study.
    #[arg(long)]
    speed: Option<usize>,
}

fn main() -> hdpf::Result<()> {
    let cli = Cli::parse();
    if let Some(n) = cli.speed {
        let r = bench::speed(n, &[1, 2], 3)?;
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return Ok(());
    }
    run(&cli.learn)?;
    Ok(())
}
