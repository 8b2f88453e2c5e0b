//! Endpoint URL rules and the SSRF address classifier.
//!
//! Herald POSTs to URLs its customers type in, from inside its own network. An
//! endpoint pointing at `127.0.0.1`, `10.0.0.5` or the cloud metadata service
//! at `169.254.169.254` would turn Herald into a proxy into that network
//! (server-side request forgery). So every address Herald connects to is
//! classified, and only public addresses are allowed unless an operator puts a
//! range on the allow-list (for self-hosted deployments delivering to their
//! own services).
//!
//! Design decisions:
//! - IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible,
//!   6to4, NAT64, Teredo) are unwrapped and the embedded address is
//!   classified: otherwise `::ffff:127.0.0.1` or `64:ff9b::a9fe:a9fe` would
//!   walk past a check that only looked at the outer address. When the
//!   embedded address is public, the outer form decides: mapped, 6to4,
//!   well-known NAT64 and Teredo are public; the deprecated IPv4-compatible
//!   form and local-use NAT64 (`64:ff9b:1::/48`, whose embedding position
//!   depends on a local prefix length Herald cannot know) are reserved.
//! - IPv6 is public only inside global unicast `2000::/3` (minus the
//!   documentation ranges); everything else is reserved. Failing closed on
//!   unassigned space costs nothing, as no real endpoint lives there.
//! - URL validation checks IP-literal hosts at once. Hostnames are resolved
//!   and each resolved address is checked by the delivery service at connect
//!   time (the only check that survives DNS rebinding), so this module does
//!   no DNS.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;
use url::{Host, Url};

use crate::excerpt::excerpt;

/// Longest endpoint URL accepted, in characters.
pub const MAX_ENDPOINT_URL_LEN: usize = 2048;

