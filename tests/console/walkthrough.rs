//! A customer sets up, tests and follows an endpoint in the browser.

use crate::*;

const NAMES: [&str; 6] = [
    "Orders sync",
    "CRM",
    "Support inbox",
    "Billing",
    "Analytics",
    "Marketing",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_sets_up_tests_and_follows_an_endpoint_in_the_browser() {
    let stack = HeraldAll::start();
    let tenant = stack.tenant("Acme").await;
    let receiver = Receiver::start(Duration::ZERO).await;
    let api = stack.api(&tenant.token);
    let driver = Driver::start();
    let page = Page::new(driver.browser(false).await, stack.url(""), "flow-");

    // Sign in: a wrong token is refused on the form, the right one opens the overview.
    page.goto("/console/").await;
    assert_eq!(page.path().await, "/console/sign-in");
    page.screenshot("01-sign-in").await;
    page.fill("#token", "hrld_not-a-token").await;
    page.follow("form button[type=submit]").await;
    assert!(page.text(".field-error").await.contains("not valid"));
    page.sign_in(&tenant.token).await;
    assert!(page.text(".empty").await.contains("No endpoints yet"));
    page.screenshot("02-overview-empty").await;

    // The tenant's lines, one per channel.
    let mut devices = Vec::new();
    for (channel, name, external_id, verification) in [
        (
            "whatsapp",
            "Sales line",
            "sales-1",
            json!({ "whatsapp": { "hmac_key": "k1" } }),
        ),
        (
            "whatsapp",
            "Returns line",
            "returns-1",
            json!({ "whatsapp": { "hmac_key": "k2" } }),
        ),
        (
            "telegram",
            "Support bot",
            "7012345678",
            json!({ "telegram": { "secret_token": "s3" } }),
        ),
        (
            "waba",
            "Main number",
            "106540352242922",
            json!({ "waba": { "app_secret": "a4", "verify_token": "v4" } }),
        ),
    ] {
        let (status, device) = api
            .post(
                "/api/v1/devices",
                json!({ "channel": channel, "name": name, "external_id": external_id, "verification": verification }),
            )
            .await;
        assert_eq!(status, 201, "{device}");
        devices.push(device["id"].as_str().unwrap().to_owned());
    }

    // Add an endpoint: an invalid URL comes back inline, with the values kept.
    page.follow("a[href='/console/endpoints/new']").await;
    page.click("input[data-select-all='devices-whatsapp']")
        .await;
    let returns_line = format!("input[name=device][value='{}']", devices[1]);
    assert!(page.find(&returns_line).await.is_selected().await.unwrap());
    // "All devices" and single devices exclude each other.
    page.click("input[name=all_devices]").await;
    assert!(!page.find(&returns_line).await.is_selected().await.unwrap());
    page.click("input[data-select-all='devices-whatsapp']")
        .await;
    assert!(
        !page
            .find("input[name=all_devices]")
            .await
            .is_selected()
            .await
            .unwrap()
    );
    assert!(page.find(&returns_line).await.is_selected().await.unwrap());
    page.fill("#name", "Storefront").await;
    page.fill("#url", "http://example.com/hook").await;
    page.click("input[name=event_type][value='message.received']")
        .await;
    page.follow("form.stack button[type=submit]").await;
    let error = page.text(".field.invalid .field-error").await;
    assert!(error.contains("https"), "{error}");
    assert_eq!(
        page.find("#name")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        "Storefront"
    );
    assert!(
        page.find("input[name=event_type][value='message.received']")
            .await
            .is_selected()
            .await
            .unwrap()
    );
    assert!(
        page.find(&format!("input[name=device][value='{}']", devices[0]))
            .await
            .is_selected()
            .await
            .unwrap()
    );
    page.screenshot("03-endpoint-form-error").await;
    page.fill("#url", &receiver.url()).await;
    page.follow("form.stack button[type=submit]").await;
    let secret = page.text("#secret-value").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    page.screenshot("04-endpoint-created").await;

    // The endpoint is pending its test; a test answered 200 makes it active.
    page.follow(".callout a.button.ghost").await;
    assert_eq!(page.text(".status-line .badge").await, "Pending test");
    assert!(
        page.text(".details")
            .await
            .contains("WhatsApp · Returns line")
    );
    let endpoint_path = page.path().await;
    let endpoint_id = endpoint_path.rsplit('/').next().unwrap().to_owned();
    page.screenshot("05-endpoint-pending").await;
    page.follow(".page-actions form[action$='/test'] button")
        .await;
    assert!(page.text(".test-result h2").await.contains("succeeded"));
    assert!(page.text(".test-result").await.contains("200"));
    assert_eq!(page.text(".status-line .badge").await, "Active");
    page.screenshot("06-endpoint-tested").await;
    assert_eq!(receiver.received().len(), 1);

    // Editing where deliveries go puts it back to Pending test, and says so.
    page.follow(".page-actions a[href$='/edit']").await;
    assert_eq!(
        page.find("#name")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        "Storefront"
    );
    page.fill("#url", &format!("{}?store=eu", receiver.url()))
        .await;
    page.follow("form.stack button[type=submit]").await;
    assert!(page.text(".flash").await.contains("back to Pending test"));
    assert_eq!(page.text(".status-line .badge").await, "Pending test");
    page.screenshot("07-endpoint-edited").await;
    page.follow(".page-actions form[action$='/test'] button")
        .await;
    assert_eq!(page.text(".status-line .badge").await, "Active");

    // Rotating shows the new secret once.
    page.follow("form[action$='/rotate-secret'] button").await;
    let rotated = page.text("#secret-value").await;
    assert!(
        rotated.starts_with("whsec_") && rotated != secret,
        "{rotated}"
    );

    // The JSON API refuses what the form refused, naming the field, and
    // offers the event catalog with sample envelopes.
    let (status, refused) = api
        .post(
            "/api/v1/endpoints",
            json!({ "name": "Bad", "url": "ftp://example.com" }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(refused["error"]["code"], "invalid_argument");
    assert_eq!(refused["error"]["field"], "url");
    let (_, catalog) = api.get("/api/v1/event-types").await;
    let received = catalog["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event_type| event_type["name"] == "message.received")
        .unwrap();
    assert_eq!(received["sample"]["event"], "message.received");
    assert!(received["sample"]["data"]["text"].is_string());
    let (status, sample) = api.get("/api/v1/event-types/form.submitted/sample").await;
    assert_eq!(
        (status, sample["event"].as_str()),
        (200, Some("form.submitted"))
    );

    // Sixty more endpoints through the JSON API, some tested, some paused.
    for index in 1..=60 {
        let name = format!("{} {index:02}", NAMES[index % NAMES.len()]);
        let subscribed = match index % 3 {
            0 => vec![devices[0].clone(), devices[3].clone()],
            1 => vec![devices[2].clone()],
            _ => Vec::new(),
        };
        let events = if index % 2 == 0 {
            json!(["message.received", "message.read"])
        } else {
            json!([])
        };
        let (status, created) = api
            .post(
                "/api/v1/endpoints",
                json!({ "name": name, "url": receiver.url(), "device_ids": subscribed, "event_types": events }),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let id = created["endpoint"]["id"].as_str().unwrap().to_owned();
        if index % 4 == 0 {
            let (status, tested) = api
                .post(&format!("/api/v1/endpoints/{id}/test"), json!({}))
                .await;
            assert_eq!(tested["endpoint"]["status"], "active", "{status} {tested}");
        }
        if index % 7 == 0 {
            let (status, _) = api
                .post(&format!("/api/v1/endpoints/{id}/disable"), json!({}))
                .await;
            assert_eq!(status, 200);
        }
    }

    // Search: two characters only hint, three search.
    page.goto("/console/").await;
    page.fill("#q", "CR").await;
    page.follow("form.search button").await;
    assert!(page.text(".search-hint").await.contains("3 characters"));
    assert_eq!(page.count("table.data tbody tr").await, 25);
    page.screenshot("08-search-hint").await;
    page.fill("#q", "CRM").await;
    page.follow("form.search button").await;
    assert_eq!(page.count("table.data tbody tr").await, 10);
    assert!(page.text("table.data tbody").await.contains("CRM 07"));
    page.screenshot("09-search-results").await;

    // Paging through 61 endpoints: 25, 25, 11, and back.
    page.goto("/console/").await;
    assert_eq!(page.text(".stat-row .stat:first-child dd").await, "61");
    assert_eq!(page.count("table.data tbody tr").await, 25);
    page.screenshot("10-overview").await;
    page.follow("a[rel=next]").await;
    assert_eq!(page.text(".pager-page").await, "Page 2");
    assert_eq!(page.count("table.data tbody tr").await, 25);
    page.follow("a[rel=next]").await;
    assert_eq!(page.text(".pager-page").await, "Page 3");
    assert_eq!(page.count("table.data tbody tr").await, 11);
    assert_eq!(page.count("a[rel=next]").await, 0);
    page.follow("a[rel=prev]").await;
    assert_eq!(page.text(".pager-page").await, "Page 2");

    // A published event reaches the endpoint; its attempt is in the logs.
    let event_id = publish(&stack, &tenant, &devices[0], "message.received").await;
    let attempt = wait_for_attempt(
        &api,
        &format!("/api/v1/attempts?endpoint_id={endpoint_id}"),
        |attempt| attempt["event_id"] == event_id.as_str(),
    )
    .await;
    let signature = receiver
        .received()
        .iter()
        .find(|received| received.header("webhook-id") == attempt["delivery_id"].as_str().unwrap())
        .map(|received| received.header("webhook-signature").to_owned())
        .unwrap();
    page.goto("/console/logs").await;
    page.screenshot("11-logs").await;
    page.goto(&format!(
        "/console/logs?endpoint={endpoint_id}&event_type=message.received&status=succeeded"
    ))
    .await;
    assert_eq!(page.count("table.data tbody tr").await, 3);
    page.screenshot("12-logs-filtered").await;
    page.follow("table.data tbody tr:first-child a.row-link")
        .await;
    let detail = page.source().await;
    assert!(
        detail.contains(&event_id),
        "the newest attempt is the live one"
    );
    assert!(detail.contains("webhook-signature"));
    let signature_value = signature.split(',').nth(1).unwrap();
    assert!(
        !detail.contains(signature_value),
        "the signature is redacted"
    );
    page.screenshot("13-attempt").await;

    // Replay sends the same delivery again, with its webhook-id.
    let delivery_id = attempt["delivery_id"].as_str().unwrap().to_owned();
    page.follow(".page-actions form[action$='/replay'] button")
        .await;
    assert!(page.text(".flash").await.contains("Replay"));
    page.screenshot("14-replayed").await;
    wait_for_attempt(
        &api,
        &format!("/api/v1/attempts?endpoint_id={endpoint_id}"),
        |attempt| attempt["event_id"] == event_id.as_str() && attempt["trigger"] == "replay",
    )
    .await;
    assert_eq!(receiver.counts_by_webhook_id()[&delivery_id], 2);

    // A delivery that fails every retry is a dead letter; redriving it delivers it.
    let flaky_receiver = Receiver::start(Duration::ZERO).await;
    let (_, flaky) = api
        .post(
            "/api/v1/endpoints",
            json!({ "name": "Flaky CRM", "url": flaky_receiver.url(), "retry": { "delays_seconds": [0.1, 0.1] } }),
        )
        .await;
    let flaky_id = flaky["endpoint"]["id"].as_str().unwrap().to_owned();
    let (_, tested) = api
        .post(&format!("/api/v1/endpoints/{flaky_id}/test"), json!({}))
        .await;
    assert_eq!(tested["endpoint"]["status"], "active");
    // Fanout learns of the activation through its Watch stream: a live
    // delivery arriving proves it has.
    let deadline = Instant::now() + Duration::from_secs(60);
    'learned: loop {
        publish(&stack, &tenant, &devices[0], "message.received").await;
        for _ in 0..20 {
            let live = flaky_receiver
                .received()
                .iter()
                .any(|received| !String::from_utf8_lossy(&received.body).contains("\"test\":true"));
            if live {
                break 'learned;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            Instant::now() < deadline,
            "fanout never delivered to the new endpoint"
        );
    }
    flaky_receiver.answer(500);
    publish(&stack, &tenant, &devices[0], "message.received").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let dead_id = loop {
        let (_, dead) = api
            .get(&format!("/api/v1/dead-letters?endpoint_id={flaky_id}"))
            .await;
        if let Some(letter) = dead["dead_letters"].as_array().unwrap().first() {
            assert_eq!(letter["attempts"].as_array().unwrap().len(), 3, "{letter}");
            break letter["id"].as_str().unwrap().to_owned();
        }
        if Instant::now() > deadline {
            let (_, attempts) = api
                .get(&format!("/api/v1/attempts?endpoint_id={flaky_id}"))
                .await;
            panic!("no dead letter: {dead}; attempts {attempts}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    flaky_receiver.answer(200);
    page.goto("/console/").await;
    page.follow("nav a[href='/console/dead-letters']").await;
    assert_eq!(page.count("#dead-letter-rows tr").await, 1);
    assert!(page.text("#dead-letter-rows").await.contains("Flaky CRM"));
    page.screenshot("15-dead-letters").await;
    page.follow(&format!("button[name=one][value='{dead_id}']"))
        .await;
    assert!(page.text(".flash").await.contains("Redrive"));
    eventually("the redriven delivery", Duration::from_secs(60), || async {
        flaky_receiver
            .received()
            .iter()
            .any(|received| received.header("webhook-id") == dead_id && received.succeeded())
            .then_some(())
    })
    .await;
    page.goto("/console/dead-letters").await;
    assert!(page.text(".empty").await.contains("No dead letters"));

    // Disable, then delete after the confirmation page.
    page.goto(&endpoint_path).await;
    page.follow(".page-actions form[action$='/disable'] button")
        .await;
    assert!(page.text(".flash").await.contains("Disabled"));
    assert_eq!(page.text(".status-line .badge").await, "Disabled");
    page.screenshot("16-endpoint-disabled").await;
    page.follow(".page-actions a[href$='/delete']").await;
    page.screenshot("17-delete-confirmation").await;
    page.follow("button.danger").await;
    assert!(page.text(".flash").await.contains("deleted"));
    assert!(!page.source().await.contains(&endpoint_id));
    let (status, _) = api.get(&format!("/api/v1/endpoints/{endpoint_id}")).await;
    assert_eq!(status, 404);

    // At phone width the overview still works.
    let phone = Page::new(driver.browser(true).await, stack.url(""), "phone-");
    phone.sign_in(&tenant.token).await;
    phone.screenshot("overview").await;
    phone.goto("/console/endpoints/new").await;
    phone.screenshot("endpoint-form").await;
    phone.goto("/console/logs").await;
    phone.screenshot("logs").await;
    phone.client.close().await.unwrap();

    // Signing out ends the session.
    page.goto("/console/").await;
    page.follow("form.sign-out button").await;
    assert!(page.text(".flash").await.contains("signed out"));
    page.goto("/console/").await;
    assert_eq!(page.path().await, "/console/sign-in");
    page.client.close().await.unwrap();
}
