//! The client commands of `wasmq`: submit (and wait), jobs, logs and plugins
//! against a running server, with tables or `--json` and documented exit codes.

pub mod client;
pub mod config;
pub mod exitcode;
pub mod output;
pub mod progress;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use client::{Client, ClientError};
use config::{ConfigError, Layer, Output, Settings};
use progress::Progress;

/// How often a waiting command asks the server about the job.
const POLL: Duration = Duration::from_millis(300);
/// `logs -f` keeps reading this long after the job ended, for the lines logged as it ends.
const LOG_GRACE: Duration = Duration::from_secs(1);
/// The largest log page the API gives.
const LOG_PAGE: u64 = 10_000;

/// Where settings come from, for `--help`.
pub const SETTINGS_HELP: &str = "\
Settings: --server and --token, else WASMQ_SERVER and WASMQ_TOKEN, else the config
file ($WASMQ_CONFIG, else $XDG_CONFIG_HOME/wasmq/config.toml or ~/.config/wasmq/config.toml;
TOML keys server, token, output = \"table\" | \"json\"), else http://127.0.0.1:8080.";

/// The text after each client command's `--help`: settings and exit codes.
pub fn after_help() -> String {
    format!("{SETTINGS_HELP}\n\n{}", exitcode::TABLE)
}

/// The server, token and output format of a client command.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Connection {
    /// The server's URL [env: WASMQ_SERVER] [default: http://127.0.0.1:8080].
    #[arg(long)]
    pub server: Option<String>,
    /// An API token (see `wasmq token create`) [env: WASMQ_TOKEN].
    #[arg(long)]
    pub token: Option<String>,
    /// Prints the API's JSON on stdout, one document and nothing else (same as --output json).
    #[arg(long, conflicts_with = "output")]
    pub json: bool,
    /// table or json [env: WASMQ_OUTPUT] [default: table].
    #[arg(long, value_enum)]
    pub output: Option<Output>,
}

impl Connection {
    fn layer(&self) -> Layer {
        Layer {
            server: self.server.clone(),
            token: self.token.clone(),
            output: if self.json {
                Some(Output::Json)
            } else {
                self.output
            },
        }
    }
}

/// `wasmq submit`.
#[derive(clap::Args, Debug)]
#[command(after_help = after_help())]
pub struct SubmitArgs {
    /// The job type, e.g. delete.
    #[arg(long = "type")]
    pub job_type: String,
    /// The root asset path of the operation.
    #[arg(long)]
    pub path: String,
    /// A path under --path to leave alone (repeatable).
    #[arg(long = "exclude")]
    pub excluded: Vec<String>,
    /// Params as a JSON object, or @FILE to read them from a file (@- for stdin).
    #[arg(long)]
    pub params: Option<String>,
    /// A name, unique among the tenant's jobs.
    #[arg(long)]
    pub name: Option<String>,
    /// What the job is for; `jobs list --text` searches it.
    #[arg(long)]
    pub description: Option<String>,
    /// Free text kept with the job.
    #[arg(long)]
    pub comments: Option<String>,
    /// Larger runs first.
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// The job's locale (e.g. fr-FR), for its notifications.
    #[arg(long)]
    pub locale: Option<String>,
    /// Where the notification of the job's end goes.
    #[arg(long)]
    pub submitter_email: Option<String>,
    /// The job waits for `jobs confirm` after planning.
    #[arg(long)]
    pub require_confirmation: bool,
    /// Starts the job later: an RFC 3339 time.
    #[arg(long)]
    pub run_at: Option<String>,
    /// Waits until the job ends with a progress bar on stderr; the exit code says how it ended.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub connection: Connection,
}

/// A command on one job.
#[derive(clap::Args, Debug)]
#[command(after_help = after_help())]
pub struct IdArgs {
    /// The job id.
    pub id: String,
    #[command(flatten)]
    pub connection: Connection,
}

