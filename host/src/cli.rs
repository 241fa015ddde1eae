//! Command-line interface (DESIGN.md "Interfaces of the binary").

use crate::replay::{self, InputError, ReplayOptions};
use crate::runtime::{Limits, Runtime};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Screenshots of live H.264 streams: I-frames only, no transcoding.
#[derive(Debug, Parser)]
#[command(name = "livesnap", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay a recorded FLV file as one push: store its screenshots and write its callbacks.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// The FLV file to replay.
    file: PathBuf,
    /// Directory for objects: each is stored at DIR/{bucket}/{key}.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// App name ([A-Za-z0-9_.-]{1,128}).
    #[arg(long, default_value = "live")]
    app: String,
    /// Stream name; defaults to the file stem.
    #[arg(long)]
    stream: Option<String>,
    /// Minimum seconds between two captures (1..=3600).
    #[arg(long, default_value_t = 20, value_name = "S")]
    interval: u32,
    /// Keep one picture per stream (record/{App}/{Stream}/picture/{Stream}.jpg), overwritten.
    #[arg(long)]
    overwrite: bool,
    /// Scale down so the short side is N pixels (never upscale).
    #[arg(long, value_name = "N")]
    shortside: Option<u32>,
    /// JPEG quality step 1-10 (JPEG quality 10×N; default JPEG quality 80).
    #[arg(long, value_name = "1-10")]
    quality: Option<u8>,
    /// Push start time, Unix ms (default: now). Fix it for reproducible keys.
    #[arg(long, value_name = "MS")]
    start_ms: Option<u64>,
    /// Session id (default: random). Fix it for reproducible keys.
    #[arg(long, value_name = "N")]
    session_id: Option<u32>,
    /// Bucket name.
    #[arg(long, default_value = "livesnap")]
    bucket: String,
    /// Tenant name, echoed in callbacks.
    #[arg(long, default_value = "local")]
    uniqname: String,
    /// Write each callback body as a JSON line to FILE, or `-` for stdout.
    #[arg(long, value_name = "FILE|-")]
    callbacks: Option<PathBuf>,
}

/// Run the command line; returns the process exit code (0 ok, 1 runtime failure, 2 bad input).
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Replay(args) => match replay_command(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("livesnap: error: {e:#}");
                if e.downcast_ref::<InputError>().is_some() {
                    ExitCode::from(2)
                } else {
                    ExitCode::FAILURE
                }
            }
        },
    }
}

fn replay_command(args: ReplayArgs) -> anyhow::Result<()> {
    let opts = ReplayOptions {
        input: args.file,
        out: args.out,
        app: args.app,
        stream: args.stream,
        interval_s: args.interval,
        overwrite: args.overwrite,
        shortside_px: args.shortside,
        quality: args.quality,
        start_ms: args.start_ms,
        session_id: args.session_id,
        bucket: args.bucket,
        uniqname: args.uniqname,
        callbacks: args.callbacks,
    };
    let total = std::fs::metadata(&opts.input).map(|m| m.len()).unwrap_or(0);
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {bar:40} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let runtime = Runtime::new(Limits::default())?;
    let summary = replay::replay(&runtime, &opts, &mut |pos| bar.set_position(pos))?;
    bar.finish_and_clear();
    eprintln!("livesnap: {}", summary.line());
    if let Some(why) = &summary.truncated {
        eprintln!("livesnap: warning: {why}");
    }
    Ok(())
}
