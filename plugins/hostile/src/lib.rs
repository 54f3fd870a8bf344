//! The `hostile` job type: a plugin that attacks its host, for the security
//! suite. Each entry of the param `tasks` becomes a task that tries one thing.
//!
//! A task whose attempt is refused fails with the refusal's code and
//! `refused: <the error>`; one whose attempt succeeds reports `ESCAPED: ...`
//! (status 200), which the tests treat as a breach. Modes:
//! `read-outside` and `write-outside` (the asset at param `target`, outside the
//! job's path), `traverse` (a `..` path from the job's root to `target`),
//! `undeclared` (`metadata.get`, not declared), `fs-read` (WASI: opens
//! `/etc/passwd`), `fs-write` (WASI: creates param `file`), `socket` (`wasi:sockets`:
//! connects to param `address`), `env` (WASI: reads the host's environment),
//! and `write` (a legitimate write of `bytes` bytes at the task's path).

use serde::Deserialize;
use wasmq_sdk::{
    Capabilities, Descriptor, Error, Job, JobType, Task, TaskOutcome, assets, metadata,
};

struct Hostile;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    tasks: Vec<String>,
    /// An asset path outside the job's path.
    #[serde(default)]
    target: String,
    /// A file on the host's file system.
    #[serde(default)]
    file: String,
    /// A TCP address, `127.0.0.1:PORT`.
    #[serde(default)]
    address: String,
    /// How many bytes `write` writes.
    #[serde(default)]
    bytes: u64,
}

const MODES: &[&str] = &[
    "read-outside",
    "write-outside",
    "traverse",
    "undeclared",
    "fs-read",
    "fs-write",
    "socket",
    "env",
    "write",
];

/// A refused attempt: the task fails with the refusal.
fn refused(code: u16, why: impl std::fmt::Display) -> Error {
    Error::permanent(code, format!("refused: {why}"))
}

fn host_refused(e: Error) -> Error {
    refused(e.code, format!("{} ({})", e.message, e.code))
}

fn escaped(what: impl Into<String>) -> Result<TaskOutcome, Error> {
    Ok(TaskOutcome::ok(format!("ESCAPED: {}", what.into())))
}

impl JobType for Hostile {
    fn describe() -> Descriptor {
        Descriptor::new(
            "hostile",
            env!("CARGO_PKG_VERSION"),
            &["hostile"],
            Capabilities::READ | Capabilities::WRITE,
        )
        .params_schema(serde_json::json!({
            "type": "object",
            "required": ["tasks"],
            "additionalProperties": false,
            "properties": {
                "tasks": { "type": "array", "items": { "enum": MODES } },
                "target": { "type": "string" },
                "file": { "type": "string" },
                "address": { "type": "string" },
                "bytes": { "type": "integer", "minimum": 0 }
            }
        }))
    }

    fn plan(job: &Job) -> Result<(), Error> {
        let params: Params = job.params()?;
        let root = job.info.path.trim_end_matches('/');
        job.add_tasks(params.tasks.iter().enumerate().map(|(i, mode)| Task {
            path: format!("{root}/{i}-{mode}"),
            input: mode.as_bytes().to_vec(),
        }))
    }

    fn run_task(job: &Job, task: Task) -> Result<TaskOutcome, Error> {
        let p: Params = job.params()?;
        match task.input.as_slice() {
            b"read-outside" => match assets::read(&p.target) {
                Ok(data) => escaped(format!("read {} bytes of {}", data.len(), p.target)),
                Err(e) => Err(host_refused(e)),
            },
            b"write-outside" => match assets::write(&p.target, b"owned", "text/plain") {
                Ok(_) => escaped(format!("wrote {}", p.target)),
                Err(e) => Err(host_refused(e)),
            },
            b"traverse" => {
                let depth = job.info.path.matches('/').count();
                let sneaky = format!("{}{}", job.info.path, "/..".repeat(depth)) + &p.target;
                match assets::read(&sneaky) {
                    Ok(data) => escaped(format!("read {} bytes of {sneaky}", data.len())),
                    Err(e) => Err(host_refused(e)),
                }
            }
            b"undeclared" => match metadata::get(&task.path) {
                Ok(_) => escaped("read metadata without declaring it"),
                Err(e) => Err(host_refused(e)),
            },
            b"fs-read" => match std::fs::read("/etc/passwd") {
                Ok(data) => escaped(format!("read {} bytes of /etc/passwd", data.len())),
                Err(e) => Err(refused(403, format!("WASI file open: {e}"))),
            },
            b"fs-write" => match std::fs::write(&p.file, b"hostile was here") {
                Ok(()) => escaped(format!("wrote {}", p.file)),
                Err(e) => Err(refused(403, format!("WASI file create: {e}"))),
            },
            b"socket" => match connect(&p.address) {
                Ok(()) => escaped(format!("connected to {}", p.address)),
                Err(e) => Err(refused(403, format!("WASI socket: {e}"))),
            },
            b"env" => {
                let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                if vars.is_empty() {
                    Err(refused(403, "WASI environment: empty"))
                } else {
                    escaped(format!("saw the environment: {}", vars.join(",")))
                }
            }
            b"write" => {
                let data = vec![b'x'; p.bytes as usize];
                let stat = assets::write(&task.path, &data, "application/octet-stream")?;
                Ok(TaskOutcome::ok(format!("wrote {} bytes", stat.size)).with_etag(stat.etag))
            }
            other => Err(Error::permanent(
                400,
                format!("unknown mode {:?}", String::from_utf8_lossy(other)),
            )),
        }
    }
}

/// Connects to `127.0.0.1:PORT` through `wasi:sockets/tcp`.
fn connect(address: &str) -> Result<(), String> {
    use wasip2::sockets::instance_network::instance_network;
    use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    use wasip2::sockets::tcp_create_socket::create_tcp_socket;
    let port: u16 = address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("{address:?} is not 127.0.0.1:PORT"))?;
    let socket = create_tcp_socket(IpAddressFamily::Ipv4)
        .map_err(|e| format!("create-tcp-socket: {e:?}"))?;
    let remote = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (127, 0, 0, 1),
    });
    socket
        .start_connect(&instance_network(), remote)
        .map_err(|e| format!("start-connect: {e:?}"))?;
    socket.subscribe().block();
    socket
        .finish_connect()
        .map(|_| ())
        .map_err(|e| format!("finish-connect: {e:?}"))
}

wasmq_sdk::export!(Hostile);
