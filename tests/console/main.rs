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

use fantoccini::{Client, ClientBuilder, Locator};
use herald_proto::v1::{self as pb, ingest_service_client::IngestServiceClient};
use herald_tests::{
    Receiver, eventually, free_port,
    herald_all::{HeraldAll, JsonApi, Tenant},
};
use serde_json::{Value, json};

mod isolation;
mod protection;
mod walkthrough;

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
        let mut options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--window-size=1366,1000",
            ],
        });
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

/// A browser session on the console, saving a screenshot of each page.
struct Page {
    client: Client,
    base: String,
    name_prefix: &'static str,
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
        self.find(css).await.click().await.unwrap();
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
        }
    }

    async fn screenshot(&self, name: &str) {
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
async fn wait_for_attempt(api: &JsonApi, path: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let what = format!("an attempt matching at {path}");
    eventually(&what, Duration::from_secs(60), || async {
        let (status, body) = api.get(path).await;
        assert_eq!(status, 200, "{body}");
        body["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|attempt| wanted(attempt))
            .cloned()
    })
    .await
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
