//! What every HTTP and gRPC server of Herald counts and traces, as tower
//! layers: a server span per request that continues the caller's trace, and
//! request counts and latencies.
//!
//! Labels are bounded whatever clients send: HTTP requests are labelled by
//! their route template (`/inbound/waba/{device_id}`, never the raw path),
//! gRPC calls by service and method only when the method is one Herald
//! serves, everything else as `unknown`.
//!
//! [`no_sniff`] is the header every HTTP answer of Herald carries.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::LazyLock,
    task::{Context, Poll},
    time::Instant,
};

use axum::extract::MatchedPath;
use http::{Request, Response};
use http_body::{Body, Frame};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use prost::Message as _;
use tracing::{Instrument, field::Empty};

type HistogramFamily<Labels> = Family<Labels, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpRouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcLabels {
    service: &'static str,
    method: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcMethodLabels {
    service: &'static str,
    method: &'static str,
}

/// Request counts and latencies of a process's HTTP and gRPC servers; clones
/// share the same series. One per process: `herald all` serves ingest and
/// config with the same families.
#[derive(Clone, Debug)]
pub struct RequestMetrics {
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<HttpRouteLabels>,
    grpc_requests: Family<GrpcLabels, Counter>,
    grpc_duration: HistogramFamily<GrpcMethodLabels>,
}

/// 1 ms to about 16 s. Streaming calls (Watch, Tail) last as long as their
/// stream and land in +Inf.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for RequestMetrics {
    /// Metrics that are kept but not exposed (tests, tools).
    fn default() -> RequestMetrics {
        RequestMetrics {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            grpc_requests: Family::default(),
            grpc_duration: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl RequestMetrics {
    pub fn register(registry: &mut Registry) -> RequestMetrics {
        let metrics = RequestMetrics::default();
        registry.register(
            "herald_http_requests",
            "HTTP requests answered, by method, route template and status",
            metrics.http_requests.clone(),
        );
        registry.register(
            "herald_http_request_duration_seconds",
            "Time from an HTTP request's arrival to its response, by method and route template",
            metrics.http_duration.clone(),
        );
        registry.register(
            "herald_grpc_requests",
            "gRPC calls finished, by service, method and status code",
            metrics.grpc_requests.clone(),
        );
        registry.register(
            "herald_grpc_request_duration_seconds",
            "Time from a gRPC call's arrival to its last message, by service and method",
            metrics.grpc_duration.clone(),
        );
        metrics
    }

    /// The layer for axum routers of plain HTTP routes.
    pub fn http_layer(&self) -> HttpLayer {
        HttpLayer {
            metrics: self.clone(),
        }
    }

    /// The layer for gRPC services (a tonic server, or tonic routes in axum).
    pub fn grpc_layer(&self) -> GrpcLayer {
        GrpcLayer {
            metrics: self.clone(),
        }
    }
}

/// See [`RequestMetrics::http_layer`].
#[derive(Clone, Debug)]
pub struct HttpLayer {
    metrics: RequestMetrics,
}

impl<S> tower_layer::Layer<S> for HttpLayer {
    type Service = HttpService<S>;

    fn layer(&self, inner: S) -> HttpService<S> {
        HttpService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct HttpService<S> {
    inner: S,
    metrics: RequestMetrics,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, RequestBody, ResponseBody> tower_service::Service<Request<RequestBody>> for HttpService<S>
where
    S: tower_service::Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResponseBody>, S::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let method = method_label(request.method());
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
        // The path, never the query: WABA's handshake carries its verify
        // token there.
        let span = tracing::info_span!(
            target: "herald::http",
            "http.server",
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = method,
            http.route = %route,
            url.path = %request.uri().path(),
            http.response.status_code = Empty,
            herald.tenant.id = Empty,
        );
        crate::trace::continue_from(&span, request.headers());
        let started = Instant::now();
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        let metrics = self.metrics.clone();
        Box::pin(
            async move {
                let response = response.await;
                let status = match &response {
                    Ok(response) => response.status(),
                    Err(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
                };
                let span = tracing::Span::current();
                span.record("http.response.status_code", status.as_u16());
                if status.is_server_error() {
                    span.record("otel.status_code", "ERROR");
                }
                metrics
                    .http_duration
                    .get_or_create(&HttpRouteLabels {
                        method,
                        route: route.clone(),
                    })
                    .observe(started.elapsed().as_secs_f64());
                metrics
                    .http_requests
                    .get_or_create(&HttpLabels {
                        method,
                        route,
                        status: status.as_u16(),
                    })
                    .inc();
                response
            }
            .instrument(span),
        )
    }
}

/// Methods outside the standard set are one label, so a client cannot make
/// series by inventing methods.
fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// See [`RequestMetrics::grpc_layer`].
#[derive(Clone, Debug)]
pub struct GrpcLayer {
    metrics: RequestMetrics,
}

impl<S> tower_layer::Layer<S> for GrpcLayer {
    type Service = GrpcService<S>;

    fn layer(&self, inner: S) -> GrpcService<S> {
        GrpcService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct GrpcService<S> {
    inner: S,
    metrics: RequestMetrics,
}

impl<S, RequestBody, ResponseBody> tower_service::Service<Request<RequestBody>> for GrpcService<S>
where
    S: tower_service::Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<GrpcBody<ResponseBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<GrpcBody<ResponseBody>>, S::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        // HTTP routes served beside gRPC on one port (the config service's
        // JSON API and console) are counted by their own HTTP layer.
        let is_grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/grpc"));
        if !is_grpc {
            let response = self.inner.call(request);
            return Box::pin(async move {
                Ok(response.await?.map(|inner| GrpcBody { inner, call: None }))
            });
        }
        let (service, method) = known_method(request.uri().path());
        let span = tracing::info_span!(
            target: "herald::grpc",
            "grpc.server",
            otel.name = %format!("{service}/{method}"),
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            herald.tenant.id = Empty,
        );
        crate::trace::continue_from(&span, request.headers());
        let call = Call {
            metrics: self.metrics.clone(),
            service,
            method,
            started: Instant::now(),
            code: None,
            span: span.clone(),
        };
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let mut call = call;
                let response = response.await?;
                // A call that fails at once answers with its status in the
                // headers ("trailers-only"); others end with trailers.
                call.code = grpc_status(response.headers());
                Ok(response.map(|inner| GrpcBody {
                    inner,
                    call: Some(call),
                }))
            }
            .instrument(span),
        )
    }
}

/// One gRPC call until its response body ends.
#[derive(Debug)]
struct Call {
    metrics: RequestMetrics,
    service: &'static str,
    method: &'static str,
    started: Instant,
    code: Option<tonic::Code>,
    /// Held so the span ends with the call, not with the handler.
    span: tracing::Span,
}

impl Call {
    fn finish(self, code: tonic::Code) {
        let label = code_label(code);
        self.span.record("rpc.grpc.status_code", code as i32);
        if is_server_fault(code) {
            self.span.record("otel.status_code", "ERROR");
        }
        let method = GrpcMethodLabels {
            service: self.service,
            method: self.method,
        };
        self.metrics
            .grpc_duration
            .get_or_create(&method)
            .observe(self.started.elapsed().as_secs_f64());
        self.metrics
            .grpc_requests
            .get_or_create(&GrpcLabels {
                service: self.service,
                method: self.method,
                code: label,
            })
            .inc();
    }
}

pin_project_lite::pin_project! {
    /// A gRPC response body that records the call when it ends (or is
    /// dropped: the client went away).
    pub struct GrpcBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }

    impl<B> PinnedDrop for GrpcBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(call) = this.project().call.take() {
                let code = call.code.unwrap_or(tonic::Code::Cancelled);
                call.finish(code);
            }
        }
    }
}

