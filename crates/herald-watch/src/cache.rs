//! A ready-made [`WatchHandler`]: the whole configuration in maps behind a
//! lock, readable from any task.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use herald_core::{endpoint::EndpointSettings, schema::DataSchema};
use herald_proto::{
    WireError, endpoint_settings,
    v1::{
        Device, EventTypeDefinition, Tenant, WatchedEndpoint, WatchedKind, WatchedObject,
        WatchedRef, WatchedToken, watched_object::Object,
    },
};

use crate::WatchHandler;

/// One consistent view of the configuration.
#[derive(Clone, Debug, Default)]
pub struct ConfigSnapshot {
    pub tenants: HashMap<String, Tenant>,
    /// By the token's SHA-256 (hex), what a bearer token is looked up by.
    pub tokens_by_hash: HashMap<String, WatchedToken>,
    pub devices: HashMap<String, Device>,
    pub endpoints: HashMap<String, WatchedEndpoint>,
    /// Each endpoint's delivery settings, converted once when it arrives
    /// (an endpoint that does not convert keeps the reason).
    pub endpoint_settings: HashMap<String, Arc<Result<EndpointSettings, WireError>>>,
    /// By `(tenant id, type name)`.
    pub event_types: HashMap<(String, String), EventTypeDefinition>,
    /// The custom types' schemas of `data`, parsed once when they arrive,
    /// by `(tenant id, type name)`; types without one are absent.
    pub event_type_schemas: HashMap<(String, String), Arc<DataSchema>>,
}

impl ConfigSnapshot {
    fn upsert(&mut self, object: Object) {
        match object {
            Object::Tenant(tenant) => {
                self.tenants.insert(tenant.id.clone(), tenant);
            }
            Object::Token(token) => {
                self.tokens_by_hash
                    .retain(|_, existing| existing.id != token.id);
                self.tokens_by_hash
                    .insert(token.secret_sha256.clone(), token);
            }
            Object::Device(device) => {
                self.devices.insert(device.id.clone(), device);
            }
            Object::Endpoint(endpoint) => {
                if let Some(id) = endpoint
                    .endpoint
                    .as_ref()
                    .map(|endpoint| endpoint.id.clone())
                {
                    self.endpoint_settings
                        .insert(id.clone(), Arc::new(endpoint_settings(&endpoint)));
                    self.endpoints.insert(id, endpoint);
                }
            }
            Object::EventType(event_type) => {
                let key = (event_type.tenant_id.clone(), event_type.name.clone());
                self.event_type_schemas.remove(&key);
                if !event_type.schema.is_empty() {
                    match DataSchema::parse(&event_type.schema) {
                        Ok(schema) => {
                            self.event_type_schemas
                                .insert(key.clone(), Arc::new(schema));
                        }
                        // The config service checked it at registration; a
                        // schema this build cannot read is not enforced
                        // rather than refusing every event of the type.
                        Err(error) => tracing::warn!(
                            tenant = %event_type.tenant_id,
                            event_type = %event_type.name,
                            %error,
                            "an event type's schema does not parse; it is not enforced"
                        ),
                    }
                }
                self.event_types.insert(key, event_type);
            }
        }
    }

    fn delete(&mut self, reference: &WatchedRef) {
        match reference.kind() {
            WatchedKind::Tenant => {
                self.tenants.remove(&reference.id);
            }
            WatchedKind::Token => self
                .tokens_by_hash
                .retain(|_, token| token.id != reference.id),
            WatchedKind::Device => {
                self.devices.remove(&reference.id);
            }
            WatchedKind::Endpoint => {
                self.endpoints.remove(&reference.id);
                self.endpoint_settings.remove(&reference.id);
            }
            WatchedKind::EventType => {
                let key = (reference.tenant_id.clone(), reference.id.clone());
                self.event_types.remove(&key);
                self.event_type_schemas.remove(&key);
            }
            WatchedKind::Unspecified => {}
        }
    }
}

/// The configuration, shared between the watch task and its readers.
#[derive(Clone, Debug, Default)]
pub struct ConfigCache {
    current: Arc<RwLock<Arc<ConfigSnapshot>>>,
}

