//! `heraldctl transformations simulate` against a catalog sample and a
//! file; `endpoints create --transformation-file` refuses a broken program
//! naming its line.

use crate::*;

#[test]
fn heraldctl_simulates_transformations_and_refuses_broken_ones() {
    let running = Running::start(&[]);
    let ctl = &running.ctl;
    let token = tenant_token(&running, "Acme");
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let program = write(
        "shape.js",
        "function handler(webhook) {\n  return { event: { text: webhook.event.data.text }, eventType: 'whatsapp.message.received' };\n}\n",
    );

    let simulated = ctl.json(
        &token,
        &[
            "transformations",
            "simulate",
            "--code-file",
            &program,
            "--event-type",
            "message.received",
        ],
    );
    assert_eq!(
        simulated["event_type"], "whatsapp.message.received",
        "{simulated}"
    );
    let body: Value = serde_json::from_str(simulated["body_json"].as_str().unwrap()).unwrap();
    assert_eq!(body, json!({"text": "Hi! Is my order #4521 on its way?"}));

    let throwing = write(
        "throw.js",
        "function handler(webhook) {\n  throw new Error('bad');\n}\n",
    );
    let event = write("event.json", r#"{"event":"contact.created","data":{}}"#);
    let table = ctl.run(
        Some(&token),
        &[
            "transformations",
            "simulate",
            "--code-file",
            &throwing,
            "--event-file",
            &event,
        ],
    );
    assert!(table.status.success(), "{}", stderr(&table));
    assert!(
        stdout(&table).contains("error (thrown): Error: bad at line 2, column"),
        "{}",
        stdout(&table)
    );

    let broken = write(
        "broken.js",
        "function handler(webhook) {\n  return webhook\n  let = ;\n}\n",
    );
    let refused = ctl.run(
        Some(&token),
        &[
            "endpoints",
            "create",
            "--name",
            "Orders",
            "--url",
            "http://127.0.0.1:9/hook",
            "--transformation-file",
            &broken,
        ],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(message.contains("spec.transformation.code"), "{message}");
    assert!(message.contains("line 3"), "{message}");
}
