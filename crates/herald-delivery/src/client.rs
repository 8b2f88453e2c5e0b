//! The one HTTP client every delivery goes through, and the resolver that
//! keeps it away from addresses the SSRF rules refuse.

use std::{
    error::Error as StdError,
    fmt,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use herald_core::{
    address::{AllowList, RefusedAddress, check_address},
    retry::parse_retry_after,
};
use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
    header::RETRY_AFTER,
    redirect,
};
use rustls_platform_verifier::BuilderVerifierExt;
use time::OffsetDateTime;
use tracing::Instrument;

use crate::{DeliveryArgs, spans};

/// How much of a response body the attempt record keeps.
pub(crate) const MAX_RESPONSE_EXCERPT: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Build(#[from] reqwest::Error),
}

/// One request, ready to send.
#[derive(Debug)]
pub(crate) struct Request {
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

/// What came back.
#[derive(Debug)]
pub(crate) enum Response {
    Answered {
        status: u16,
        /// From `Retry-After`, for answers that are not a success.
        retry_after: Option<Duration>,
        excerpt: Vec<u8>,
    },
    /// No HTTP answer: refused address, DNS, connection, TLS or timeout.
    NoAnswer { error: String },
}

/// Sends deliveries over one pooled client.
#[derive(Clone, Debug)]
pub(crate) struct Sender {
    client: reqwest::Client,
    allow_list: Arc<AllowList>,
    connect_timeout: Duration,
}

impl Sender {
    pub(crate) fn new(args: &DeliveryArgs, allow_list: AllowList) -> Result<Sender, ClientError> {
        let allow_list = Arc::new(allow_list);
        // ring rather than aws-lc-rs: it is already in the build (for the
        // database driver) and needs no C toolchain beyond cc. The platform
        // verifier trusts the system's CA store, where operators add their
        // private CAs.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_platform_verifier()?
            .with_no_client_auth();
        // reqwest offers ALPN only on TLS configurations it builds itself;
        // without it HTTPS endpoints would never get HTTP/2.
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .dns_resolver(CheckedResolver {
                allow_list: allow_list.clone(),
            })
            // A proxy would resolve and connect on our behalf, past the
            // address checks; environment proxies are ignored.
            .no_proxy()
            // A redirect is the receiver's answer, not an instruction to
            // POST somewhere else (which could be an internal address).
            .redirect(redirect::Policy::none())
            .connect_timeout(args.connect_timeout)
            .pool_max_idle_per_host(args.max_per_endpoint)
            .build()?;
        Ok(Sender {
            client,
            allow_list,
            connect_timeout: args.connect_timeout,
        })
    }

    /// Sends `request` in an HTTP client span whose context the receiver
    /// gets in `traceparent`, reading at most [`MAX_RESPONSE_EXCERPT`] bytes
    /// of the answer.
    pub(crate) async fn send(&self, request: Request) -> Response {
        let span = spans::http_client(&request.url);
        let response = self.send_in(request, &span).instrument(span.clone()).await;
        spans::answered(&span, &response);
        response
    }

    async fn send_in(&self, request: Request, span: &tracing::Span) -> Response {
        // IP-literal hosts never reach the resolver, so they are checked here.
        if let Some(ip) = literal_ip(&request.url)
            && let Err(refused) = check_address(ip, &self.allow_list)
        {
            span.record("error.type", "address_refused");
            return Response::NoAnswer {
                error: refused.to_string(),
            };
        }
        let timeout = request.timeout;
        let mut builder = self
            .client
            .post(request.url)
            .timeout(timeout)
            .body(request.body);
        let trace_headers = herald_telemetry::trace::headers_for(span);
        for (name, value) in request.headers {
            // Herald's own trace context replaces one set on the endpoint.
            if trace_headers
                .iter()
                .any(|(trace_name, _)| name.eq_ignore_ascii_case(trace_name))
            {
                continue;
            }
            builder = builder.header(name, value);
        }
        for (name, value) in trace_headers {
            builder = builder.header(name, value);
        }
        let mut response = match builder.send().await {
            Ok(response) => response,
            Err(error) => {
                span.record("error.type", error_type(&error));
                return Response::NoAnswer {
                    error: self.describe(error, timeout),
                };
            }
        };
        let status = response.status();
        let retry_after = if status.is_success() {
            None
        } else {
            response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, OffsetDateTime::now_utc()))
        };
        let mut excerpt = Vec::new();
        while excerpt.len() < MAX_RESPONSE_EXCERPT {
            // A body that fails or times out midway still leaves the status,
            // which is what decides the attempt.
            let Ok(Some(chunk)) = response.chunk().await else {
                break;
            };
            let wanted = (MAX_RESPONSE_EXCERPT - excerpt.len()).min(chunk.len());
            excerpt.extend_from_slice(&chunk[..wanted]);
        }
        Response::Answered {
            status: status.as_u16(),
            retry_after,
            excerpt,
        }
    }

    /// The attempt record's `error` for a request that got no answer.
    fn describe(&self, error: reqwest::Error, timeout: Duration) -> String {
        if let Some(refusal) = find_source::<ResolveError>(&error) {
            return refusal.to_string();
        }
        if error.is_timeout() {
            return if error.is_connect() {
                format!(
                    "cannot connect within {}",
                    humantime::format_duration(self.connect_timeout)
                )
            } else {
                format!("no response within {}", humantime::format_duration(timeout))
            };
        }
        // The URL is in the record already.
        chain(&error.without_url())
    }
}