/// What kind of address an IP is, for SSRF purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// Globally routable: deliveries may go there.
    Public,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918: `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    Private,
    /// RFC 6598 shared address space (carrier-grade NAT), `100.64.0.0/10`.
    SharedCgnat,
    /// `169.254.0.0/16` (including cloud metadata services), `fe80::/10`.
    LinkLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// `255.255.255.255`.
    Broadcast,
    /// `fc00::/7`.
    UniqueLocal,
    /// Special-purpose space: `0.0.0.0/8`, `240.0.0.0/4`, documentation
    /// (`192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`,
    /// `3fff::/20`), benchmarking (`198.18.0.0/15`, `2001:2::/48`), IETF
    /// protocol assignments (`192.0.0.0/24`), site-local `fec0::/10`, and IPv6
    /// outside `2000::/3`.
    Reserved,
}

impl AddressClass {
    /// A short human description, used in error messages.
    #[must_use]
    pub const fn description(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private (RFC 1918)",
            AddressClass::SharedCgnat => "shared address space (RFC 6598, carrier-grade NAT)",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Multicast => "multicast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Broadcast => "broadcast",
            AddressClass::UniqueLocal => "unique local (fc00::/7)",
            AddressClass::Reserved => "reserved for special use",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.description())
    }
}

/// IPv4 ranges, first match wins (so exact addresses come before their
/// enclosing ranges). Anything unmatched is public.
const IPV4_RANGES: &[(Ipv4Addr, u8, AddressClass)] = &[
    (Ipv4Addr::UNSPECIFIED, 32, AddressClass::Unspecified),
    (Ipv4Addr::BROADCAST, 32, AddressClass::Broadcast),
    (Ipv4Addr::UNSPECIFIED, 8, AddressClass::Reserved),
    (Ipv4Addr::new(127, 0, 0, 0), 8, AddressClass::Loopback),
    (Ipv4Addr::new(10, 0, 0, 0), 8, AddressClass::Private),
    (Ipv4Addr::new(172, 16, 0, 0), 12, AddressClass::Private),
    (Ipv4Addr::new(192, 168, 0, 0), 16, AddressClass::Private),
    (Ipv4Addr::new(100, 64, 0, 0), 10, AddressClass::SharedCgnat),
    (Ipv4Addr::new(169, 254, 0, 0), 16, AddressClass::LinkLocal),
    (Ipv4Addr::new(224, 0, 0, 0), 4, AddressClass::Multicast),
    (Ipv4Addr::new(240, 0, 0, 0), 4, AddressClass::Reserved),
    (Ipv4Addr::new(192, 0, 0, 0), 24, AddressClass::Reserved),
    (Ipv4Addr::new(192, 0, 2, 0), 24, AddressClass::Reserved),
    (Ipv4Addr::new(198, 51, 100, 0), 24, AddressClass::Reserved),
    (Ipv4Addr::new(203, 0, 113, 0), 24, AddressClass::Reserved),
    (Ipv4Addr::new(198, 18, 0, 0), 15, AddressClass::Reserved),
];

/// IPv6 ranges checked after the embedded-IPv4 forms, first match wins.
/// Unmatched addresses are public inside `2000::/3` and reserved elsewhere.
const IPV6_RANGES: &[(Ipv6Addr, u8, AddressClass)] = &[
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        AddressClass::Multicast,
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        AddressClass::LinkLocal,
    ),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        AddressClass::Reserved,
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        AddressClass::UniqueLocal,
    ),
    (
        Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0),
        32,
        AddressClass::Reserved,
    ),
    (
        Ipv6Addr::new(0x2001, 0x0002, 0, 0, 0, 0, 0, 0),
        48,
        AddressClass::Reserved,
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        AddressClass::Reserved,
    ),
    (
        Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0),
        3,
        AddressClass::Public,
    ),
];

fn ipv4_in(ip: Ipv4Addr, network: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(network) & mask
}

fn ipv6_in(ip: Ipv6Addr, network: Ipv6Addr, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(network) & mask
}

/// Classifies `ip`, looking through IPv6 forms that embed an IPv4 address.
#[must_use]
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(ip) => classify_ipv4(ip),
        IpAddr::V6(ip) => classify_ipv6(ip),
    }
}

fn classify_ipv4(ip: Ipv4Addr) -> AddressClass {
    IPV4_RANGES
        .iter()
        .find(|&&(network, prefix, _)| ipv4_in(ip, network, prefix))
        .map_or(AddressClass::Public, |&(_, _, class)| class)
}

fn classify_ipv6(ip: Ipv6Addr) -> AddressClass {
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if let Some((embedded, class_when_public)) = embedded_ipv4(ip) {
        return match classify_ipv4(embedded) {
            AddressClass::Public => class_when_public,
            inner => inner,
        };
    }
    IPV6_RANGES
        .iter()
        .find(|&&(network, prefix, _)| ipv6_in(ip, network, prefix))
        .map_or(AddressClass::Reserved, |&(_, _, class)| class)
}

const IPV4_MAPPED_PREFIX: Ipv6Addr = Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0);
const NAT64_WELL_KNOWN_PREFIX: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0);
const NAT64_LOCAL_USE_PREFIX: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0);
const SIX_TO_FOUR_PREFIX: Ipv6Addr = Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0);
const TEREDO_PREFIX: Ipv6Addr = Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0);

/// The IPv4 address embedded in `ip`, with the class the whole address has
/// when the embedded one is public. `::` and `::1` must be handled first, as
/// they would otherwise read as IPv4-compatible `0.0.0.0` and `0.0.0.1`.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<(Ipv4Addr, AddressClass)> {
    let bits = u128::from(ip);
    // Truncating casts pick out 32-bit fields of the address.
    let last_32_bits = bits as u32;
    if ipv6_in(ip, IPV4_MAPPED_PREFIX, 96) {
        return Some((Ipv4Addr::from(last_32_bits), AddressClass::Public));
    }
    // IPv4-compatible `::a.b.c.d`, deprecated by RFC 4291.
    if ipv6_in(ip, Ipv6Addr::UNSPECIFIED, 96) {
        return Some((Ipv4Addr::from(last_32_bits), AddressClass::Reserved));
    }
    // RFC 6052; the /96 layout puts the IPv4 address in the last 32 bits.
    if ipv6_in(ip, NAT64_WELL_KNOWN_PREFIX, 96) {
        return Some((Ipv4Addr::from(last_32_bits), AddressClass::Public));
    }
    // RFC 8215. Assumes the common /96 layout; a public reading still counts
    // as reserved because another layout could hide a private address.
    if ipv6_in(ip, NAT64_LOCAL_USE_PREFIX, 48) {
        return Some((Ipv4Addr::from(last_32_bits), AddressClass::Reserved));
    }
    // RFC 3056: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD in bits 16..48.
    if ipv6_in(ip, SIX_TO_FOUR_PREFIX, 16) {
        return Some((Ipv4Addr::from((bits >> 80) as u32), AddressClass::Public));
    }
    // RFC 4380: the client's address is stored inverted in the last 32 bits.
    if ipv6_in(ip, TEREDO_PREFIX, 32) {
        return Some((Ipv4Addr::from(!last_32_bits), AddressClass::Public));
    }
    None
}

/// Why a range list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "allow-list entry {position} {entry:?} is not an IP address or CIDR range \
     (like 10.0.0.0/8 or fd00::/8)"
)]
pub struct AllowListError {
    /// 1-based position of the entry in the comma-separated list.
    pub position: usize,
    /// Excerpt of the refused entry.
    pub entry: String,
}

/// Networks an operator allows deliveries to even though they are not public.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<IpNet>);

impl AllowList {
    /// An allow-list of exactly these networks.
    #[must_use]
    pub fn new(networks: Vec<IpNet>) -> Self {
        AllowList(networks)
    }

    /// Parses a comma-separated list of CIDR ranges or single addresses
    /// (`10.0.0.0/8, 127.0.0.1, fd00::/8`). Blank entries are skipped so that
    /// an empty setting means an empty list.
    pub fn parse(value: &str) -> Result<Self, AllowListError> {
        let mut networks = Vec::new();
        for (index, entry) in value.split(',').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let network = IpNet::from_str(entry)
                .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                .map_err(|_| AllowListError {
                    position: index + 1,
                    entry: excerpt(entry),
                })?;
            networks.push(network);
        }
        Ok(AllowList(networks))
    }

    /// The networks.
    #[must_use]
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }

    /// Whether the list is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is in one of the networks. An IPv4-mapped IPv6 address
    /// also matches IPv4 networks, since connecting to it reaches the same
    /// IPv4 host.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.0
            .iter()
            .any(|network| network.contains(&ip) || mapped.is_some_and(|v4| network.contains(&v4)))
    }
}

impl FromStr for AllowList {
    type Err = AllowListError;

    fn from_str(value: &str) -> Result<Self, AllowListError> {
        AllowList::parse(value)
    }
}

/// An address deliveries may not go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("address {ip} is {class} and not on the allow-list")]
pub struct RefusedAddress {
    /// The refused address.
    pub ip: IpAddr,
    /// Its class (never [`AddressClass::Public`]).
    pub class: AddressClass,
}

/// Allows `ip` if it is public or on the allow-list.
pub fn check_address(ip: IpAddr, allow: &AllowList) -> Result<(), RefusedAddress> {
    let class = classify(ip);
    if class == AddressClass::Public || allow.contains(ip) {
        Ok(())
    } else {
        Err(RefusedAddress { ip, class })
    }
}

/// Why an endpoint URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointUrlError {
    /// Longer than [`MAX_ENDPOINT_URL_LEN`].
    #[error("endpoint url is longer than {MAX_ENDPOINT_URL_LEN} characters ({length})")]
    TooLong {
        /// Its length in characters.
        length: usize,
    },
    /// Not a URL at all.
    #[error("endpoint url {value:?} is not a valid URL: {source}")]
    Invalid {
        /// Excerpt of the refused value.
        value: String,
        /// What the URL parser objected to.
        #[source]
        source: url::ParseError,
    },
    /// A scheme other than https (or http in the allowed cases).
    #[error("endpoint url must use https, not {scheme:?}")]
    NotHttps {
        /// The refused scheme.
        scheme: String,
    },
    /// Plain http to a host that is not on the allow-list.
    #[error(
        "endpoint url must use https: plain http is only allowed for addresses on the \
         allow-list (host {host:?})"
    )]
    HttpNotAllowed {
        /// The URL's host.
        host: String,
    },
    /// A user name or password in the URL.
    #[error("endpoint url must not contain credentials (user name or password)")]
    Credentials,
    /// No host.
    #[error("endpoint url must have a host")]
    MissingHost,
    /// A `#fragment`, which is never sent and usually means a pasting mistake.
    #[error("endpoint url must not contain a fragment (the part after #)")]
    Fragment,
    /// `localhost` or `*.localhost` while loopback is not allowed.
    #[error("endpoint url host {host:?} is loopback and 127.0.0.1 is not on the allow-list")]
    LocalhostNotAllowed {
        /// The URL's host.
        host: String,
    },
    /// An IP-literal host that is not public and not allowed.
    #[error("endpoint url is refused: {0}")]
    Address(#[from] RefusedAddress),
}

