//! Devices, within their tenant.

use crate::*;

on_both_backends!(
    devices_round_trip_within_their_tenant,
    device_updates_check_the_version,
);

async fn devices_round_trip_within_their_tenant(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    store.insert_tenant(&tenant("t2")).await.unwrap();
    store
        .insert_device(&device("d2", "t1", "telegram"))
        .await
        .unwrap();
    store
        .insert_device(&device("d1", "t1", "waba"))
        .await
        .unwrap();
    store
        .insert_device(&device("d3", "t1", "waba"))
        .await
        .unwrap();
    store
        .insert_device(&device("dx", "t2", "waba"))
        .await
        .unwrap();

    assert_eq!(
        store.get_device("t1", "d1").await.unwrap(),
        Some(device("d1", "t1", "waba"))
    );
    assert!(store.get_device("t2", "d1").await.unwrap().is_none());
    assert_eq!(
        store.get_device_by_id("dx").await.unwrap(),
        Some(device("dx", "t2", "waba"))
    );

    let error = store
        .insert_device(&device("d1", "t2", "waba"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::AlreadyExists { kind: "device", .. }),
        "{error}"
    );

    let all = store.list_devices("t1", None, 10, None).await.unwrap();
    assert_eq!(ids(&all, |d| &d.id), ["d1", "d2", "d3"]);
    let waba = store
        .list_devices("t1", Some("waba"), 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&waba, |d| &d.id), ["d1", "d3"]);
    let page = store
        .list_devices("t1", Some("waba"), 1, Some("d1"))
        .await
        .unwrap();
    assert_eq!(ids(&page, |d| &d.id), ["d3"]);

    let wanted = ["d3", "dx", "zz", "d1", "d9"].map(str::to_owned);
    assert_eq!(
        store.missing_devices("t1", &wanted).await.unwrap(),
        ["dx", "zz", "d9"]
    );
    assert!(store.missing_devices("t1", &[]).await.unwrap().is_empty());

    assert!(!store.delete_device("t2", "d1").await.unwrap());
    assert!(store.get_device("t1", "d1").await.unwrap().is_some());
    assert!(store.delete_device("t1", "d1").await.unwrap());
    assert!(!store.delete_device("t1", "d1").await.unwrap());
    assert!(store.get_device_by_id("d1").await.unwrap().is_none());

    let devices = store.all_devices().await.unwrap();
    assert_eq!(ids(&devices, |d| &d.id), ["d2", "d3", "dx"]);
}

async fn device_updates_check_the_version(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    store.insert_tenant(&tenant("t2")).await.unwrap();
    store
        .insert_device(&device("d1", "t1", "waba"))
        .await
        .unwrap();

    let change = DeviceRecord {
        channel: "telegram".to_owned(), // not writable
        name: "renamed".to_owned(),
        external_id: "ext-new".to_owned(),
        verification_ciphertext: vec![9, 9, 0],
        updated_at: at(50),
        created_at: at(-1000), // not writable
        ..device("d1", "t1", "waba")
    };
    let updated = store.update_device(&change, Some(1)).await.unwrap();
    assert_eq!(
        updated,
        DeviceRecord {
            name: "renamed".to_owned(),
            external_id: "ext-new".to_owned(),
            verification_ciphertext: vec![9, 9, 0],
            updated_at: at(50),
            version: 2,
            ..device("d1", "t1", "waba")
        }
    );
    assert_eq!(store.get_device("t1", "d1").await.unwrap(), Some(updated));

    let error = store.update_device(&change, Some(1)).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::VersionConflict {
                kind: "device",
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{error}"
    );
    let other_tenant = DeviceRecord {
        tenant_id: "t2".to_owned(),
        ..change.clone()
    };
    let error = store.update_device(&other_tenant, None).await.unwrap_err();
    assert!(
        matches!(error, StoreError::NotFound { kind: "device", .. }),
        "{error}"
    );
    assert_eq!(store.update_device(&change, None).await.unwrap().version, 3);
}
