//! An operator sets endpoints up and inspects them with heraldctl: tests,
//! pauses, local signature checks, and every output naming states alike.

use crate::*;

#[test]
fn an_operator_sets_up_tests_and_pauses_an_endpoint() {
    let running = Running::start(&[]);
    let (ctl, admin, state) = (&running.ctl, &running.admin, running.herald.state_dir());
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
        .env("HERALDCTL_CONFIG", state.join("none.json"))
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
    let attempt_id = wait_for("the test's attempt in the log", PATIENCE, || {
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

    // `--preset` sets the payload contract, which fixes the signing; the
    // output names the scheme as `--scheme` takes it.
    let kapso = ctl.json(
        &token,
        &[
            "endpoints",
            "create",
            "--name",
            "Kapso bot",
            "--url",
            url.as_str(),
            "--preset",
            "kapso",
        ],
    );
    assert_eq!(kapso["endpoint"]["spec"]["preset"], "kapso", "{kapso}");
    assert_eq!(
        kapso["endpoint"]["spec"]["signing_scheme"], "hex",
        "{kapso}"
    );
    let kapso_id = kapso["endpoint"]["id"].as_str().unwrap().to_owned();
    let kaanha = ctl.json(
        &token,
        &["endpoints", "update", &kapso_id, "--preset", "kaanha"],
    );
    assert_eq!(kaanha["spec"]["signing_scheme"], "sha256_hex", "{kaanha}");
    assert_eq!(
        kaanha["spec"]["signature_header"], "X-Kaanha-Signature",
        "{kaanha}"
    );
    let refused = ctl.run(
        Some(&token),
        &["endpoints", "update", &kapso_id, "--preset", "acme"],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("spec.preset"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn event_types_list_shows_labels_channels_and_schemas() {
    let running = Running::start(&[]);
    let ctl = &running.ctl;
    let token = tenant_token(&running, "Acme");
    let table = ctl.run(Some(&token), &["event-types", "list", "--all"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let table = stdout(&table);
    let header = table.lines().next().unwrap();
    for column in ["NAME", "LABEL", "CHANNELS", "KIND", "SCHEMA"] {
        assert!(header.contains(column), "{header}");
    }
    let incoming = table
        .lines()
        .find(|line| line.starts_with("message.received"))
        .unwrap();
    assert!(incoming.contains("Incoming Message"), "{incoming}");
    assert!(incoming.contains("whatsapp,telegram,waba"), "{incoming}");
    let status = table
        .lines()
        .find(|line| line.starts_with("message.read"))
        .unwrap();
    assert!(status.contains("Message status"), "{status}");
    assert!(!status.contains("telegram"), "{status}");

    let refused = ctl.run(
        Some(&token),
        &[
            "event-types",
            "register",
            "order.packed",
            "--schema",
            r#"{"type":"object","oneOf":[]}"#,
        ],
    );
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("schema"), "{}", stderr(&refused));
    let registered = ctl.json(
        &token,
        &[
            "event-types",
            "register",
            "order.packed",
            "--description",
            "An order was packed.",
            "--schema",
            r#"{"type":"object","required":["sku"]}"#,
        ],
    );
    assert_eq!(
        registered["schema"],
        r#"{"type":"object","required":["sku"]}"#
    );
    let listed = ctl.json(&token, &["event-types", "list", "--all"]);
    let custom = array(listed)
        .into_iter()
        .find(|definition| definition["name"] == "order.packed")
        .unwrap();
    assert_eq!(custom["label"], "order.packed");
}
