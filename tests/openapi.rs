//! Schemathesis (pinned from PyPI into the project's venv by `make test`)
//! against the OpenAPI document of a running `herald all`: every operation,
//! generated inputs valid and invalid, no 5xx, every response as documented.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use herald_tests::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_answers_as_its_openapi_document_says() {
    let schemathesis = herald_testkit::workspace_root().join(".venv/bin/schemathesis");
    assert!(
        schemathesis.is_file(),
        "{} is missing: `make test` installs it",
        schemathesis.display()
    );
    let stack = Stack::start();
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
                "examples,coverage,fuzzing",
                "--max-examples",
                "25",
                "--workers",
                "2",
                "--seed",
                "20261125",
                "--no-color",
                "--report-dir",
            ])
            .arg(report_dir.path())
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
