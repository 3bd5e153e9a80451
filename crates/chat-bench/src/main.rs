//! `chat-bench`: parse the command line, raise the open-file limit, run one mode, print the
//! report, and exit non-zero if the run failed.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use chat_bench::cli::{Cli, Command, Proto};
use chat_bench::driver::{chat::Chat, line::Line, nats::Nats, redis::Redis, text::Text};
use chat_bench::measure::Report;
use chat_bench::mode::{self, Bench};
use chat_bench::{ceiling, payload};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Runs `$body` with `$bench` bound to a [`Bench`] of the driver `$common.proto` names.
macro_rules! with_driver {
    ($common:expr, |$bench:ident| $body:expr) => {
        match $common.proto {
            Proto::Chat => {
                let $bench = Bench::new(Chat, $common.clone())?;
                $body.await
            }
            Proto::Text => {
                let $bench = Bench::new(Text, $common.clone())?;
                $body.await
            }
            Proto::Redis => {
                let $bench = Bench::new(Redis, $common.clone())?;
                $body.await
            }
            Proto::Nats => {
                let $bench = Bench::new(Nats, $common.clone())?;
                $body.await
            }
            Proto::Line => {
                let $bench = Bench::new(Line, $common.clone())?;
                $body.await
            }
        }
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = match &cli.command {
        Command::Fanout(a) => a.common.json,
        Command::Latency(a) => a.common.json,
        Command::Mix(a) => a.common.json,
        Command::Idle(a) => a.common.json,
        Command::Slow(a) => a.common.json,
        Command::Ceiling(_) => false,
    };
    match run(cli) {
        Ok(Some(report)) => {
            if json {
                match serde_json::to_string(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("chat-bench: {e}"),
                }
            } else {
                println!("{}", report.line());
            }
            match &report.failure {
                None => ExitCode::SUCCESS,
                Some(why) => {
                    eprintln!("chat-bench: run FAILED: {why}");
                    ExitCode::FAILURE
                }
            }
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<Option<Report>> {
    // 10,000 connections need more than the usual 1024 descriptors.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    payload::start_clock();
    let threads = match &cli.command {
        Command::Fanout(a) => a.common.threads,
        Command::Latency(a) => a.common.threads,
        Command::Mix(a) => a.common.threads,
        Command::Idle(a) => a.common.threads,
        Command::Slow(a) => a.common.threads,
        Command::Ceiling(a) => a.threads,
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build().context("tokio runtime")?;
    rt.block_on(async move {
        let report = match cli.command {
            Command::Ceiling(a) => {
                let listener = tokio::net::TcpListener::bind(a.bind)
                    .await
                    .with_context(|| format!("bind {}", a.bind))?;
                let stop = CancellationToken::new();
                let timer = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs_f64(a.run_for)) => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                    timer.cancel();
                });
                ceiling::run(listener, stop).await?;
                return Ok(None);
            }
            Command::Fanout(a) => with_driver!(a.common, |b| mode::fanout::run(&b, &a))?,
            Command::Latency(a) => with_driver!(a.common, |b| mode::latency::run(&b, &a))?,
            Command::Mix(a) => with_driver!(a.common, |b| mode::mix::run(&b, &a))?,
            Command::Idle(a) => with_driver!(a.common, |b| mode::idle::run(&b, &a))?,
            Command::Slow(a) => with_driver!(a.common, |b| mode::slow::run(&b, &a))?,
        };
        Ok(Some(report))
    })
}
