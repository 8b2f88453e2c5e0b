//! Dead letters, replays and recovery of failures through heraldctl.

use crate::*;

#[test]
fn dead_letters_are_listed_redriven_once_and_purged() {
    let running = Running::start(&[NO_CIRCUIT]);
    let ctl = &running.ctl;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(Receiver::start(Duration::ZERO));
    let (token, endpoint_id) = active_endpoint(&running, &receiver, "100ms");
    deliver_one(ctl, &token, &receiver);

    receiver.answer(500);
    let event_ids: BTreeSet<String> = (0..4)
        .map(|index| publish(ctl, &token, &serde_json::json!({ "index": index })))
        .collect();
    let list = ["dlq", "list", "--endpoint", &endpoint_id];
    let dead = wait_for("four dead letters with both attempts", PATIENCE, || {
        let dead = array(ctl.json(&token, &list));
        let complete = dead.len() == 4
            && dead
                .iter()
                .all(|letter| letter["attempts"].as_array().unwrap().len() == 2);
        complete.then_some(dead)
    });
    for letter in &dead {
        assert_eq!(letter["endpoint_id"], endpoint_id.as_str());
        assert_eq!(letter["event"]["type"], "message.received");
        assert_eq!(letter["attempts"][0]["status"], "retrying");
        assert_eq!(letter["attempts"][1]["status"], "dead");
        assert_eq!(letter["attempts"][1]["response_code"], 500);
    }
    let dead_events: BTreeSet<String> = dead
        .iter()
        .map(|letter| letter["event"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(dead_events, event_ids);
    let delivery_ids: Vec<String> = dead
        .iter()
        .map(|letter| letter["id"].as_str().unwrap().to_owned())
        .collect();

    // The table: one row per dead letter, with its endpoint, event type,
    // when it died, its attempts and the last response code.
    let table = ctl.run(Some(&token), &["dlq", "list"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let table = stdout(&table);
    let header = table.lines().next().unwrap();
    for column in [
        "DELIVERY ID",
        "ENDPOINT",
        "EVENT TYPE",
        "DEAD",
        "ATTEMPTS",
        "CODE",
        "REASON",
    ] {
        assert!(header.contains(column), "{header}");
    }
    for delivery_id in &delivery_ids {
        let row = table
            .lines()
            .find(|line| line.starts_with(delivery_id.as_str()))
            .unwrap_or_else(|| panic!("no row for {delivery_id}: {table}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1..3], [endpoint_id.as_str(), "message.received"]);
        assert!(cells[3].ends_with('s') && cells[4] == "ago", "{row}");
        assert_eq!(cells[5..7], ["2", "500"], "{row}");
    }

    // Filters and paging.
    let count = |extra: &[&str]| array(ctl.json(&token, &[&list[..], extra].concat())).len();
    assert_eq!(count(&["--type", "message.read"]), 0);
    assert_eq!(count(&["--since", "1h"]), 4);
    assert_eq!(count(&["--until", "1h"]), 0);
    let later = (OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap();
    assert_eq!(count(&["--until", &later]), 4);
    assert_eq!(count(&["--since", &later]), 0);
    let first_page = ctl.run(
        Some(&token),
        &[&list[..], &["--page-size", "3", "--output", "json"]].concat(),
    );
    let first_page: Value = serde_json::from_slice(&first_page.stdout).unwrap();
    assert_eq!(first_page.as_array().unwrap().len(), 3);
    assert_eq!(count(&["--page-size", "3", "--all"]), 4);

    // A redrive delivers the named dead letters again, with their ids.
    receiver.answer(200);
    let (redriven, kept) = delivery_ids.split_at(2);
    let redrive = [&["dlq", "redrive"][..], &[&redriven[0], &redriven[1]]].concat();
    let job = ctl.json(&token, &redrive);
    assert_eq!(job["kind"], "redrive");
    assert_eq!(job["state"], "succeeded");
    assert_eq!(
        (&job["total"], &job["enqueued"], &job["skipped"]),
        (&"2".into(), &"2".into(), &"0".into())
    );
    wait_for("the redriven deliveries", PATIENCE, || {
        let arrivals = arrivals(&receiver);
        redriven
            .iter()
            .all(|id| arrivals.get(id) == Some(&(3, true)))
            .then_some(())
    });
    assert_eq!(ids(&array(ctl.json(&token, &list)), "id"), ids_of(kept));

    // The same request again is the same job; another naming them finds
    // nothing left to send.
    let again = ctl.run(Some(&token), &redrive);
    assert!(again.status.success(), "{}", stderr(&again));
    let job_id = job["id"].as_str().unwrap();
    assert!(
        stdout(&again).contains(job_id) && stdout(&again).contains("succeeded"),
        "{}",
        stdout(&again)
    );
    assert!(
        stderr(&again).contains("nothing was sent again"),
        "{}",
        stderr(&again)
    );
    let one = ctl.json(&token, &["dlq", "redrive", &redriven[0]]);
    assert_ne!(one["id"], job["id"]);
    assert_eq!(
        (&one["enqueued"], &one["skipped"]),
        (&"0".into(), &"1".into())
    );

    // Purging all of an endpoint's dead letters needs a terminal to confirm
    // on, or --yes.
    let unconfirmed = ctl.run(Some(&token), &["dlq", "purge", "--endpoint", &endpoint_id]);
    assert_eq!(unconfirmed.status.code(), Some(2));
    assert!(
        stderr(&unconfirmed).contains("--yes"),
        "{}",
        stderr(&unconfirmed)
    );
    assert_eq!(array(ctl.json(&token, &list)).len(), 2);
    let purged = ctl.json(&token, &["dlq", "purge", &kept[0]]);
    assert_eq!(purged["purged"], "1");
    let purged = ctl.run(
        Some(&token),
        &["dlq", "purge", "--endpoint", &endpoint_id, "--yes"],
    );
    assert!(purged.status.success(), "{}", stderr(&purged));
    assert_eq!(stdout(&purged).trim(), "purged 1");
    assert!(array(ctl.json(&token, &list)).is_empty());
    let gone = ctl.json(&token, &["dlq", "redrive", &kept[0], &kept[1]]);
    assert_eq!(
        (&gone["enqueued"], &gone["skipped"]),
        (&"0".into(), &"2".into())
    );

    // Errors: a missing or double selection is a usage error, an unknown
    // endpoint is not found, a time that is neither is a usage error.
    let code = |args: &[&str]| ctl.run(Some(&token), args).status.code();
    assert_eq!(code(&["dlq", "redrive"]), Some(2));
    assert_eq!(code(&["dlq", "purge"]), Some(2));
    assert_eq!(
        code(&["dlq", "redrive", &kept[0], "--endpoint", &endpoint_id]),
        Some(2)
    );
    let unknown = ctl.run(Some(&token), &["dlq", "redrive", "--endpoint", NO_ENDPOINT]);
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("NotFound"),
        "{}",
        stderr(&unknown)
    );
    assert_eq!(code(&["dlq", "list", "--since", "yesterday"]), Some(2));

    // Three tries and one redriven success for the redriven; the others
    // were never sent again.
    let arrivals = arrivals(&receiver);
    for id in redriven {
        assert_eq!(arrivals[id], (3, true), "{id}");
    }
    for id in kept {
        assert_eq!(arrivals[id], (2, false), "{id}");
    }
}

#[test]
fn events_are_replayed_and_failures_recovered() {
    let running = Running::start(&[NO_CIRCUIT]);
    let ctl = &running.ctl;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(Receiver::start(Duration::ZERO));
    let (token, endpoint_id) = active_endpoint(&running, &receiver, "none");
    let (event_id, webhook_id) = deliver_one(ctl, &token, &receiver);

    // A replay sends the delivered event again with the same webhook-id.
    let replayed = ctl.json(&token, &["events", "replay", &event_id]);
    assert_eq!(replayed["kind"], "replay");
    assert_eq!(replayed["state"], "succeeded");
    assert_eq!(replayed["enqueued"], "1");
    wait_for("the replayed event", PATIENCE, || {
        (arrivals(&receiver).get(&webhook_id) == Some(&(2, true))).then_some(())
    });
    // Without waiting, the job comes back at once; `jobs watch` follows it.
    let started = ctl.json(
        &token,
        &[
            "events",
            "replay",
            &event_id,
            "--endpoint",
            &endpoint_id,
            "--no-wait",
        ],
    );
    let job_id = started["id"].as_str().unwrap();
    assert_ne!(started["id"], replayed["id"]);
    let watched = ctl.run(Some(&token), &["jobs", "watch", job_id]);
    assert!(watched.status.success(), "{}", stderr(&watched));
    let table = stdout(&watched);
    assert!(table.starts_with("JOB ID"), "{table}");
    assert!(
        table.contains(job_id) && table.contains("replay") && table.contains("succeeded"),
        "{table}"
    );
    let got = ctl.run(Some(&token), &["jobs", "get", job_id, "--output", "yaml"]);
    assert!(
        stdout(&got).contains("state: \"succeeded\""),
        "{}",
        stdout(&got)
    );
    wait_for("the second replay", PATIENCE, || {
        (arrivals(&receiver).get(&webhook_id) == Some(&(3, true))).then_some(())
    });
    let unknown = ctl.run(
        Some(&token),
        &["events", "replay", "evt_00000000000000000000000000"],
    );
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));
    let unknown = ctl.run(
        Some(&token),
        &["events", "replay", &event_id, "--endpoint", NO_ENDPOINT],
    );
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));

    // Failures before and after a moment; recovery since that moment sends
    // only the later ones again.
    receiver.answer(500);
    for index in 0..2 {
        publish(ctl, &token, &serde_json::json!({ "index": index }));
    }
    let early = wait_for("two early failures in the log", PATIENCE, || {
        let dead = logged(ctl, &token, &endpoint_id, "dead");
        (dead.len() == 2).then_some(dead)
    });
    let since = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    for index in 2..5 {
        publish(ctl, &token, &serde_json::json!({ "index": index }));
    }
    let late: BTreeSet<String> = wait_for("three later failures in the log", PATIENCE, || {
        let dead = logged(ctl, &token, &endpoint_id, "dead");
        (dead.len() == 5).then_some(dead)
    })
    .difference(&early)
    .cloned()
    .collect();

    receiver.answer(200);
    let recovered = ctl.json(
        &token,
        &["recover", "--endpoint", &endpoint_id, "--since", &since],
    );
    assert_eq!(recovered["kind"], "recover");
    assert_eq!(recovered["state"], "succeeded");
    assert_eq!(recovered["enqueued"], "3");
    // Recovery counts only deliveries that never succeeded: wait until the
    // log knows these did.
    wait_for(
        "the recovered deliveries' successes in the log",
        PATIENCE,
        || {
            logged(ctl, &token, &endpoint_id, "succeeded")
                .is_superset(&late)
                .then_some(())
        },
    );

    // A duration ago reaches the earlier failures too.
    let recovered = ctl.run(
        Some(&token),
        &["recover", "--endpoint", &endpoint_id, "--since", "2h"],
    );
    assert!(recovered.status.success(), "{}", stderr(&recovered));
    let table = stdout(&recovered);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[1..6],
        ["recover", "succeeded", "2", "2", "0"],
        "{table}"
    );
    wait_for("every failure delivered", PATIENCE, || {
        logged(ctl, &token, &endpoint_id, "succeeded")
            .is_superset(&early)
            .then_some(())
    });
    let arrivals = arrivals(&receiver);
    for id in early.iter().chain(&late) {
        assert_eq!(arrivals[id], (2, true), "{id}");
    }
    assert_eq!(arrivals[&webhook_id], (3, true));

    let code = |args: &[&str]| {
        let output = ctl.run(Some(&token), args);
        (output.status.code(), stderr(&output))
    };
    let (unknown, message) = code(&["recover", "--endpoint", NO_ENDPOINT, "--since", "2h"]);
    assert_eq!(unknown, Some(3), "{message}");
    let (bad_since, message) = code(&["recover", "--endpoint", &endpoint_id, "--since", "soon"]);
    assert_eq!(bad_since, Some(2), "{message}");
    assert!(message.contains("RFC 3339"), "{message}");
    assert_eq!(code(&["recover", "--since", "2h"]).0, Some(2));
}
