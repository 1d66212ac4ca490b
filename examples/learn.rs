//! Stand-alone runner of `hdpf learn` until the CLI wires it:
//! `cargo run --release --example learn -- --out DIR [flags of hdpf learn]`.

use clap::Parser;
use hdpf::learn::{run, LearnArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    learn: LearnArgs,
}

fn main() -> hdpf::Result<()> {
    run(&Cli::parse().learn)?;
    Ok(())
}
