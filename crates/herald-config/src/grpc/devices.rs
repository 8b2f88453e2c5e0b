//! Devices: a tenant's channel lines and their inbound verification material.

use herald_core::id::DeviceId;
use herald_proto::v1::{
    Channel, CreateDeviceRequest, DeleteDeviceRequest, DeleteDeviceResponse, Device,
    DeviceVerification, GetDeviceRequest, ListDevicesRequest, ListDevicesResponse,
    UpdateDeviceRequest, device_verification::Channel as VerificationChannel,
};
use herald_store::DeviceRecord;
use prost::Message;
use time::OffsetDateTime;

use crate::{
    convert,
    error::{ApiError, ApiResult},
    names, paging,
    secrets::device_verification_context,
    state::ConfigState,
    validate::{check_id, check_text},
};

const MAX_NAME_CHARS: usize = 200;
const MAX_EXTERNAL_ID_CHARS: usize = 256;
const MAX_SECRET_CHARS: usize = 512;

fn validate_channel(channel: i32) -> ApiResult<Channel> {
    match Channel::try_from(channel) {
        Ok(channel @ (Channel::Whatsapp | Channel::Telegram | Channel::Waba)) => Ok(channel),
        Ok(Channel::Internal) => Err(ApiError::invalid(
            "channel",
            "internal events need no device; publish them without one",
        )),
        _ => Err(ApiError::invalid(
            "channel",
            "must be WHATSAPP, TELEGRAM or WABA",
        )),
    }
}

fn validate_text(field: &str, value: &str, max: usize, required: bool) -> ApiResult<String> {
    let value = value.trim();
    check_text(field, value, herald_core::text::Permit::SingleLine)?;
    if required && value.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// The verification a channel needs: WABA's app secret (the HMAC key of
/// `X-Hub-Signature-256`) and verify token, Telegram's secret token; a
/// gateway's HMAC key is optional.
fn validate_verification(
    channel: Channel,
    verification: Option<DeviceVerification>,
) -> ApiResult<DeviceVerification> {
    let verification = verification.unwrap_or_default();
    let checked = match (channel, verification.channel) {
        (Channel::Waba, Some(VerificationChannel::Waba(mut waba))) => {
            waba.app_secret = validate_text(
                "verification.waba.app_secret",
                &waba.app_secret,
                MAX_SECRET_CHARS,
                true,
            )?;
            waba.verify_token = validate_text(
                "verification.waba.verify_token",
                &waba.verify_token,
                MAX_SECRET_CHARS,
                true,
            )?;
            VerificationChannel::Waba(waba)
        }
        (Channel::Telegram, Some(VerificationChannel::Telegram(mut telegram))) => {
            // Telegram allows 1-256 characters of A-Z, a-z, 0-9, `_` and `-`.
            let token = &telegram.secret_token;
            if token.is_empty()
                || token.len() > 256
                || !token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(ApiError::invalid(
                    "verification.telegram.secret_token",
                    "must be 1 to 256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)",
                ));
            }
            telegram.secret_token = token.clone();
            VerificationChannel::Telegram(telegram)
        }
        (Channel::Whatsapp, Some(VerificationChannel::Whatsapp(mut gateway))) => {
            gateway.hmac_key = validate_text(
                "verification.whatsapp.hmac_key",
                &gateway.hmac_key,
                MAX_SECRET_CHARS,
                false,
            )?;
            VerificationChannel::Whatsapp(gateway)
        }
        (Channel::Whatsapp, None) => VerificationChannel::Whatsapp(Default::default()),
        (channel, _) => {
            return Err(ApiError::invalid(
                "verification",
                format!(
                    "a {} device needs {} verification",
                    names::channel(channel),
                    names::channel(channel)
                ),
            ));
        }
    };
    Ok(DeviceVerification {
        channel: Some(checked),
        configured: false,
    })
}

