//! `heraldctl` as a child process against a running `herald all`.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Output,
    time::{Duration, Instant},
};

use herald_tests::{Receiver, herald_all::HeraldAll, wait_for};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

mod endpoints;
mod exits;
mod quotas;
mod recovery;
mod secrets;
mod transformations;

struct Ctl {
    addr: String,
    ingest_addr: String,
    config_file: std::path::PathBuf,
}

impl Ctl {
    fn run(&self, token: Option<&str>, args: &[&str]) -> Output {
        let envs: Vec<(&str, &str)> = token
            .map(|token| ("HERALD_TOKEN", token))
            .into_iter()
            .collect();
        self.run_with(&envs, args)
    }

    /// `heraldctl <args>` with only these Herald variables set (besides the
    /// addresses and the config file).
    fn run_with(&self, envs: &[(&str, &str)], args: &[&str]) -> Output {
        let mut command = std::process::Command::new(herald_testkit::heraldctl_binary());
        for (key, _) in std::env::vars() {
            if key.starts_with("HERALD") {
                command.env_remove(key);
            }
        }
        command
            .env("HERALD_ADDR", &self.addr)
            .env("HERALD_INGEST_URL", &self.ingest_addr)
            .env("HERALDCTL_CONFIG", &self.config_file)
            .envs(envs.iter().copied())
            .args(args)
            .stdin(std::process::Stdio::null());
        command.output().unwrap()
    }

    fn json(&self, token: &str, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let output = self.run(Some(token), &all);
        assert!(
            output.status.success(),
            "heraldctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `herald all` on a real NATS server and SQLite, and a `heraldctl` aimed at
/// it.
struct Running {
    herald: HeraldAll,
    ctl: Ctl,
    admin: String,
}

impl Running {
    fn start(extra: &[(&str, &str)]) -> Running {
        let herald = HeraldAll::start_with(extra);
        let ctl = Ctl {
            addr: herald.url(""),
            ingest_addr: format!("http://{}", herald.herald.ingest_addr),
            config_file: herald.state_dir().join("heraldctl.json"),
        };
        let admin = herald.admin_token.clone();
        Running { herald, ctl, admin }
    }
}

/// A circuit opening after a few failures would hold retries and
/// redeliveries back for its cooldown.
const NO_CIRCUIT: (&str, &str) = ("HERALD_CIRCUIT_FAILURES", "1000");

const NO_ENDPOINT: &str = "ep_00000000000000000000000000";

/// How long a test waits for what Herald does in the background.
const PATIENCE: Duration = Duration::from_secs(30);

fn array(value: Value) -> Vec<Value> {
    value.as_array().unwrap().clone()
}

/// A tenant token, and an endpoint with `retry` made active against
/// `receiver` through heraldctl.
fn active_endpoint(running: &Running, receiver: &Receiver, retry: &str) -> (String, String) {
    let ctl = &running.ctl;
    let token = tenant_token(running, "Acme");
    let endpoint = ctl.json(
        &token,
        &[
            "endpoints",
            "create",
            "--name",
            "Orders",
            "--url",
            &receiver.url(),
            "--events",
            "message.received",
            "--retry",
            retry,
        ],
    );
    let endpoint_id = endpoint["endpoint"]["id"].as_str().unwrap().to_owned();
    let tested = ctl.json(&token, &["endpoints", "test", &endpoint_id]);
    assert_eq!(tested["endpoint"]["status"], "active");
    (token, endpoint_id)
}

/// Publishes a `message.received` event with `data`; its event id.
fn publish(ctl: &Ctl, token: &str, data: &Value) -> String {
    let accepted = ctl.json(
        token,
        &[
            "events",
            "publish",
            "--type",
            "message.received",
            "--data",
            &data.to_string(),
        ],
    );
    accepted["event_id"].as_str().unwrap().to_owned()
}

/// Publishes events until one reaches the receiver (fanout learns of the
/// endpoint's activation through Watch), and returns that event's id and
/// webhook-id.
fn deliver_one(ctl: &Ctl, token: &str, receiver: &Receiver) -> (String, String) {
    for round in 0..100 {
        let event_id = publish(ctl, token, &serde_json::json!({ "round": round }));
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Some(received) = receiver
                .received()
                .into_iter()
                .find(|received| received.data()["round"] == round)
            {
                return (event_id, received.header("webhook-id").to_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("no event reached the receiver");
}

/// How often each webhook-id arrived, and whether its last answer was a success.
fn arrivals(receiver: &Receiver) -> BTreeMap<String, (usize, bool)> {
    let mut arrivals: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    for received in receiver.received() {
        let entry = arrivals
            .entry(received.header("webhook-id").to_owned())
            .or_default();
        *entry = (entry.0 + 1, received.succeeded());
    }
    arrivals
}

/// The delivery ids of the endpoint's attempts with `status`.
fn logged(ctl: &Ctl, token: &str, endpoint_id: &str, status: &str) -> BTreeSet<String> {
    array(ctl.json(
        token,
        &[
            "logs",
            "list",
            "--endpoint",
            endpoint_id,
            "--status",
            status,
            "--all",
        ],
    ))
    .iter()
    .map(|attempt| attempt["delivery_id"].as_str().unwrap().to_owned())
    .collect()
}

fn ids(values: &[Value], field: &str) -> BTreeSet<String> {
    values
        .iter()
        .map(|value| value[field].as_str().unwrap().to_owned())
        .collect()
}

fn ids_of(values: &[String]) -> BTreeSet<String> {
    values.iter().cloned().collect()
}

/// A tenant and its full-scope token, made with heraldctl.
fn tenant_token(running: &Running, name: &str) -> String {
    let ctl = &running.ctl;
    let tenant = ctl.json(&running.admin, &["tenants", "create", name]);
    let created = ctl.run(
        Some(&running.admin),
        &[
            "tokens",
            "create",
            "--for",
            tenant["id"].as_str().unwrap(),
            "--name",
            "ops",
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    stdout(&created).trim().to_owned()
}

fn assert_refused(answer: &(u16, Value), field: &str) {
    let (status, body) = answer;
    assert_eq!(*status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_argument", "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
}
