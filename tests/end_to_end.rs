//! Herald end to end as separate processes with ingest in front: channel
//! webhooks and gRPC publishes of every catalog type from two tenants in,
//! signed POSTs out to exactly the matching endpoints of the right tenant,
//! the attempt log readable; and a secret rotated in the middle of traffic.
//! Receivers check every signature with the test's own implementation.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use herald_core::catalog::CATALOG;
use herald_proto::v1::{
    self as pb, attempt_service_client::AttemptServiceClient,
    ingest_service_client::IngestServiceClient, publish_result::Outcome,
};
use herald_tests::{
    HeraldProcess, Received, Receiver, eventually, http_post,
    signatures::{hex, hmac_sha256_hex, hmac_sha512, standard_signers},
    stack::{Stack, TenantClient, authed, spec},
};

const APP_SECRET: &str = "e2e-meta-app-secret";
const TELEGRAM_SECRET: &str = "e2e-Telegram_secret-1";
const GATEWAY_KEY: &str = "e2e-gateway-key";

/// The devices of one tenant, by channel.
struct Devices {
    waba: String,
    telegram: String,
    whatsapp: String,
}

async fn create_devices(tenant: &mut TenantClient) -> Devices {
    let mut create = async |channel: pb::Channel, verification| {
        tenant
            .config
            .create_device(authed(
                &tenant.token,
                pb::CreateDeviceRequest {
                    channel: channel.into(),
                    name: format!("{channel:?} line"),
                    external_id: "15550783881".into(),
                    verification: Some(pb::DeviceVerification {
                        channel: Some(verification),
                        configured: false,
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .id
    };
    Devices {
        waba: create(
            pb::Channel::Waba,
            pb::device_verification::Channel::Waba(pb::WabaVerification {
                app_secret: APP_SECRET.into(),
                verify_token: "e2e".into(),
            }),
        )
        .await,
        telegram: create(
            pb::Channel::Telegram,
            pb::device_verification::Channel::Telegram(pb::TelegramVerification {
                secret_token: TELEGRAM_SECRET.into(),
            }),
        )
        .await,
        whatsapp: create(
            pb::Channel::Whatsapp,
            pb::device_verification::Channel::Whatsapp(pb::GatewayVerification {
                hmac_key: GATEWAY_KEY.into(),
            }),
        )
        .await,
    }
}

/// One incoming text message and one read receipt, as Meta sends them.
fn waba_webhook(tenant: usize) -> Vec<u8> {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"contacts":[{{"profile":{{"name":"Kerry"}},"wa_id":"16505551234"}}],"messages":[{{"from":"16505551234","id":"wamid.e2e-{tenant}-in","timestamp":"1732530000","type":"text","text":{{"body":"tenant {tenant} says hi"}}}}],"statuses":[{{"id":"wamid.e2e-{tenant}-out","status":"read","timestamp":"1732530001","recipient_id":"16505551234"}}]}}}}]}}]}}"#
    )
    .into_bytes()
}

fn telegram_webhook(tenant: usize) -> Vec<u8> {
    format!(
        r#"{{"update_id":{},"message":{{"message_id":6557,"from":{{"id":5964236329,"is_bot":false,"first_name":"Waffle"}},"chat":{{"id":5964236329,"type":"private"}},"date":1732530000,"text":"tenant {tenant} on Telegram"}}}}"#,
        892_252_934 + tenant
    )
    .into_bytes()
}

fn gateway_webhook(tenant: usize) -> Vec<u8> {
    format!(
        r#"{{"id":"evt_e2e_{tenant}","timestamp":1741249702485,"event":"message","session":"default","me":{{"id":"15550783881@c.us"}},"payload":{{"id":"false_16505551234@c.us_E2E{tenant}","timestamp":1741249702,"from":"16505551234@c.us","fromMe":false,"to":"15550783881@c.us","body":"tenant {tenant} on the gateway","hasMedia":false,"ack":1}},"engine":"WEBJS"}}"#
    )
    .into_bytes()
}

