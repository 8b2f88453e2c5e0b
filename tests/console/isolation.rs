//! A tenant never sees another tenant's data, in the console or the API.

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_never_sees_another_tenants_data() {
    let stack = HeraldAll::start();
    let receiver = Receiver::start(Duration::ZERO).await;
    let acme = stack.tenant("Acme").await;
    let globex = stack.tenant("Globex").await;
    let acme_api = stack.api(&acme.token);
    let globex_api = stack.api(&globex.token);

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
