//! The process's `tracing` output on standard error: human-readable text, or
//! one JSON object per line (timestamp, level, target, message, fields) for log collectors.

use std::sync::OnceLock;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `TIMESTAMP LEVEL target: message key=value ...`
    #[default]
    Text,
    /// `{"timestamp":...,"level":...,"target":...,"message":...,"job":...}`
    Json,
}

/// The default filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,wasmtime=warn,cranelift=warn";

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the global subscriber writing to standard error in `format`,
/// filtered by `RUST_LOG` (else [`DEFAULT_FILTER`]). Call once, first thing.
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| DEFAULT_FILTER.into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// True when standard error carries JSON lines only, so nothing else may be printed there.
pub fn is_json() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}