/// `wasmq jobs list`.
#[derive(clap::Args, Debug)]
#[command(after_help = after_help())]
pub struct ListArgs {
    /// Only jobs in this state (e.g. Active, Complete, Failed).
    #[arg(long)]
    pub state: Option<String>,
    /// Only jobs of this type.
    #[arg(long = "type")]
    pub job_type: Option<String>,
    /// Only jobs with this text in their name or description.
    #[arg(long)]
    pub text: Option<String>,
    /// Only jobs submitted with this token name.
    #[arg(long)]
    pub created_by: Option<String>,
    /// At most this many jobs, newest first (1-1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u64,
    /// Skips this many.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    #[command(flatten)]
    pub connection: Connection,
}

/// `wasmq jobs ...`.
#[derive(clap::Subcommand, Debug)]
pub enum JobsCommand {
    /// Lists the tenant's jobs, newest first.
    List(ListArgs),
    /// Shows one job: state, progress, ETA, fuel, allowed actions.
    Show(IdArgs),
    /// Cancels a job.
    Cancel(IdArgs),
    /// Pauses a job at its next task boundary.
    Pause(IdArgs),
    /// Resumes a paused job from where it stood.
    Resume(IdArgs),
    /// Runs a job again from the start (the API's restart).
    #[command(visible_alias = "restart")]
    Retry(IdArgs),
    /// Confirms a job that waits for confirmation.
    Confirm(IdArgs),
    /// Deletes a job that has ended.
    Delete(IdArgs),
}

/// `wasmq logs`.
#[derive(clap::Args, Debug)]
#[command(after_help = after_help())]
pub struct LogsArgs {
    /// The job id.
    pub id: String,
    /// Keeps printing new lines, with the job's progress on stderr, until the
    /// job ends; the exit code says how it ended.
    #[arg(short, long)]
    pub follow: bool,
    /// Starts with the last N lines instead of the whole log.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub tail: Option<u64>,
    #[command(flatten)]
    pub connection: Connection,
}

/// `wasmq plugin list`.
#[derive(clap::Args, Debug)]
#[command(after_help = after_help())]
pub struct PluginListArgs {
    #[command(flatten)]
    pub connection: Connection,
}

/// `wasmq plugin upload`.
#[derive(clap::Args, Debug)]
#[command(after_help = after_help())]
pub struct UploadArgs {
    /// The component (.wasm) to install.
    pub file: PathBuf,
    /// The plugin's name as its describe says [default: the file name without .wasm].
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub connection: Connection,
}

/// A client command, as `main` hands it over.
#[derive(Debug)]
pub enum ClientCommand {
    Submit(SubmitArgs),
    Jobs(JobsCommand),
    Logs(LogsArgs),
    PluginList(PluginListArgs),
    PluginUpload(UploadArgs),
}

/// Why a command stopped: its exit code and what to tell on stderr.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: exitcode::USAGE,
            message: message.into(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure {
            code: e.exit_code(),
            message: e.to_string(),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Failure {
        let code = match e {
            ConfigError::NoToken(_) => exitcode::AUTH,
            _ => exitcode::USAGE,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

/// Runs a client command; returns its exit code (errors are told on stderr).
pub async fn run(command: ClientCommand) -> u8 {
    let result = match command {
        ClientCommand::Submit(args) => submit(args).await,
        ClientCommand::Jobs(command) => jobs(command).await,
        ClientCommand::Logs(args) => logs(args).await,
        ClientCommand::PluginList(args) => plugin_list(args).await,
        ClientCommand::PluginUpload(args) => plugin_upload(args).await,
    };
    let code = match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("wasmq: {}", failure.message);
            failure.code
        }
    };
    let _ = std::io::stdout().flush();
    code
}

fn connect(connection: &Connection) -> Result<(Client, Settings), Failure> {
    let settings = config::load(&connection.layer())?;
    let client = Client::new(&settings.server, &settings.token)?;
    Ok((client, settings))
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

/// Reads `--params`: JSON text, `@FILE` or `@-` (stdin).
fn read_params(raw: &str) -> Result<Value, Failure> {
    let (text, source) = match raw.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| Failure::usage(format!("--params @-: {e}")))?;
            (text, "stdin".to_string())
        }
        Some(file) => (
            std::fs::read_to_string(file)
                .map_err(|e| Failure::usage(format!("--params @{file}: {e}")))?,
            file.to_string(),
        ),
        None => (raw.to_string(), "--params".to_string()),
    };
    parse_params(&text).map_err(|e| Failure::usage(format!("{source}: {e}")))
}

