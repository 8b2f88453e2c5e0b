//! The web console in a real browser: headless Chromium through
//! chromedriver (Debian's packages; `make test` installs them) against a
//! running `herald all` with a real receiver. Every page visited is saved as
//! a screenshot under `<target dir>/console-screenshots/`.
#![allow(clippy::unwrap_used)]

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, key::Key};
use herald_proto::v1::{self as pb, ingest_service_client::IngestServiceClient};
use herald_tests::{
    Receiver, free_port,
    herald_all::{HeraldAll, Tenant},
};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).is_file(),
                "{path} is missing: `make test` installs Debian's chromium and chromium-driver"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        herald_testkit::wait_for("chromedriver", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Driver { child, port }
    }

    /// A desktop browser window, or a phone's screen (390 × 844) when `phone`.
    async fn browser(&self, phone: bool) -> Client {
        self.browser_with(phone, true).await
    }

    /// A desktop window with JavaScript turned off: the console's basics
    /// must work without it.
    async fn browser_without_javascript(&self) -> Client {
        self.browser_with(false, false).await
    }

    async fn browser_with(&self, phone: bool, javascript: bool) -> Client {
        let mut options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--window-size=1366,1000",
            ],
        });
        if !javascript {
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        if phone {
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 1.0, "touch": true },
            });
        }
        let capabilities = json!({ "browserName": "chrome", "goog:chromeOptions": options });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Forgets the screenshots an earlier run saved under `prefix`.
fn clear_screenshots(prefix: &str) {
    for entry in std::fs::read_dir(screenshot_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            std::fs::remove_file(path).unwrap();
        }
    }
}

/// axe-core's script, installed by `make test-tools` (pinned in the Makefile).
fn axe_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../.venv/axe/node_modules/axe-core/axe.min.js");
        std::fs::read_to_string(&path).unwrap_or_else(|error| {
            panic!(
                "{}: {error}: `make test-tools` installs axe-core",
                path.display()
            )
        })
    })
}

/// The WCAG 2.1 A and AA rules axe-core checks.
const AXE_TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// A browser session on the console, saving a screenshot of each page and
/// checking it with axe-core first (when the browser runs JavaScript).
struct Page {
    client: Client,
    base: String,
    name_prefix: &'static str,
    audit: bool,
}

impl Page {
    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(error) => panic!("no {css} on {}: {error}", self.path().await),
        }
    }

    async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn click(&self, css: &str) {
        if let Err(error) = self.find(css).await.click().await {
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(screenshot_dir().join("failed-click.png"), png).unwrap();
            panic!("cannot click {css} on {}: {error}", self.path().await);
        }
    }

    /// Clicks what leads to another page, and waits until that page loaded.
    async fn follow(&self, css: &str) {
        self.client
            .execute("window.heraldOldPage = true;", vec![])
            .await
            .unwrap();
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self
                .client
                .execute(
                    "return window.heraldOldPage === undefined && document.readyState === 'complete';",
                    vec![],
                )
                .await
                .map(|value| value == Value::Bool(true))
                .unwrap_or(false);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} led nowhere from {}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn fill(&self, css: &str, value: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }

    /// Whether the checkbox or radio `css` is ticked (hidden ones too).
    async fn checked(&self, css: &str) -> bool {
        self.find(css).await;
        self.client
            .execute(
                "return document.querySelector(arguments[0]).checked;",
                vec![Value::String(css.to_owned())],
            )
            .await
            .unwrap()
            == Value::Bool(true)
    }

    async fn displayed(&self, css: &str) -> bool {
        self.find(css).await.is_displayed().await.unwrap()
    }

    async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    fn new(client: Client, base: String, name_prefix: &'static str) -> Page {
        clear_screenshots(name_prefix);
        Page {
            client,
            base,
            name_prefix,
            audit: true,
        }
    }

    /// What axe-core finds on the page as it is now: how many rules
    /// passed (`passes`) and the WCAG 2.1 A and AA `violations`.
    async fn axe(&self) -> Value {
        let loaded = self
            .client
            .execute("return typeof window.axe === 'object';", vec![])
            .await
            .unwrap();
        if loaded != Value::Bool(true) {
            self.client
                .execute(&format!("{}\nreturn true;", axe_source()), vec![])
                .await
                .unwrap();
        }
        self.client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                axe.run(document, { runOnly: { type: "tag", values: arguments[0] } })
                    .then((results) => done({
                        passes: results.passes.length,
                        violations: results.violations.map((violation) => ({
                            rule: violation.id,
                            impact: violation.impact,
                            help: violation.help,
                            nodes: violation.nodes.slice(0, 5).map((node) => node.target.join(" ")),
                        })),
                    }))
                    .catch((error) => done({ passes: 0, violations: [{ rule: "axe-error", help: String(error) }] }));"#,
                vec![json!(AXE_TAGS)],
            )
            .await
            .unwrap()
    }

    /// Fails on any WCAG 2.1 A or AA violation axe-core finds on the page.
    async fn check_accessibility(&self, name: &str) {
        let violations = self.axe().await;
        assert!(
            violations["passes"].as_u64().unwrap_or_default() > 0,
            "axe-core checked nothing: {violations}"
        );
        assert_eq!(
            violations["violations"],
            json!([]),
            "axe-core: WCAG 2.1 AA violations on {} ({}{name})",
            self.path().await,
            self.name_prefix
        );
    }

    async fn screenshot(&self, name: &str) {
        if self.audit {
            self.check_accessibility(name).await;
        }
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(
            screenshot_dir().join(format!("{}{name}.png", self.name_prefix)),
            png,
        )
        .unwrap();
    }

    async fn sign_in(&self, token: &str) {
        self.goto("/console/").await;
        assert_eq!(self.path().await, "/console/sign-in");
        self.fill("#token", token).await;
        self.follow("form button[type=submit]").await;
        self.find(".stats").await;
    }
}