impl ConfigState {
    pub async fn create_device(
        &self,
        tenant_id: &str,
        request: CreateDeviceRequest,
    ) -> ApiResult<Device> {
        let channel = validate_channel(request.channel)?;
        let name = validate_text("name", &request.name, MAX_NAME_CHARS, true)?;
        let external_id = validate_text(
            "external_id",
            &request.external_id,
            MAX_EXTERNAL_ID_CHARS,
            channel != Channel::Whatsapp,
        )?;
        let verification = validate_verification(channel, request.verification)?;
        let id = DeviceId::generate().to_string();
        let now = OffsetDateTime::now_utc();
        let record = DeviceRecord {
            verification_ciphertext: self.key().encrypt(
                &device_verification_context(&id),
                &verification.encode_to_vec(),
            )?,
            id,
            tenant_id: tenant_id.to_owned(),
            channel: names::channel(channel).to_owned(),
            name,
            external_id,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        self.store.insert_device(&record).await?;
        self.notify_changed();
        convert::device(record, self.key(), false)
    }

    async fn tenant_device(&self, tenant_id: &str, device_id: &str) -> ApiResult<DeviceRecord> {
        check_id("device_id", device_id)?;
        self.store
            .get_device(tenant_id, device_id)
            .await?
            .ok_or_else(|| ApiError::not_found("device", device_id))
    }

    pub async fn get_device(
        &self,
        tenant_id: &str,
        request: GetDeviceRequest,
    ) -> ApiResult<Device> {
        let mut device = convert::device(
            self.tenant_device(tenant_id, &request.device_id).await?,
            self.key(),
            false,
        )?;
        self.with_health(std::slice::from_mut(&mut device)).await;
        Ok(device)
    }

    pub async fn list_devices(
        &self,
        tenant_id: &str,
        request: ListDevicesRequest,
    ) -> ApiResult<ListDevicesResponse> {
        let size = paging::page_size(request.page_size)?;
        let after = paging::decode_id_after(&request.page_token)?;
        let channel = match Channel::try_from(request.channel) {
            Ok(Channel::Unspecified) => None,
            Ok(channel) => Some(names::channel(channel)),
            Err(_) => return Err(ApiError::invalid("channel", "unknown value")),
        };
        let fetched = self
            .store
            .list_devices(tenant_id, channel, size + 1, after.as_deref())
            .await?;
        let (page, next_page_token) = paging::split_page(fetched, size, |device| device.id.clone());
        let mut devices = page
            .into_iter()
            .map(|record| convert::device(record, self.key(), false))
            .collect::<ApiResult<Vec<_>>>()?;
        self.with_health(&mut devices).await;
        Ok(ListDevicesResponse {
            devices,
            next_page_token,
        })
    }

    pub async fn update_device(
        &self,
        tenant_id: &str,
        request: UpdateDeviceRequest,
    ) -> ApiResult<Device> {
        let mut record = self.tenant_device(tenant_id, &request.device_id).await?;
        let channel = names::parse_channel(&record.channel);
        let paths = request
            .update_mask
            .map(|mask| mask.paths)
            .unwrap_or_default();
        let wants = |field: &str| paths.is_empty() || paths.iter().any(|path| path == field);
        for (index, path) in paths.iter().enumerate() {
            if !matches!(path.as_str(), "name" | "external_id" | "verification") {
                return Err(ApiError::invalid(
                    format!("update_mask.paths[{index}]"),
                    format!("unknown field {path:?}"),
                ));
            }
        }
        if wants("name") {
            record.name = validate_text("name", &request.name, MAX_NAME_CHARS, true)?;
        }
        if wants("external_id") {
            record.external_id = validate_text(
                "external_id",
                &request.external_id,
                MAX_EXTERNAL_ID_CHARS,
                channel != Channel::Whatsapp,
            )?;
        }
        // Verification is write-only: it changes only when sent, never by
        // writing back a redacted read.
        if request.verification.is_some() && wants("verification") {
            let verification = validate_verification(channel, request.verification)?;
            record.verification_ciphertext = self.key().encrypt(
                &device_verification_context(&record.id),
                &verification.encode_to_vec(),
            )?;
        }
        record.updated_at = OffsetDateTime::now_utc();
        let expected = convert::expected_version("etag", &request.etag)?;
        let updated = self.store.update_device(&record, expected).await?;
        self.notify_changed();
        convert::device(updated, self.key(), false)
    }

    pub async fn delete_device(
        &self,
        tenant_id: &str,
        request: DeleteDeviceRequest,
    ) -> ApiResult<DeleteDeviceResponse> {
        check_id("device_id", &request.device_id)?;
        if !self
            .store
            .delete_device(tenant_id, &request.device_id)
            .await?
        {
            return Err(ApiError::not_found("device", request.device_id));
        }
        self.notify_changed();
        Ok(DeleteDeviceResponse {})
    }
}
