//! One module per page; what several pages read is here.

pub mod dead_letters;
pub mod devices;
pub mod endpoint;
pub mod endpoint_form;
pub mod endpoint_test;
pub mod logs;
pub mod overview;
pub mod sign_in;

use std::collections::BTreeMap;

use herald_proto::v1::{self as pb, config_service_server::ConfigService};

use crate::{Console, error::PageError, render::Flash, session::Session};

/// The most items a page fetches for a picker or a lookup (the API's page
/// limit): devices, endpoints, event types.
const LOOKUP_PAGE: u32 = 500;

/// The tenant's devices by id.
pub async fn devices(
    console: &Console,
    session: &Session,
) -> Result<BTreeMap<String, pb::Device>, PageError> {
    let listed = console
        .backend
        .config()
        .list_devices(session.credentials.request(pb::ListDevicesRequest {
            page_size: LOOKUP_PAGE,
            ..Default::default()
        }))
        .await?
        .into_inner();
    Ok(listed
        .devices
        .into_iter()
        .map(|device| (device.id.clone(), device))
        .collect())
}

/// The catalog and the tenant's custom types.
pub async fn event_types(
    console: &Console,
    session: &Session,
) -> Result<Vec<pb::EventTypeDefinition>, PageError> {
    Ok(console
        .backend
        .config()
        .list_event_types(session.credentials.request(pb::ListEventTypesRequest {
            page_size: LOOKUP_PAGE,
            ..Default::default()
        }))
        .await?
        .into_inner()
        .event_types)
}

/// Endpoint names by id, for the logs.
pub async fn endpoint_names(
    console: &Console,
    session: &Session,
) -> Result<BTreeMap<String, String>, PageError> {
    let listed = console
        .backend
        .config()
        .list_endpoints(session.credentials.request(pb::ListEndpointsRequest {
            page_size: LOOKUP_PAGE,
            ..Default::default()
        }))
        .await?
        .into_inner();
    Ok(listed
        .endpoints
        .into_iter()
        .map(|endpoint| {
            let name = endpoint.spec.map(|spec| spec.name).unwrap_or_default();
            (endpoint.id, name)
        })
        .collect())
}

/// What a started replay or redrive says on the next page.
pub fn job_flash(what: &str, job: &pb::RecoveryJob) -> Flash {
    match job.state() {
        pb::RecoveryJobState::Failed => Flash::warning(format!("{what} failed: {}", job.error)),
        pb::RecoveryJobState::Succeeded => Flash::success(format!(
            "{what} done: {} of {} sent again (job {}).",
            job.enqueued, job.total, job.id
        )),
        _ => Flash::info(format!(
            "{what} started: deliveries are sent again in the background (job {}).",
            job.id
        )),
    }
}
