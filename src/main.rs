//! The `hdpf` command-line interface: one subcommand per job, each a thin wrapper over a library
//! function that takes the same arguments (so launch files and tests run exactly what the CLI runs).

use clap::{Parser, Subcommand};
use hdpf::pose::synth;
use std::process::ExitCode;

/// High-dimensional particle filters for robotic state estimation.
#[derive(Parser, Debug)]
#[command(name = "hdpf", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Datasets: generate synthetic BOP-format recordings.
    Dataset {
        #[command(subcommand)]
        command: DatasetCommand,
    },
}

#[derive(Subcommand, Debug)]
enum DatasetCommand {
    /// Render a synthetic BOP-format RGB-D sequence with ground truth.
    Synth(synth::SynthArgs),
}

fn run(cli: Cli) -> hdpf::Result<()> {
    match cli.command {
        Some(Command::Dataset {
            command: DatasetCommand::Synth(args),
        }) => synth::run(&args),
        None => {
            use clap::CommandFactory;
            Cli::command()
                .print_help()
                .map_err(|e| hdpf::Error::Other(e.to_string()))
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
