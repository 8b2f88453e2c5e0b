//! `heraldctl` as a child process against a running `herald all`.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Output,
    time::{Duration, Instant},
};

use herald_tests::{HeraldProcess, NatsServer, Receiver};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

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
/// it. Fields drop in order: the process before the state it uses.
struct Running {
    _herald: HeraldProcess,
    _nats: NatsServer,
    state: tempfile::TempDir,
    ctl: Ctl,
    admin: String,
}

impl Running {
    fn start(extra: &[(&str, &str)]) -> Running {
        let nats = NatsServer::start();
        let state = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite:{}", state.path().join("herald.db").display());
        let state_dir = state.path().to_str().unwrap().to_owned();
        let nats_url = nats.url();
        let mut envs = vec![
            ("NATS_URL", nats_url.as_str()),
            ("DATABASE_URL", &database_url),
            ("HERALD_STATE_DIR", &state_dir),
            ("HERALD_ALLOW_CIDRS", "127.0.0.0/8"),
        ];
        envs.extend_from_slice(extra);
        let mut herald = HeraldProcess::start(&["all"], &envs);
        herald.wait_until_ready(Duration::from_secs(30));
        let admin = std::fs::read_to_string(state.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        let ctl = Ctl {
            addr: format!("http://{}", herald.config_addr),
            ingest_addr: format!("http://{}", herald.ingest_addr),
            config_file: state.path().join("heraldctl.json"),
        };
        Running {
            _herald: herald,
            _nats: nats,
            state,
            ctl,
            admin,
        }
    }
}

#[test]
fn an_operator_sets_up_tests_and_pauses_an_endpoint() {
    let running = Running::start(&[]);
    let (ctl, admin, state) = (&running.ctl, &running.admin, &running.state);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(Receiver::start(Duration::ZERO));

    let tenant = ctl.json(admin, &["tenants", "create", "Acme"]);
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let created = ctl.run(
        Some(admin),
        &["tokens", "create", "--for", &tenant_id, "--name", "ci"],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let token = stdout(&created).trim().to_owned();
    assert!(token.starts_with("hrld_"), "{token}");

    // `login` saves the address and token for the commands after it.
    let login = ctl.run(None, &["login", "--with-token", &token]);
    assert!(login.status.success(), "{}", stderr(&login));

    let url = receiver.url();
    let endpoint = ctl.json(
        &token,
        &[
            "endpoints",
            "create",
            "--name",
            "Orders",
            "--url",
            &url,
            "--events",
            "message.received,message.read",
        ],
    );
    let endpoint_id = endpoint["endpoint"]["id"].as_str().unwrap().to_owned();
    assert_eq!(endpoint["endpoint"]["status"], "pending_test");
    assert!(endpoint["secret"].as_str().unwrap().starts_with("whsec_"));

    let tested = ctl.run(None, &["endpoints", "test", &endpoint_id]);
    assert!(tested.status.success(), "{}", stderr(&tested));
    let table = stdout(&tested);
    assert!(
        table.contains("RESPONSE") && table.contains("200") && table.contains("active"),
        "{table}"
    );
    assert_eq!(receiver.received().len(), 1);
    let token_only = ctl.run(Some(&token), &["endpoints", "list"]);
    assert!(token_only.status.success());

    let listed = ctl.run(None, &["endpoints", "list"]);
    let listed = stdout(&listed);
    assert!(listed.lines().next().unwrap().starts_with("ID"), "{listed}");
    assert!(
        listed.contains(&endpoint_id) && listed.contains("active"),
        "{listed}"
    );

    let summary = ctl.json(&token, &["summary"]);
    assert_eq!(summary["endpoints_active"], 1);

    // An event published through the ingest service reaches the receiver;
    // fanout learns of the activation through Watch first.
    std::thread::sleep(Duration::from_millis(500));
    let published = ctl.run(
        None,
        &[
            "events",
            "publish",
            "--type",
            "message.received",
            "--data",
            r#"{"text":"hello"}"#,
            "--key",
            "order-1",
        ],
    );
    assert!(published.status.success(), "{}", stderr(&published));
    assert!(
        stdout(&published).starts_with("evt_"),
        "{}",
        stdout(&published)
    );
    let again = ctl.run(
        None,
        &[
            "events",
            "publish",
            "--type",
            "message.received",
            "--data",
            r#"{"text":"hello"}"#,
            "--key",
            "order-1",
        ],
    );
    assert!(stdout(&again).contains("(duplicate)"), "{}", stdout(&again));
    let bad_type = ctl.run(
        None,
        &["events", "publish", "--type", "Not.A.Type", "--data", "{}"],
    );
    assert_eq!(bad_type.status.code(), Some(2), "{}", stderr(&bad_type));

    // Both the test and the live delivery reach the log.
    let mut attempts = serde_json::Value::Null;
    for _ in 0..200 {
        attempts = ctl.json(&token, &["logs", "list", "--endpoint", &endpoint_id]);
        if attempts.as_array().is_some_and(|a| a.len() >= 2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(attempts.as_array().unwrap().len(), 2, "{attempts}");
    assert_eq!(receiver.received().len(), 2);
    assert_eq!(attempts[0]["status"], "succeeded");
    assert_eq!(attempts[0]["response_code"], 200);
    assert_eq!(attempts[0]["event_type"], "message.received");
    let attempt_id = attempts[0]["id"].as_str().unwrap();
    let one = ctl.run(None, &["logs", "get", attempt_id, "--output", "yaml"]);
    assert!(
        stdout(&one).contains("response_code: 200"),
        "{}",
        stdout(&one)
    );

    let disabled = ctl.json(
        &token,
        &[
            "endpoints",
            "disable",
            &endpoint_id,
            "--reason",
            "maintenance",
        ],
    );
    assert_eq!(disabled["status"], "disabled");
    let secrets = ctl.json(&token, &["endpoints", "secret", &endpoint_id]);
    assert_eq!(secrets["current"], endpoint["secret"]);

    // Errors: one line with the gRPC status and field, and an exit code by class.
    let short = ctl.run(None, &["endpoints", "list", "--search", "or"]);
    assert_eq!(short.status.code(), Some(2));
    assert!(
        stderr(&short).contains("InvalidArgument") && stderr(&short).contains("field search"),
        "{}",
        stderr(&short)
    );
    let missing = ctl.run(None, &["endpoints", "get", "ep_00000000000000000000000000"]);
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));
    let bad_token = ctl.run(Some("hrld_wrong"), &["summary"]);
    assert_eq!(bad_token.status.code(), Some(4), "{}", stderr(&bad_token));
    let not_admin = ctl.run(None, &["tenants", "list"]);
    assert_eq!(not_admin.status.code(), Some(4), "{}", stderr(&not_admin));
    let mut unreachable = std::process::Command::new(herald_testkit::heraldctl_binary());
    let unreachable = unreachable
        .env(
            "HERALD_ADDR",
            format!("http://127.0.0.1:{}", herald_testkit::free_port()),
        )
        .env("HERALD_TOKEN", &token)
        .env("HERALDCTL_CONFIG", state.path().join("none.json"))
        .arg("summary")
        .output()
        .unwrap();
    assert_eq!(
        unreachable.status.code(),
        Some(5),
        "{}",
        stderr(&unreachable)
    );
    let usage = ctl.run(None, &["endpoints", "frobnicate"]);
    assert_eq!(usage.status.code(), Some(2));

    let health = ctl.run(None, &["health", "--output", "json"]);
    let health: serde_json::Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(health[0]["service"], "config");
    assert_eq!(health[0]["health"], "serving");

    let completions = ctl.run(None, &["completions", "bash"]);
    assert!(completions.status.success() && stdout(&completions).contains("heraldctl"));
    for command in ["dlq", "redrive", "purge", "replay", "recover"] {
        assert!(stdout(&completions).contains(command), "{command}");
    }
}

#[test]
fn verify_checks_a_received_webhook_locally() {
    let ctl = Ctl {
        addr: "http://127.0.0.1:9".into(),
        ingest_addr: "http://127.0.0.1:9".into(),
        config_file: std::env::temp_dir().join("heraldctl-verify-test-none.json"),
    };
    // The Standard Webhooks specification's published test vector.
    let args = |body: &str| -> Vec<String> {
        [
            "verify",
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "--id",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "--timestamp",
            "1614265330",
            "--signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "--at",
            "1614265330",
            "--body",
            body,
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect()
    };
    let good = args(r#"{"test": 2432232314}"#);
    let output = ctl.run(None, &good.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("valid"));
    let tampered = args(r#"{"test": 2432232315}"#);
    let output = ctl.run(
        None,
        &tampered.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("error: signature check failed"),
        "{}",
        stderr(&output)
    );
}

/// A circuit opening after a few failures would hold retries and
/// redeliveries back for its cooldown.
const NO_CIRCUIT: (&str, &str) = ("HERALD_CIRCUIT_FAILURES", "1000");
const NO_ENDPOINT: &str = "ep_00000000000000000000000000";

/// Polls `check` until it returns `Some`, for at most 30 seconds.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn array(value: Value) -> Vec<Value> {
    value.as_array().unwrap().clone()
}

/// A tenant token, and an endpoint with `retry` made active against
/// `receiver` through heraldctl.
fn active_endpoint(running: &Running, receiver: &Receiver, retry: &str) -> (String, String) {
    let ctl = &running.ctl;
    let tenant = ctl.json(&running.admin, &["tenants", "create", "Acme"]);
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
    let token = stdout(&created).trim().to_owned();
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

#[test]
fn dead_letters_are_listed_redriven_once_and_purged() {
    let running = Running::start(&[NO_CIRCUIT]);
    let ctl = &running.ctl;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(Receiver::start(Duration::ZERO));
    let (token, endpoint_id) = active_endpoint(&running, &receiver, "100ms");
    deliver_one(ctl, &token, &receiver);

    receiver.answer(500);
    let event_ids: BTreeSet<String> = (0..4)
        .map(|index| publish(ctl, &token, &serde_json::json!({ "index": index })))
        .collect();
    let list = ["dlq", "list", "--endpoint", &endpoint_id];
    let dead = eventually("four dead letters with both attempts", || {
        let dead = array(ctl.json(&token, &list));
        let complete = dead.len() == 4
            && dead
                .iter()
                .all(|letter| letter["attempts"].as_array().unwrap().len() == 2);
        complete.then_some(dead)
    });
    for letter in &dead {
        assert_eq!(letter["endpoint_id"], endpoint_id.as_str());
        assert_eq!(letter["event"]["type"], "message.received");
        assert_eq!(letter["attempts"][0]["status"], "retrying");
        assert_eq!(letter["attempts"][1]["status"], "dead");
        assert_eq!(letter["attempts"][1]["response_code"], 500);
    }
    let dead_events: BTreeSet<String> = dead
        .iter()
        .map(|letter| letter["event"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(dead_events, event_ids);
    let delivery_ids: Vec<String> = dead
        .iter()
        .map(|letter| letter["id"].as_str().unwrap().to_owned())
        .collect();

    // The table: one row per dead letter, with its endpoint, event type,
    // when it died, its attempts and the last response code.
    let table = ctl.run(Some(&token), &["dlq", "list"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let table = stdout(&table);
    let header = table.lines().next().unwrap();
    for column in [
        "DELIVERY ID",
        "ENDPOINT",
        "EVENT TYPE",
        "DEAD",
        "ATTEMPTS",
        "CODE",
        "REASON",
    ] {
        assert!(header.contains(column), "{header}");
    }
    for delivery_id in &delivery_ids {
        let row = table
            .lines()
            .find(|line| line.starts_with(delivery_id.as_str()))
            .unwrap_or_else(|| panic!("no row for {delivery_id}: {table}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1..3], [endpoint_id.as_str(), "message.received"]);
        assert!(cells[3].ends_with('s') && cells[4] == "ago", "{row}");
        assert_eq!(cells[5..7], ["2", "500"], "{row}");
    }

    // Filters and paging.
    let count = |extra: &[&str]| array(ctl.json(&token, &[&list[..], extra].concat())).len();
    assert_eq!(count(&["--type", "message.read"]), 0);
    assert_eq!(count(&["--since", "1h"]), 4);
    assert_eq!(count(&["--until", "1h"]), 0);
    let later = (OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap();
    assert_eq!(count(&["--until", &later]), 4);
    assert_eq!(count(&["--since", &later]), 0);
    let first_page = ctl.run(
        Some(&token),
        &[&list[..], &["--page-size", "3", "--output", "json"]].concat(),
    );
    let first_page: Value = serde_json::from_slice(&first_page.stdout).unwrap();
    assert_eq!(first_page.as_array().unwrap().len(), 3);
    assert_eq!(count(&["--page-size", "3", "--all"]), 4);

    // A redrive delivers the named dead letters again, with their ids.
    receiver.answer(200);
    let (redriven, kept) = delivery_ids.split_at(2);
    let redrive = [&["dlq", "redrive"][..], &[&redriven[0], &redriven[1]]].concat();
    let job = ctl.json(&token, &redrive);
    assert_eq!(job["kind"], "redrive");
    assert_eq!(job["state"], "succeeded");
    assert_eq!(
        (&job["total"], &job["enqueued"], &job["skipped"]),
        (&"2".into(), &"2".into(), &"0".into())
    );
    eventually("the redriven deliveries", || {
        let arrivals = arrivals(&receiver);
        redriven
            .iter()
            .all(|id| arrivals.get(id) == Some(&(3, true)))
            .then_some(())
    });
    assert_eq!(ids(&array(ctl.json(&token, &list)), "id"), ids_of(kept));

    // The same request again is the same job; another naming them finds
    // nothing left to send.
    let again = ctl.run(Some(&token), &redrive);
    assert!(again.status.success(), "{}", stderr(&again));
    let job_id = job["id"].as_str().unwrap();
    assert!(
        stdout(&again).contains(job_id) && stdout(&again).contains("succeeded"),
        "{}",
        stdout(&again)
    );
    assert!(
        stderr(&again).contains("nothing was sent again"),
        "{}",
        stderr(&again)
    );
    let one = ctl.json(&token, &["dlq", "redrive", &redriven[0]]);
    assert_ne!(one["id"], job["id"]);
    assert_eq!(
        (&one["enqueued"], &one["skipped"]),
        (&"0".into(), &"1".into())
    );

    // Purging all of an endpoint's dead letters needs a terminal to confirm
    // on, or --yes.
    let unconfirmed = ctl.run(Some(&token), &["dlq", "purge", "--endpoint", &endpoint_id]);
    assert_eq!(unconfirmed.status.code(), Some(2));
    assert!(
        stderr(&unconfirmed).contains("--yes"),
        "{}",
        stderr(&unconfirmed)
    );
    assert_eq!(array(ctl.json(&token, &list)).len(), 2);
    let purged = ctl.json(&token, &["dlq", "purge", &kept[0]]);
    assert_eq!(purged["purged"], "1");
    let purged = ctl.run(
        Some(&token),
        &["dlq", "purge", "--endpoint", &endpoint_id, "--yes"],
    );
    assert!(purged.status.success(), "{}", stderr(&purged));
    assert_eq!(stdout(&purged).trim(), "purged 1");
    assert!(array(ctl.json(&token, &list)).is_empty());
    let gone = ctl.json(&token, &["dlq", "redrive", &kept[0], &kept[1]]);
    assert_eq!(
        (&gone["enqueued"], &gone["skipped"]),
        (&"0".into(), &"2".into())
    );

    // Errors: a missing or double selection is a usage error, an unknown
    // endpoint is not found, a time that is neither is a usage error.
    let code = |args: &[&str]| ctl.run(Some(&token), args).status.code();
    assert_eq!(code(&["dlq", "redrive"]), Some(2));
    assert_eq!(code(&["dlq", "purge"]), Some(2));
    assert_eq!(
        code(&["dlq", "redrive", &kept[0], "--endpoint", &endpoint_id]),
        Some(2)
    );
    let unknown = ctl.run(Some(&token), &["dlq", "redrive", "--endpoint", NO_ENDPOINT]);
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("NotFound"),
        "{}",
        stderr(&unknown)
    );
    assert_eq!(code(&["dlq", "list", "--since", "yesterday"]), Some(2));

    // Three tries and one redriven success for the redriven; the others
    // were never sent again.
    let arrivals = arrivals(&receiver);
    for id in redriven {
        assert_eq!(arrivals[id], (3, true), "{id}");
    }
    for id in kept {
        assert_eq!(arrivals[id], (2, false), "{id}");
    }
}

#[test]
fn events_are_replayed_and_failures_recovered() {
    let running = Running::start(&[NO_CIRCUIT]);
    let ctl = &running.ctl;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(Receiver::start(Duration::ZERO));
    let (token, endpoint_id) = active_endpoint(&running, &receiver, "none");
    let (event_id, webhook_id) = deliver_one(ctl, &token, &receiver);

    // A replay sends the delivered event again with the same webhook-id.
    let replayed = ctl.json(&token, &["events", "replay", &event_id]);
    assert_eq!(replayed["kind"], "replay");
    assert_eq!(replayed["state"], "succeeded");
    assert_eq!(replayed["enqueued"], "1");
    eventually("the replayed event", || {
        (arrivals(&receiver).get(&webhook_id) == Some(&(2, true))).then_some(())
    });
    // Without waiting, the job comes back at once; `jobs watch` follows it.
    let started = ctl.json(
        &token,
        &[
            "events",
            "replay",
            &event_id,
            "--endpoint",
            &endpoint_id,
            "--no-wait",
        ],
    );
    let job_id = started["id"].as_str().unwrap();
    assert_ne!(started["id"], replayed["id"]);
    let watched = ctl.run(Some(&token), &["jobs", "watch", job_id]);
    assert!(watched.status.success(), "{}", stderr(&watched));
    let table = stdout(&watched);
    assert!(table.starts_with("JOB ID"), "{table}");
    assert!(
        table.contains(job_id) && table.contains("replay") && table.contains("succeeded"),
        "{table}"
    );
    let got = ctl.run(Some(&token), &["jobs", "get", job_id, "--output", "yaml"]);
    assert!(
        stdout(&got).contains("state: \"succeeded\""),
        "{}",
        stdout(&got)
    );
    eventually("the second replay", || {
        (arrivals(&receiver).get(&webhook_id) == Some(&(3, true))).then_some(())
    });
    let unknown = ctl.run(
        Some(&token),
        &["events", "replay", "evt_00000000000000000000000000"],
    );
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));
    let unknown = ctl.run(
        Some(&token),
        &["events", "replay", &event_id, "--endpoint", NO_ENDPOINT],
    );
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));

    // Failures before and after a moment; recovery since that moment sends
    // only the later ones again.
    receiver.answer(500);
    for index in 0..2 {
        publish(ctl, &token, &serde_json::json!({ "index": index }));
    }
    let early = eventually("two early failures in the log", || {
        let dead = logged(ctl, &token, &endpoint_id, "dead");
        (dead.len() == 2).then_some(dead)
    });
    let since = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    for index in 2..5 {
        publish(ctl, &token, &serde_json::json!({ "index": index }));
    }
    let late: BTreeSet<String> = eventually("three later failures in the log", || {
        let dead = logged(ctl, &token, &endpoint_id, "dead");
        (dead.len() == 5).then_some(dead)
    })
    .difference(&early)
    .cloned()
    .collect();

    receiver.answer(200);
    let recovered = ctl.json(
        &token,
        &["recover", "--endpoint", &endpoint_id, "--since", &since],
    );
    assert_eq!(recovered["kind"], "recover");
    assert_eq!(recovered["state"], "succeeded");
    assert_eq!(recovered["enqueued"], "3");
    // Recovery counts only deliveries that never succeeded: wait until the
    // log knows these did.
    eventually("the recovered deliveries' successes in the log", || {
        logged(ctl, &token, &endpoint_id, "succeeded")
            .is_superset(&late)
            .then_some(())
    });

    // A duration ago reaches the earlier failures too.
    let recovered = ctl.run(
        Some(&token),
        &["recover", "--endpoint", &endpoint_id, "--since", "2h"],
    );
    assert!(recovered.status.success(), "{}", stderr(&recovered));
    let table = stdout(&recovered);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[1..6],
        ["recover", "succeeded", "2", "2", "0"],
        "{table}"
    );
    eventually("every failure delivered", || {
        logged(ctl, &token, &endpoint_id, "succeeded")
            .is_superset(&early)
            .then_some(())
    });
    let arrivals = arrivals(&receiver);
    for id in early.iter().chain(&late) {
        assert_eq!(arrivals[id], (2, true), "{id}");
    }
    assert_eq!(arrivals[&webhook_id], (3, true));

    let code = |args: &[&str]| {
        let output = ctl.run(Some(&token), args);
        (output.status.code(), stderr(&output))
    };
    let (unknown, message) = code(&["recover", "--endpoint", NO_ENDPOINT, "--since", "2h"]);
    assert_eq!(unknown, Some(3), "{message}");
    let (bad_since, message) = code(&["recover", "--endpoint", &endpoint_id, "--since", "soon"]);
    assert_eq!(bad_since, Some(2), "{message}");
    assert!(message.contains("RFC 3339"), "{message}");
    assert_eq!(code(&["recover", "--since", "2h"]).0, Some(2));
}

/// The JSON API of the running `herald all`, with one token.
struct JsonApi {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl JsonApi {
    fn new(running: &Running, token: &str) -> JsonApi {
        let _ = rustls::crypto::ring::default_provider().install_default();
        JsonApi {
            http: reqwest::Client::new(),
            base: running.ctl.addr.clone(),
            token: token.to_owned(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }
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

#[test]
fn hardening_01_heraldctl_refuses_a_secret_the_signing_scheme_cannot_sign_with() {
    let running = Running::start(&[]);
    let ctl = &running.ctl;
    let token = tenant_token(&running, "Acme");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(Receiver::start(Duration::ZERO));
    let url = receiver.url();
    let create = |extra: &[&str]| {
        let mut args = vec!["endpoints", "create", "--name", "Orders", "--url", &url];
        args.extend_from_slice(extra);
        ctl.run(Some(&token), &args)
    };

    for scheme in [None, Some("standard")] {
        let mut args = vec!["--secret", "my-plain-secret-123"];
        if let Some(scheme) = scheme {
            args.extend(["--scheme", scheme]);
        }
        let refused = create(&args);
        assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
        let message = stderr(&refused);
        assert!(message.contains("secret"), "{message}");
        assert!(
            message.contains("whsec_<base64 of 24 to 64 bytes>"),
            "{message}"
        );
        assert_eq!(message.trim().lines().count(), 1, "{message}");
    }
    let listed = ctl.json(&token, &["endpoints", "list"]);
    assert!(
        !listed.to_string().contains("Orders"),
        "nothing was created: {listed}"
    );

    // A scheme that signs with the secret string as it is takes it.
    for scheme in ["sha256-hex", "shared-secret"] {
        let accepted = create(&["--scheme", scheme, "--secret", "my-plain-secret-123"]);
        assert!(accepted.status.success(), "{}", stderr(&accepted));
    }
    let own = create(&["--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
    assert!(own.status.success(), "{}", stderr(&own));
}

#[test]
fn hardening_01_json_api_refuses_a_secret_the_signing_scheme_cannot_sign_with() {
    let running = Running::start(&[]);
    let token = tenant_token(&running, "Acme");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let api = JsonApi::new(&running, &token);
        let url = receiver.url();

        // Create, with the default scheme (Standard Webhooks).
        let refused = api
            .post(
                "/api/v1/endpoints",
                json!({"name": "x", "url": url, "secret": "my-plain-secret-123"}),
            )
            .await;
        assert_refused(&refused, "secret");
        let message = refused.1["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("whsec_<base64 of 24 to 64 bytes>"),
            "{message}"
        );
        let (_, listed) = api.get("/api/v1/endpoints").await;
        assert_eq!(listed["endpoints"], json!([]), "{listed}");

        // A scheme change the stored secret cannot serve.
        let (status, shared) = api
            .post(
                "/api/v1/endpoints",
                json!({
                    "name": "shared",
                    "url": url,
                    "signing_scheme": "shared_secret",
                    "secret": "my-plain-secret-123",
                }),
            )
            .await;
        assert_eq!(status, 201, "{shared}");
        let shared_id = shared["endpoint"]["id"].as_str().unwrap();
        let refused = api
            .patch(
                &format!("/api/v1/endpoints/{shared_id}"),
                json!({"signing_scheme": "standard"}),
            )
            .await;
        assert_refused(&refused, "signing_scheme");
        let (_, unchanged) = api.get(&format!("/api/v1/endpoints/{shared_id}")).await;
        assert_eq!(unchanged["signing_scheme"], "shared_secret", "{unchanged}");

        // Rotate on an active endpoint: live traffic would fail.
        let (status, created) = api
            .post("/api/v1/endpoints", json!({"name": "live", "url": url}))
            .await;
        assert_eq!(status, 201, "{created}");
        let id = created["endpoint"]["id"].as_str().unwrap();
        let (status, tested) = api
            .post(&format!("/api/v1/endpoints/{id}/test"), json!({}))
            .await;
        assert_eq!(status, 200, "{tested}");
        assert_eq!(tested["endpoint"]["status"], "active", "{tested}");
        let refused = api
            .post(
                &format!("/api/v1/endpoints/{id}/rotate-secret"),
                json!({"secret": "plain"}),
            )
            .await;
        assert_refused(&refused, "secret");
        let (_, secrets) = api.get(&format!("/api/v1/endpoints/{id}/secret")).await;
        assert_eq!(secrets["current"], created["secret"], "{secrets}");
        let (_, still) = api.get(&format!("/api/v1/endpoints/{id}")).await;
        assert_eq!(still["status"], "active", "{still}");
    });
}

#[test]
fn hardening_03_attempt_records_redact_every_custom_header_value() {
    let running = Running::start(&[]);
    let token = tenant_token(&running, "Acme");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let api = JsonApi::new(&running, &token);
        let api_key = "sk_live_0123456789abcd";
        let (status, created) = api
            .post(
                "/api/v1/endpoints",
                json!({
                    "name": "Orders",
                    "url": receiver.url(),
                    "headers": {"X-Api-Key": api_key, "X-Team": "ops"},
                }),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let id = created["endpoint"]["id"].as_str().unwrap();
        let (status, tested) = api
            .post(&format!("/api/v1/endpoints/{id}/test"), json!({}))
            .await;
        assert_eq!(status, 200, "{tested}");

        // The receiver gets the values...
        let received = receiver.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].header("X-Api-Key"), api_key);
        assert_eq!(received[0].header("X-Team"), "ops");
        // ...the attempt record published on the bus (which the test answer
        // is) and the attempt log do not.
        let sent = &tested["attempt"]["request_headers"];
        assert_eq!(sent["X-Api-Key"], "[redacted]", "{tested}");
        assert_eq!(sent["X-Team"], "[redacted]", "{tested}");
        assert_eq!(sent["Content-Type"], "application/json", "{tested}");
        let mut logged = None;
        for _ in 0..200 {
            let (_, list) = api.get(&format!("/api/v1/attempts?endpoint_id={id}")).await;
            logged = list["attempts"]
                .as_array()
                .and_then(|attempts| attempts.first().cloned());
            if logged.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let logged = logged.expect("the attempt is logged");
        let logged = &logged["request_headers"];
        assert_eq!(logged["X-Api-Key"], "[redacted]", "{logged}");
        assert_eq!(logged["X-Team"], "[redacted]", "{logged}");
        assert!(!logged.to_string().contains(api_key));
    });
}

/// The console over plain HTTP, as a browser without JavaScript uses it:
/// cookies kept by hand, forms posted url-encoded.
struct ConsoleBrowser {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

impl ConsoleBrowser {
    fn new(running: &Running) -> ConsoleBrowser {
        let _ = rustls::crypto::ring::default_provider().install_default();
        ConsoleBrowser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: running.ctl.addr.clone(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> (u16, String) {
        let cookie = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = request
            .header("cookie", cookie)
            .header("origin", &self.base)
            .send()
            .await
            .unwrap();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let body = fields
            .iter()
            .map(|(name, value)| format!("{}={}", url_encode(name), url_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }
}

fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The CSRF token of the form on `page`.
fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf""#).expect("the page has a form");
    let rest = &page[at..];
    let start = rest.find(r#"value=""#).unwrap() + r#"value=""#.len();
    let end = rest[start..].find('"').unwrap();
    rest[start..start + end].to_owned()
}

#[test]
fn hardening_01_console_form_says_the_secret_form_and_refuses_a_plain_secret() {
    let running = Running::start(&[]);
    let token = tenant_token(&running, "Acme");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let mut console = ConsoleBrowser::new(&running);
        let (_, sign_in) = console.get("/console/sign-in").await;
        let csrf = csrf_of(&sign_in);
        let (status, _) = console
            .post("/console/sign-in", &[("csrf", &csrf), ("token", &token)])
            .await;
        assert_eq!(status, 303, "signed in");

        // Before submit, the secret field says what the scheme needs.
        let (status, form) = console.get("/console/endpoints/new").await;
        assert_eq!(status, 200, "{form}");
        assert!(
            form.contains("followed by the base64 of 24 to 64 random bytes"),
            "{form}"
        );
        let csrf = csrf_of(&form);
        let url = receiver.url();
        let (status, page) = console
            .post(
                "/console/endpoints",
                &[
                    ("csrf", &csrf),
                    ("name", "Orders"),
                    ("url", &url),
                    ("secret", "my-plain-secret-123"),
                    ("signing_scheme", "standard"),
                    ("all_devices", "1"),
                    ("all_events", "1"),
                    ("retry", "default"),
                    ("ordering", "unordered"),
                ],
            )
            .await;
        assert!((400..500).contains(&status), "{status}: {page}");
        assert!(
            page.contains(r#"id="secret""#),
            "the form comes back: {page}"
        );
        assert!(
            page.contains("whsec_&lt;base64 of 24 to 64 bytes&gt;"),
            "the error says the form: {page}"
        );
        let api = JsonApi::new(&running, &token);
        let (_, listed) = api.get("/api/v1/endpoints").await;
        assert_eq!(listed["endpoints"], json!([]), "{listed}");
    });
}

#[test]
fn hardening_09_a_database_outage_exits_5() {
    let direct = herald_tests::postgres_url();
    let host_port = direct
        .split_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap()
        .to_owned();
    let proxy = herald_tests::CuttableProxy::start(host_port.clone());
    let through_proxy = direct.replacen(&host_port, &proxy.addr.to_string(), 1);
    let schema = herald_testkit::fresh_postgres_schema();
    let running = Running::start(&[
        ("DATABASE_URL", through_proxy.as_str()),
        ("HERALD_DATABASE_SCHEMA", schema.as_str()),
    ]);
    let ctl = &running.ctl;
    ctl.json(&running.admin, &["tenants", "create", "Acme"]);
    proxy.cut();

    let output = ctl.run(Some(&running.admin), &["tenants", "list"]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.to_lowercase().contains("unavailable"), "{message}");
}

#[test]
fn hardening_20_an_exported_admin_token_leaves_the_saved_login_in_charge() {
    let running = Running::start(&[]);
    let (ctl, admin) = (&running.ctl, running.admin.as_str());
    let as_admin = [("HERALD_ADMIN_TOKEN", admin)];

    // The README's order: the admin token exported once, then a login.
    let tenant = ctl.run_with(&as_admin, &["tenants", "create", "Acme", "-o", "json"]);
    assert!(tenant.status.success(), "{}", stderr(&tenant));
    let tenant: Value = serde_json::from_slice(&tenant.stdout).unwrap();
    let tenant_id = tenant["id"].as_str().unwrap();
    let created = ctl.run_with(
        &as_admin,
        &["tokens", "create", "--for", tenant_id, "--name", "laptop"],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let token = stdout(&created).trim().to_owned();
    let login = ctl.run_with(&as_admin, &["login", "--with-token", &token]);
    assert!(login.status.success(), "{}", stderr(&login));
    let saved = std::fs::read_to_string(&ctl.config_file).unwrap();
    assert!(
        saved.contains(&token) && !saved.contains(admin),
        "login saves the tenant token, never the admin one: {saved}"
    );

    let endpoint = ctl.run_with(
        &as_admin,
        &[
            "endpoints",
            "create",
            "--name",
            "Orders",
            "--url",
            "https://hooks.example.com/herald",
            "-o",
            "json",
        ],
    );
    assert!(endpoint.status.success(), "{}", stderr(&endpoint));
    let listed = ctl.run_with(&as_admin, &["endpoints", "list"]);
    assert!(stdout(&listed).contains("Orders"), "{}", stdout(&listed));
    let tokens = ctl.run_with(&as_admin, &["tokens", "list", "--for", tenant_id]);
    assert!(
        tokens.status.success() && stdout(&tokens).contains("laptop"),
        "{}",
        stderr(&tokens)
    );

    // The usual precedence holds: HERALD_TOKEN beats the saved login, and
    // the admin token in it says how to act as a tenant.
    let overridden = ctl.run(Some(admin), &["endpoints", "list"]);
    assert_eq!(overridden.status.code(), Some(2), "{}", stderr(&overridden));
    let line = stderr(&overridden);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("--tenant") && line.contains("HERALD_ADMIN_TOKEN"),
        "{line}"
    );
    let as_tenant = ctl.run(Some(admin), &["--tenant", tenant_id, "endpoints", "list"]);
    assert!(
        stdout(&as_tenant).contains("Orders"),
        "{}",
        stderr(&as_tenant)
    );

    // Admin commands without any token name the variable to set.
    let logged_out = Ctl {
        addr: ctl.addr.clone(),
        ingest_addr: ctl.ingest_addr.clone(),
        config_file: running.state.path().join("logged-out.json"),
    };
    let none = logged_out.run_with(&[], &["tenants", "list"]);
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    assert!(
        stderr(&none).contains("HERALD_ADMIN_TOKEN"),
        "{}",
        stderr(&none)
    );
}

#[test]
fn hardening_21_a_failed_endpoint_test_exits_1_with_the_reason_on_one_line() {
    let running = Running::start(&[]);
    let ctl = &running.ctl;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let failing = runtime.block_on(Receiver::start(Duration::ZERO));
    failing.answer(500);
    let slow = runtime.block_on(Receiver::start(Duration::from_secs(5)));
    let accepting = runtime.block_on(Receiver::start(Duration::ZERO));
    accepting.answer(204);
    let tenant = ctl.json(&running.admin, &["tenants", "create", "Acme"]);
    let created = ctl.run(
        Some(&running.admin),
        &[
            "tokens",
            "create",
            "--for",
            tenant["id"].as_str().unwrap(),
            "--name",
            "ci",
        ],
    );
    let token = stdout(&created).trim().to_owned();
    let endpoint = |url: &str| -> String {
        let created = ctl.json(
            &token,
            &[
                "endpoints",
                "create",
                "--name",
                "Orders",
                "--url",
                url,
                "--timeout",
                "1s",
            ],
        );
        created["endpoint"]["id"].as_str().unwrap().to_owned()
    };
    let cases = [
        (endpoint(&failing.url()), "endpoint answered HTTP 500"),
        (
            endpoint("https://herald-test.invalid/hook"),
            "herald-test.invalid",
        ),
        (endpoint(&slow.url()), "no response within 1s"),
        (endpoint(&accepting.url()), "answered 204; only 200 or 201"),
    ];
    for (endpoint_id, reason) in cases {
        for format in ["table", "json"] {
            let tested = ctl.run(
                Some(&token),
                &["endpoints", "test", &endpoint_id, "--output", format],
            );
            let line = stderr(&tested);
            assert_eq!(tested.status.code(), Some(1), "{reason} ({format}): {line}");
            assert_eq!(line.lines().count(), 1, "{line}");
            assert!(
                line.starts_with("error: test delivery failed: ")
                    && line.contains(reason)
                    && line.trim_end().ends_with("(the endpoint is pending_test)"),
                "{reason} ({format}): {line}"
            );
            // The result is still printed, for the response code and body.
            assert!(!tested.stdout.is_empty(), "{reason} ({format})");
        }
    }
}

/// The prefixes of protobuf enum value names, which no output may show.
const RAW_ENUM_PREFIXES: [&str; 9] = [
    "ENDPOINT_STATUS_",
    "ATTEMPT_STATUS_",
    "TOKEN_SCOPE_",
    "CHANNEL_",
    "SIGNING_SCHEME_",
    "ORDERING_",
    "DELIVERY_TRIGGER_",
    "RECOVERY_JOB_STATE_",
    "CIRCUIT_STATE_",
];

#[test]
fn hardening_23_every_output_names_states_alike_and_shows_a_secret_once() {
    let running = Running::start(&[]);
    let ctl = &running.ctl;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(Receiver::start(Duration::ZERO));
    let tenant = ctl.json(&running.admin, &["tenants", "create", "Acme"]);
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let created = ctl.run(
        Some(&running.admin),
        &["tokens", "create", "--for", &tenant_id, "--name", "ci"],
    );
    let token = stdout(&created).trim().to_owned();

    // `endpoints create`: one table, the columns of `get` and the secret,
    // which appears once in everything printed.
    let url = receiver.url();
    let create = [
        "endpoints",
        "create",
        "--name",
        "Orders",
        "--url",
        url.as_str(),
        "--scheme",
        "sha256_hex",
        "--signature-header",
        "X-Acme-Signature",
    ];
    let table = ctl.run(Some(&token), &create);
    assert!(table.status.success(), "{}", stderr(&table));
    let printed = stdout(&table);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "one header and one row: {printed}");
    let columns: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "ID", "NAME", "URL", "STATUS", "DEVICES", "EVENTS", "UPDATED", "SECRET"
        ]
    );
    let secret = lines[1].split_whitespace().last().unwrap().to_owned();
    let endpoint_id = lines[1].split_whitespace().next().unwrap().to_owned();
    assert!(lines[1].contains("pending_test"), "{printed}");
    let everything = format!("{printed}{}", stderr(&table));
    assert_eq!(everything.matches(&secret).count(), 1, "{everything}");
    let get = ctl.run(Some(&token), &["endpoints", "get", &endpoint_id]);
    assert_eq!(
        stdout(&get)
            .lines()
            .next()
            .unwrap()
            .split("  ")
            .filter(|c| !c.is_empty())
            .count(),
        7,
        "{}",
        stdout(&get)
    );
    assert!(stdout(&get).contains("pending_test"), "{}", stdout(&get));
    for format in ["json", "yaml"] {
        let mut args = create.to_vec();
        args.extend(["--output", format]);
        let output = ctl.run(Some(&token), &args);
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        assert!(stderr(&output).is_empty(), "{}", stderr(&output));
        let secret = match format {
            "json" => {
                let value: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(value["endpoint"]["status"], "pending_test");
                assert_eq!(value["endpoint"]["spec"]["signing_scheme"], "sha256_hex");
                value["secret"].as_str().unwrap().to_owned()
            }
            _ => {
                assert!(text.contains("status: \"pending_test\""), "{text}");
                assert!(text.contains("signing_scheme: \"sha256_hex\""), "{text}");
                text.lines()
                    .find_map(|line| line.strip_prefix("secret: "))
                    .unwrap()
                    .trim_matches('"')
                    .to_owned()
            }
        };
        assert!(secret.starts_with("whsec_"), "{text}");
        assert_eq!(text.matches(&secret).count(), 1, "{text}");
    }

    // The names an output shows are the ones the flags take.
    let listed = ctl.json(&token, &["endpoints", "list", "--status", "pending_test"]);
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    let tested = ctl.run(Some(&token), &["endpoints", "test", &endpoint_id]);
    assert!(tested.status.success(), "{}", stderr(&tested));
    let device = ctl.json(
        &token,
        &[
            "devices",
            "create",
            "--channel",
            "telegram",
            "--name",
            "Support",
            "--external-id",
            "123456789",
            "--secret-token",
            "s3cret-token",
        ],
    );
    assert_eq!(device["channel"], "telegram", "{device}");
    let device_id = device["id"].as_str().unwrap().to_owned();
    let attempt_id = eventually("the test's attempt in the log", || {
        let attempts = ctl.json(&token, &["logs", "list"]);
        attempts[0]["id"].as_str().map(str::to_owned)
    });

    // No command prints a raw enum name, in any format.
    let commands: Vec<Vec<&str>> = vec![
        vec!["endpoints", "get", &endpoint_id],
        vec!["endpoints", "list"],
        vec!["endpoints", "test", &endpoint_id],
        vec!["endpoints", "secret", &endpoint_id],
        vec!["endpoints", "disable", &endpoint_id],
        vec!["endpoints", "enable", &endpoint_id],
        vec!["devices", "get", &device_id],
        vec!["devices", "list"],
        vec!["logs", "list"],
        vec!["logs", "get", &attempt_id],
        vec!["summary"],
    ];
    let admin_commands: Vec<Vec<&str>> = vec![
        vec!["tenants", "list"],
        vec!["tokens", "list", "--for", &tenant_id],
    ];
    for format in ["table", "json", "yaml"] {
        for (token, commands) in [(&token, &commands), (&running.admin, &admin_commands)] {
            for command in commands.iter() {
                let mut args = command.clone();
                args.extend(["--output", format]);
                let output = ctl.run(Some(token), &args);
                assert!(output.status.success(), "{args:?}: {}", stderr(&output));
                let text = format!("{}{}", stdout(&output), stderr(&output));
                for prefix in RAW_ENUM_PREFIXES {
                    assert!(!text.contains(prefix), "{args:?} shows {prefix}…: {text}");
                }
            }
        }
    }
    let device_table = ctl.run(Some(&token), &["devices", "get", &device_id]);
    assert!(
        stdout(&device_table).starts_with("ID") && stdout(&device_table).contains("telegram"),
        "{}",
        stdout(&device_table)
    );
}

#[test]
fn topology_08_heraldctl_and_the_json_api_set_and_show_tenant_quotas() {
    let running = Running::start(&[]);
    let (ctl, admin) = (&running.ctl, running.admin.as_str());
    let tenant = ctl.json(admin, &["tenants", "create", "Acme"]);
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let token = tenant_token(&running, "Other");

    // heraldctl: each flag changes its quota, the others keep theirs.
    let set = ctl.json(
        admin,
        &[
            "tenants",
            "quotas",
            "set",
            &tenant_id,
            "--events-per-second",
            "50",
            "--max-dead-letters",
            "1000",
        ],
    );
    assert_eq!(set["quotas"]["events_per_second"].as_f64(), Some(50.0));
    assert_eq!(set["quotas"]["max_dead_letters"], "1000");
    let set = ctl.json(
        admin,
        &[
            "tenants",
            "quotas",
            "set",
            &tenant_id,
            "--events-burst",
            "20",
        ],
    );
    assert_eq!(set["quotas"]["events_per_second"].as_f64(), Some(50.0));
    assert_eq!(set["quotas"]["events_burst"], 20);
    let shown = ctl.run(Some(admin), &["tenants", "get", &tenant_id]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let shown = stdout(&shown);
    assert!(
        shown.contains("events_per_second: 50") && shown.contains("events_burst: 20"),
        "{shown}"
    );

    // A tenant token may not; a value out of range names its field.
    let refused = ctl.run(
        Some(&token),
        &[
            "tenants",
            "quotas",
            "set",
            &tenant_id,
            "--events-burst",
            "1",
        ],
    );
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    let invalid = ctl.run(
        Some(admin),
        &[
            "tenants",
            "quotas",
            "set",
            &tenant_id,
            "--events-per-second=-1",
        ],
    );
    assert_eq!(invalid.status.code(), Some(2), "{}", stderr(&invalid));
    assert!(
        stderr(&invalid).contains("quotas.events_per_second"),
        "{}",
        stderr(&invalid)
    );

    // The JSON API: GET shows them, PUT replaces them (absent: the default).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let as_admin = JsonApi::new(&running, admin);
        let path = format!("/api/v1/tenants/{tenant_id}");
        let (status, body) = as_admin.get(&path).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["quotas"]["events_per_second"].as_f64(), Some(50.0));
        assert_eq!(body["quotas"]["max_dead_letters"], 1000);

        let quotas_path = format!("{path}/quotas");
        let (status, body) = as_admin
            .call(
                reqwest::Method::PUT,
                &quotas_path,
                Some(json!({"events_per_second": 5.5, "max_in_flight_deliveries": 8})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["quotas"],
            json!({"events_per_second": 5.5, "max_in_flight_deliveries": 8})
        );
        let (_, body) = as_admin.get(&path).await;
        assert_eq!(body["quotas"]["max_in_flight_deliveries"], 8);

        let (status, body) = as_admin
            .call(
                reqwest::Method::PUT,
                &quotas_path,
                Some(json!({"events_per_second": -1})),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["field"], "quotas.events_per_second");

        let as_tenant = JsonApi::new(&running, &token);
        let (status, body) = as_tenant
            .call(
                reqwest::Method::PUT,
                &quotas_path,
                Some(json!({"events_per_second": 1000})),
            )
            .await;
        assert_eq!(status, 403, "{body}");
        let (status, _) = as_tenant.get(&path).await;
        assert_eq!(status, 403);
        let (_, body) = as_admin.get(&path).await;
        assert_eq!(body["quotas"]["events_per_second"].as_f64(), Some(5.5));
    });
}
