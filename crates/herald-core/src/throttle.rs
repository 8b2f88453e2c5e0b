//! Throttling failed authentications per client address, against token
//! guessing.
//!
//! Each address has a budget of failures: a burst of [`AuthThrottle::burst`]
//! and then one more per [`AuthThrottle::interval`] (a GCRA, so the whole
//! state of an address is one number, the theoretical arrival time of its
//! next failure). While an address is over its budget every authentication
//! from it is refused before the token is looked at, so a correct guess is
//! not confirmed either; successful authentications cost nothing.
//!
//! Behind a reverse proxy every client would share the proxy's address, so
//! [`client_address`] takes the client from `X-Forwarded-For` when the peer
//! is a proxy the operator trusts.

use std::{
    net::{IpAddr, Ipv6Addr},
    time::Duration,
};

use ipnet::IpNet;

use crate::rate::Micros;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthThrottle {
    burst: u32,
    interval: Micros,
}

impl Default for AuthThrottle {
    /// A burst of 10 failures, then one per second.
    fn default() -> Self {
        AuthThrottle {
            burst: 10,
            interval: 1_000_000,
        }
    }
}

impl AuthThrottle {
    /// `burst` failures at once (at least 1), then one per `interval` (at
    /// least a microsecond).
    pub fn new(burst: u32, interval: Duration) -> AuthThrottle {
        AuthThrottle {
            burst: burst.max(1),
            interval: Micros::try_from(interval.as_micros())
                .unwrap_or(Micros::MAX)
                .max(1),
        }
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.interval.unsigned_abs())
    }

    /// How long an address whose failures left `tat` (0 when it has none)
    /// must wait before it may authenticate at `now`; `None` when it may.
    pub fn wait(&self, tat: Micros, now: Micros) -> Option<Duration> {
        let tolerance = self
            .interval
            .saturating_mul(i64::from(self.burst.saturating_sub(1)));
        let allowed_at = tat.saturating_sub(tolerance);
        (allowed_at > now).then(|| Duration::from_micros(allowed_at.abs_diff(now)))
    }

    /// The state after a failure at `now`.
    pub fn fail(&self, tat: Micros, now: Micros) -> Micros {
        tat.max(now).saturating_add(self.interval)
    }

    /// Whether the state `tat` is spent at `now`: the address has its whole
    /// burst back, so the state can be forgotten.
    pub fn is_spent(&self, tat: Micros, now: Micros) -> bool {
        tat <= now
    }
}

/// The client behind a request: the connection's `peer`, unless the peer is
/// one of the `trusted` proxies, in which case the rightmost address of
/// `X-Forwarded-For` that is not itself a trusted proxy (a client can put
/// anything at the left of the header, only what the proxies appended is
/// believed). A trusted peer without a usable header is the client itself.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(forwarded_for) = forwarded_for else {
        return peer;
    };
    for hop in forwarded_for.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(address) if is_trusted(&address) => continue,
            Ok(address) => return address,
            Err(_) => return peer,
        }
    }
    peer
}

/// The address failures are counted under: IPv4 addresses (IPv4-mapped IPv6
/// included) as they are, IPv6 addresses by their /64, the block one
/// subscriber usually holds.
pub fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECOND: Micros = 1_000_000;

    #[test]
    fn a_burst_of_ten_then_one_per_second() {
        let throttle = AuthThrottle::default();
        let now = 1_000 * SECOND;
        let mut tat = 0;
        for _ in 0..10 {
            assert_eq!(throttle.wait(tat, now), None);
            tat = throttle.fail(tat, now);
        }
        assert_eq!(throttle.wait(tat, now), Some(Duration::from_secs(1)));
        assert_eq!(
            throttle.wait(tat, now + SECOND / 2),
            Some(Duration::from_millis(500))
        );
        assert_eq!(throttle.wait(tat, now + SECOND), None);
        tat = throttle.fail(tat, now + SECOND);
        assert_eq!(
            throttle.wait(tat, now + SECOND),
            Some(Duration::from_secs(1))
        );
        assert!(!throttle.is_spent(tat, now + 10 * SECOND));
        assert!(throttle.is_spent(tat, now + 11 * SECOND));
        assert_eq!(throttle.wait(tat, now + 11 * SECOND), None);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(client_key(one), client_key(other));
        assert_ne!(
            client_key(one),
            client_key("2001:db8:1:3::1".parse().unwrap())
        );
        assert_eq!(
            client_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let client: IpAddr = "198.51.100.7".parse().unwrap();
        let outsider: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            client_address(outsider, Some("198.51.100.7"), &trusted),
            outsider
        );
        assert_eq!(
            client_address(proxy, Some("198.51.100.7"), &trusted),
            client
        );
        // What the client wrote at the left is ignored.
        assert_eq!(
            client_address(proxy, Some("1.1.1.1, 198.51.100.7, 10.9.9.9"), &trusted),
            client
        );
        assert_eq!(client_address(proxy, None, &trusted), proxy);
        assert_eq!(client_address(proxy, Some("garbage"), &trusted), proxy);
        assert_eq!(client_address(proxy, Some("10.2.2.2"), &trusted), proxy);
        assert_eq!(client_address(proxy, Some("198.51.100.7"), &[]), proxy);
    }

    proptest! {
        #[test]
        fn never_overflows_and_never_waits_longer_than_the_backlog(
            tat in any::<i64>(),
            now in any::<i64>(),
            burst in any::<u32>(),
            interval in any::<u64>(),
        ) {
            let throttle = AuthThrottle::new(burst, Duration::from_micros(interval));
            let after = throttle.fail(tat, now);
            prop_assert!(after >= now.min(tat));
            if let Some(wait) = throttle.wait(tat, now) {
                prop_assert!(wait <= Duration::from_micros(tat.abs_diff(now)));
            }
        }
    }
}
