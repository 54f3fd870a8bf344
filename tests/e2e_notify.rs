//! Notifications when a job ends, against the real things: signed webhooks to an HTTP receiver
//! in this process (retries, backoff, restart), email to a real SMTP sink (aiosmtpd), and the inbox.

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use wasmq_e2e::{Options, Server};

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Hit {
    at: Instant,
    headers: HashMap<String, String>,
    body: String,
}

/// An HTTP receiver that answers 500 to its first `failures` requests, then 200.
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

struct ReceiverState {
    failures: usize,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    async fn start(failures: usize) -> Receiver {
        Self::on(
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            failures,
        )
    }

    fn on(listener: tokio::net::TcpListener, failures: usize) -> Receiver {
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(ReceiverState {
            failures,
            hits: hits.clone(),
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, hits }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let mut hits = state.hits.lock().unwrap();
    hits.push(Hit {
        at: Instant::now(),
        headers,
        body,
    });
    if hits.len() <= state.failures {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// Checks a delivery's signature the way a receiver would (README's scheme).
fn verifies(secret: &str, timestamp: &str, body: &str, signature: &str) -> bool {
    let Some(hex_sig) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    mac.verify_slice(&expected).is_ok()
}

/// Polls `check` until it gives a value; panics with `what` after 60 s.
async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A job's state, read with `token`.
async fn job_state(server: &Server, token: &str, id: &str) -> String {
    let request = server
        .anonymous(Method::GET, &format!("/api/v1/jobs/{id}"))
        .bearer_auth(token);
    let (status, job) = server.send(request).await;
    assert_eq!(status, 200, "{job}");
    job["state"].as_str().unwrap().to_string()
}

fn quick_job(name: &str) -> Value {
    json!({"type": "chaos", "path": "/content/dam/n", "name": name, "params": {"tasks": ["ok", "ok"]}})
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_retried_with_backoff_and_fail_for_good() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        args: vec![
            "--delivery-retry-base-ms",
            "300",
            "--delivery-attempts",
            "3",
        ],
        ..Default::default()
    });
    let flaky = Receiver::start(2).await;
    let dead = Receiver::start(usize::MAX).await;
    let elsewhere = Receiver::start(0).await;

    for (body, field) in [
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "ftp://example.com/x"}), "url"),
        (json!({}), "url"),
        (
            json!({"url": flaky.url, "events": ["job.exploded"]}),
            "events",
        ),
        (json!({"url": flaky.url, "secret": "short"}), "secret"),
        (json!({"url": flaky.url, "colour": "red"}), "colour"),
    ] {
        let (status, answer) = server.post("/api/v1/webhooks", &body).await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}: {answer}"
        );
    }
    let (status, hook) = server
        .post("/api/v1/webhooks", &json!({"url": flaky.url}))
        .await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{hook}");
    assert_eq!(hook["events"], json!(["job.ended"]));
    let flaky_id = hook["id"].as_str().unwrap().to_string();
    let (status, hook) = server
        .post(
            "/api/v1/webhooks",
            &json!({"url": dead.url, "secret": "a secret of my own choosing"}),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let dead_id = hook["id"].as_str().unwrap().to_string();
    // A webhook of another tenant sees none of this tenant's jobs.
    let (status, hook) = server
        .send(
            server
                .request(Method::POST, "/api/v1/webhooks")
                .header("x-wasmq-tenant", "other")
                .json(&json!({"url": elsewhere.url})),
        )
        .await;
    assert_eq!(status, 201, "{hook}");

    let (status, list) = server.get("/api/v1/webhooks").await;
    assert_eq!(status, 200, "{list}");
    let hooks = list["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 2, "{list}");
    assert!(hooks.iter().all(|h| h.get("secret").is_none()), "{list}");

    let id = server.submit(&quick_job("signed")).await;
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");

    let hits = until("three attempts at the flaky receiver", async || {
        let hits = flaky.hits();
        (hits.len() >= 3).then_some(hits)
    })
    .await;
    assert_eq!(hits.len(), 3, "no attempt after the 2xx");
    let delivery = hits[0].headers["x-wasmq-delivery"].clone();
    for hit in &hits {
        assert_eq!(
            hit.headers["x-wasmq-delivery"], delivery,
            "same id on every attempt"
        );
        assert_eq!(hit.headers["x-wasmq-event"], "job.ended");
        assert_eq!(hit.headers["content-type"], "application/json");
        assert_eq!(hit.body, hits[0].body, "the same body on every attempt");
        let (ts, sig) = (
            &hit.headers["x-wasmq-timestamp"],
            &hit.headers["x-wasmq-signature"],
        );
        assert!(
            verifies(&secret, ts, &hit.body, sig),
            "{sig} does not verify"
        );
        assert!(!verifies("whsec_wrong", ts, &hit.body, sig));
        let tampered = hit.body.replace("\"Complete\"", "\"Failed\"");
        assert_ne!(tampered, hit.body);
        assert!(
            !verifies(&secret, ts, &tampered, sig),
            "a tampered body verifies"
        );
        let later = (ts.parse::<i64>().unwrap() + 1).to_string();
        assert!(
            !verifies(&secret, &later, &hit.body, sig),
            "another timestamp verifies"
        );
    }
    // Exponential backoff: 300 ms after the first failure, 600 ms after the second.
    let gaps: Vec<Duration> = hits.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(250), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(550), "{gaps:?}");

    let body: Value = serde_json::from_str(&hits[0].body).unwrap();
    assert_eq!(body["event"], "job.ended");
    assert_eq!(body["deliveryId"], delivery);
    assert_eq!(body["job"]["id"], id);
    assert_eq!(body["job"]["type"], "chaos");
    assert_eq!(body["job"]["state"], "Complete");
    assert_eq!(
        body["job"]["counts"],
        json!({"total": 2, "succeeded": 2, "failed": 0})
    );
    assert_eq!(body["job"]["completedAt"], job["completedAt"]);
    assert_eq!(body["message"]["locale"], "en-US");
    assert_eq!(body["message"]["subject"], "Job signed completed");

    let (status, list) = server
        .get(&format!("/api/v1/webhooks/{flaky_id}/deliveries"))
        .await;
    assert_eq!(status, 200, "{list}");
    let d = &list["deliveries"][0];
    assert_eq!(
        (
            &d["id"],
            &d["state"],
            &d["attempts"],
            &d["lastStatus"],
            &d["jobId"]
        ),
        (
            &json!(delivery),
            &json!("delivered"),
            &json!(3),
            &json!(200),
            &json!(id)
        ),
        "{list}"
    );

    let (status, answer) = server
        .send(
            server
                .request(
                    Method::GET,
                    &format!("/api/v1/webhooks/{flaky_id}/deliveries"),
                )
                .header("x-wasmq-tenant", "other"),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (404, Some("id")),
        "another tenant's webhook: {answer}"
    );

    let failed = until(
        "the dead receiver's delivery to fail for good",
        async || {
            let (_, list) = server
                .get(&format!("/api/v1/webhooks/{dead_id}/deliveries"))
                .await;
            (list["deliveries"][0]["state"] == "failed").then(|| list["deliveries"][0].clone())
        },
    )
    .await;
    assert_eq!(failed["attempts"], 3, "{failed}");
    assert_eq!(failed["lastStatus"], 500, "{failed}");
    assert_eq!(dead.hits().len(), 3, "no attempt after the last");
    let dead_hits = dead.hits();
    assert!(
        verifies(
            "a secret of my own choosing",
            &dead_hits[0].headers["x-wasmq-timestamp"],
            &dead_hits[0].body,
            &dead_hits[0].headers["x-wasmq-signature"]
        ),
        "a given secret signs too"
    );
    assert!(
        elsewhere.hits().is_empty(),
        "another tenant's webhook got a delivery"
    );

    let path = format!("/api/v1/webhooks/{dead_id}");
    let (status, _) = server.send(server.request(Method::DELETE, &path)).await;
    assert_eq!(status, 204);
    let (status, answer) = server.send(server.request(Method::DELETE, &path)).await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (404, Some("id")),
        "{answer}"
    );
    let (status, answer) = server
        .send(server.request(Method::DELETE, "/api/v1/webhooks/nope"))
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("id")),
        "{answer}"
    );
    let (_, list) = server.get("/api/v1/webhooks").await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1, "{list}");

    let (_, spec) = server.get("/openapi.json").await;
    for path in [
        "/api/v1/webhooks",
        "/api/v1/webhooks/{id}",
        "/api/v1/webhooks/{id}/deliveries",
        "/api/v1/inbox",
        "/api/v1/inbox/{id}/read",
        "/api/v1/inbox/read-all",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "{path} is not in /openapi.json"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_pending_when_the_server_is_killed_is_sent_after_restart() {
    let mut server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        args: vec!["--delivery-retry-base-ms", "2000"],
        ..Default::default()
    });
    // A receiver that is not listening yet: its port is reserved, then freed.
    let addr = StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}/hook");
    let (status, hook) = server.post("/api/v1/webhooks", &json!({"url": url})).await;
    assert_eq!(status, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let id = server.submit(&quick_job("survivor")).await;
    server.wait_done(&id).await;
    let pending = until("a first, failed attempt", async || {
        let (_, list) = server
            .get(&format!("/api/v1/webhooks/{hook_id}/deliveries"))
            .await;
        let d = list["deliveries"][0].clone();
        (d["attempts"] == 1).then_some(d)
    })
    .await;
    assert_eq!(pending["state"], "pending", "{pending}");
    assert!(
        pending["lastError"]
            .as_str()
            .unwrap()
            .contains("sending failed"),
        "{pending}"
    );

    server.kill_and_restart();
    let receiver = Receiver::on(tokio::net::TcpListener::bind(addr).await.unwrap(), 0);
    let hits = until("the delivery after the restart", async || {
        let hits = receiver.hits();
        (!hits.is_empty()).then_some(hits)
    })
    .await;
    assert_eq!(hits[0].headers["x-wasmq-delivery"], pending["id"]);
    let done = until("the delivery recorded as delivered", async || {
        let (_, list) = server
            .get(&format!("/api/v1/webhooks/{hook_id}/deliveries"))
            .await;
        let d = list["deliveries"][0].clone();
        (d["state"] == "delivered").then_some(d)
    })
    .await;
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(
        list_len(&server, &hook_id).await,
        1,
        "one delivery, not a new one"
    );
    assert_eq!(receiver.hits().len(), 1);
}