impl<B: Body> Body for GrpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(context);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(trailers), Some(call)) = (frame.trailers_ref(), this.call.as_mut()) {
                    call.code = grpc_status(trailers).or(call.code);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = this.call.take() {
                    call.finish(tonic::Code::Internal);
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = this.call.take() {
                    let code = call.code.unwrap_or(tonic::Code::Unknown);
                    call.finish(code);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .map(|value| tonic::Code::from_bytes(value.as_bytes()))
}

/// Codes that say the server, not the caller, is at fault.
fn is_server_fault(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unknown
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
            | tonic::Code::Unimplemented
            | tonic::Code::DeadlineExceeded
    )
}

fn code_label(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "Canceled",
        tonic::Code::Unknown => "Unknown",
        tonic::Code::InvalidArgument => "InvalidArgument",
        tonic::Code::DeadlineExceeded => "DeadlineExceeded",
        tonic::Code::NotFound => "NotFound",
        tonic::Code::AlreadyExists => "AlreadyExists",
        tonic::Code::PermissionDenied => "PermissionDenied",
        tonic::Code::ResourceExhausted => "ResourceExhausted",
        tonic::Code::FailedPrecondition => "FailedPrecondition",
        tonic::Code::Aborted => "Aborted",
        tonic::Code::OutOfRange => "OutOfRange",
        tonic::Code::Unimplemented => "Unimplemented",
        tonic::Code::Internal => "Internal",
        tonic::Code::Unavailable => "Unavailable",
        tonic::Code::DataLoss => "DataLoss",
        tonic::Code::Unauthenticated => "Unauthenticated",
    }
}