/// The JSON API, as a script would use it.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(stack: &HeraldAll, tenant: &Tenant) -> Api {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Api {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: stack.url(""),
            token: tenant.token.clone(),
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
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

async fn publish(stack: &HeraldAll, tenant: &Tenant, device_id: &str, event_type: &str) -> String {
    let mut ingest = IngestServiceClient::connect(format!("http://{}", stack.herald.ingest_addr))
        .await
        .unwrap();
    let mut request = tonic::Request::new(pb::PublishRequest {
        items: vec![pb::PublishItem {
            r#type: event_type.into(),
            device_id: device_id.into(),
            channel: pb::Channel::Whatsapp.into(),
            data: br#"{"text":"Is my order on its way?","from":"16505551234"}"#
                .to_vec()
                .into(),
            ..Default::default()
        }],
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", tenant.token).parse().unwrap(),
    );
    let response = ingest.publish(request).await.unwrap().into_inner();
    match &response.results[0].outcome {
        Some(pb::publish_result::Outcome::Accepted(accepted)) => accepted.event_id.clone(),
        other => panic!("publish refused: {other:?}"),
    }
}

/// Polls the JSON API until `path` lists an attempt matching `wanted`.
async fn wait_for_attempt(api: &Api, path: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = api.get(path).await;
        assert_eq!(status, 200, "{body}");
        if let Some(attempt) = body["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| wanted(a))
        {
            return attempt.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no matching attempt at {path}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| {
            format!(
                "{key}={}",
                value
                    .replace('+', "%2B")
                    .replace('/', "%2F")
                    .replace('=', "%3D")
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

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
    let api = Api::new(&stack, &tenant);
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
    // The empty state leads a new user to add a device first.
    assert!(page.text(".empty").await.contains("No webhooks yet"));
    assert!(page.text(".notice").await.contains("developer feature"));
    page.find(".empty a[href='/console/devices/new']").await;
    assert_eq!(page.count("form.search").await, 0, "nothing to search yet");
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

    // Add a webhook. Devices: channel tabs keep what each channel has
    // ticked, search narrows the current channel, and chips remove one.
    page.follow("a[href='/console/endpoints/new']").await;
    let device_box = |index: usize| format!("input[name=device][value='{}']", devices[index]);
    page.click("#tab-telegram").await;
    assert!(page.displayed("#devices-telegram").await);
    assert!(!page.displayed("#devices-whatsapp").await);
    page.click(&device_box(2)).await;
    assert!(
        page.checked("input[name=devices_mode][value=selected]")
            .await
    );
    page.click("#tab-whatsapp").await;
    assert!(
        page.checked(&device_box(2)).await,
        "switching tabs keeps Telegram's pick"
    );
    assert_eq!(page.text("#tab-telegram [data-tab-count]").await, "1/1");
    // Only Telegram is picked: no receipts (Message status) are offered.
    assert!(
        !page
            .displayed("label.event-option:has(input[value='message.read'])")
            .await
    );
    assert!(page.text("[data-events-hint]").await.contains("Telegram"));
    page.fill("#device-search", "Returns").await;
    assert!(
        !page
            .displayed(&format!("label:has({})", device_box(0)))
            .await
    );
    page.click("button[data-pick=filtered]").await;
    assert!(page.checked(&device_box(1)).await);
    assert!(
        !page.checked(&device_box(0)).await,
        "Select filtered ticks only the match"
    );
    page.screenshot("03-endpoint-form-picker").await;
    // A WhatsApp line is picked: receipts are offered again.
    assert!(
        page.displayed("label.event-option:has(input[value='message.read'])")
            .await
    );
    page.fill("#device-search", "").await;
    page.click("button[data-pick=all]").await;
    assert!(page.checked(&device_box(0)).await);
    assert_eq!(page.count("#device-chips .chip").await, 3);
    page.click(&format!(
        "#device-chips .chip[data-remove='{}']",
        devices[2]
    ))
    .await;
    assert!(
        !page.checked(&device_box(2)).await,
        "the chip removed its device"
    );
    assert_eq!(page.count("#device-chips .chip").await, 2);
    page.click("button[data-pick=clear]").await;
    assert!(!page.checked(&device_box(0)).await && !page.checked(&device_box(1)).await);
    assert!(
        page.find("#device-chips")
            .await
            .attr("hidden")
            .await
            .unwrap()
            .is_some()
    );
    // One explicit "every device": choosing it clears single picks.
    page.click(&device_box(0)).await;
    page.click("input[name=devices_mode][value=all]").await;
    assert!(!page.checked(&device_box(0)).await);
    page.click("button[data-pick=all]").await;
    assert!(
        page.checked("input[name=devices_mode][value=selected]")
            .await
    );
    // Events carry the seed's labels beside the catalog name.
    let received_label = page
        .text("label.event-option:has(input[value='message.received'])")
        .await;
    assert!(
        received_label.contains("Incoming Message") && received_label.contains("message.received")
    );
    assert!(
        page.text("label.event-option:has(input[value='form.submitted'])")
            .await
            .contains("Submission")
    );
    assert!(
        page.text("label.event-option:has(input[value='message.read'])")
            .await
            .contains("Message status")
    );
    // Delivery options are collapsed until asked for.
    assert!(!page.displayed("#retry_delays").await);
    page.click("details.delivery-options summary").await;
    assert!(page.displayed("#retry_delays").await);
    // An invalid URL comes back inline, with the values kept.
    let returns_line = device_box(1);
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
        page.checked("input[name=event_type][value='message.received']")
            .await
    );
    assert!(page.checked(&device_box(0)).await);
    assert!(page.checked(&returns_line).await);
    page.screenshot("03-endpoint-form-error").await;

    // The transformation is tried on a catalog sample before anything is
    // saved; the form keeps its values.
    page.click("details.delivery-options summary").await;
    page.fill(
        "#transformation",
        "function handler(webhook) { webhook.event = { greeting: webhook.event.data.text }; return webhook; }",
    )
    .await;
    page.follow("#try-transformation").await;
    let preview = page.text("#preview-body").await;
    assert!(preview.contains("greeting"), "{preview}");
    assert_eq!(
        page.find("#name")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        "Storefront"
    );
    page.screenshot("03b-transformation-preview").await;
    page.fill("#transformation", "").await;

    // Save → test: the Test page opens, with the secret shown once.
    page.fill("#url", &receiver.url()).await;
    page.follow("form.stack button[type=submit]").await;
    let secret = page.text("#secret-value").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(page.text(".status-line .badge").await, "Pending test");
    page.screenshot("04-endpoint-created-test-page").await;
    let endpoint_path = page
        .find("a.button.ghost[href^='/console/endpoints/ep_']")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let endpoint_id = endpoint_path.rsplit('/').next().unwrap().to_owned();

    // The endpoint page lists its devices by channel.
    page.goto(&endpoint_path).await;
    assert!(
        page.text(".details")
            .await
            .contains("WhatsApp · Returns line")
    );
    page.screenshot("05-endpoint-pending").await;

    // Test: pick the sample's event type; a 200 makes it Active; the
    // result is a page of its own that reloading does not send again.
    page.follow(".page-actions a[href$='/test']").await;
    page.find("#event_type option[value='message.received']")
        .await
        .click()
        .await
        .unwrap();
    // The sample comes from one of the endpoint's devices.
    page.find("#device_id option[value^='dev_']")
        .await
        .click()
        .await
        .unwrap();
    page.follow("form[action$='/test'] button[type=submit]")
        .await;
    assert!(page.path().await.contains("/test?attempt="));
    assert!(
        page.text("#device_id option:checked")
            .await
            .contains("Returns line")
    );
    assert!(page.text(".test-result h2").await.contains("succeeded"));
    assert_eq!(page.text("#response-code").await, "200");
    assert_eq!(page.text(".status-line .badge").await, "Active");
    let request_sent = page.text(".request-sent").await;
    assert!(
        request_sent.contains("webhook-signature") && request_sent.contains("redacted"),
        "{request_sent}"
    );
    let test_signature = receiver.received()[0]
        .header("webhook-signature")
        .to_owned();
    assert!(
        !page
            .source()
            .await
            .contains(test_signature.split(',').nth(1).unwrap())
    );
    page.screenshot("06-endpoint-tested").await;
    page.client.refresh().await.unwrap();
    page.find(".test-result").await;
    assert_eq!(
        receiver.received().len(),
        1,
        "reloading the result sends nothing"
    );

    // Editing where deliveries go puts it back to Pending test, and says so.
    page.goto(&endpoint_path).await;
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
    assert!(page.checked(&returns_line).await);
    page.screenshot("07-endpoint-edit-form").await;
    page.fill("#url", &format!("{}?store=eu", receiver.url()))
        .await;
    page.follow("form.stack button[type=submit]").await;
    assert!(page.text(".flash").await.contains("back to Pending test"));
    assert_eq!(page.text(".status-line .badge").await, "Pending test");
    page.screenshot("07-endpoint-edited").await;
    // A 202 does not activate it, and the page says why.
    receiver.answer(202);
    page.follow("form[action$='/test'] button[type=submit]")
        .await;
    assert!(page.text(".verdict").await.contains("202 Accepted"));
    assert_eq!(page.text(".status-line .badge").await, "Pending test");
    page.screenshot("07-endpoint-test-202").await;
    receiver.answer(200);
    page.follow("form[action$='/test'] button[type=submit]")
        .await;
    assert_eq!(page.text(".status-line .badge").await, "Active");

    page.goto(&endpoint_path).await;
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

    // The table of 61 endpoints, then paging through 60: 25, 25, 10, and back.
    page.goto("/console/").await;
    assert_eq!(
        page.text(".stat-row .stat:first-child dt").await,
        "Webhooks"
    );
    assert_eq!(page.text(".stat-row .stat:first-child dd").await, "61");
    // Device links: 2 (Storefront) + 20 × 2 + 20 × 1 + 20 endpoints of
    // every device × 4 devices.
    assert_eq!(
        page.text(".stat-row .stat:nth-child(2) dt").await,
        "Device links"
    );
    assert_eq!(page.text(".stat-row .stat:nth-child(2) dd").await, "142");
    assert_eq!(page.count("table.data tbody tr").await, 25);
    let columns = page.text("table.endpoints thead").await.to_lowercase();
    for column in [
        "Webhook",
        "Channel",
        "Devices",
        "Destination",
        "Events",
        "Status",
        "Last delivery",
    ] {
        assert!(
            columns.contains(&column.to_lowercase()),
            "{column} in {columns}"
        );
    }
    // Newest first: the last one created, over two channels.
    let first_row = "table.endpoints tbody tr:first-child";
    assert_eq!(
        page.text(&format!("{first_row} .row-link")).await,
        "Orders sync 60"
    );
    assert_eq!(
        page.text(&format!("{first_row} td[data-label=Channel]"))
            .await,
        "Mixed channels"
    );
    let events = page
        .text(&format!("{first_row} td[data-label=Events]"))
        .await;
    assert!(
        events.contains("Incoming Message") && events.contains("Message status: read"),
        "{events}"
    );
    let destination = page.find(&format!("{first_row} .truncate")).await;
    assert_eq!(
        destination.attr("title").await.unwrap().unwrap(),
        receiver.url()
    );
    // The device count opens the linked devices.
    assert!(
        !page
            .displayed(&format!("{first_row} .linked-devices .popup"))
            .await
    );
    page.click(&format!("{first_row} .linked-devices summary"))
        .await;
    let linked = page
        .text(&format!("{first_row} .linked-devices .popup"))
        .await;
    assert!(
        linked.contains("Sales line") && linked.contains("Main number"),
        "{linked}"
    );
    assert!(page.text(".contract").await.contains("X-Herald-Event"));
    page.screenshot("10-overview").await;
    // Sortable by name and by status.
    page.follow("th a.sort-link[href*='sort=name']").await;
    assert_eq!(
        page.text(&format!("{first_row} .row-link")).await,
        "Analytics 04"
    );
    page.follow("th a.sort-link[href*='sort=status']").await;
    assert_eq!(
        page.text(&format!("{first_row} td[data-label=Status] .badge"))
            .await,
        "Pending test"
    );
    page.goto("/console/").await;
    // Row actions: Edit opens the editor, Delete its confirmation.
    page.follow(&format!("{first_row} a[href$='/edit']")).await;
    assert_eq!(page.text("h1").await, "Edit webhook");
    page.goto("/console/").await;
    page.follow(&format!("{first_row} a[href$='/delete']"))
        .await;
    page.follow("button.danger").await;
    assert!(page.text(".flash").await.contains("deleted"));
    assert_eq!(page.text(".stat-row .stat:first-child dd").await, "60");
    let endpoints = 60;
    page.follow("a[rel=next]").await;
    assert_eq!(page.text(".pager-page").await, "Page 2");
    assert_eq!(page.count("table.data tbody tr").await, 25);
    page.follow("a[rel=next]").await;
    assert_eq!(page.text(".pager-page").await, "Page 3");
    assert_eq!(page.count("table.data tbody tr").await, endpoints - 50);
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
    // Three tests (200, 202, 200) and the live event.
    assert_eq!(page.count("table.data tbody tr").await, 4);
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
    // Exactly the body that was POSTed.
    assert!(page.text("#request-body").await.contains(&event_id));

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

    // Following live: a new attempt appears at the top without a reload.
    page.goto(&format!("/console/logs?endpoint={endpoint_id}"))
        .await;
    let before = page.count("table.data tbody tr").await;
    page.click("#live-toggle").await;
    page.find("#live-toggle[data-connected=true]").await;
    publish(&stack, &tenant, &devices[0], "message.received").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while page.count("table.data tbody tr").await <= before {
        assert!(Instant::now() < deadline, "no live row arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(page.text("#live-status").await.contains("Following"));
    page.screenshot("14b-logs-live").await;

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
    let deadline = Instant::now() + Duration::from_secs(60);
    while !flaky_receiver
        .received()
        .iter()
        .any(|received| received.header("webhook-id") == dead_id && received.succeeded())
    {
        assert!(
            Instant::now() < deadline,
            "the redriven delivery never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    phone.goto("/console/devices").await;
    phone.screenshot("devices").await;
    phone.client.close().await.unwrap();

    // Without JavaScript: every channel's devices are listed one after the
    // other, and adding, saving and testing a webhook still work.
    let mut plain = Page::new(
        driver.browser_without_javascript().await,
        stack.url(""),
        "nojs-",
    );
    // axe-core runs its checks asynchronously, which a page without
    // JavaScript does not: the same pages are checked with it above.
    plain.audit = false;
    plain.sign_in(&tenant.token).await;
    plain.goto("/console/endpoints/new").await;
    assert!(plain.displayed("#devices-telegram").await && plain.displayed("#devices-waba").await);
    assert!(!plain.displayed("#device-search").await);
    plain.fill("#name", "No script").await;
    plain.fill("#url", &receiver.url()).await;
    // A ticked device beside "Every device" is refused, not dropped.
    let main_number = format!("input[name=device][value='{}']", devices[3]);
    plain.click(&main_number).await;
    plain.follow("form.stack button[type=submit]").await;
    assert!(
        plain
            .text(".field.invalid .field-error")
            .await
            .contains("Every device is chosen")
    );
    assert!(plain.checked(&main_number).await);
    plain
        .click("input[name=devices_mode][value=selected]")
        .await;
    plain.screenshot("endpoint-form").await;
    plain.follow("form.stack button[type=submit]").await;
    assert!(plain.text("#secret-value").await.starts_with("whsec_"));
    plain
        .follow("form[action$='/test'] button[type=submit]")
        .await;
    assert!(plain.text(".test-result h2").await.contains("succeeded"));
    assert_eq!(plain.text(".status-line .badge").await, "Active");
    plain.screenshot("endpoint-tested").await;
    plain.client.close().await.unwrap();

    // Signing out ends the session.
    page.goto("/console/").await;
    page.follow("form.sign-out button").await;
    assert!(page.text(".flash").await.contains("signed out"));
    page.goto("/console/").await;
    assert_eq!(page.path().await, "/console/sign-in");
    page.client.close().await.unwrap();
}

/// Posts `body` to an inbound URL until ingest knows the device (it learns
/// of new devices through its Watch stream), and answers the final status.
async fn post_inbound(url: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    let http = plain_http();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut request = http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let status = request.send().await.unwrap().status().as_u16();
        if (status != 404 && status != 503) || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_connects_devices_in_the_browser() {
    let stack = HeraldAll::start();
    let tenant = stack.tenant("Acme").await;
    let driver = Driver::start();
    let page = Page::new(driver.browser(false).await, stack.url(""), "devices-");
    page.sign_in(&tenant.token).await;

    // No devices yet: the page leads to adding one per channel.
    page.follow("nav a[href='/console/devices']").await;
    assert!(page.text(".empty").await.contains("No devices yet"));
    page.screenshot("01-empty").await;
    // Setup instructions use the ingest service's public address.
    let ingest = format!("http://{}", stack.herald.ingest_addr);
    page.fill("#ingest", &ingest).await;
    page.follow("form.inline-form button").await;
    assert_eq!(page.text("#ingest-base").await, ingest);

    // A Telegram bot: the secret token is generated and shown once, with
    // the setWebhook call to make.
    page.follow("a[href='/console/devices/new?channel=telegram']")
        .await;
    page.fill("#name", "Support bot").await;
    page.fill("#external_id", "7012345678").await;
    page.screenshot("02-add-telegram").await;
    page.follow("form.device-form button[type=submit]").await;
    let token = page.text("#setup-secret").await;
    let url = page.text("#setup-url").await;
    assert!(
        url.starts_with(&format!("{ingest}/inbound/telegram/dev_")),
        "{url}"
    );
    let call = page.text("#setup-call").await;
    assert!(
        call.contains("setWebhook") && call.contains(&token),
        "{call}"
    );
    // Copy buttons appear with JavaScript and copy.
    page.click("button[data-copy=setup-url]").await;
    assert_eq!(page.text("button[data-copy=setup-url]").await, "Copied");
    page.screenshot("03-telegram-setup").await;
    // What the page says works: Telegram's update with the token is taken,
    // without it refused.
    let update = r#"{"update_id":1,"message":{"message_id":1,"date":1764072000,"chat":{"id":42,"type":"private"},"from":{"id":42,"is_bot":false,"first_name":"Maria"},"text":"Hi"}}"#;
    let secret_header = "x-telegram-bot-api-secret-token";
    assert_eq!(
        post_inbound(&url, &[(secret_header, &token)], update).await,
        200
    );
    assert_eq!(
        post_inbound(&url, &[(secret_header, "wrong")], update).await,
        403
    );
    let device_path = page
        .find(".page-actions a[href$='/edit']")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap()
        .trim_end_matches("/edit")
        .to_owned();
    // Shown once: the device's page no longer has the token.
    page.goto(&device_path).await;
    assert!(!page.source().await.contains(&token));
    assert_eq!(page.text("#setup-url").await, url);
    // Its health shows both calls within seconds: the refused one with why.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !page.text("#health-refused").await.starts_with('1') {
        assert!(Instant::now() < deadline, "the refused call never showed");
        tokio::time::sleep(Duration::from_millis(500)).await;
        page.goto(&device_path).await;
    }
    assert_eq!(page.text("#health-events").await, "1");
    assert!(
        page.text("#health-last-refusal")
            .await
            .contains("x-telegram-bot-api-secret-token header does not match")
    );
    page.screenshot("03b-telegram-health").await;

    // A WABA number: the app secret is required, the verify token generated.
    page.goto("/console/devices/new?channel=waba").await;
    page.fill("#name", "Main number").await;
    page.fill("#external_id", "106540352242922").await;
    page.follow("form.device-form button[type=submit]").await;
    assert!(
        page.text(".field.invalid .field-error")
            .await
            .contains("app secret")
    );
    assert_eq!(
        page.find("#name")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        "Main number"
    );
    page.fill("#secret", "meta-app-secret").await;
    page.follow("form.device-form button[type=submit]").await;
    let verify_token = page.text("#setup-verify-token").await;
    let callback = page.text("#setup-url").await;
    assert!(callback.contains("/inbound/waba/dev_"), "{callback}");
    page.screenshot("04-waba-setup").await;
    // Meta's handshake with that token answers the challenge.
    let http = plain_http();
    let deadline = Instant::now() + Duration::from_secs(30);
    let challenge = loop {
        let answer = http
            .get(format!(
                "{callback}?hub.mode=subscribe&hub.verify_token={verify_token}&hub.challenge=1158201444"
            ))
            .send()
            .await
            .unwrap();
        if answer.status() == 200 || Instant::now() > deadline {
            break answer.text().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(challenge, "1158201444");

    // A WhatsApp line through its gateway, with a generated HMAC key.
    page.goto("/console/devices/new?channel=whatsapp").await;
    page.fill("#name", "Sales line").await;
    page.fill("#external_id", "sales-1").await;
    page.follow("form.device-form button[type=submit]").await;
    assert!(!page.text("#setup-hmac-key").await.is_empty());
    page.screenshot("05-whatsapp-setup").await;

    // Listed by channel, each with its status.
    page.goto("/console/devices").await;
    for title in ["WhatsApp lines", "Telegram bots", "WABA numbers"] {
        assert!(page.source().await.contains(title), "{title}");
    }
    assert!(
        page.text("table.devices")
            .await
            .contains("Verified webhooks")
    );
    page.screenshot("06-list").await;

    page.goto("/console/devices/new").await;
    page.screenshot("06-choose-channel").await;

    // Edit: renaming keeps the secret.
    page.goto(&format!("{device_path}/edit")).await;
    page.screenshot("06-edit").await;
    page.fill("#name", "Support bot EU").await;
    page.follow("form.device-form button[type=submit]").await;
    assert!(page.text(".flash").await.contains("Saved"));
    assert_eq!(page.text("h1").await, "Support bot EU");
    assert_eq!(
        post_inbound(&url, &[(secret_header, &token)], update).await,
        200
    );

    // The editor offers the new devices per channel.
    page.goto("/console/endpoints/new").await;
    assert_eq!(page.text("#tab-telegram [data-tab-count]").await, "0/1");
    // By keyboard: arrows move between channel tabs, Space ticks a device,
    // Enter on its chip removes it.
    let key = |key: Key| String::from(char::from(key));
    let active_id = "return document.activeElement.id;";
    page.find("#tab-whatsapp")
        .await
        .send_keys(&key(Key::Right))
        .await
        .unwrap();
    assert_eq!(
        page.client.execute(active_id, vec![]).await.unwrap(),
        "tab-telegram"
    );
    assert_eq!(
        page.find("#tab-telegram")
            .await
            .attr("aria-selected")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    page.find("#devices-telegram input[name=device]")
        .await
        .send_keys(" ")
        .await
        .unwrap();
    assert_eq!(page.text("#tab-telegram [data-tab-count]").await, "1/1");
    page.find("#device-chips .chip")
        .await
        .send_keys(&key(Key::Enter))
        .await
        .unwrap();
    assert_eq!(page.text("#tab-telegram [data-tab-count]").await, "0/1");
    assert_eq!(page.count("#device-chips .chip").await, 0);

    // Remove, after the confirmation page.
    page.goto("/console/devices").await;
    page.follow("table.devices a[href$='/delete']").await;
    page.screenshot("07-remove").await;
    page.follow("button.danger").await;
    assert!(page.text(".flash").await.contains("removed"));
    assert_eq!(page.count("table.devices tbody tr").await, 2);

    // The accessibility check finds what it should: an image without text.
    page.client
        .goto("data:text/html,<!doctype html><html lang=en><title>t</title><main><img src=x.png></main></html>")
        .await
        .unwrap();
    let found = page.axe().await;
    assert_eq!(found["violations"][0]["rule"], "image-alt", "{found}");
    page.client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_never_sees_another_tenants_data() {
    let stack = HeraldAll::start();
    let receiver = Receiver::start(Duration::ZERO).await;
    let acme = stack.tenant("Acme").await;
    let globex = stack.tenant("Globex").await;
    let acme_api = Api::new(&stack, &acme);
    let globex_api = Api::new(&stack, &globex);

    let (_, created) = acme_api
        .post(
            "/api/v1/endpoints",
            json!({ "name": "Acme private", "url": receiver.url() }),
        )
        .await;
    let acme_endpoint = created["endpoint"]["id"].as_str().unwrap().to_owned();
    let (_, tested) = acme_api
        .post(
            &format!("/api/v1/endpoints/{acme_endpoint}/test"),
            json!({}),
        )
        .await;
    let acme_attempt = tested["attempt"]["id"].as_str().unwrap().to_owned();
    wait_for_attempt(&acme_api, "/api/v1/attempts", |attempt| {
        attempt["id"] == acme_attempt.as_str()
    })
    .await;
    let (_, created) = globex_api
        .post(
            "/api/v1/endpoints",
            json!({ "name": "Globex own", "url": receiver.url() }),
        )
        .await;
    let globex_endpoint = created["endpoint"]["id"].as_str().unwrap().to_owned();

    // Through the API: Acme's objects do not exist for Globex.
    let (status, listed) = globex_api.get("/api/v1/endpoints").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = listed["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [globex_endpoint.as_str()]);
    for path in [
        format!("/api/v1/endpoints/{acme_endpoint}"),
        format!("/api/v1/endpoints/{acme_endpoint}/secret"),
        format!("/api/v1/attempts/{acme_attempt}"),
    ] {
        let (status, body) = globex_api.get(&path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    for path in ["disable", "enable", "test", "rotate-secret"] {
        let (status, _) = globex_api
            .post(
                &format!("/api/v1/endpoints/{acme_endpoint}/{path}"),
                json!({}),
            )
            .await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = globex_api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/endpoints/{acme_endpoint}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (_, attempts) = globex_api.get("/api/v1/attempts").await;
    assert!(
        attempts["attempts"].as_array().unwrap().is_empty(),
        "{attempts}"
    );
    let (_, dead) = globex_api.get("/api/v1/dead-letters").await;
    assert!(
        dead["dead_letters"].as_array().unwrap().is_empty(),
        "{dead}"
    );
    let acme_event = tested["attempt"]["event_id"].as_str().unwrap();
    let (status, body) = globex_api
        .post(
            &format!("/api/v1/events/{acme_event}/replay"),
            json!({ "endpoint_id": acme_endpoint }),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, still) = acme_api
        .get(&format!("/api/v1/endpoints/{acme_endpoint}"))
        .await;
    assert_eq!((status, still["status"].as_str()), (200, Some("active")));

    // Through the browser: Globex's session shows none of it either.
    let driver = Driver::start();
    let page = Page::new(driver.browser(false).await, stack.url(""), "isolation-");
    page.sign_in(&globex.token).await;
    let overview = page.source().await;
    assert!(overview.contains("Globex own"));
    assert!(!overview.contains("Acme private"));
    for path in [
        format!("/console/endpoints/{acme_endpoint}"),
        format!("/console/endpoints/{acme_endpoint}/edit"),
        format!("/console/logs/{acme_attempt}"),
    ] {
        page.goto(&path).await;
        assert_eq!(page.text("h1").await, "Not found", "{path}");
    }
    page.screenshot("not-found").await;
    page.goto("/console/logs").await;
    assert!(!page.source().await.contains(&acme_attempt));
    page.client.close().await.unwrap();

    // A form without its CSRF token is refused, even with a valid session.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sign_in = http
        .get(stack.url("/console/sign-in"))
        .send()
        .await
        .unwrap();
    let csrf_cookie = sign_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| {
            value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned()
        })
        .find(|cookie| cookie.starts_with("herald_sign_in_csrf="))
        .unwrap();
    let csrf = csrf_cookie.split_once('=').unwrap().1.to_owned();
    let signed_in = http
        .post(stack.url("/console/sign-in"))
        .header("cookie", &csrf_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", &csrf), ("token", &globex.token)]))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|cookie| cookie.starts_with("herald_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let session = session.split(';').next().unwrap().to_owned();
    for csrf in ["", "forged"] {
        let refused = http
            .post(stack.url(&format!("/console/endpoints/{globex_endpoint}/disable")))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("csrf", csrf)]))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
    }
    let (_, endpoint) = globex_api
        .get(&format!("/api/v1/endpoints/{globex_endpoint}"))
        .await;
    assert_eq!(endpoint["status"], "pending_test");
}

/// The sign-in form's CSRF cookie (`name=value`) and token, as a browser
/// gets them.
async fn sign_in_form(http: &reqwest::Client, stack: &HeraldAll) -> (String, String) {
    let page = http
        .get(stack.url("/console/sign-in"))
        .send()
        .await
        .unwrap();
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().unwrap().split(';').next())
        .find(|cookie| cookie.starts_with("herald_sign_in_csrf="))
        .unwrap()
        .to_owned();
    let csrf = cookie.split_once('=').unwrap().1.to_owned();
    (cookie, csrf)
}

fn plain_http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_08_oversize_bodies_answer_413_saying_the_limit() {
    let stack = HeraldAll::start();
    let tenant = stack.tenant("Acme").await;
    let http = plain_http();
    let (cookie, csrf) = sign_in_form(&http, &stack).await;
    let padding = "x".repeat(300 * 1024);
    let answer = http
        .post(stack.url("/console/sign-in"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", &csrf), ("token", &padding)]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413);
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = answer.text().await.unwrap();
    assert!(page.contains("256 KiB"), "{page}");

    let answer = http
        .post(stack.url("/api/v1/endpoints"))
        .bearer_auth(&tenant.token)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"name":"x","url":"https://example.com","description":"{}"}}"#,
            "x".repeat(2 * 1024 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "resource_exhausted");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1048576"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_10_guessing_tokens_is_throttled_and_confirms_nothing() {
    let stack = HeraldAll::start();
    let tenant = stack.tenant("Acme").await;
    let http = plain_http();

    // The same answer for the admin token, a made-up token and garbage.
    let mut answers = Vec::new();
    for token in [stack.admin_token.as_str(), "hrld_guessed", "not-a-token"] {
        let (cookie, csrf) = sign_in_form(&http, &stack).await;
        let answer = http
            .post(stack.url("/console/sign-in"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("csrf", &csrf), ("token", token)]))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let page = answer.text().await.unwrap();
        let problem = page
            .split("id=\"token-error\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap()
            .to_owned();
        answers.push(problem);
    }
    assert!(
        answers.iter().all(|answer| *answer == answers[0]),
        "{answers:?}"
    );
    assert!(!answers[0].contains("admin"), "{answers:?}");

    // Keep guessing: the burst runs out and the console answers 429.
    let mut throttled = None;
    for attempt in 0..20 {
        let (cookie, csrf) = sign_in_form(&http, &stack).await;
        let answer = http
            .post(stack.url("/console/sign-in"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("csrf", &csrf),
                ("token", &format!("hrld_{attempt}")),
            ]))
            .send()
            .await
            .unwrap();
        if answer.status() == 429 {
            throttled = Some(answer);
            break;
        }
        assert_eq!(answer.status(), 200);
    }
    let throttled = throttled.expect("no 429 after 20 wrong tokens");
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after));

    // The JSON API, from the same address, is throttled too: even the right
    // token is not confirmed.
    let answer = http
        .get(stack.url("/api/v1/endpoints"))
        .bearer_auth(&tenant.token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 429);
    assert!(answer.headers().contains_key("retry-after"));
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "resource_exhausted");
    // A forged X-Forwarded-For changes nothing when no proxy is trusted.
    let answer = http
        .get(stack.url("/api/v1/endpoints"))
        .bearer_auth(&tenant.token)
        .header("x-forwarded-for", "198.51.100.99")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_10_behind_a_trusted_proxy_clients_are_throttled_by_their_own_address() {
    let stack = HeraldAll::start_with(&[("HERALD_TRUSTED_PROXIES", "127.0.0.0/8")]);
    let tenant = stack.tenant("Acme").await;
    let http = plain_http();
    let call = |client: &'static str, token: String| {
        http.get(stack.url("/api/v1/endpoints"))
            .bearer_auth(token)
            .header("x-forwarded-for", client)
            .send()
    };
    for attempt in 0..10 {
        let answer = call("198.51.100.7", format!("hrld_guess{attempt}"))
            .await
            .unwrap();
        assert_eq!(answer.status(), 401);
    }
    let answer = call("198.51.100.7", tenant.token.clone()).await.unwrap();
    assert_eq!(answer.status(), 429);
    // Another client behind the same proxy is not affected.
    let answer = call("198.51.100.8", tenant.token.clone()).await.unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_12_console_and_api_answers_say_nosniff() {
    let stack = HeraldAll::start();
    let tenant = stack.tenant("Acme").await;
    let http = plain_http();
    let mut answers = Vec::new();
    for path in [
        "/console/assets/app.css",
        "/console/assets/app.js",
        "/console/assets/logo.svg",
        "/console/assets/missing.css",
        "/console/sign-in",
        "/console/",
        "/console",
        "/api/v1/openapi.json",
    ] {
        answers.push(http.get(stack.url(path)).send().await.unwrap());
    }
    answers.push(
        http.get(stack.url("/api/v1/endpoints"))
            .bearer_auth(&tenant.token)
            .send()
            .await
            .unwrap(),
    );
    answers.push(
        http.get(stack.url("/api/v1/endpoints"))
            .send()
            .await
            .unwrap(),
    );
    for answer in answers {
        assert_eq!(
            answer
                .headers()
                .get("x-content-type-options")
                .map(|value| value.to_str().unwrap()),
            Some("nosniff"),
            "{} {}",
            answer.url(),
            answer.status()
        );
    }
}