async fn list_len(server: &Server, hook_id: &str) -> usize {
    let (_, list) = server
        .get(&format!("/api/v1/webhooks/{hook_id}/deliveries"))
        .await;
    list["deliveries"].as_array().unwrap().len()
}

/// A real SMTP sink: aiosmtpd (scripts/setup-smtp.sh) writing a Maildir; killed on drop.
struct SmtpSink {
    child: Child,
    port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    fn start() -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .spawn()
            .expect("run aiosmtpd: run scripts/setup-smtp.sh");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "aiosmtpd does not listen (scripts/setup-smtp.sh installs it)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpSink {
            child,
            port,
            maildir,
            _dir: dir,
        }
    }

    /// The delivered messages, decoded by Python's email package (RFC 2047
    /// headers, quoted-printable or base64 bodies, charsets).
    fn messages(&self) -> Vec<Value> {
        let new = self.maildir.join("new");
        let files: Vec<PathBuf> = match std::fs::read_dir(&new) {
            Ok(dir) => dir.map(|e| e.unwrap().path()).collect(),
            Err(_) => return Vec::new(),
        };
        if files.is_empty() {
            return Vec::new();
        }
        decode(&files)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const DECODE: &str = r#"
import email, email.policy, json, sys
out = []
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        m = email.message_from_binary_file(f, policy=email.policy.default)
    out.append({"to": str(m["To"]), "from": str(m["From"]), "subject": str(m["Subject"]),
                "type": m.get_content_type(), "charset": m.get_content_charset(),
                "body": m.get_content()})
print(json.dumps(out))
"#;

fn decode(files: &[PathBuf]) -> Vec<Value> {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(DECODE)
        .args(files)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn raw_headers(file: &Path) -> String {
    let raw = std::fs::read(file).unwrap();
    let text = String::from_utf8_lossy(&raw);
    text.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .split("\n\n")
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn emails_reach_a_real_smtp_sink_in_the_jobs_language() {
    let sink = SmtpSink::start();
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        args: vec![
            "--smtp-url",
            leak(format!("smtp://127.0.0.1:{}", sink.port)),
            "--smtp-from",
            "wasmq <wasmq@example.org>",
            "--public-url",
            "http://wasmq.example.org/",
        ],
        ..Default::default()
    });
    let mut ids = HashMap::new();
    for (locale, email, name) in [
        ("fr-FR", "marie@example.fr", "rapport-nuit"),
        ("ko-KR", "jiwoo@example.kr", "yagan"),
        ("de-DE", "hans@example.de", "nightly"),
    ] {
        let mut job = quick_job(name);
        job["locale"] = json!(locale);
        job["submitterEmail"] = json!(email);
        ids.insert(email, server.submit(&job).await);
    }
    let silent = server.submit(&quick_job("no-email")).await;
    for id in ids.values().chain([&silent]) {
        assert_eq!(server.wait_done(id).await["state"], "Complete");
    }
    let messages = until("three emails in the sink", async || {
        let m = sink.messages();
        (m.len() >= 3).then_some(m)
    })
    .await;
    let by_to: HashMap<&str, &Value> = messages
        .iter()
        .map(|m| (m["to"].as_str().unwrap(), m))
        .collect();
    for m in &messages {
        assert_eq!(m["from"], "wasmq <wasmq@example.org>", "{m}");
        assert_eq!(m["type"], "text/plain", "{m}");
        assert_eq!(m["charset"], "utf-8", "{m}");
    }
    let fr = by_to["marie@example.fr"];
    assert_eq!(fr["subject"], "La tâche rapport-nuit est terminée", "{fr}");
    assert_eq!(
        fr["body"].as_str().unwrap().replace("\r\n", "\n").trim_end(),
        format!(
            "Votre tâche chaos « rapport-nuit » est terminée : 2 éléments réussis sur 2, 0 en échec.\n\
             Détails : http://wasmq.example.org/api/v1/jobs/{}\n",
            ids["marie@example.fr"]
        )
        .trim_end(),
        "{fr}"
    );
    let ko = by_to["jiwoo@example.kr"];
    assert_eq!(ko["subject"], "작업 yagan 완료", "{ko}");
    assert!(
        ko["body"]
            .as_str()
            .unwrap()
            .starts_with("chaos 작업 yagan이(가) 완료되었습니다: 항목 2개 중 2개 성공, 0개 실패."),
        "{ko}"
    );
    let en = by_to["hans@example.de"];
    assert_eq!(
        en["subject"], "Job nightly completed",
        "an unknown locale falls back to en-US: {en}"
    );
    assert!(
        en["body"]
            .as_str()
            .unwrap()
            .starts_with("Your chaos job nightly completed: 2 of 2 items succeeded, 0 failed."),
        "{en}"
    );
    // The French subject travels encoded (RFC 2047), as mail must.
    let files: Vec<PathBuf> = std::fs::read_dir(sink.maildir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let fr_file = files
        .iter()
        .find(|f| raw_headers(f).contains("marie@example.fr"))
        .unwrap();
    let headers = raw_headers(fr_file);
    assert!(!headers.contains("tâche"), "{headers}");
    let subject = headers.lines().find(|l| l.starts_with("Subject:")).unwrap();
    assert!(subject.to_lowercase().contains("=?utf-8?"), "{headers}");

    // Nothing more arrives: the job without submitterEmail sends none.
    let (status, inbox) = server.get("/api/v1/inbox").await;
    assert_eq!(status, 200);
    assert_eq!(inbox["entries"].as_array().unwrap().len(), 4, "{inbox}");
    assert_eq!(sink.messages().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inbox_is_per_user_and_tenant_and_marks_read() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(1),
        // No polling within the test's time: entries appear only because a
        // job that ends wakes the dispatcher.
        args: vec!["--notify-poll-ms", "600000"],
        ..Default::default()
    });
    let alice = server.token("alice", "submitter", "acme").await;
    let alice_elsewhere = server.token("alice", "submitter", "other").await;
    let bob = server.token("bob", "submitter", "acme").await;
    let as_user = |token: &str, method: Method, path: &str| {
        server
            .anonymous(method, path)
            .bearer_auth(token.to_string())
    };

    let mut job = quick_job("inventaire");
    job["locale"] = json!("fr-CA");
    let (status, submitted) = server
        .send(as_user(&alice, Method::POST, "/api/v1/jobs").json(&job))
        .await;
    assert_eq!(status, 202, "{submitted}");
    let id = submitted["id"].as_str().unwrap().to_string();
    let inbox = until("alice's inbox entry", async || {
        let (status, inbox) = server
            .send(as_user(&alice, Method::GET, "/api/v1/inbox"))
            .await;
        assert_eq!(status, 200, "{inbox}");
        (!inbox["entries"].as_array().unwrap().is_empty()).then_some(inbox)
    })
    .await;
    assert_eq!(inbox["unread"], 1, "{inbox}");
    let entry = &inbox["entries"][0];
    assert_eq!(entry["jobId"], id);
    assert_eq!(entry["jobState"], "Complete");
    assert_eq!(entry["locale"], "fr-FR");
    assert_eq!(entry["subject"], "La tâche inventaire est terminée");
    assert_eq!(entry["read"], false);
    let entry_id = entry["id"].as_str().unwrap().to_string();

    for token in [&alice_elsewhere, &bob] {
        let (status, other) = server
            .send(as_user(token, Method::GET, "/api/v1/inbox"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(other["entries"], json!([]), "{other}");
        assert_eq!(other["unread"], 0);
        let (status, answer) = server
            .send(as_user(
                token,
                Method::POST,
                &format!("/api/v1/inbox/{entry_id}/read"),
            ))
            .await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (404, Some("id")),
            "{answer}"
        );
    }
    let (status, answer) = server
        .send(as_user(
            &alice,
            Method::POST,
            "/api/v1/inbox/not-an-id/read",
        ))
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("id")),
        "{answer}"
    );
    let (status, answer) = server
        .send(as_user(&alice, Method::GET, "/api/v1/inbox?unread=maybe"))
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("unread")),
        "{answer}"
    );
    let (status, answer) = server
        .send(as_user(&alice, Method::GET, "/api/v1/inbox"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["entries"].as_array().unwrap().len(),
        1,
        "one entry per ending"
    );

    let (status, read) = server
        .send(as_user(
            &alice,
            Method::POST,
            &format!("/api/v1/inbox/{entry_id}/read"),
        ))
        .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["read"], true);
    let (_, unread) = server
        .send(as_user(&alice, Method::GET, "/api/v1/inbox?unread=true"))
        .await;
    assert_eq!(
        (unread["entries"].clone(), unread["unread"].clone()),
        (json!([]), json!(0))
    );

    // A cancelled job is announced too, and again when it ends after a restart.
    let slow = json!({"type": "chaos", "path": "/content/dam/n", "name": "lente",
                      "locale": "fr", "params": {"tasks": vec!["slow"; 40]}});
    let (status, submitted) = server
        .send(as_user(&alice, Method::POST, "/api/v1/jobs").json(&slow))
        .await;
    assert_eq!(status, 202, "{submitted}");
    let slow_id = submitted["id"].as_str().unwrap().to_string();
    until("the slow job to run", async || {
        job_state(&server, &alice, &slow_id)
            .await
            .eq("Active")
            .then_some(())
    })
    .await;
    let (status, _) = server
        .send(as_user(
            &alice,
            Method::POST,
            &format!("/api/v1/jobs/{slow_id}/cancel"),
        ))
        .await;
    assert_eq!(status, 200);
    until("the slow job to be cancelled", async || {
        job_state(&server, &alice, &slow_id)
            .await
            .eq("Cancelled")
            .then_some(())
    })
    .await;
    let inbox = until("the cancellation in the inbox", async || {
        let (_, inbox) = server
            .send(as_user(&alice, Method::GET, "/api/v1/inbox?unread=true"))
            .await;
        (inbox["unread"] == 1).then_some(inbox)
    })
    .await;
    assert_eq!(
        inbox["entries"][0]["subject"], "La tâche lente a été annulée",
        "{inbox}"
    );
    assert_eq!(inbox["entries"][0]["jobState"], "Cancelled");

    let (status, _) = server
        .send(as_user(
            &alice,
            Method::POST,
            &format!("/api/v1/jobs/{slow_id}/restart"),
        ))
        .await;
    assert_eq!(status, 200);
    until("the restarted job to complete", async || {
        job_state(&server, &alice, &slow_id)
            .await
            .eq("Complete")
            .then_some(())
    })
    .await;
    let inbox = until("the second ending in the inbox", async || {
        let (_, inbox) = server
            .send(as_user(&alice, Method::GET, "/api/v1/inbox?unread=true"))
            .await;
        (inbox["unread"] == 2).then_some(inbox)
    })
    .await;
    assert_eq!(
        inbox["entries"][0]["subject"], "La tâche lente est terminée",
        "{inbox}"
    );

    let (status, marked) = server
        .send(as_user(&alice, Method::POST, "/api/v1/inbox/read-all"))
        .await;
    assert_eq!(
        (status, marked["marked"].clone()),
        (200, json!(2)),
        "{marked}"
    );
    let (_, all) = server
        .send(as_user(&alice, Method::GET, "/api/v1/inbox"))
        .await;
    assert_eq!(all["entries"].as_array().unwrap().len(), 3, "{all}");
    assert_eq!(all["unread"], 0);
}