/// A short, bounded name for why a request got no answer (`error.type`).
fn error_type(error: &reqwest::Error) -> &'static str {
    if find_source::<ResolveError>(error).is_some() {
        "address_refused"
    } else if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "request"
    }
}

/// The host of `url` when it is an IP address rather than a name.
fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

fn find_source<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// Every message of an error chain, without repeats.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut messages: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        let message = error.to_string();
        if messages.last() != Some(&message) {
            messages.push(message);
        }
        current = error.source();
    }
    messages.join(": ")
}

/// Resolves with the system resolver and passes on only approved
/// addresses; the connection is made to one of exactly those, with no
/// second lookup a rebinding DNS server could answer differently.
#[derive(Debug)]
struct CheckedResolver {
    allow_list: Arc<AllowList>,
}

#[derive(Debug, thiserror::Error)]
enum ResolveError {
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("{host} resolves only to refused addresses: {}", Refusals(.refused))]
    Refused {
        host: String,
        refused: Vec<RefusedAddress>,
    },
}

struct Refusals<'a>(&'a [RefusedAddress]);

impl fmt::Display for Refusals<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, refused) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str("; ")?;
            }
            write!(formatter, "{refused}")?;
        }
        Ok(())
    }
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_list = self.allow_list.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let approved = resolve_checked(&host, &allow_list).await?;
            let addresses: Addrs = Box::new(approved.into_iter());
            Ok(addresses)
        })
    }
}

async fn resolve_checked(
    host: &str,
    allow_list: &AllowList,
) -> Result<Vec<SocketAddr>, ResolveError> {
    // The port is set by the connector afterwards.
    let resolved =
        tokio::net::lookup_host((host, 0))
            .await
            .map_err(|source| ResolveError::Lookup {
                host: host.to_owned(),
                source,
            })?;
    let mut approved: Vec<SocketAddr> = Vec::new();
    let mut refused: Vec<RefusedAddress> = Vec::new();
    for address in resolved {
        match check_address(address.ip(), allow_list) {
            Ok(()) if !approved.contains(&address) => approved.push(address),
            Ok(()) => {}
            Err(refusal) if !refused.contains(&refusal) => refused.push(refusal),
            Err(_) => {}
        }
    }
    if !approved.is_empty() {
        Ok(approved)
    } else if refused.is_empty() {
        Err(ResolveError::NoAddress {
            host: host.to_owned(),
        })
    } else {
        Err(ResolveError::Refused {
            host: host.to_owned(),
            refused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_is_resolved_and_classified() {
        let refused = resolve_checked("localhost", &AllowList::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.starts_with("localhost resolves only to refused addresses: address "),
            "{refused}"
        );
        assert!(
            refused.contains("is loopback and not on the allow-list"),
            "{refused}"
        );
        let allowed = resolve_checked("localhost", &AllowList::parse("127.0.0.0/8,::1").unwrap())
            .await
            .unwrap();
        assert!(!allowed.is_empty());
        assert!(allowed.iter().all(|address| address.ip().is_loopback()));
    }

    #[test]
    fn literal_hosts_are_found() {
        let ip = |url: &str| literal_ip(&Url::parse(url).unwrap());
        assert_eq!(
            ip("http://127.0.0.2:80/x"),
            Some("127.0.0.2".parse().unwrap())
        );
        assert_eq!(ip("https://[::1]/x"), Some("::1".parse().unwrap()));
        assert_eq!(ip("https://0x7f.1/x"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(ip("https://example.com/x"), None);
    }
}
