//! What operators see, end to end through separate `herald config`,
//! `ingest`, `fanout` and `delivery` processes: one trace from a channel
//! webhook to the customer's receiver, exported over OTLP to a real
//! collector, and Prometheus metrics that match the deliveries made.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use herald_proto::v1::{self as pb, config_service_client::ConfigServiceClient};
use herald_tests::{
    CollectedSpan, Collector, Exposition, HeraldProcess, NatsServer, Receiver, http_get, http_post,
    scrape,
    stack::{authed, create_active_endpoint},
    wait_for,
};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const SERVICE_TOKEN: &str = "hrld_svc_observability-service-token";
const APP_SECRET: &str = "waba-app-secret-never-in-a-span";
const VERIFY_TOKEN: &str = "waba-verify-token-never-in-a-span";
/// Text of the webhook's messages: payloads never go into spans.
const PAYLOAD_MARKER: &str = "payload-text-never-in-a-span";
const PATIENCE: Duration = Duration::from_secs(30);

// OTLP span kinds.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

/// Four processes sharing one NATS server and state directory.
struct Stack {
    _nats: NatsServer,
    config: HeraldProcess,
    ingest: HeraldProcess,
    fanout: HeraldProcess,
    delivery: HeraldProcess,
    state: tempfile::TempDir,
}

