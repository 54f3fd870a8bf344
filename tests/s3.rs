//! A real S3-compatible server for the tests: moto's server (installed by
//! scripts/tools-moto.sh) on a free loopback port, and boto3 to look into its buckets.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::workspace;

/// Looks into the server's buckets with boto3, independently of wasmq:
/// `create BUCKET`, `list BUCKET` (every key, JSON), `get BUCKET KEY` (`found:HEX`, or nothing).
const BOTO3: &str = r#"
import json, sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="wasmq-test", aws_secret_access_key="wasmq-test")
op, bucket = sys.argv[2], sys.argv[3]
if op == "create":
    s3.create_bucket(Bucket=bucket)
elif op == "list":
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    print(json.dumps(keys))
elif op == "get":
    try:
        print("found:" + s3.get_object(Bucket=bucket, Key=sys.argv[4])["Body"].read().hex())
    except s3.exceptions.NoSuchKey:
        pass
"#;

/// A running moto server, killed on drop.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// The Python with moto and boto3 on its path.
fn python() -> PathBuf {
    let path = workspace().join("target/tools/moto/python");
    assert!(
        path.is_file(),
        "no moto at {}: run scripts/tools-moto.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

impl S3Server {
    /// Starts moto on a port the system picks and waits until it says where it listens.
    pub fn start() -> S3Server {
        let mut child = Command::new(python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn moto.server");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Reads the banner, then drains the request log so moto never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("Running on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let endpoint = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("moto.server said nowhere where it listens within 60 s");
            }
        };
        S3Server { child, endpoint }
    }

    /// The `AWS_*` variables that point wasmq (object_store) at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "wasmq-test"),
            ("AWS_SECRET_ACCESS_KEY", "wasmq-test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn boto3(&self, args: &[&str]) -> String {
        let out = Command::new(python())
            .args(["-c", BOTO3, &self.endpoint])
            .args(args)
            .output()
            .expect("run boto3");
        assert!(
            out.status.success(),
            "boto3 {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        self.boto3(&["create", bucket]);
    }

    /// Every key in `bucket`, sorted.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let mut keys: Vec<String> = serde_json::from_str(&self.boto3(&["list", bucket])).unwrap();
        keys.sort();
        keys
    }

    /// The object at `key`, if there is one.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let out = self.boto3(&["get", bucket, key]);
        out.strip_prefix("found:")
            .map(|hex| hex::decode(hex).unwrap())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
