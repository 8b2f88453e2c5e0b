//! `heraldctl` as a child process against a running `herald all`.
#![allow(clippy::unwrap_used)]

use std::{process::Output, time::Duration};

use herald_tests::{HeraldProcess, NatsServer, Receiver};

struct Ctl {
    addr: String,
    ingest_addr: String,
    config_file: std::path::PathBuf,
}

impl Ctl {
    fn run(&self, token: Option<&str>, args: &[&str]) -> Output {
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
            .args(args)
            .stdin(std::process::Stdio::null());
        if let Some(token) = token {
            command.env("HERALD_TOKEN", token);
        }
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

#[test]
fn an_operator_sets_up_tests_and_pauses_an_endpoint() {
    let nats = NatsServer::start();
    let state = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite:{}", state.path().join("herald.db").display());
    let state_dir = state.path().to_str().unwrap().to_owned();
    let mut herald = HeraldProcess::start(
        &["all"],
        &[
            ("NATS_URL", &nats.url()),
            ("DATABASE_URL", &database_url),
            ("HERALD_STATE_DIR", &state_dir),
            ("HERALD_ALLOW_CIDRS", "127.0.0.0/8"),
        ],
    );
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
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(Receiver::start(Duration::ZERO));

    let tenant = ctl.json(&admin, &["tenants", "create", "Acme"]);
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let created = ctl.run(
        Some(&admin),
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
    assert_eq!(
        endpoint["endpoint"]["status"],
        "ENDPOINT_STATUS_PENDING_TEST"
    );
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
    assert_eq!(attempts[0]["status"], "ATTEMPT_STATUS_SUCCEEDED");
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
    assert_eq!(disabled["status"], "ENDPOINT_STATUS_DISABLED");
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