impl Stack {
    /// Starts the services; `telemetry` gives each its extra environment
    /// (in the order config, ingest, fanout, delivery).
    fn start(telemetry: [Vec<(&'static str, String)>; 4]) -> Stack {
        let nats = NatsServer::start();
        let state = tempfile::tempdir().unwrap();
        let state_dir = state.path().to_str().unwrap().to_owned();
        let database_url = format!("sqlite:{}", state.path().join("herald.db").display());
        let [config_env, ingest_env, fanout_env, delivery_env] = telemetry;
        let start = |service: &str, mut extra: Vec<(&str, String)>| {
            extra.extend([
                ("NATS_URL", nats.url()),
                ("HERALD_SERVICE_TOKEN", SERVICE_TOKEN.to_owned()),
                ("HERALD_ALLOW_CIDRS", "127.0.0.0/8".to_owned()),
                ("HERALD_STATE_DIR", state_dir.clone()),
                ("DATABASE_URL", database_url.clone()),
                // The failing endpoint's retries are counted: a circuit
                // opening after a few failures would hold them back.
                ("HERALD_CIRCUIT_FAILURES", "1000".to_owned()),
            ]);
            let envs: Vec<(&str, &str)> = extra
                .iter()
                .map(|(key, value)| (*key, value.as_str()))
                .collect();
            HeraldProcess::start(&[service], &envs)
        };
        let mut config = start("config", config_env);
        config.wait_until_ready(PATIENCE);
        let config_url = format!("http://{}", config.config_addr);
        let with_config = |mut env: Vec<(&'static str, String)>| {
            env.push(("HERALD_CONFIG_URL", config_url.clone()));
            env
        };
        let mut ingest = start("ingest", with_config(ingest_env));
        let mut fanout = start("fanout", with_config(fanout_env));
        let mut delivery = start("delivery", with_config(delivery_env));
        for process in [&mut ingest, &mut fanout, &mut delivery] {
            process.wait_until_ready(PATIENCE);
        }
        Stack {
            _nats: nats,
            config,
            ingest,
            fanout,
            delivery,
            state,
        }
    }

    async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.config.config_addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A tenant and its token.
    async fn tenant(&self) -> (String, String) {
        let admin_token = std::fs::read_to_string(self.state.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        let tenant =
            herald_testkit_stack::create_tenant(&self.channel().await, &admin_token, "Acme").await;
        (tenant.id, tenant.token)
    }

    /// An active endpoint subscribed to `message.received` (of `devices`,
    /// or of every device when empty), and its secret.
    async fn endpoint(
        &self,
        token: &str,
        url: String,
        devices: &[&str],
        retry: Option<pb::RetryPolicy>,
    ) -> (String, String) {
        let mut config = ConfigServiceClient::new(self.channel().await);
        let spec = pb::EndpointSpec {
            name: "Receiver".into(),
            url,
            event_types: vec!["message.received".into()],
            all_devices: devices.is_empty(),
            device_ids: devices.iter().map(|device| (*device).to_owned()).collect(),
            retry,
            ..Default::default()
        };
        let created = create_active_endpoint(&mut config, token, spec).await;
        (created.endpoint.unwrap().id, created.secret)
    }

    /// A WABA device, once ingest knows it.
    async fn waba_device(&self, token: &str) -> String {
        let device = ConfigServiceClient::new(self.channel().await)
            .create_device(authed(
                token,
                pb::CreateDeviceRequest {
                    channel: pb::Channel::Waba.into(),
                    name: "line".into(),
                    external_id: "106540352242922".into(),
                    verification: Some(pb::DeviceVerification {
                        channel: Some(pb::device_verification::Channel::Waba(
                            pb::WabaVerification {
                                app_secret: APP_SECRET.into(),
                                verify_token: VERIFY_TOKEN.into(),
                            },
                        )),
                        configured: false,
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let handshake = format!(
            "/inbound/waba/{}?hub.mode=subscribe&hub.challenge=7&hub.verify_token={VERIFY_TOKEN}",
            device.id
        );
        wait_for("ingest to learn the device", PATIENCE, || {
            http_get(self.ingest.ingest_addr, &handshake).filter(|(status, _)| *status == 200)
        });
        device.id
    }

    /// POSTs a signed WABA webhook; the status ingest answered.
    fn post_waba(&self, device: &str, body: &[u8], extra: &[(&str, &str)]) -> u16 {
        let signature = format!("sha256={}", hmac_sha256(APP_SECRET, body));
        let mut headers = vec![("X-Hub-Signature-256", signature.as_str())];
        headers.extend_from_slice(extra);
        let (status, text) = http_post(
            self.ingest.ingest_addr,
            &format!("/inbound/waba/{device}"),
            &headers,
            body,
        )
        .unwrap();
        assert!(
            status == 200 || status == 403,
            "ingest answered {status}: {text}"
        );
        status
    }
}

fn hmac_sha256(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A WABA webhook with `messages` text messages (`wamid.<prefix>.<n>`) and
/// one `delivered` status.
fn waba_body(prefix: &str, messages: usize) -> Vec<u8> {
    let messages: Vec<serde_json::Value> = (0..messages)
        .map(|index| {
            serde_json::json!({
                "from": "16505551234",
                "id": format!("wamid.{prefix}.{index}"),
                "timestamp": "1749416383",
                "type": "text",
                "text": {"body": PAYLOAD_MARKER},
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                    "messages": messages,
                    "statuses": [{
                        "id": format!("wamid.OUT.{prefix}"),
                        "status": "delivered",
                        "timestamp": "1750030080",
                        "recipient_id": "16505551234",
                    }],
                },
            }],
        }],
    }))
    .unwrap()
}

/// 32 hex digits, different on every call.
fn fresh_trace_id(salt: u64) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:016x}{:016x}", nanos as u64 | 1, salt + 1)
}

/// The one span in `spans` that `matches`, described as `what` on failure.
fn one<'a>(
    spans: &'a [CollectedSpan],
    what: &str,
    matches: impl Fn(&CollectedSpan) -> bool,
) -> &'a CollectedSpan {
    let found: Vec<&CollectedSpan> = spans.iter().filter(|span| matches(span)).collect();
    assert_eq!(found.len(), 1, "{what}: found {found:#?} among {spans:#?}");
    found[0]
}

#[test]
fn one_trace_runs_from_the_webhook_to_the_receiver() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let collector = runtime.block_on(Collector::start());
    let otel = |protocol: &str, delay_ms: &str| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", delay_ms.to_owned()),
        ]
    };
    // Both OTLP transports are used; fanout exports only when it stops
    // (a batch delay of ten minutes), which tests the flush on shutdown.
    let stack = Stack::start([
        otel("http/protobuf", "100"),
        otel("grpc", "100"),
        otel("http/protobuf", "600000"),
        otel("grpc", "100"),
    ]);
    runtime.block_on(async move {
        let receiver = Receiver::start(Duration::ZERO).await;
        let (tenant, token) = stack.tenant().await;
        let (endpoint, endpoint_secret) = stack.endpoint(&token, receiver.url(), &[], None).await;
        let device = stack.waba_device(&token).await;

        // Fanout learns of the endpoint's activation through its own Watch
        // stream; until then an event matches nothing. Each try is a new
        // webhook in a new trace, and the one delivered is followed.
        let mut followed = None;
        for attempt in 0..20 {
            let trace_id = fresh_trace_id(attempt);
            let caller_span = "00f067aa0ba902b7";
            let traceparent = format!("00-{trace_id}-{caller_span}-01");
            let wamid = format!("wamid.TRACE{attempt}.0");
            let body = waba_body(&format!("TRACE{attempt}"), 1);
            assert_eq!(
                stack.post_waba(&device, &body, &[("traceparent", &traceparent)]),
                200
            );
            let hub_signature = hmac_sha256(APP_SECRET, &body);
            let delivered = tokio::time::timeout(Duration::from_secs(3), async {
                loop {
                    let found = receiver
                        .received()
                        .into_iter()
                        .find(|received| String::from_utf8_lossy(&received.body).contains(&wamid));
                    if let Some(found) = found {
                        return found;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
            if let Ok(received) = delivered {
                followed = Some((trace_id, caller_span, hub_signature, received));
                break;
            }
        }
        let (trace_id, caller_span, hub_signature, received) =
            followed.expect("no webhook was delivered to the receiver");

        // The receiver's POST carries the same trace.
        let traceparent = received.header("traceparent").to_owned();
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "{traceparent}");
        assert_eq!(
            (parts[0], parts[1], parts[3]),
            ("00", trace_id.as_str(), "01")
        );
        let receivers_parent = parts[2].to_owned();

        // Ingest, delivery and config export within their 100 ms delay.
        let spans = wait_for("the spans of ingest and delivery", PATIENCE, || {
            let spans = collector.trace(&trace_id);
            let has = |service: &str, kind: i32| {
                spans
                    .iter()
                    .any(|span| span.service == service && span.kind == kind)
            };
            (has("herald-ingest", SERVER)
                && has("herald-ingest", PRODUCER)
                && has("herald-delivery", CONSUMER)
                && has("herald-delivery", CLIENT))
            .then_some(spans)
        });
        let server = one(&spans, "ingest's server span", |span| {
            span.service == "herald-ingest" && span.kind == SERVER
        });
        assert_eq!(server.name, "POST /inbound/waba/{device_id}");
        assert_eq!(
            server.parent_span_id, caller_span,
            "continues the caller's span"
        );
        assert_eq!(server.attribute("http.route"), "/inbound/waba/{device_id}");
        assert_eq!(server.attribute("http.response.status_code"), "200");
        assert_eq!(server.attribute("herald.tenant.id"), tenant);
        assert_eq!(server.protocol, "grpc");
        // The webhook's message and status are published together.
        let publish = one(&spans, "ingest's publish span", |span| {
            span.service == "herald-ingest" && span.kind == PRODUCER
        });
        assert_eq!(publish.parent_span_id, server.span_id);
        assert_eq!(publish.name, "send HERALD_EVENTS");
        assert_eq!(publish.attribute("messaging.system"), "nats");
        assert_eq!(publish.attribute("messaging.batch.message_count"), "2");

        let attempt = one(&spans, "delivery's attempt span", |span| {
            span.service == "herald-delivery" && span.kind == CONSUMER
        });
        assert_eq!(attempt.name, "deliver");
        assert_eq!(attempt.attribute("herald.attempt"), "1");
        assert_eq!(attempt.attribute("herald.endpoint.id"), endpoint);
        let event_id = attempt.attribute("herald.event.id").to_owned();
        assert!(event_id.starts_with("evt_"), "{event_id}");
        assert_eq!(attempt.attribute("herald.tenant.id"), tenant);
        assert_eq!(attempt.attribute("herald.attempt.status"), "SUCCEEDED");
        let post = one(&spans, "delivery's HTTP client span", |span| {
            span.service == "herald-delivery" && span.kind == CLIENT
        });
        assert_eq!(post.parent_span_id, attempt.span_id);
        assert_eq!(post.name, "POST");
        assert_eq!(post.attribute("http.response.status_code"), "200");
        assert_eq!(post.attribute("url.full"), receiver.url());
        assert_eq!(
            receivers_parent, post.span_id,
            "the receiver's parent is the POST"
        );

        // The attempt record carries the trace to the config service's
        // attempt writer, whose batch span links to the attempt.
        let writer = wait_for("the attempt writer's span", PATIENCE, || {
            collector.spans().into_iter().find(|span| {
                span.service == "herald-config"
                    && span
                        .links
                        .contains(&(trace_id.clone(), attempt.span_id.clone()))
            })
        });
        assert_eq!(writer.name, "process attempts");
        assert_eq!(writer.protocol, "http/protobuf");

        // Fanout's span arrives when fanout stops, and joins the chain.
        let fanout = stack.fanout.terminate(PATIENCE);
        assert!(fanout.success(), "fanout exited with {fanout}");
        let fanned = wait_for("fanout's span, flushed at shutdown", PATIENCE, || {
            collector
                .trace(&trace_id)
                .into_iter()
                .find(|span| span.service == "herald-fanout")
        });
        assert_eq!(fanned.name, "process events");
        assert_eq!(fanned.kind, CONSUMER);
        assert_eq!(fanned.parent_span_id, publish.span_id);
        assert_eq!(attempt.parent_span_id, fanned.span_id);
        assert_eq!(fanned.attribute("herald.event.id"), event_id);
        assert_eq!(fanned.attribute("messaging.consumer.group.name"), "fanout");
        assert_eq!(fanned.protocol, "http/protobuf");

        // No secret, signature or payload in any span Herald exported.
        let signature = received.header("webhook-signature").to_owned();
        assert!(!signature.is_empty());
        let secrets = [
            APP_SECRET,
            VERIFY_TOKEN,
            PAYLOAD_MARKER,
            SERVICE_TOKEN,
            &token,
            &endpoint_secret,
            &signature,
            &hub_signature,
        ];
        for span in collector.spans() {
            for value in span.attributes.values().chain(&span.event_values) {
                for secret in secrets {
                    assert!(
                        !value.contains(secret),
                        "span {} of {} shows a secret in {value:?}",
                        span.name,
                        span.service
                    );
                }
            }
        }
    });
}

/// Waits until `check` holds for a fresh scrape of `process`, and returns it.
fn scrape_until(
    process: &HeraldProcess,
    what: &str,
    check: impl Fn(&Exposition) -> bool,
) -> Exposition {
    wait_for(what, PATIENCE, || {
        let exposition = scrape(process.ops_addr);
        check(&exposition).then_some(exposition)
    })
}

#[test]
fn metrics_count_the_deliveries_made() {
    const WEBHOOKS: usize = 3;
    const MESSAGES: usize = 2;
    let stack = Stack::start(Default::default());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (good, probe, probes) = runtime.block_on(async {
        let good = Receiver::start(Duration::ZERO).await;
        let doomed = Receiver::start(Duration::ZERO).await;
        let probe = Receiver::start(Duration::ZERO).await;
        let (_, token) = stack.tenant().await;
        let device = stack.waba_device(&token).await;
        let probe_device = stack.waba_device(&token).await;
        stack.endpoint(&token, good.url(), &[&device], None).await;
        // One retry, 200 ms after the first attempt, then final failure.
        let retry = pb::RetryPolicy {
            delays: vec![prost_types_duration(200)],
            jitter: 0.0,
            use_default: false,
        };
        stack
            .endpoint(&token, doomed.url(), &[&device], Some(retry))
            .await;
        // From now on that endpoint refuses connections.
        drop(doomed);
        // Fanout applies configuration changes in order, so once it delivers
        // to the endpoint activated last it knows the two before. Probes go
        // through another device, which the counted endpoints ignore.
        stack
            .endpoint(&token, probe.url(), &[&probe_device], None)
            .await;
        let mut probes = 0;
        loop {
            probes += 1;
            let body = waba_body(&format!("PROBE{probes}"), 1);
            assert_eq!(stack.post_waba(&probe_device, &body, &[]), 200);
            let delivered = tokio::time::timeout(Duration::from_secs(3), async {
                while probe.received().len() < 2 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
            if delivered.is_ok() {
                break;
            }
            assert!(probes < 20, "no probe was ever delivered");
        }
        for index in 0..WEBHOOKS {
            let body = waba_body(&format!("COUNT{index}"), MESSAGES);
            assert_eq!(stack.post_waba(&device, &body, &[]), 200);
        }
        let forged = waba_body("FORGED", 1);
        let status = http_post(
            stack.ingest.ingest_addr,
            &format!("/inbound/waba/{device}"),
            &[("X-Hub-Signature-256", "sha256=00")],
            &forged,
        )
        .unwrap()
        .0;
        assert_eq!(status, 403);
        (good, probe, probes)
    });
    let counted = WEBHOOKS * MESSAGES;
    let webhooks = probes + WEBHOOKS;
    let tests = 3;

    // Delivery: every counted event succeeded at the good endpoint and
    // failed twice at the doomed one (then went to the dead letters); the
    // tests and probes succeeded.
    let delivery = scrape_until(&stack.delivery, "every delivery to settle", |metrics| {
        metrics.value("herald_deliveries_total", &[("outcome", "dead")]) == Some(counted as f64)
            && metrics.value("herald_deliveries_total", &[("outcome", "succeeded")])
                == Some((counted + tests + probe.received().len() - 1) as f64)
    });
    // Probes that fanout matched (the first ones may have matched nothing).
    let matched_probes = probe.received().len() - 1;
    let events = counted + matched_probes;
    assert_eq!(
        good.received().len(),
        counted + 1,
        "one test delivery, then the events"
    );
    assert_eq!(
        delivery.value("herald_deliveries_total", &[("outcome", "retrying")]),
        Some(counted as f64)
    );
    assert_eq!(
        delivery.value("herald_delivery_retries_scheduled_total", &[]),
        Some(counted as f64)
    );
    assert_eq!(
        delivery.value("herald_dead_letters_total", &[]),
        Some(counted as f64)
    );
    assert_eq!(
        delivery.value("herald_endpoint_circuit_open", &[]),
        Some(0.0)
    );
    assert_eq!(
        delivery.value("herald_deliveries_total", &[("outcome", "skipped")]),
        None
    );
    // Attempts per delivery: one for each success, two for each failure.
    assert_eq!(
        delivery.value("herald_delivery_attempts_count", &[]),
        Some((events + tests + counted) as f64)
    );
    assert_eq!(
        delivery.value("herald_delivery_attempts_sum", &[]),
        Some((events + tests + 2 * counted) as f64)
    );
    // End-to-end latency covers live deliveries that succeeded, not tests.
    assert_eq!(
        delivery.value("herald_delivery_latency_seconds_count", &[]),
        Some(events as f64)
    );
    assert_eq!(
        delivery.value("herald_delivery_attempt_duration_seconds_count", &[]),
        Some((events + tests + 2 * counted) as f64)
    );
    assert_eq!(
        delivery.value("herald_deliveries_in_flight", &[]),
        Some(0.0)
    );
    let delivery = scrape_until(
        &stack.delivery,
        "the delivery consumer to drain",
        |metrics| {
            let labels = [("consumer", "delivery"), ("stream", "HERALD_JOBS")];
            metrics.value("herald_jetstream_consumer_pending", &labels) == Some(0.0)
                && metrics.value("herald_jetstream_consumer_ack_pending", &labels) == Some(0.0)
        },
    );

    // Ingest: every message and status accepted, requests by route template.
    let ingest = scrape(stack.ingest.ops_addr);
    assert_eq!(
        ingest.value(
            "herald_ingest_events_total",
            &[("channel", "waba"), ("type", "message.received")]
        ),
        Some((counted + probes) as f64)
    );
    assert_eq!(
        ingest.value(
            "herald_ingest_events_total",
            &[("channel", "waba"), ("type", "message.delivered")]
        ),
        Some(webhooks as f64)
    );
    let route = "/inbound/waba/{device_id}";
    assert_eq!(
        ingest.value(
            "herald_http_requests_total",
            &[("method", "POST"), ("route", route), ("status", "200")]
        ),
        Some(webhooks as f64)
    );
    assert_eq!(
        ingest.value(
            "herald_http_requests_total",
            &[("method", "POST"), ("route", route), ("status", "403")]
        ),
        Some(1.0)
    );
    assert_eq!(
        ingest.value(
            "herald_http_request_duration_seconds_count",
            &[("method", "POST"), ("route", route)]
        ),
        Some((webhooks + 1) as f64)
    );

    // Fanout: a job per matched event and endpoint; statuses match nothing.
    let fanout = scrape_until(&stack.fanout, "fanout to count every event", |metrics| {
        metrics.sum("herald_fanout_events_total", &[]) == (counted + probes + webhooks) as f64
    });
    assert_eq!(
        fanout.value("herald_fanout_events_total", &[("outcome", "matched")]),
        Some(events as f64)
    );
    assert_eq!(
        fanout.value("herald_fanout_events_total", &[("outcome", "unmatched")]),
        Some((probes - matched_probes + webhooks) as f64)
    );
    assert_eq!(
        fanout.value("herald_fanout_jobs_total", &[]),
        Some((2 * counted + matched_probes) as f64)
    );
    let fanout = scrape_until(&stack.fanout, "the fanout consumer to drain", |metrics| {
        let labels = [("consumer", "fanout"), ("stream", "HERALD_EVENTS")];
        metrics.value("herald_jetstream_consumer_pending", &labels) == Some(0.0)
    });

    // Config: gRPC calls by service, method and code.
    let config = scrape_until(&stack.config, "the attempt writer to drain", |metrics| {
        let labels = [
            ("consumer", "attempt-writer"),
            ("stream", "HERALD_ATTEMPTS"),
        ];
        metrics.value("herald_jetstream_consumer_pending", &labels) == Some(0.0)
    });
    let call = |method: &str| {
        config.value(
            "herald_grpc_requests_total",
            &[
                ("service", "herald.v1.ConfigService"),
                ("method", method),
                ("code", "OK"),
            ],
        )
    };
    assert_eq!(call("CreateEndpoint"), Some(3.0));
    assert_eq!(call("TestEndpoint"), Some(3.0));
    assert_eq!(call("CreateDevice"), Some(2.0));
    assert_eq!(
        config.value(
            "herald_grpc_request_duration_seconds_count",
            &[
                ("service", "herald.v1.ConfigService"),
                ("method", "TestEndpoint")
            ]
        ),
        Some(3.0)
    );

    // Every Herald metric the alert rules and the dashboard use exists.
    let exposed: BTreeSet<&str> = [&ingest, &fanout, &delivery, &config]
        .into_iter()
        .flat_map(|exposition| exposition.families.keys().map(String::as_str))
        .collect();
    for name in metrics_used_in_deploy() {
        assert!(
            exposed.contains(name.as_str()),
            "deploy/ uses {name}, which no service exposes"
        );
    }
}

/// Metric family names (without `_total`, `_bucket`, `_sum`, `_count`, `_info`)
/// that the Prometheus rules and the Grafana dashboard in deploy/ query.
fn metrics_used_in_deploy() -> BTreeSet<String> {
    let root =
        herald_testkit::workspace_root().join("deploy/kubernetes/components/prometheus-operator");
    let mut names = BTreeSet::new();
    for file in ["prometheus-rules.yaml", "herald-dashboard.json"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("herald_") {
            let name: String = rest[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[start + name.len()..];
            let family = ["_total", "_bucket", "_sum", "_count", "_info"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            names.insert(family.to_owned());
        }
    }
    assert!(!names.is_empty(), "deploy/ queries no Herald metric");
    names
}

fn prost_types_duration(millis: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: millis / 1000,
        nanos: i32::try_from((millis % 1000) * 1_000_000).unwrap(),
    }
}
