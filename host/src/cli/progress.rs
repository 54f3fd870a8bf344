//! A job's progress on stderr while a command waits for it: an animated bar
//! (indicatif) on a terminal, else plain lines such as `job ID: 12/30 (40%) Active`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use super::output;

/// A plain line at most this often while only the counts or message change.
pub const PLAIN_EVERY: Duration = Duration::from_secs(1);
/// A plain line at least this often, even when nothing changed.
pub const PLAIN_HEARTBEAT: Duration = Duration::from_secs(15);

/// What is shown of a job's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub state: String,
    pub done: u64,
    pub total: u64,
    /// As the API gave it: `40` or `33.3`.
    pub percent: String,
    pub eta: Option<String>,
    pub message: Option<String>,
}

impl Snapshot {
    /// The progress of a job as `GET /api/v1/jobs/{id}` answers it.
    pub fn of(job: &Value) -> Snapshot {
        let p = &job["progress"];
        Snapshot {
            state: output::text(&job["state"]),
            done: p["done"].as_u64().unwrap_or(0),
            total: p["total"].as_u64().unwrap_or(0),
            percent: output::percent(&p["percent"]),
            eta: output::eta(&p["eta"]),
            message: p["message"]
                .as_str()
                .filter(|m| !m.is_empty())
                .map(str::to_string),
        }
    }

    /// The bar's message: state, ETA and the job's progress message.
    pub fn bar_message(&self) -> String {
        let mut text = self.state.clone();
        if let Some(eta) = &self.eta {
            text.push_str(&format!(", ETA {eta}"));
        }
        if let Some(message) = &self.message {
            text.push_str(&format!(": {message}"));
        }
        text
    }
}

/// The plain line for a job: `job ID: 12/30 (40%) Active, ETA 5s: message`.
pub fn plain_line(id: &str, s: &Snapshot) -> String {
    format!(
        "job {id}: {}/{} ({}%) {}",
        s.done,
        s.total,
        s.percent,
        s.bar_message()
    )
}

/// Whether a plain line is due: always for a first line or a new state, when
/// counts or message changed and `PLAIN_EVERY` passed, or after `PLAIN_HEARTBEAT`.
pub fn line_due(last: Option<&Snapshot>, now: &Snapshot, since_last: Duration) -> bool {
    match last {
        None => true,
        Some(last) if last.state != now.state => true,
        Some(last) if last == now => since_last >= PLAIN_HEARTBEAT,
        Some(_) => since_last >= PLAIN_EVERY,
    }
}

enum Display {
    /// The bar, and whether it shows counts yet (not while the job plans).
    Bar(ProgressBar, bool),
    Plain {
        last: Option<Snapshot>,
        at: Instant,
    },
}

/// The progress display of one job.
pub struct Progress {
    id: String,
    display: Display,
}

impl Progress {
    /// A bar when stderr is a terminal, else plain lines.
    pub fn new(id: &str) -> Progress {
        let display = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(style("{spinner:.green} {wide_msg}"));
            bar.enable_steady_tick(Duration::from_millis(120));
            Display::Bar(bar, false)
        } else {
            Display::Plain {
                last: None,
                at: Instant::now(),
            }
        };
        Progress {
            id: id.to_string(),
            display,
        }
    }

    /// Shows the job's latest state (a plain line only when one is due).
    pub fn show(&mut self, job: &Value) {
        self.update(job, false);
    }

    fn update(&mut self, job: &Value, force: bool) {
        let now = Snapshot::of(job);
        match &mut self.display {
            Display::Bar(bar, counted) => {
                if now.total > 0 && !*counted {
                    *counted = true;
                    bar.set_style(style(
                        "{spinner:.green} [{bar:30.cyan/blue}] {pos}/{len} ({percent}%) {wide_msg}",
                    ));
                }
                bar.set_length(now.total);
                bar.set_position(now.done);
                bar.set_message(now.bar_message());
            }
            Display::Plain { last, at } => {
                let due = line_due(last.as_ref(), &now, at.elapsed());
                if due || (force && last.as_ref() != Some(&now)) {
                    eprintln!("{}", plain_line(&self.id, &now));
                    *last = Some(now);
                    *at = Instant::now();
                }
            }
        }
    }

    /// Prints a line on stdout without tearing the bar.
    pub fn println(&self, line: &str) {
        match &self.display {
            Display::Bar(bar, _) => bar.suspend(|| println!("{line}")),
            Display::Plain { .. } => println!("{line}"),
        }
    }

    /// Shows the job as it ended and stops the animation (the bar stays drawn).
    pub fn finish(&mut self, job: &Value) {
        self.update(job, true);
        if let Display::Bar(bar, _) = &self.display {
            bar.finish();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snap(state: &str, done: u64) -> Snapshot {
        Snapshot::of(&json!({
            "state": state,
            "progress": {"done": done, "total": 100, "percent": done as f64, "message": null, "eta": null}
        }))
    }

    #[test]
    fn plain_lines_show_counts_percent_state_eta_and_message() {
        let job = json!({
            "state": "Active",
            "progress": {"done": 40, "total": 100, "percent": 40.0, "message": "copying",
                         "eta": {"value": 12, "unit": "seconds"}}
        });
        assert_eq!(
            plain_line("j1", &Snapshot::of(&job)),
            "job j1: 40/100 (40%) Active, ETA 12s: copying"
        );
        assert_eq!(
            plain_line("j1", &snap("Ready", 0)),
            "job j1: 0/100 (0%) Ready"
        );
    }

    #[test]
    fn plain_lines_come_on_change_at_most_every_second_and_as_a_heartbeat() {
        let ms = Duration::from_millis;
        assert!(line_due(None, &snap("Ready", 0), ms(0)));
        assert!(line_due(
            Some(&snap("Ready", 0)),
            &snap("Active", 0),
            ms(10)
        ));
        assert!(!line_due(
            Some(&snap("Active", 1)),
            &snap("Active", 2),
            ms(300)
        ));
        assert!(line_due(
            Some(&snap("Active", 1)),
            &snap("Active", 2),
            PLAIN_EVERY
        ));
        assert!(!line_due(
            Some(&snap("Active", 2)),
            &snap("Active", 2),
            ms(5000)
        ));
        assert!(line_due(
            Some(&snap("Active", 2)),
            &snap("Active", 2),
            PLAIN_HEARTBEAT
        ));
    }
}