impl ConfigCache {
    pub fn new() -> ConfigCache {
        ConfigCache::default()
    }

    /// The configuration now; cheap (an `Arc` clone), and consistent however
    /// long the caller holds it.
    pub fn snapshot(&self) -> Arc<ConfigSnapshot> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The handler that keeps this cache current.
    pub fn handler(&self) -> CacheHandler {
        CacheHandler {
            cache: self.clone(),
            pending: None,
        }
    }

    fn update(&self, change: impl FnOnce(&mut ConfigSnapshot)) {
        let mut current = match self.current.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(Arc::make_mut(&mut current));
    }

    fn replace(&self, snapshot: ConfigSnapshot) {
        let mut current = match self.current.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        *current = Arc::new(snapshot);
    }
}

/// Applies the Watch stream to a [`ConfigCache`]; a snapshot is built aside
/// and swapped in whole.
#[derive(Debug)]
pub struct CacheHandler {
    cache: ConfigCache,
    pending: Option<ConfigSnapshot>,
}

impl WatchHandler for CacheHandler {
    fn begin_snapshot(&mut self) {
        self.pending = Some(ConfigSnapshot::default());
    }

    fn upsert(&mut self, object: WatchedObject) {
        let Some(object) = object.object else { return };
        match &mut self.pending {
            Some(pending) => pending.upsert(object),
            None => self.cache.update(|snapshot| snapshot.upsert(object)),
        }
    }

    fn delete(&mut self, reference: WatchedRef) {
        match &mut self.pending {
            Some(pending) => pending.delete(&reference),
            None => self.cache.update(|snapshot| snapshot.delete(&reference)),
        }
    }

    fn end_snapshot(&mut self) {
        if let Some(snapshot) = self.pending.take() {
            self.cache.replace(snapshot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::v1::Endpoint;

    fn endpoint(id: &str) -> WatchedObject {
        WatchedObject {
            object: Some(Object::Endpoint(WatchedEndpoint {
                endpoint: Some(Endpoint {
                    id: id.into(),
                    ..Default::default()
                }),
                secrets: None,
            })),
        }
    }

    #[test]
    fn a_snapshot_replaces_the_cache_only_when_complete() {
        let cache = ConfigCache::new();
        let mut handler = cache.handler();
        handler.upsert(endpoint("ep_old"));
        handler.begin_snapshot();
        handler.upsert(endpoint("ep_new"));
        assert!(
            cache.snapshot().endpoints.contains_key("ep_old"),
            "no half snapshot is visible"
        );
        handler.end_snapshot();
        let snapshot = cache.snapshot();
        assert!(!snapshot.endpoints.contains_key("ep_old"));
        assert!(snapshot.endpoints.contains_key("ep_new"));
    }

    #[test]
    fn changes_apply_in_place_and_readers_keep_their_view() {
        let cache = ConfigCache::new();
        let mut handler = cache.handler();
        handler.upsert(endpoint("ep_1"));
        let before = cache.snapshot();
        handler.delete(WatchedRef {
            kind: WatchedKind::Endpoint.into(),
            id: "ep_1".into(),
            tenant_id: String::new(),
        });
        assert!(before.endpoints.contains_key("ep_1"));
        assert!(before.endpoint_settings.contains_key("ep_1"));
        assert!(cache.snapshot().endpoints.is_empty());
        assert!(cache.snapshot().endpoint_settings.is_empty());
    }

    #[test]
    fn a_token_is_found_by_its_hash_and_forgotten_by_its_id() {
        let cache = ConfigCache::new();
        let mut handler = cache.handler();
        handler.upsert(WatchedObject {
            object: Some(Object::Token(WatchedToken {
                id: "tok_1".into(),
                secret_sha256: "abc".into(),
                ..Default::default()
            })),
        });
        assert!(cache.snapshot().tokens_by_hash.contains_key("abc"));
        handler.delete(WatchedRef {
            kind: WatchedKind::Token.into(),
            id: "tok_1".into(),
            tenant_id: String::new(),
        });
        assert!(cache.snapshot().tokens_by_hash.is_empty());
    }
}
