//! What heraldctl answers when things go wrong, and which token it uses:
//! exit codes, reasons on one line, an exported admin token.

use crate::*;

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
        config_file: running.herald.state_dir().join("logged-out.json"),
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
    let token = tenant_token(&running, "Acme");
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