/// `<channel>:<event type>` of a delivery, which is unique per tenant in
/// this test.
fn key(received: &Received) -> String {
    let envelope: serde_json::Value = serde_json::from_slice(&received.body).unwrap();
    format!(
        "{}:{}",
        envelope["channel"].as_str().unwrap(),
        envelope["event"].as_str().unwrap()
    )
}

fn is_test(received: &Received) -> bool {
    let envelope: serde_json::Value = serde_json::from_slice(&received.body).unwrap();
    envelope["test"] == true
}

/// The keys of the distinct deliveries a receiver got, by their delivery
/// id (`X-Idempotency-Key`, which every signing scheme sends).
fn delivered_keys(receiver: &Receiver) -> BTreeSet<String> {
    let mut by_delivery_id = BTreeMap::new();
    for received in receiver.received() {
        if received.succeeded() && !is_test(&received) {
            by_delivery_id.insert(
                received.header("X-Idempotency-Key").to_owned(),
                key(&received),
            );
        }
    }
    let keys: BTreeSet<String> = by_delivery_id.values().cloned().collect();
    assert_eq!(
        keys.len(),
        by_delivery_id.len(),
        "one event under two delivery ids"
    );
    keys
}

#[test]
fn every_channel_and_catalog_type_reaches_exactly_its_tenants_matching_endpoints() {
    let stack = Stack::start(1, &[]);
    let ingest = stack.start_ingest();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let catalog: Vec<&str> = CATALOG
            .iter()
            .map(|entry| entry.name)
            .filter(|name| *name != "endpoint.disabled")
            .collect();
        let webhooks = [
            "waba:message.received",
            "waba:message.read",
            "telegram:message.received",
            "whatsapp:message.received",
        ];
        let every: BTreeSet<String> = catalog
            .iter()
            .map(|name| format!("internal:{name}"))
            .chain(webhooks.iter().map(|key| (*key).to_owned()))
            .collect();
        let messages: BTreeSet<String> = every
            .iter()
            .filter(|key| key.ends_with(":message.received") || key.ends_with(":message.read"))
            .cloned()
            .collect();
        let waba_line: BTreeSet<String> = every
            .iter()
            .filter(|key| key.starts_with("waba:"))
            .cloned()
            .collect();

        struct Subscriber {
            tenant: usize,
            receiver: Receiver,
            endpoint_id: String,
            secret: String,
            scheme: pb::SigningScheme,
            expected: BTreeSet<String>,
            device: Option<String>,
        }
        let mut tenants = Vec::new();
        let mut devices = Vec::new();
        let mut subscribers = Vec::new();
        for tenant_index in 0..2 {
            let mut tenant = stack.tenant().await;
            let tenant_devices = create_devices(&mut tenant).await;
            let endpoints = [
                (pb::SigningScheme::Standard, vec![], None, every.clone()),
                (
                    pb::SigningScheme::Sha256Hex,
                    vec!["message.received", "message.read"],
                    None,
                    messages.clone(),
                ),
                (
                    pb::SigningScheme::Standard,
                    vec![],
                    Some(tenant_devices.waba.clone()),
                    waba_line.clone(),
                ),
            ];
            for (scheme, types, device, expected) in endpoints {
                let receiver = Receiver::start(Duration::ZERO).await;
                let mut endpoint = spec(&receiver.url(), &[500; 5]);
                endpoint.signing_scheme = scheme.into();
                endpoint.all_event_types = types.is_empty();
                endpoint.event_types = types.iter().map(|kind| (*kind).to_owned()).collect();
                endpoint.all_devices = device.is_none();
                endpoint.device_ids = device.iter().cloned().collect();
                let created = tenant.active_endpoint(endpoint).await;
                subscribers.push(Subscriber {
                    tenant: tenant_index,
                    receiver,
                    endpoint_id: created.endpoint.unwrap().id,
                    secret: created.secret,
                    scheme,
                    expected,
                    device,
                });
            }
            tenants.push(tenant);
            devices.push(tenant_devices);
        }

        // Every catalog type through gRPC; endpoint.disabled is Herald's own.
        let ingest_url = format!("http://{}", ingest.ingest_addr);
        let mut publisher = IngestServiceClient::connect(ingest_url).await.unwrap();
        for tenant in &tenants {
            let mut items: Vec<pb::PublishItem> = catalog
                .iter()
                .map(|name| pb::PublishItem {
                    r#type: (*name).into(),
                    data: CATALOG
                        .iter()
                        .find(|entry| entry.name == *name)
                        .map_or("{}", |entry| entry.sample_data)
                        .into(),
                    idempotency_key: format!("e2e-{name}"),
                    ..Default::default()
                })
                .collect();
            items.push(pb::PublishItem {
                r#type: "endpoint.disabled".into(),
                data: "{}".into(),
                ..Default::default()
            });
            let results = publisher
                .publish(authed(&tenant.token, pb::PublishRequest { items }))
                .await
                .unwrap()
                .into_inner()
                .results;
            for result in &results[..catalog.len()] {
                assert!(
                    matches!(result.outcome, Some(Outcome::Accepted(_))),
                    "{result:?}"
                );
            }
            match &results[catalog.len()].outcome {
                Some(Outcome::Error(error)) => {
                    assert_eq!(error.field, format!("items[{}].type", catalog.len()));
                }
                other => panic!("endpoint.disabled was published: {other:?}"),
            }
        }

        // Each channel's webhook, signed its way.
        for (tenant, devices) in devices.iter().enumerate() {
            let body = waba_webhook(tenant);
            let signature = format!("sha256={}", hmac_sha256_hex(APP_SECRET.as_bytes(), &body));
            let posts = [
                (
                    format!("/inbound/waba/{}", devices.waba),
                    ("X-Hub-Signature-256", signature),
                    body,
                ),
                (
                    format!("/inbound/telegram/{}", devices.telegram),
                    (
                        "X-Telegram-Bot-Api-Secret-Token",
                        TELEGRAM_SECRET.to_owned(),
                    ),
                    telegram_webhook(tenant),
                ),
                {
                    let body = gateway_webhook(tenant);
                    let hmac = hex(&hmac_sha512(GATEWAY_KEY.as_bytes(), &body));
                    (
                        format!("/inbound/whatsapp/{}", devices.whatsapp),
                        ("X-Webhook-Hmac", hmac),
                        body,
                    )
                },
            ];
            for (path, (header, value), body) in posts {
                let addr = ingest.ingest_addr;
                let answer = tokio::task::spawn_blocking(move || {
                    http_post(
                        addr,
                        &path,
                        &[("Content-Type", "application/json"), (header, &value)],
                        &body,
                    )
                })
                .await
                .unwrap();
                assert_eq!(answer.map(|(status, _)| status), Some(200), "{header}");
            }
        }

        // Until everything arrived (or the time is up, and the comparison
        // below shows what is missing).
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline
            && subscribers.iter().any(|subscriber| {
                delivered_keys(&subscriber.receiver).len() < subscriber.expected.len()
            })
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Anything misrouted would have arrived by now too.
        tokio::time::sleep(Duration::from_secs(1)).await;

        for subscriber in &subscribers {
            assert_eq!(
                delivered_keys(&subscriber.receiver),
                subscriber.expected,
                "tenant {} endpoint {}",
                subscriber.tenant,
                subscriber.endpoint_id
            );
            for received in subscriber.receiver.received() {
                let envelope: serde_json::Value = serde_json::from_slice(&received.body).unwrap();
                assert_eq!(
                    envelope["organizationId"], tenants[subscriber.tenant].id,
                    "a receiver got another tenant's event: {envelope}"
                );
                if let Some(device) = subscriber.device.as_ref().filter(|_| !is_test(&received)) {
                    assert_eq!(envelope["deviceId"], device.as_str(), "{envelope}");
                }
                match subscriber.scheme {
                    pb::SigningScheme::Sha256Hex => assert_eq!(
                        received.header("X-Herald-Signature"),
                        format!(
                            "sha256={}",
                            hmac_sha256_hex(subscriber.secret.as_bytes(), &received.body)
                        )
                    ),
                    _ => assert_eq!(standard_signers(&received, &[&subscriber.secret]), [0]),
                }
                if key(&received) == "waba:message.received" {
                    let expected_text = format!("tenant {} says hi", subscriber.tenant);
                    assert_eq!(envelope["data"]["text"], expected_text.as_str());
                }
            }
        }

        // The attempt log tells the same story, per tenant.
        let mut attempts = AttemptServiceClient::new(stack.channel().await);
        for subscriber in &subscribers {
            let token = &tenants[subscriber.tenant].token;
            let logged = eventually("the attempt log", Duration::from_secs(30), || {
                let mut attempts = attempts.clone();
                async move {
                    let listed = attempts
                        .list_attempts(authed(
                            token,
                            pb::ListAttemptsRequest {
                                endpoint_id: subscriber.endpoint_id.clone(),
                                status: pb::AttemptStatus::Succeeded.into(),
                                page_size: 100,
                                ..Default::default()
                            },
                        ))
                        .await
                        .unwrap()
                        .into_inner()
                        .attempts;
                    let live: BTreeSet<String> = listed
                        .iter()
                        .filter(|attempt| !attempt.test)
                        .map(|attempt| attempt.delivery_id.clone())
                        .collect();
                    (live.len() == subscriber.expected.len()).then_some(listed)
                }
            })
            .await;
            assert!(
                logged
                    .iter()
                    .all(|attempt| attempt.tenant_id == tenants[subscriber.tenant].id)
            );
        }
        // Another tenant's endpoint is nobody's business.
        let other_tenants_endpoint = attempts
            .list_attempts(authed(
                &tenants[0].token,
                pb::ListAttemptsRequest {
                    endpoint_id: subscribers[3].endpoint_id.clone(),
                    ..Default::default()
                },
            ))
            .await;
        match other_tenants_endpoint {
            Ok(listed) => assert!(listed.into_inner().attempts.is_empty()),
            Err(status) => assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}"),
        }
    });
    drop(ingest);
}

