//! Tenant quotas through heraldctl and the JSON API.

use serde_json::json;

use crate::{Running, stderr, stdout, tenant_token};

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
        let as_admin = running.herald.api(admin);
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

        let as_tenant = running.herald.api(&token);
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
