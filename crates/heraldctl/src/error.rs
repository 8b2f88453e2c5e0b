use crate::settings::SettingsError;

/// Every way a command fails, each printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The server's answer, with its code and the field it names.
    #[error("{}", describe_status(.0))]
    Status(tonic::Status),
    #[error("cannot reach {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("signature check failed: {0}")]
    Verify(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot render the output: {0}")]
    Output(String),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("recovery job {id} failed: {reason}")]
    JobFailed { id: String, reason: String },
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// A test delivery that did not activate the endpoint, and why.
    #[error("test delivery failed: {0}")]
    TestFailed(String),
}

impl From<tonic::Status> for CtlError {
    fn from(status: tonic::Status) -> CtlError {
        CtlError::Status(status)
    }
}

fn describe_status(status: &tonic::Status) -> String {
    let code = format!("{:?}", status.code());
    let field = status
        .metadata()
        .get(herald_proto::metadata::FIELD)
        .and_then(|value| value.to_str().ok())
        .map(|field| format!(" (field {field})"))
        .unwrap_or_default();
    // The admin token reached a tenant command: say how to act as a tenant.
    let hint = if status
        .metadata()
        .get(herald_proto::metadata::FIELD)
        .and_then(|value| value.to_str().ok())
        == Some(herald_proto::metadata::TENANT)
    {
        "; pass --tenant org_… with the admin token, or use a tenant token (HERALD_TOKEN, which overrides `heraldctl login`; keep the admin token in HERALD_ADMIN_TOKEN)"
    } else {
        ""
    };
    format!("{code}: {}{field}{hint}", status.message())
}