/// Params must be a JSON object.
pub fn parse_params(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("params must be a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// The body of `POST /api/v1/jobs` for `args` with `params`: only what was given.
pub fn submission(args: &SubmitArgs, params: Option<Value>) -> Value {
    let mut body = Map::new();
    body.insert("type".into(), json!(args.job_type));
    body.insert("path".into(), json!(args.path));
    if !args.excluded.is_empty() {
        body.insert("excludedPaths".into(), json!(args.excluded));
    }
    if let Some(params) = params {
        body.insert("params".into(), params);
    }
    let texts = [
        ("name", &args.name),
        ("description", &args.description),
        ("comments", &args.comments),
        ("locale", &args.locale),
        ("submitterEmail", &args.submitter_email),
        ("runAt", &args.run_at),
    ];
    for (key, value) in texts {
        if let Some(value) = value {
            body.insert(key.into(), json!(value));
        }
    }
    if let Some(priority) = args.priority {
        body.insert("priority".into(), json!(priority));
    }
    if args.require_confirmation {
        body.insert("requireConfirmation".into(), json!(true));
    }
    Value::Object(body)
}

fn state_of(job: &Value) -> &str {
    job["state"].as_str().unwrap_or_default()
}

async fn submit(args: SubmitArgs) -> Result<u8, Failure> {
    let params = args.params.as_deref().map(read_params).transpose()?;
    let (client, settings) = connect(&args.connection)?;
    let (_, job) = client.submit(&submission(&args, params)).await?;
    let id = job["id"]
        .as_str()
        .ok_or_else(|| Failure {
            code: exitcode::UNAVAILABLE,
            message: format!("the server's answer has no job id: {job}"),
        })?
        .to_string();
    let json = settings.output == Output::Json;
    if !args.wait {
        if json {
            print_json(&job);
        } else {
            println!("{id}");
        }
        return Ok(exitcode::SUCCESS);
    }
    if !json {
        println!("{id}");
        let _ = std::io::stdout().flush();
    }
    let job = watch(&client, &id, job).await?;
    if json {
        print_json(&job);
    } else {
        eprintln!("{}", output::summary(&job));
    }
    Ok(exitcode::for_final_state(state_of(&job)).unwrap_or(exitcode::SUCCESS))
}

/// Shows a job's progress until it ends; returns it as it ended.
async fn watch(client: &Client, id: &str, mut job: Value) -> Result<Value, Failure> {
    let mut progress = Progress::new(id);
    loop {
        if exitcode::for_final_state(state_of(&job)).is_some() {
            progress.finish(&job);
            return Ok(job);
        }
        progress.show(&job);
        tokio::time::sleep(POLL).await;
        job = client.job(id).await?;
    }
}

async fn jobs(command: JobsCommand) -> Result<u8, Failure> {
    let (args, action) = match command {
        JobsCommand::List(args) => return list(args).await,
        JobsCommand::Show(args) => (args, None),
        JobsCommand::Cancel(args) => (args, Some("cancel")),
        JobsCommand::Pause(args) => (args, Some("pause")),
        JobsCommand::Resume(args) => (args, Some("resume")),
        JobsCommand::Retry(args) => (args, Some("restart")),
        JobsCommand::Confirm(args) => (args, Some("confirm")),
        JobsCommand::Delete(args) => (args, Some("delete")),
    };
    let (client, settings) = connect(&args.connection)?;
    let json = settings.output == Output::Json;
    match action {
        None => {
            let job = client.job(&args.id).await?;
            if json {
                print_json(&job);
            } else {
                print!("{}", output::job_details(&job));
            }
        }
        Some("delete") => {
            client.delete(&args.id).await?;
            if json {
                print_json(&json!({ "id": args.id, "deleted": true }));
            } else {
                println!("job {} deleted", args.id);
            }
        }
        Some(action) => {
            let job = client.act(&args.id, action).await?;
            if json {
                print_json(&job);
            } else {
                println!("job {} {}", args.id, state_of(&job));
            }
        }
    }
    Ok(exitcode::SUCCESS)
}

async fn list(args: ListArgs) -> Result<u8, Failure> {
    let (client, settings) = connect(&args.connection)?;
    let mut query = vec![
        ("limit", args.limit.to_string()),
        ("offset", args.offset.to_string()),
    ];
    let filters = [
        ("state", &args.state),
        ("type", &args.job_type),
        ("text", &args.text),
        ("createdBy", &args.created_by),
    ];
    for (key, value) in filters {
        if let Some(value) = value {
            query.push((key, value.clone()));
        }
    }
    let answer = client.jobs(&query).await?;
    if settings.output == Output::Json {
        print_json(&answer);
    } else {
        print!("{}", output::jobs_table(&answer));
    }
    Ok(exitcode::SUCCESS)
}

/// Reads log pages from `offset` until the end; returns the lines.
async fn log_lines_from(client: &Client, id: &str, offset: u64) -> Result<Vec<String>, Failure> {
    let mut lines = Vec::new();
    loop {
        let page = client
            .logs(
                id,
                &[("offset", offset + lines.len() as u64), ("limit", LOG_PAGE)],
            )
            .await?;
        let got: Vec<String> = page["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .map(output::text)
            .collect();
        let more = page["hasMore"].as_bool().unwrap_or(false) && !got.is_empty();
        lines.extend(got);
        if !more {
            return Ok(lines);
        }
    }
}

async fn logs(args: LogsArgs) -> Result<u8, Failure> {
    let (client, settings) = connect(&args.connection)?;
    let json = settings.output == Output::Json;
    let (start, mut lines) = match args.tail {
        Some(n) => {
            let page = client.logs(&args.id, &[("tail", n)]).await?;
            if !args.follow && json {
                print_json(&page);
                return Ok(exitcode::SUCCESS);
            }
            let lines: Vec<String> = page["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .map(output::text)
                .collect();
            (page["offset"].as_u64().unwrap_or(0), lines)
        }
        None => (0, log_lines_from(&client, &args.id, 0).await?),
    };
    if !args.follow {
        if json {
            let total = start + lines.len() as u64;
            print_json(
                &json!({ "lines": lines, "offset": start, "total": total, "hasMore": false }),
            );
        } else {
            for line in &lines {
                println!("{line}");
            }
        }
        return Ok(exitcode::SUCCESS);
    }
    let mut progress = Progress::new(&args.id);
    let mut shown = 0;
    let mut ended: Option<Instant> = None;
    loop {
        if !json {
            for line in &lines[shown..] {
                progress.println(line);
            }
        }
        shown = lines.len();
        // The job first: lines read after it ended include all it logged before.
        let job = client.job(&args.id).await?;
        let new = log_lines_from(&client, &args.id, start + lines.len() as u64).await?;
        let quiet = new.is_empty();
        lines.extend(new);
        if let Some(code) = exitcode::for_final_state(state_of(&job)) {
            let since = *ended.get_or_insert_with(Instant::now);
            if quiet && since.elapsed() >= LOG_GRACE {
                progress.finish(&job);
                if json {
                    let total = start + lines.len() as u64;
                    print_json(
                        &json!({ "lines": lines, "offset": start, "total": total, "hasMore": false }),
                    );
                } else {
                    eprintln!("{}", output::summary(&job));
                }
                return Ok(code);
            }
        } else {
            progress.show(&job);
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn plugin_list(args: PluginListArgs) -> Result<u8, Failure> {
    let (client, settings) = connect(&args.connection)?;
    let answer = client.plugins().await?;
    if settings.output == Output::Json {
        print_json(&answer);
    } else {
        print!("{}", output::plugins_table(&answer));
    }
    Ok(exitcode::SUCCESS)
}

async fn plugin_upload(args: UploadArgs) -> Result<u8, Failure> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => args
            .file
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| Failure::usage(format!("{}: give --name", args.file.display())))?
            .to_string(),
    };
    let component = std::fs::read(&args.file)
        .map_err(|e| Failure::usage(format!("{}: {e}", args.file.display())))?;
    let (client, settings) = connect(&args.connection)?;
    let (status, plugin) = client.upload_plugin(&name, component).await?;
    if settings.output == Output::Json {
        print_json(&plugin);
    } else {
        let what = if status == 201 {
            "installed"
        } else {
            "unchanged"
        };
        println!(
            "{what} plugin {} {} (digest {}, job types {})",
            output::text(&plugin["name"]),
            output::text(&plugin["version"]),
            output::text(&plugin["digest"]),
            plugin["jobTypes"]
                .as_array()
                .map(|a| a.iter().map(output::text).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        );
    }
    Ok(exitcode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        submit: SubmitArgs,
    }

    fn args(argv: &[&str]) -> SubmitArgs {
        Probe::try_parse_from(std::iter::once("submit").chain(argv.iter().copied()))
            .unwrap()
            .submit
    }

    #[test]
    fn a_submission_holds_only_what_was_given() {
        let a = args(&["--type", "delete", "--path", "/content/a"]);
        assert_eq!(
            submission(&a, None),
            json!({"type": "delete", "path": "/content/a"})
        );
        let a = args(&[
            "--type",
            "chaos",
            "--path",
            "/content/a",
            "--exclude",
            "/content/a/x",
            "--exclude",
            "/content/a/y",
            "--name",
            "n",
            "--priority",
            "-3",
            "--locale",
            "fr-FR",
            "--submitter-email",
            "a@b.c",
            "--require-confirmation",
        ]);
        assert_eq!(
            submission(&a, Some(json!({"tasks": ["ok"]}))),
            json!({"type": "chaos", "path": "/content/a",
                   "excludedPaths": ["/content/a/x", "/content/a/y"],
                   "params": {"tasks": ["ok"]}, "name": "n", "priority": -3,
                   "locale": "fr-FR", "submitterEmail": "a@b.c", "requireConfirmation": true})
        );
    }

    #[test]
    fn params_must_be_a_json_object() {
        assert_eq!(parse_params(r#"{"a": 1}"#).unwrap(), json!({"a": 1}));
        assert!(parse_params("[1]").unwrap_err().contains("object"));
        assert!(parse_params("{a").unwrap_err().contains("not JSON"));
        let failure = read_params("@/nonexistent/params.json").unwrap_err();
        assert_eq!(failure.code, exitcode::USAGE);
    }

    #[test]
    fn json_and_output_flags_pick_the_format() {
        let a = args(&["--type", "t", "--path", "/p", "--json"]);
        assert_eq!(a.connection.layer().output, Some(Output::Json));
        let a = args(&["--type", "t", "--path", "/p", "--output", "table"]);
        assert_eq!(a.connection.layer().output, Some(Output::Table));
        let a = args(&["--type", "t", "--path", "/p"]);
        assert_eq!(a.connection.layer().output, None);
        assert!(
            Probe::try_parse_from([
                "s", "--type", "t", "--path", "/p", "--json", "--output", "table"
            ])
            .is_err()
        );
    }

    #[test]
    fn a_missing_token_is_an_auth_failure_and_a_bad_file_a_usage_one() {
        let f: Failure = ConfigError::NoToken(None).into();
        assert_eq!(f.code, exitcode::AUTH);
        let f: Failure = ConfigError::File {
            path: "/x".into(),
            reason: "bad".into(),
        }
        .into();
        assert_eq!(f.code, exitcode::USAGE);
    }
}