/// Publishes one event every 20 ms through ingest until `stop`, recording
/// when each was sent.
async fn publish_until(
    ingest: &HeraldProcess,
    token: String,
    sent: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let mut client = IngestServiceClient::connect(format!("http://{}", ingest.ingest_addr))
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        let mut index = 0_usize;
        while !stop.load(Ordering::Relaxed) {
            ticker.tick().await;
            let at = Instant::now();
            let item = pb::PublishItem {
                r#type: "message.received".into(),
                data: format!(r#"{{"index":{index}}}"#).into(),
                idempotency_key: format!("rotation-{index}"),
                ..Default::default()
            };
            let results = client
                .publish(authed(&token, pb::PublishRequest { items: vec![item] }))
                .await
                .unwrap()
                .into_inner()
                .results;
            assert!(matches!(results[0].outcome, Some(Outcome::Accepted(_))));
            sent.lock().unwrap().push(at);
            index += 1;
        }
    })
}

#[test]
fn a_secret_rotated_during_traffic_signs_with_both_secrets_until_the_overlap_ends() {
    let stack = Stack::start(1, &[]);
    let ingest = stack.start_ingest();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let mut tenant = stack.tenant().await;
        let created = tenant.active_endpoint(spec(&receiver.url(), &[500; 5])).await;
        let endpoint_id = created.endpoint.unwrap().id;
        let mut secrets = vec![created.secret];

        let sent = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = publish_until(&ingest, tenant.token.clone(), sent.clone(), stop.clone()).await;
        let live = |receiver: &Receiver| -> Vec<Received> {
            receiver
                .received()
                .into_iter()
                .filter(|received| !is_test(received))
                .collect()
        };
        let index = |received: &Received| -> usize {
            usize::try_from(received.data()["index"].as_u64().unwrap()).unwrap()
        };
        // The events sent after `moment`, once `count` of them arrived.
        let arrived_after = |moment: Instant, count: usize| {
            let (receiver, sent) = (&receiver, &sent);
            async move {
                eventually("deliveries", Duration::from_secs(60), || async {
                    let sent = sent.lock().unwrap().clone();
                    let after: Vec<Received> = live(receiver)
                        .into_iter()
                        .filter(|received| sent[index(received)] > moment)
                        .collect();
                    (after.len() >= count).then_some(())
                })
                .await;
            }
        };
        arrived_after(Instant::now() - Duration::from_secs(3600), 20).await;

        // Each rotation takes effect once delivery hears of it; an event
        // sent after the first delivery signed the new way is signed so too.
        let mut phases = Vec::new();
        let mut rotations = Vec::new();
        for overlap in [Duration::from_secs(3600), Duration::ZERO] {
            rotations.push(Instant::now());
            let rotated = tenant
                .config
                .rotate_endpoint_secret(authed(
                    &tenant.token,
                    pb::RotateEndpointSecretRequest {
                        endpoint_id: endpoint_id.clone(),
                        secret: String::new(),
                        overlap: Some(prost_types::Duration::try_from(overlap).unwrap()),
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            if overlap.is_zero() {
                assert_eq!(rotated.previous, "");
            } else {
                assert_eq!(&rotated.previous, secrets.last().unwrap());
            }
            secrets.push(rotated.current);
            let newest = secrets.len() - 1;
            let candidates: Vec<&str> = secrets.iter().map(String::as_str).collect();
            let effective = eventually("the new secret in use", Duration::from_secs(30), || async {
                live(&receiver)
                    .iter()
                    .any(|received| standard_signers(received, &candidates).contains(&newest))
                    .then(Instant::now)
            })
            .await;
            arrived_after(effective, 20).await;
            phases.push(effective);
        }
        stop.store(true, Ordering::Relaxed);
        publisher.await.unwrap();
        let published = sent.lock().unwrap().len();
        let everything = eventually("every event", Duration::from_secs(60), || async {
            let received = live(&receiver);
            let indexes: BTreeSet<usize> = received.iter().map(index).collect();
            (indexes.len() == published).then_some(received)
        })
        .await;

        let sent = sent.lock().unwrap().clone();
        let candidates: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let mut signed_by: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
        for received in &everything {
            let signers = standard_signers(received, &candidates);
            let at = sent[index(received)];
            if at > phases[1] {
                assert_eq!(signers, [2], "after the second rotation without overlap");
            } else if at > phases[0] && received.at < rotations[1] {
                assert_eq!(signers, [0, 1], "during the first rotation's overlap");
            }
            *signed_by.entry(signers).or_default() += 1;
        }
        println!("rotation: {published} events, deliveries by the secrets that signed them: {signed_by:?}");
    });
    drop(ingest);
}

/// What each device's channel sent shows on the device within seconds,
/// counted across ingest replicas: the last call, the events of the last
/// day and the calls refused for a wrong secret, with the reason.
#[test]
fn a_devices_health_shows_its_calls_events_and_refused_verifications() {
    let stack = Stack::start(1, &[]);
    let ingests = [stack.start_ingest(), stack.start_ingest()];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut tenant = stack.tenant().await;
        let devices = create_devices(&mut tenant).await;
        let health = async |tenant: &mut TenantClient, device_id: &str| {
            tenant
                .config
                .get_device(authed(
                    &tenant.token,
                    pb::GetDeviceRequest {
                        device_id: device_id.to_owned(),
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .health
        };
        assert_eq!(health(&mut tenant, &devices.waba).await, None);

        let post =
            async |addr, path: String, header: &'static str, value: String, body: Vec<u8>| {
                tokio::task::spawn_blocking(move || {
                    http_post(
                        addr,
                        &path,
                        &[("Content-Type", "application/json"), (header, &value)],
                        &body,
                    )
                    .map(|(status, _)| status)
                })
                .await
                .unwrap()
            };
        let waba_path = format!("/inbound/waba/{}", devices.waba);
        let body = waba_webhook(0);
        let good = format!("sha256={}", hmac_sha256_hex(APP_SECRET.as_bytes(), &body));
        let bad = format!("sha256={}", hmac_sha256_hex(b"an old app secret", &body));
        // Each replica sees part of the calls; the record is their sum.
        for (ingest, signature) in ingests.iter().zip([&good, &bad]) {
            let status = post(
                ingest.ingest_addr,
                waba_path.clone(),
                "X-Hub-Signature-256",
                signature.clone(),
                body.clone(),
            )
            .await;
            assert_eq!(status, Some(if signature == &good { 200 } else { 403 }));
        }
        let status = post(
            ingests[0].ingest_addr,
            waba_path.clone(),
            "X-Hub-Signature-256",
            bad.clone(),
            body.clone(),
        )
        .await;
        assert_eq!(status, Some(403));
        let status = post(
            ingests[1].ingest_addr,
            format!("/inbound/telegram/{}", devices.telegram),
            "X-Telegram-Bot-Api-Secret-Token",
            "not-the-token".to_owned(),
            telegram_webhook(0),
        )
        .await;
        assert_eq!(status, Some(403));

        let waba = eventually("the WABA line's health", Duration::from_secs(20), || {
            let mut tenant = tenant.clone();
            let device = devices.waba.clone();
            async move {
                health(&mut tenant, &device)
                    .await
                    .filter(|health| health.verification_failures_24h == 2)
            }
        })
        .await;
        // One message and one read receipt.
        assert_eq!(waba.events_24h, 2, "{waba:?}");
        assert!(waba.last_webhook_at.is_some(), "{waba:?}");
        assert!(
            waba.last_refusal_reason.contains("x-hub-signature-256"),
            "{waba:?}"
        );
        let telegram = eventually("the Telegram bot's health", Duration::from_secs(20), || {
            let mut tenant = tenant.clone();
            let device = devices.telegram.clone();
            async move {
                health(&mut tenant, &device)
                    .await
                    .filter(|health| health.verification_failures_24h == 1)
            }
        })
        .await;
        assert_eq!(telegram.events_24h, 0, "{telegram:?}");
        assert!(
            telegram
                .last_refusal_reason
                .contains("x-telegram-bot-api-secret-token"),
            "{telegram:?}"
        );
        assert_eq!(health(&mut tenant, &devices.whatsapp).await, None);

        // The JSON API shows the same record.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let api = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/devices/{}",
                stack.config_url(),
                devices.waba
            ))
            .bearer_auth(&tenant.token)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap();
        assert_eq!(api["health"]["events_24h"], 2, "{api}");
        assert_eq!(api["health"]["verification_failures_24h"], 2, "{api}");

        // A test can come from one of the devices: its id, its channel and
        // the catalog's example data of the type.
        let receiver = Receiver::start(Duration::ZERO).await;
        let created = tenant.active_endpoint(spec(&receiver.url(), &[500])).await;
        let endpoint_id = created.endpoint.unwrap().id;
        let test = async |tenant: &mut TenantClient, device_id: &str| {
            tenant
                .config
                .test_endpoint(authed(
                    &tenant.token,
                    pb::TestEndpointRequest {
                        endpoint_id: endpoint_id.clone(),
                        event_type: "message.received".into(),
                        device_id: device_id.to_owned(),
                        ..Default::default()
                    },
                ))
                .await
        };
        let tested = test(&mut tenant, &devices.waba).await.unwrap().into_inner();
        assert_eq!(tested.attempt.unwrap().device_id, devices.waba);
        let body: serde_json::Value =
            serde_json::from_slice(&receiver.received().last().unwrap().body).unwrap();
        assert_eq!(body["deviceId"], devices.waba.as_str(), "{body}");
        assert_eq!(body["channel"], "waba", "{body}");
        assert_eq!(body["test"], true, "{body}");
        assert!(body["data"]["message_id"].is_string(), "{body}");
        for hostile in ["dev_01m93pb6wfen48fc4v7883rbmg", "not a device"] {
            let refused = test(&mut tenant, hostile).await.unwrap_err();
            assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
            assert!(refused.message().contains("device_id"), "{refused:?}");
        }
    });
    drop(ingests);
}

