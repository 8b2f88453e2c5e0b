//! Schemathesis (pinned from PyPI into `.venv/schemathesis` by `make test`)
//! against the OpenAPI document of a running `herald all`: every operation,
//! generated inputs valid and invalid, and sequences that follow the
//! document's links from each create: no 5xx, every response as documented.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use herald_tests::herald_all::HeraldAll;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_answers_as_its_openapi_document_says() {
    let schemathesis = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.venv/schemathesis/bin/schemathesis");
    assert!(
        schemathesis.is_file(),
        "{} is missing: `make test` installs it",
        schemathesis.display()
    );
    let stack = HeraldAll::start();
    let tenant = stack.tenant("Schemathesis").await;
    let report_dir = tempfile::tempdir().unwrap();
    let stack_url = stack.url("/api/v1/openapi.json");
    let authorization = format!("Authorization: Bearer {}", tenant.token);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis)
            .args(["run", &stack_url, "-H", &authorization])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_headers_conformance,response_schema_conformance",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                "50",
                "--workers",
                "1",
                "--seed",
                "20261125",
                "--no-color",
                "--report-dir",
            ])
            .arg(report_dir.path())
            // Schemathesis keeps a cache in its working directory.
            .current_dir(report_dir.path())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