/// Every `package.Service/Method` Herald's servers answer (its own API,
/// gRPC health and reflection), with its service and method names.
static KNOWN_METHODS: LazyLock<HashMap<String, (&'static str, &'static str)>> =
    LazyLock::new(|| {
        let sets = [
            herald_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let mut known = HashMap::new();
        for encoded in sets {
            // These are compiled in; one that does not decode adds no names and
            // its calls count as `unknown`.
            let Ok(set) = prost_types::FileDescriptorSet::decode(encoded) else {
                continue;
            };
            for file in set.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let service_name =
                        leak(format!("{package}.{}", service.name.unwrap_or_default()));
                    for method in service.method {
                        let method_name = leak(method.name.unwrap_or_default());
                        known.insert(
                            format!("{service_name}/{method_name}"),
                            (service_name, method_name),
                        );
                    }
                }
            }
        }
        known
    });

/// The names live as long as the process, like the set that holds them;
/// they are made once, from the compiled-in descriptors.
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

/// `(service, method)` of a gRPC path, or `("unknown", "unknown")` for a
/// method Herald does not serve.
fn known_method(path: &str) -> (&'static str, &'static str) {
    KNOWN_METHODS
        .get(path.strip_prefix('/').unwrap_or(path))
        .copied()
        .unwrap_or(("unknown", "unknown"))
}

/// Marks an HTTP answer `X-Content-Type-Options: nosniff`, so no browser
/// runs or renders a body as a type Herald did not name. Every HTTP router
/// applies it last: `.layer(axum::middleware::map_response(no_sniff))`.
pub async fn no_sniff(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_grpc_methods_become_labels() {
        assert_eq!(
            known_method("/herald.v1.ConfigService/CreateEndpoint"),
            ("herald.v1.ConfigService", "CreateEndpoint")
        );
        assert_eq!(
            known_method("/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health", "Check")
        );
        assert_eq!(
            known_method("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            (
                "grpc.reflection.v1.ServerReflection",
                "ServerReflectionInfo"
            )
        );
        for invented in [
            "/herald.v1.ConfigService/Nope",
            "/x.Y/Z",
            "/",
            "",
            "/herald.v1.ConfigService",
        ] {
            assert_eq!(known_method(invented), ("unknown", "unknown"), "{invented}");
        }
    }

    #[test]
    fn invented_http_methods_share_one_label() {
        assert_eq!(method_label(&http::Method::POST), "POST");
        let invented = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented), "other");
    }
}