/// The attempt log keeps exactly the bytes each attempt POSTed, and a
/// tenant can forget them per endpoint while the attempts stay.
#[test]
fn attempts_keep_the_body_they_sent_until_the_tenant_purges_it() {
    let stack = Stack::start(1, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut tenant = stack.tenant().await;
        let receiver = Receiver::start(Duration::ZERO).await;
        let created = tenant.active_endpoint(spec(&receiver.url(), &[500])).await;
        let endpoint_id = created.endpoint.unwrap().id;
        let tested = tenant
            .config
            .test_endpoint(authed(
                &tenant.token,
                pb::TestEndpointRequest {
                    endpoint_id: endpoint_id.clone(),
                    event_type: "form.submitted".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let attempt_id = tested.attempt.unwrap().id;
        let sent = receiver.received().last().unwrap().body.clone();
        let mut attempts = AttemptServiceClient::new(stack.channel().await);
        let get = async |attempts: &mut AttemptServiceClient<_>| {
            attempts
                .get_attempt(authed(
                    &tenant.token,
                    pb::GetAttemptRequest {
                        attempt_id: attempt_id.clone(),
                    },
                ))
                .await
                .unwrap()
                .into_inner()
        };
        let stored = get(&mut attempts).await;
        assert_eq!(stored.request_body, sent);
        assert_eq!(stored.request_body_size, sent.len() as u64);

        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let api = |path: String| format!("{}{path}", stack.config_url());
        let shown = http
            .get(api(format!("/api/v1/attempts/{attempt_id}")))
            .bearer_auth(&tenant.token)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap();
        assert_eq!(
            shown["request_body"].as_str().unwrap().as_bytes(),
            &sent[..],
            "{shown}"
        );
        let purged = http
            .delete(api(format!(
                "/api/v1/endpoints/{endpoint_id}/request-bodies"
            )))
            .bearer_auth(&tenant.token)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap();
        // The activation test's attempt and this one.
        assert_eq!(purged["purged"], 2, "{purged}");
        let stored = get(&mut attempts).await;
        assert!(stored.request_body.is_empty());
        assert_eq!(stored.request_body_size, sent.len() as u64);

        // The endpoint's health comes with it, from the same log.
        let endpoint = tenant
            .config
            .get_endpoint(authed(
                &tenant.token,
                pb::GetEndpointRequest {
                    endpoint_id: endpoint_id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let health = endpoint.health.unwrap();
        assert_eq!(health.last_attempt_status(), pb::AttemptStatus::Succeeded);
        assert_eq!(health.last_response_code, 200);
        assert_eq!((health.attempts_24h, health.succeeded_24h), (2, 2));
        assert_eq!(health.consecutive_failures, 0);
        assert_eq!(health.circuit(), pb::CircuitState::Closed);
        assert!(health.last_success_at.is_some());
    });
}
