//! Signatures as a customer's receiver checks them, written out here from
//! RFC 2104 and the Standard Webhooks specification so the tests never
//! verify Herald with Herald's own code (herald-core's signing).

use base64::Engine;
use sha2::{Digest, Sha256, Sha512};

use crate::Received;

/// HMAC (RFC 2104) over a hash with `BLOCK`-byte blocks.
fn hmac<D: Digest, const BLOCK: usize>(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        let digest = D::digest(key);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_key: Vec<u8> = block.iter().map(|byte| byte ^ 0x36).collect();
    let outer_key: Vec<u8> = block.iter().map(|byte| byte ^ 0x5c).collect();
    let inner = D::new()
        .chain_update(&inner_key)
        .chain_update(message)
        .finalize();
    D::new()
        .chain_update(&outer_key)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::<Sha256, 64>(key, message)
}

pub fn hmac_sha512(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::<Sha512, 128>(key, message)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    hex(&hmac_sha256(key, message))
}

/// Which of `secrets` (`whsec_…`) signed a Standard Webhooks delivery: the
/// index of every secret with a matching `v1,` entry in `webhook-signature`.
/// Panics on an entry no candidate signed, since Herald only signs with the
/// endpoint's secrets.
pub fn standard_signers(received: &Received, secrets: &[&str]) -> Vec<usize> {
    let id = received.header("webhook-id");
    let timestamp = received.header("webhook-timestamp");
    let mut signed = Vec::with_capacity(id.len() + timestamp.len() + 2 + received.body.len());
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(&received.body);
    let expected: Vec<String> = secrets
        .iter()
        .map(|secret| {
            let key = base64::engine::general_purpose::STANDARD
                .decode(secret.strip_prefix("whsec_").unwrap())
                .unwrap();
            base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &signed))
        })
        .collect();
    let mut signers = Vec::new();
    for entry in received.header("webhook-signature").split(' ') {
        let signature = entry.strip_prefix("v1,").unwrap_or_else(|| {
            panic!("{entry:?} is not a v1 signature");
        });
        let signer = expected
            .iter()
            .position(|candidate| candidate == signature)
            .unwrap_or_else(|| panic!("no known secret made the signature {entry:?}"));
        signers.push(signer);
    }
    signers.sort_unstable();
    signers
}
