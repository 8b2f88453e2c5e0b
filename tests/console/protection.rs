//! The console and the API protect themselves: body limits, throttled
//! token guessing (also behind a trusted proxy), nosniff on every answer.

use crate::*;

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
