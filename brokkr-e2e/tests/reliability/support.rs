//! What the reliability tests share: a PostgreSQL server of their own that they can stop
//! and start, the example broker as a child process, and a small HTTP caller that
//! remembers what the broker acknowledged.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const ADMIN: &str = "brokkr_admin_0123456789abcdefghijABCDEFGHIJ0123456789abc";

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL server in a temporary directory, owned by one test: it can be stopped
/// and started again on the same port and data, and is removed when dropped.
pub struct ThrowawayPg {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// `runuser -u postgres --` when running as root (initdb refuses root).
    as_postgres: bool,
}

fn pg_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file())
    });
    on_path.or_else(|| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|dir| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file())
            .collect();
        dirs.sort();
        dirs.pop()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl ThrowawayPg {
    /// initdb + start (fsync off). Panics with how to get the binaries when they are
    /// missing: these tests never skip silently.
    pub fn start() -> Self {
        let bin = pg_bin_dir().unwrap_or_else(|| {
            panic!(
                "this test starts and stops its own PostgreSQL server and needs the server \
                 binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin; \
                 Debian: apt-get install postgresql"
            )
        });
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!(
            "brokkr-outage-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if as_postgres {
            let chown = Command::new("chown")
                .arg("postgres")
                .arg(&dir)
                .status()
                .unwrap();
            assert!(
                chown.success(),
                "cannot hand {} to the postgres user",
                dir.display()
            );
        }
        let pg = Self {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        pg.resume();
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command.args(args).stdin(Stdio::null()).output().unwrap();
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `postgres://` URL of the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server the way an operator or a crash would: connections are cut.
    pub fn halt(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts (again) on the same port and data.
    pub fn resume(&self) {
        let log = self.dir.join("server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-t",
                "30",
                "-o",
                &options,
                "start",
            ],
        );
    }
}

impl Drop for ThrowawayPg {
    fn drop(&mut self) {
        let data = self.data();
        let program = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The example broker binary next to this test's binary (built by the same `cargo test`).
pub fn example_broker() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join("broker");
    assert!(
        binary.exists(),
        "{} is missing: the workspace's tests build it (scripts/test), or run \
         cargo build --all-features --example broker first",
        binary.display()
    );
    binary
}

/// The example broker as a child process on the Postgres database at `database_url`.
pub struct BrokerProcess {
    child: Child,
    pub base: String,
    port: u16,
    database_url: String,
}

impl BrokerProcess {
    pub async fn start(database_url: &str) -> Self {
        Self::start_on(database_url, free_port()).await
    }

    async fn start_on(database_url: &str, port: u16) -> Self {
        let child = Command::new(example_broker())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--database-url", database_url])
            .args(["--log", "warn"])
            .env("BROKKR_ADMIN_PAK", ADMIN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let process = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            database_url: database_url.to_owned(),
        };
        process.wait_ready().await;
        process
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the example broker did not get ready on {}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process without warning (SIGKILL), as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// A new process on the same port and database.
    pub async fn restart(&mut self) {
        let port = self.port;
        let url = self.database_url.clone();
        let next = Self::start_on(&url, port).await;
        let old = std::mem::replace(self, next);
        drop(old);
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON caller of one broker URL.
#[derive(Clone)]
pub struct Caller {
    pub http: reqwest::Client,
    pub base: String,
}

/// One answer: status, `Retry-After`, content type and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<String>,
    pub content_type: String,
    pub body: Value,
}

impl Caller {
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
            base: base.to_owned(),
        }
    }

    /// `None` when no answer came (connection refused or reset, timeout).
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Option<Answer> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.ok()?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header("retry-after");
        let content_type = header("content-type").unwrap_or_default();
        let bytes = response.bytes().await.ok()?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Some(Answer {
            status,
            retry_after,
            content_type,
            body,
        })
    }

    /// An answer that must come.
    pub async fn send(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Answer {
        let shown = format!("{method} {path}");
        self.try_send(method, path, key, body)
            .await
            .unwrap_or_else(|| panic!("no answer to {shown}"))
    }

    /// `send` that must succeed; its body.
    pub async fn ok(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Value {
        let shown = format!("{method} {path}");
        let answer = self.send(method, path, key, body).await;
        assert!(
            answer.status.is_success(),
            "{shown}: {} {}",
            answer.status,
            answer.body
        );
        answer.body
    }
}

/// An agent as the admin registered it.
#[derive(Debug, Clone)]
pub struct Registered {
    pub id: String,
    pub key: String,
}

pub async fn register_agent(caller: &Caller, name: &str) -> Registered {
    let body = caller
        .ok(
            Method::POST,
            "/api/v1/agents",
            ADMIN,
            Some(json!({"name": name, "cluster_name": name})),
        )
        .await;
    Registered {
        id: body["id"].as_str().unwrap().to_owned(),
        key: body["pak"].as_str().unwrap().to_owned(),
    }
}

/// `objects` stacks of one ConfigMap each (only a stack's newest object is in force),
/// targeted by every agent in `agents`; the object ids.
pub async fn stack_for(caller: &Caller, agents: &[Registered], objects: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..objects {
        let stack = caller
            .ok(
                Method::POST,
                "/api/v1/stacks",
                ADMIN,
                Some(json!({"name": format!("shop-{i}")})),
            )
            .await;
        let stack = stack["id"].as_str().unwrap().to_owned();
        for agent in agents {
            caller
                .ok(
                    Method::POST,
                    &format!("/api/v1/agents/{}/targets", agent.id),
                    ADMIN,
                    Some(json!({"stack_id": stack})),
                )
                .await;
        }
        let object = caller
            .ok(
                Method::POST,
                &format!("/api/v1/stacks/{stack}/deployment-objects"),
                ADMIN,
                Some(json!({
                    "yaml_content": format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n")
                })),
            )
            .await;
        ids.push(object["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// A health report of `objects`, all `status`, checked at `checked_at`.
pub fn health_report(objects: &[String], status: &str, checked_at: &str) -> Value {
    let items: Vec<Value> = objects
        .iter()
        .map(|id| {
            json!({"id": id, "status": status, "checked_at": checked_at,
                   "summary": {"pods_ready": 1, "pods_total": 1, "conditions": [], "resources": []}})
        })
        .collect();
    json!({ "deployment_objects": items })
}
