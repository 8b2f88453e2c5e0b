//! The Watch stream the services follow: a snapshot, then changes, resumed
//! from a revision after a disconnect.

use herald_proto::v1::{
    self as pb, watch_response::Change, watch_service_client::WatchServiceClient,
    watched_object::Object,
};
use herald_testkit_stack::{Backend, ConfigStack, SERVICE_TOKEN, authed, endpoint_spec};

use crate::next_change;

on_both_databases!(watch_resumes_from_a_revision,);

async fn watch_resumes_from_a_revision(backend: Backend) {
    let herald = ConfigStack::start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let first = herald
        .create_endpoint(
            &tenant,
            endpoint_spec("First", "https://hooks.example.com/1"),
        )
        .await
        .unwrap();
    let mut watch = WatchServiceClient::new(herald.channel.clone());

    let mut stream = watch
        .watch(authed(SERVICE_TOKEN, pb::WatchRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        next_change(&mut stream).await.change,
        Some(Change::SnapshotStart(_))
    ));
    let mut snapshot_endpoints = Vec::new();
    let snapshot_revision = loop {
        let response = next_change(&mut stream).await;
        match response.change.unwrap() {
            Change::SnapshotEnd(_) => break response.revision,
            Change::Upsert(object) => {
                if let Some(Object::Endpoint(endpoint)) = object.object {
                    snapshot_endpoints.push(endpoint);
                }
            }
            other => panic!("unexpected {other:?} in a snapshot"),
        }
    };
    assert_eq!(snapshot_endpoints.len(), 1);
    assert_eq!(
        snapshot_endpoints[0].secrets.as_ref().unwrap().current,
        first.secret,
        "services get the secret"
    );

    let second = herald
        .create_endpoint(
            &tenant,
            endpoint_spec("Second", "https://hooks.example.com/2"),
        )
        .await
        .unwrap();
    let change = next_change(&mut stream).await;
    assert!(change.revision > snapshot_revision);
    let last_seen = change.revision;
    match change.change.unwrap() {
        Change::Upsert(pb::WatchedObject {
            object: Some(Object::Endpoint(endpoint)),
        }) => {
            assert_eq!(
                endpoint.endpoint.unwrap().id,
                second.endpoint.as_ref().unwrap().id
            );
        }
        other => panic!("expected the new endpoint, got {other:?}"),
    }
    drop(stream);

    // While disconnected: a change and a deletion.
    let first_id = first.endpoint.unwrap().id;
    herald
        .config()
        .disable_endpoint(authed(
            &tenant.token,
            pb::DisableEndpointRequest {
                endpoint_id: first_id.clone(),
                reason: String::new(),
            },
        ))
        .await
        .unwrap();
    let second_id = second.endpoint.unwrap().id;
    herald
        .config()
        .delete_endpoint(authed(
            &tenant.token,
            pb::DeleteEndpointRequest {
                endpoint_id: second_id.clone(),
            },
        ))
        .await
        .unwrap();

    let mut resumed = watch
        .watch(authed(
            SERVICE_TOKEN,
            pb::WatchRequest {
                since_revision: last_seen,
                kinds: vec![pb::WatchedKind::Endpoint.into()],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let disabled = next_change(&mut resumed).await;
    assert!(disabled.revision > last_seen);
    match disabled.change.unwrap() {
        Change::Upsert(pb::WatchedObject {
            object: Some(Object::Endpoint(endpoint)),
        }) => {
            assert_eq!(
                endpoint.endpoint.unwrap().status(),
                pb::EndpointStatus::Disabled
            );
        }
        other => panic!("expected the disabled endpoint, got {other:?}"),
    }
    let deleted = next_change(&mut resumed).await;
    assert!(deleted.revision > disabled.revision);
    match deleted.change.unwrap() {
        Change::Delete(reference) => assert_eq!(reference.id, second_id),
        other => panic!("expected a deletion, got {other:?}"),
    }
}