const LOOPBACK_V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `localhost` and `*.localhost` always resolve to loopback (RFC 6761).
fn is_localhost_name(domain: &str) -> bool {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    domain.eq_ignore_ascii_case("localhost")
        || domain
            .rsplit_once('.')
            .is_some_and(|(_, last)| last.eq_ignore_ascii_case("localhost"))
}

/// Validates an endpoint URL as a customer enters it and returns it parsed.
///
/// Rules: at most 2,048 characters; https, or http only when the host is an
/// IP literal on the allow-list (or `localhost` while 127.0.0.1 is on it); no
/// credentials; a host; no fragment; an IP-literal host must pass
/// [`check_address`]; `localhost` and `*.localhost` count as loopback.
pub fn validate_endpoint_url(raw: &str, allow: &AllowList) -> Result<Url, EndpointUrlError> {
    let length = raw.chars().count();
    if length > MAX_ENDPOINT_URL_LEN {
        return Err(EndpointUrlError::TooLong { length });
    }
    let url = Url::parse(raw).map_err(|source| EndpointUrlError::Invalid {
        value: excerpt(raw),
        source,
    })?;
    let is_http = match url.scheme() {
        "https" => false,
        "http" => true,
        other => {
            return Err(EndpointUrlError::NotHttps {
                scheme: other.to_owned(),
            });
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointUrlError::Credentials);
    }
    if url.fragment().is_some() {
        return Err(EndpointUrlError::Fragment);
    }
    let host_ip = match url.host() {
        None => return Err(EndpointUrlError::MissingHost),
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(Host::Domain(domain)) if is_localhost_name(domain) => {
            if !allow.contains(LOOPBACK_V4) {
                return Err(EndpointUrlError::LocalhostNotAllowed {
                    host: excerpt(domain),
                });
            }
            Some(LOOPBACK_V4)
        }
        Some(Host::Domain(_)) => None,
    };
    if is_http && !host_ip.is_some_and(|ip| allow.contains(ip)) {
        return Err(EndpointUrlError::HttpNotAllowed {
            host: excerpt(url.host_str().unwrap_or_default()),
        });
    }
    if let Some(ip) = host_ip {
        check_address(ip, allow)?;
    }
    // Punycode and percent-encoding can make the stored form longer than what
    // was typed; the limit applies to what is stored and sent.
    let stored_length = url.as_str().len();
    if stored_length > MAX_ENDPOINT_URL_LEN {
        return Err(EndpointUrlError::TooLong {
            length: stored_length,
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(value: &str) -> IpAddr {
        value.parse().unwrap()
    }

    fn class_of(value: &str) -> AddressClass {
        classify(ip(value))
    }

    fn allow(value: &str) -> AllowList {
        AllowList::parse(value).unwrap()
    }

    #[test]
    fn ipv4_ranges_with_boundaries() {
        use AddressClass::*;
        let cases = [
            ("0.0.0.0", Unspecified),
            ("0.0.0.1", Reserved),
            ("0.255.255.255", Reserved),
            ("1.0.0.0", Public),
            ("9.255.255.255", Public),
            ("10.0.0.0", Private),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("11.0.0.0", Public),
            ("100.63.255.255", Public),
            ("100.64.0.0", SharedCgnat),
            ("100.100.100.100", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("100.128.0.0", Public),
            ("126.255.255.255", Public),
            ("127.0.0.0", Loopback),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("128.0.0.0", Public),
            ("169.253.255.255", Public),
            ("169.254.0.0", LinkLocal),
            ("169.254.169.254", LinkLocal),
            ("169.254.255.255", LinkLocal),
            ("169.255.0.0", Public),
            ("172.15.255.255", Public),
            ("172.16.0.0", Private),
            ("172.20.1.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.0", Public),
            ("191.255.255.255", Public),
            ("192.0.0.0", Reserved),
            ("192.0.0.255", Reserved),
            ("192.0.1.0", Public),
            ("192.0.2.0", Reserved),
            ("192.0.2.255", Reserved),
            ("192.0.3.0", Public),
            ("192.167.255.255", Public),
            ("192.168.0.0", Private),
            ("192.168.1.1", Private),
            ("192.168.255.255", Private),
            ("192.169.0.0", Public),
            ("198.17.255.255", Public),
            ("198.18.0.0", Reserved),
            ("198.19.255.255", Reserved),
            ("198.20.0.0", Public),
            ("198.51.99.255", Public),
            ("198.51.100.0", Reserved),
            ("198.51.100.255", Reserved),
            ("198.51.101.0", Public),
            ("203.0.112.255", Public),
            ("203.0.113.0", Reserved),
            ("203.0.113.255", Reserved),
            ("203.0.114.0", Public),
            ("223.255.255.255", Public),
            ("224.0.0.0", Multicast),
            ("224.0.0.251", Multicast),
            ("239.255.255.255", Multicast),
            ("240.0.0.0", Reserved),
            ("250.1.2.3", Reserved),
            ("255.255.255.254", Reserved),
            ("255.255.255.255", Broadcast),
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
        ];
        for (address, expected) in cases {
            assert_eq!(class_of(address), expected, "{address}");
        }
    }

    #[test]
    fn ipv6_ranges_with_boundaries() {
        use AddressClass::*;
        let cases = [
            ("::", Unspecified),
            ("::1", Loopback),
            ("::2", Reserved),
            ("ff00::", Multicast),
            ("ff02::1", Multicast),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Multicast),
            ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Reserved),
            ("fe80::", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", LinkLocal),
            ("fec0::", Reserved),
            ("fec0::1", Reserved),
            ("feff::1", Reserved),
            ("fc00::", UniqueLocal),
            ("fd12:3456:789a::1", UniqueLocal),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", UniqueLocal),
            ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Reserved),
            ("fe00::", Reserved),
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", Public),
            ("2001:db8::", Reserved),
            ("2001:db8::1", Reserved),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Reserved),
            ("2001:db9::", Public),
            ("2001:2::1", Reserved),
            ("2001:2:0:ffff::1", Reserved),
            ("2001:2:1::1", Public),
            ("3fff::1", Reserved),
            ("3fff:fff::1", Reserved),
            ("3fff:1000::1", Public),
            ("2000::", Public),
            ("3ffe:ffff::1", Public),
            ("4000::1", Reserved),
            ("1fff:ffff::1", Reserved),
            ("100::1", Reserved),
            ("2606:4700::1111", Public),
            ("2001:4860:4860::8888", Public),
            ("2a00:1450:4001:82b::200e", Public),
        ];
        for (address, expected) in cases {
            assert_eq!(class_of(address), expected, "{address}");
        }
    }

    #[test]
    fn embedded_ipv4_forms_are_unwrapped() {
        use AddressClass::*;
        // Each embedded form of 127.0.0.1, 10.0.0.1 and 169.254.169.254.
        let cases = [
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::127.0.0.1", Loopback),
            ("::10.0.0.1", Private),
            ("::169.254.169.254", LinkLocal),
            ("2002:7f00:1::", Loopback),
            ("2002:a00:1::1", Private),
            ("2002:a9fe:a9fe:1234::1", LinkLocal),
            ("64:ff9b::127.0.0.1", Loopback),
            ("64:ff9b::10.0.0.1", Private),
            ("64:ff9b::169.254.169.254", LinkLocal),
            ("64:ff9b:1::127.0.0.1", Loopback),
            ("64:ff9b:1::10.0.0.1", Private),
            ("64:ff9b:1:ffff::169.254.169.254", LinkLocal),
            // Teredo stores the client address inverted in the last 32 bits.
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", Loopback),
            ("2001:0:4136:e378:8000:63bf:f5ff:fffe", Private),
            ("2001:0:4136:e378:8000:63bf:5601:5601", LinkLocal),
        ];
        for (address, expected) in cases {
            assert_eq!(class_of(address), expected, "{address}");
        }
    }

    #[test]
    fn embedded_public_addresses_take_the_outer_class() {
        use AddressClass::*;
        let cases = [
            ("::ffff:8.8.8.8", Public),
            ("64:ff9b::8.8.8.8", Public),
            ("2002:808:808::1", Public),
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", Public),
            ("::8.8.8.8", Reserved),
            ("64:ff9b:1::8.8.8.8", Reserved),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:255.255.255.255", Broadcast),
            ("64:ff9b::224.0.0.1", Multicast),
            ("64:ff9b::100.64.0.1", SharedCgnat),
            ("::ffff:192.0.2.1", Reserved),
        ];
        for (address, expected) in cases {
            assert_eq!(class_of(address), expected, "{address}");
        }
    }

    #[test]
    fn descriptions_read_well() {
        assert_eq!(
            RefusedAddress {
                ip: ip("10.0.0.1"),
                class: AddressClass::Private
            }
            .to_string(),
            "address 10.0.0.1 is private (RFC 1918) and not on the allow-list"
        );
        assert_eq!(AddressClass::LinkLocal.to_string(), "link-local");
    }

    #[test]
    fn allow_list_parsing() {
        let list = allow(" 10.0.0.0/8, 127.0.0.1 ,fd00::/8,,");
        assert_eq!(list.networks().len(), 3);
        assert_eq!(list.networks()[1], "127.0.0.1/32".parse::<IpNet>().unwrap());
        assert!(allow("").is_empty());
        assert!(allow(" , ").is_empty());
        assert_eq!(
            "10.0.0.0/8".parse::<AllowList>().unwrap(),
            allow("10.0.0.0/8")
        );
        let error = AllowList::parse("10.0.0.0/8, 300.1.1.1/8").unwrap_err();
        assert_eq!(
            error,
            AllowListError {
                position: 2,
                entry: "300.1.1.1/8".to_owned()
            }
        );
        assert_eq!(
            error.to_string(),
            "allow-list entry 2 \"300.1.1.1/8\" is not an IP address or CIDR range \
             (like 10.0.0.0/8 or fd00::/8)"
        );
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/", "fd00::/129"] {
            assert!(AllowList::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allow_list_membership() {
        let list = allow("10.0.0.0/8,fd00::/8,127.0.0.1");
        assert!(list.contains(ip("10.1.2.3")));
        assert!(list.contains(ip("::ffff:10.1.2.3")));
        assert!(list.contains(ip("fd00::5")));
        assert!(list.contains(ip("127.0.0.1")));
        assert!(!list.contains(ip("127.0.0.2")));
        assert!(!list.contains(ip("11.0.0.0")));
        assert!(!list.contains(ip("64:ff9b::10.1.2.3")));
        assert!(!AllowList::default().contains(ip("10.0.0.1")));
    }

    #[test]
    fn check_address_allows_public_and_allow_listed() {
        let empty = AllowList::default();
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert_eq!(check_address(ip(public), &empty), Ok(()));
        }
        assert_eq!(
            check_address(ip("169.254.169.254"), &empty),
            Err(RefusedAddress {
                ip: ip("169.254.169.254"),
                class: AddressClass::LinkLocal
            })
        );
        let list = allow("10.0.0.0/8,::1");
        assert_eq!(check_address(ip("10.0.0.1"), &list), Ok(()));
        assert_eq!(check_address(ip("::1"), &list), Ok(()));
        assert!(check_address(ip("192.168.0.1"), &list).is_err());
    }

    #[test]
    fn endpoint_urls_that_are_accepted() {
        let empty = AllowList::default();
        for raw in [
            "https://example.com/webhooks",
            "https://hooks.example.com:8443/a/b?c=d",
            "https://8.8.8.8/x",
            "https://[2606:4700::1111]/x",
            "https://intranet/x",
            "HTTPS://Example.COM/x",
        ] {
            let url = validate_endpoint_url(raw, &empty).unwrap();
            assert_eq!(url.scheme(), "https");
        }
        let list = allow("10.0.0.0/8,127.0.0.1,fd00::/8");
        for raw in [
            "http://10.1.2.3:8080/hook",
            "https://10.1.2.3/hook",
            "http://127.0.0.1/hook",
            "http://localhost:3000/hook",
            "https://api.localhost/hook",
            "http://[fd00::1]/hook",
        ] {
            assert!(validate_endpoint_url(raw, &list).is_ok(), "{raw}");
        }
    }

    #[test]
    fn endpoint_urls_that_are_refused() {
        let empty = AllowList::default();
        let list = allow("10.0.0.0/8");
        let long = format!("https://example.com/{}", "a".repeat(MAX_ENDPOINT_URL_LEN));
        let cases: Vec<(&str, &AllowList, &str)> = vec![
            (&long, &empty, "endpoint url is longer than 2048 characters"),
            ("not a url", &empty, "is not a valid URL"),
            ("https://", &empty, "is not a valid URL"),
            (
                "ftp://example.com/x",
                &empty,
                "endpoint url must use https, not \"ftp\"",
            ),
            ("file:///etc/passwd", &empty, "must use https, not \"file\""),
            (
                "http://example.com/x",
                &empty,
                "must use https: plain http is only allowed",
            ),
            ("http://8.8.8.8/x", &empty, "plain http is only allowed"),
            ("http://10.0.0.1/x", &empty, "plain http is only allowed"),
            ("http://localhost/x", &list, "\"localhost\" is loopback"),
            (
                "https://user@example.com/x",
                &empty,
                "must not contain credentials",
            ),
            (
                "https://user:pw@example.com/x",
                &empty,
                "must not contain credentials",
            ),
            (
                "https://:pw@example.com/x",
                &empty,
                "must not contain credentials",
            ),
            (
                "https://example.com/x#frag",
                &empty,
                "must not contain a fragment",
            ),
            (
                "https://example.com/x#",
                &empty,
                "must not contain a fragment",
            ),
            (
                "https://10.0.0.1/x",
                &empty,
                "address 10.0.0.1 is private (RFC 1918) and not on the allow-list",
            ),
            (
                "https://127.0.0.1/x",
                &list,
                "address 127.0.0.1 is loopback",
            ),
            (
                "https://169.254.169.254/latest/meta-data",
                &empty,
                "is link-local",
            ),
            (
                "https://[::ffff:169.254.169.254]/x",
                &empty,
                "is link-local",
            ),
            ("https://[::1]/x", &empty, "is loopback"),
            ("https://0x7f.1/x", &empty, "address 127.0.0.1 is loopback"),
            (
                "https://2130706433/x",
                &empty,
                "address 127.0.0.1 is loopback",
            ),
            ("https://0/x", &empty, "address 0.0.0.0 is unspecified"),
            ("https://localhost/x", &empty, "\"localhost\" is loopback"),
            ("https://LOCALHOST./x", &empty, "is loopback"),
            ("https://a.b.localhost/x", &empty, "is loopback"),
        ];
        for (raw, allow_list, expected) in cases {
            let message = validate_endpoint_url(raw, allow_list)
                .unwrap_err()
                .to_string();
            assert!(
                message.contains(expected),
                "{raw}: {message:?} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn url_length_limit_is_inclusive() {
        let prefix = "https://example.com/";
        let exact = format!(
            "{prefix}{}",
            "a".repeat(MAX_ENDPOINT_URL_LEN - prefix.len())
        );
        assert!(validate_endpoint_url(&exact, &AllowList::default()).is_ok());
        let over = format!("{exact}a");
        assert_eq!(
            validate_endpoint_url(&over, &AllowList::default()).unwrap_err(),
            EndpointUrlError::TooLong { length: 2049 }
        );
    }

    #[test]
    fn url_length_limit_applies_to_the_stored_form() {
        // Each "é" is one character typed but six ("%C3%A9") stored.
        let raw = format!("https://example.com/{}", "é".repeat(400));
        assert!(matches!(
            validate_endpoint_url(&raw, &AllowList::default()),
            Err(EndpointUrlError::TooLong { .. })
        ));
    }

    #[test]
    fn localhost_names() {
        for name in [
            "localhost",
            "LocalHost",
            "localhost.",
            "a.localhost",
            "a.b.localhost.",
        ] {
            assert!(is_localhost_name(name), "{name}");
        }
        for name in ["localhost.com", "notlocalhost", "localhostx", "example.com"] {
            assert!(!is_localhost_name(name), "{name}");
        }
    }

    proptest! {
        #[test]
        fn embedded_non_public_ipv4_keeps_its_class(bits in any::<u32>()) {
            let v4 = Ipv4Addr::from(bits);
            let class = classify(IpAddr::V4(v4));
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            let nat64 = IpAddr::V6(Ipv6Addr::from((0x0064_ff9b_u128 << 96) | u128::from(bits)));
            let local_nat64 =
                IpAddr::V6(Ipv6Addr::from((0x0064_ff9b_0001_u128 << 80) | u128::from(bits)));
            let six_to_four =
                IpAddr::V6(Ipv6Addr::from((0x2002_u128 << 112) | (u128::from(bits) << 80)));
            let teredo = IpAddr::V6(Ipv6Addr::from((0x2001_0000_u128 << 96) | u128::from(!bits)));
            if class == AddressClass::Public {
                prop_assert_eq!(classify(mapped), AddressClass::Public);
                prop_assert_eq!(classify(nat64), AddressClass::Public);
                prop_assert_eq!(classify(six_to_four), AddressClass::Public);
                prop_assert_eq!(classify(teredo), AddressClass::Public);
                prop_assert_eq!(classify(local_nat64), AddressClass::Reserved);
            } else {
                prop_assert_eq!(classify(mapped), class);
                prop_assert_eq!(classify(nat64), class);
                prop_assert_eq!(classify(local_nat64), class);
                prop_assert_eq!(classify(six_to_four), class);
                prop_assert_eq!(classify(teredo), class);
            }
        }

        #[test]
        fn allow_list_overrides_any_class(bits in any::<u128>()) {
            let address = IpAddr::V6(Ipv6Addr::from(bits));
            let list = AllowList::new(vec![IpNet::from(address)]);
            prop_assert_eq!(check_address(address, &list), Ok(()));
        }

        #[test]
        fn validate_endpoint_url_never_panics(raw in "(https?://)?[a-z0-9.:@\\[\\]/#%-]{0,60}") {
            let _ = validate_endpoint_url(&raw, &AllowList::default());
        }
    }
}
