//! Entry point: the CLI, and (with no command) the viewer on the demo study.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    StderrLogger::install();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: most of the library's errors already quote
/// their cause in their own message, so a cause whose words are already there is not
/// repeated ("no such file or folder: no such file or folder").
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// The library's `log` records on stderr as bare lines, as its messages always looked:
/// warnings and errors by default, debug too with `HEPAVIEW_LOG=debug` (or
/// `HEPAVIEW_PROFILE=1`, the Demons timing it used to print). Only this crate's records:
/// wgpu's and eframe's, which went nowhere before there was a logger, still do.
struct StderrLogger;

impl StderrLogger {
    fn install() {
        let wanted = std::env::var("HEPAVIEW_LOG").ok().and_then(|v| v.parse::<log::LevelFilter>().ok());
        let profile = std::env::var_os("HEPAVIEW_PROFILE").is_some().then_some(log::LevelFilter::Debug);
        let level = wanted.max(profile).unwrap_or(log::LevelFilter::Warn);
        if log::set_logger(&StderrLogger).is_ok() {
            log::set_max_level(level);
        }
    }
}

impl log::Log for StderrLogger {
    fn enabled(&self, meta: &log::Metadata) -> bool {
        meta.level() <= log::max_level() && meta.target().split("::").next() == Some("hepaview")
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("{}", record.args());
        }
    }
    fn flush(&self) {}
}
