//! The `hdpf` command-line interface: one subcommand per job, each a thin wrapper over a library
//! function that takes the same arguments (so launch files and tests run exactly what the CLI runs).

use clap::{Parser, Subcommand};
use hdpf::app::bench;
use hdpf::app::fetch;
use hdpf::app::launch;
use hdpf::app::learn;
use hdpf::app::{dataset as synth, study, track as commands};
use hdpf::domains::recording::{mcap_bop, mcap_info};
use std::process::ExitCode;

/// High-dimensional particle filters for robotic state estimation.
#[derive(Parser, Debug)]
#[command(name = "hdpf", version, about)]
struct Cli {
    /// Folder of the shared datasets (default: `$HDPF_DATASETS`, else `../shared/datasets`
    /// relative to the working directory).
    #[arg(long, global = true, value_name = "DIR")]
    datasets: Option<std::path::PathBuf>,
    /// Memory hdpf may plan to use (bytes, or with K/M/G/T: `--max-memory 4G`); sizes a user
    /// supplies (particles, images, recordings, queues) that would need more are refused before
    /// anything is allocated. Default: `$HDPF_MAX_MEMORY`, else the memory available now.
    #[arg(long, global = true, value_name = "BYTES")]
    max_memory: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Track the objects of a recorded BOP scene; writes BOP19 results and prints the summary.
    Track(commands::TrackArgs),
    /// Evaluate any BOP19 results file (ADD, ADD-S, AUC All/Average, rotation/translation error).
    Eval(commands::EvalArgs),
    /// Run a launch file (TOML): a pipeline, a control loop or a benchmark, written down.
    Launch(launch::LaunchArgs),
    /// Continual learning on SplitDigits with the particle filter as the optimizer.
    Learn(learn::LearnArgs),
    /// Benchmarks and studies.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Publish a recording over zenoh as a ROS 2 camera would (rmw_zenoh conventions).
    #[cfg(feature = "zenoh")]
    Replay(hdpf::app::replay::ReplayArgs),
    /// (Built without the `zenoh` feature: says how to get `hdpf replay`.)
    #[cfg(not(feature = "zenoh"))]
    #[command(hide = true)]
    Replay {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Datasets: synthesize, convert (BOP scene <-> MCAP), inspect MCAP files, fetch.
    Dataset {
        #[command(subcommand)]
        command: DatasetCommand,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// The RF-PF paper's synthetic localization experiment (KL to the posterior vs iterations).
    Localization(bench::localization::LocalizationArgs),
    /// Dynamic linear-Gaussian tracking against the Kalman filter (RMSE ratio, NEES, time).
    Tracking(bench::tracking::TrackingArgs),
    /// Time one filter update on the localization model; prints one JSON line.
    Step(bench::step::StepArgs),
    /// Run a launch file for a set time; RSS and latency per minute, drops accounted (soak.csv/json/png).
    Soak(bench::soak::SoakArgs),
    /// The zenoh hop on loopback: frames lost in lossless mode and hop latency p50/p99; one JSON line.
    #[cfg(feature = "zenoh")]
    Zenoh(bench::zenoh::ZenohBenchArgs),
    /// Synthetic fast-motion pose study: filters × particle counts, joint vs per-object.
    Pose(study::StudyArgs),
}

#[derive(Subcommand, Debug)]
enum DatasetCommand {
    /// Render a synthetic BOP-format RGB-D sequence with ground truth.
    Synth(synth::SynthArgs),
    /// Convert a BOP scene folder to an MCAP recording (ROS 2 messages) or back, losslessly.
    Convert(mcap_bop::ConvertArgs),
    /// Topics, schemas, message counts and time range of any MCAP file.
    Info(mcap_info::InfoArgs),
    /// Download, verify and unpack a dataset hdpf knows (see datasets/).
    Fetch(fetch::FetchArgs),
}

fn run(cli: Cli) -> hdpf::Result<()> {
    if let Some(dir) = cli.datasets {
        hdpf::core::datasets::set_root(dir);
    }
    match &cli.max_memory {
        Some(limit) => hdpf::core::memory::set_limit(limit).map(|_| ())?,
        None => hdpf::core::memory::check_env()?,
    }
    match cli.command {
        Some(Command::Dataset {
            command: DatasetCommand::Synth(args),
        }) => synth::run(&args),
        Some(Command::Dataset {
            command: DatasetCommand::Convert(a),
        }) => mcap_bop::run_convert(&a).map(drop),
        Some(Command::Dataset {
            command: DatasetCommand::Info(a),
        }) => mcap_info::run_info(&a).map(drop),
        Some(Command::Dataset {
            command: DatasetCommand::Fetch(a),
        }) => fetch::run(&a).map(drop),
        #[cfg(feature = "zenoh")]
        Some(Command::Replay(args)) => hdpf::app::replay::run(&args).map(drop),
        #[cfg(not(feature = "zenoh"))]
        Some(Command::Replay { .. }) => Err(hdpf::Error::Other(format!(
            "hdpf replay publishes over zenoh: {}",
            launch::plugins::missing_feature("zenoh")
        ))),
        Some(Command::Track(args)) => commands::run_track(&args).map(drop),
        Some(Command::Eval(args)) => commands::run_eval(&args).map(drop),
        Some(Command::Launch(args)) => launch::run(&args),
        Some(Command::Learn(args)) => learn::run(&args).map(drop),
        Some(Command::Bench { command }) => run_bench(command),
        None => {
            eprintln!(
                "hdpf: no subcommand given; running the demo (launch/demo.toml): a synthetic \
                 sequence tracked with rfpf and sir, saved to demo.rrd (see `hdpf --help`)"
            );
            launch::run_demo()
        }
    }
}

fn run_bench(command: BenchCommand) -> hdpf::Result<()> {
    match command {
        BenchCommand::Localization(a) => hdpf::outln!("{}", bench::localization::run(&a)?),
        BenchCommand::Tracking(a) => hdpf::outln!("{}", bench::tracking::run(&a)?),
        BenchCommand::Step(a) => hdpf::outln!("{}", bench::step::run(&a)?),
        BenchCommand::Soak(a) => {
            hdpf::outln!("{}", bench::soak::describe_report(&bench::soak::run(&a)?))
        }
        #[cfg(feature = "zenoh")]
        BenchCommand::Zenoh(a) => {
            let r = bench::zenoh::run(&a)?;
            hdpf::outln!(
                "{}",
                serde_json::to_string(&r).map_err(|e| hdpf::Error::Other(e.to_string()))?
            )
        }
        BenchCommand::Pose(args) => {
            // Printed before the files are written, so a failed write loses no result.
            let table = study::pose_study(&args.study)?;
            hdpf::outln!("{table}");
            table.write(&args.out)?
        }
    }
    Ok(())
}

/// Whether `cli` runs a streaming pipeline for as long as its input lasts (a live source, a
/// recording, a soak): those hand free memory back every second ([`hdpf::app::allocator`]); the
/// timing benchmarks and one-shot commands keep the allocator undisturbed.
fn long_running(cli: &Cli) -> bool {
    match &cli.command {
        None | Some(Command::Track(_) | Command::Launch(_)) => true,
        #[cfg(feature = "zenoh")]
        Some(Command::Replay(_)) => true,
        Some(Command::Bench {
            command: BenchCommand::Soak(_),
        }) => true,
        // The hop it times is a streaming receiver's, which trims as `track` and `launch` do.
        #[cfg(feature = "zenoh")]
        Some(Command::Bench {
            command: BenchCommand::Zenoh(_),
        }) => true,
        _ => false,
    }
}

fn main() -> ExitCode {
    hdpf::app::allocator::release_large_buffers();
    let cli = Cli::parse();
    if long_running(&cli) {
        hdpf::app::allocator::start_trimming(std::time::Duration::from_secs(1));
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
