//! Secrets the signing scheme cannot sign with are refused by heraldctl, the
//! JSON API and the console form; custom header values are redacted in the
//! attempt log.

use crate::*;

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
        let api = running.herald.api(&token);
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
        let api = running.herald.api(&token);
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
        let api = running.herald.api(&token);
        let (_, listed) = api.get("/api/v1/endpoints").await;
        assert_eq!(listed["endpoints"], json!([]), "{listed}");
    });
}
