//! API errors: one enum that every layer returns and that renders as a `meta/v1 Status` with the
//! HTTP code and reason Kubernetes uses, plus field errors for 422 Invalid.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

use crate::store::StoreError;

/// What a Status names: the resource (plural), its group and the object name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub group: String,
    /// Plural resource for NotFound/AlreadyExists/Conflict, Kind for Invalid.
    pub kind: String,
    pub name: String,
}

/// A failed API request, as Kubernetes reports it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ApiError {
    /// 400
    #[error("{message}")]
    BadRequest { message: String },
    /// 401
    #[error("{message}")]
    Unauthorized { message: String },
    /// 403
    #[error("{message}")]
    Forbidden { message: String, subject: Subject },
    /// 404
    #[error("{message}")]
    NotFound {
        message: String,
        subject: Option<Subject>,
    },
    /// 405
    #[error("{message}")]
    MethodNotAllowed { message: String },
    /// 406
    #[error("{message}")]
    NotAcceptable { message: String },
    /// 409 AlreadyExists
    #[error("{message}")]
    AlreadyExists { message: String, subject: Subject },
    /// 409 Conflict
    #[error("{message}")]
    Conflict { message: String, subject: Subject },
    /// 410
    #[error("{message}")]
    Gone { message: String },
    /// 410 Expired (a list continue token too old to read at its revision)
    #[error("{message}")]
    Expired { message: String },
    /// 409 Conflict of a server-side apply: one `(field, message)` cause per conflicting field
    /// (`FieldManagerConflict`)
    #[error("{message}")]
    ApplyConflict {
        message: String,
        causes: Vec<(String, String)>,
    },
    /// 415
    #[error("{message}")]
    UnsupportedMediaType { message: String },
    /// 422
    #[error("{message}")]
    Invalid {
        message: String,
        subject: Subject,
        causes: Vec<FieldError>,
    },
    /// 500
    #[error("{message}")]
    Internal { message: String },
}

/// Renders `group.resource` the way Kubernetes names a resource in messages.
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    /// `pods "x" not found`
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError::NotFound {
            message: format!("{} \"{name}\" not found", qualified(group, resource)),
            subject: Some(Subject {
                group: group.into(),
                kind: resource.into(),
                name: name.into(),
            }),
        }
    }

    /// `the server could not find the requested resource`
    pub fn no_route() -> Self {
        ApiError::NotFound {
            message: "the server could not find the requested resource".into(),
            subject: None,
        }
    }

    /// `pods "x" already exists`
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError::AlreadyExists {
            message: format!("{} \"{name}\" already exists", qualified(group, resource)),
            subject: Subject {
                group: group.into(),
                kind: resource.into(),
                name: name.into(),
            },
        }
    }

    /// The optimistic-concurrency conflict (stale resourceVersion).
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict_with(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `Operation cannot be fulfilled on pods "x": <why>`
    pub fn conflict_with(group: &str, resource: &str, name: &str, why: &str) -> Self {
        ApiError::Conflict {
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, resource)
            ),
            subject: Subject {
                group: group.into(),
                kind: resource.into(),
                name: name.into(),
            },
        }
    }

    /// `Pod "x" is invalid: spec.containers[0].image: Required value`
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<FieldError>) -> Self {
        let list = match causes.as_slice() {
            [one] => one.to_string(),
            many => {
                let parts: Vec<String> = many.iter().map(ToString::to_string).collect();
                format!("[{}]", parts.join(", "))
            }
        };
        ApiError::Invalid {
            message: format!("{kind} \"{name}\" is invalid: {list}"),
            subject: Subject {
                group: group.into(),
                kind: kind.into(),
                name: name.into(),
            },
            causes,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::Internal {
            message: message.into(),
        }
    }

    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::Gone {
            message: message.into(),
        }
    }

    pub fn unauthorized() -> Self {
        ApiError::Unauthorized {
            message: "Unauthorized".into(),
        }
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::MethodNotAllowed {
            message: message.into(),
        }
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::UnsupportedMediaType {
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type:?})"
            ),
        }
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized { .. } => 401,
            ApiError::Forbidden { .. } => 403,
            ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::NotAcceptable { .. } => 406,
            ApiError::AlreadyExists { .. }
            | ApiError::Conflict { .. }
            | ApiError::ApplyConflict { .. } => 409,
            ApiError::Gone { .. } | ApiError::Expired { .. } => 410,
            ApiError::UnsupportedMediaType { .. } => 415,
            ApiError::Invalid { .. } => 422,
            ApiError::Internal { .. } => 500,
        }
    }

    /// The Status `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "BadRequest",
            ApiError::Unauthorized { .. } => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::NotFound { .. } => "NotFound",
            ApiError::MethodNotAllowed { .. } => "MethodNotAllowed",
            ApiError::NotAcceptable { .. } => "NotAcceptable",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::Gone { .. } => "Gone",
            ApiError::Expired { .. } => "Expired",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Internal { .. } => "InternalError",
        }
    }

    /// The `meta/v1 Status` body.
    pub fn status(&self) -> Status {
        let subject = match self {
            ApiError::Forbidden { subject, .. }
            | ApiError::AlreadyExists { subject, .. }
            | ApiError::Conflict { subject, .. } => Some(subject),
            ApiError::NotFound { subject, .. } => subject.as_ref(),
            ApiError::Invalid { subject, .. } => Some(subject),
            _ => None,
        };
        let causes = match self {
            ApiError::Invalid { causes, .. } => {
                Some(causes.iter().map(FieldError::cause).collect())
            }
            _ => None,
        };
        let mut details = subject.map(|s| StatusDetails {
            name: Some(s.name.clone()),
            group: (!s.group.is_empty()).then(|| s.group.clone()),
            kind: Some(s.kind.clone()),
            causes,
            ..Default::default()
        });
        if let ApiError::ApplyConflict { causes, .. } = self {
            details = Some(StatusDetails {
                causes: Some(
                    causes
                        .iter()
                        .map(|(field, message)| StatusCause {
                            field: Some(field.clone()),
                            message: Some(message.clone()),
                            reason: Some("FieldManagerConflict".into()),
                        })
                        .collect(),
                ),
                ..Default::default()
            });
        }
        Status {
            code: Some(i32::from(self.code())),
            details,
            message: Some(self.to_string()),
            reason: Some(self.reason().into()),
            status: Some("Failure".into()),
            ..Default::default()
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Compacted { requested, oldest } => {
                ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// The kind of one field error (Kubernetes' `field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    Duplicate,
    NotSupported,
    Forbidden,
    TooLong,
}

/// One invalid field: `spec.containers[0].image: Required value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub kind: FieldErrorKind,
    /// The offending value, rendered as Kubernetes does (quoted strings).
    pub value: Option<String>,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Required,
            value: None,
            detail: String::new(),
        }
    }

    pub fn invalid(field: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Invalid,
            value: Some(format!("{value:?}")),
            detail: detail.into(),
        }
    }

    /// An invalid non-string value (rendered bare, e.g. a number).
    pub fn invalid_raw(
        field: impl Into<String>,
        value: impl fmt::Display,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Invalid,
            value: Some(value.to_string()),
            detail: detail.into(),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &str) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Duplicate,
            value: Some(format!("{value:?}")),
            detail: String::new(),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::NotSupported,
            value: Some(format!("{value:?}")),
            detail: format!("supported values: {}", list.join(", ")),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Forbidden,
            value: None,
            detail: detail.into(),
        }
    }

    /// The cause `reason` Kubernetes reports.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
        }
    }

    /// The message without the field path: `Invalid value: "x": detail`.
    pub fn body(&self) -> String {
        let head = match self.kind {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
        };
        let mut s = head.to_string();
        if let Some(v) = &self.value {
            s.push_str(": ");
            s.push_str(v);
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    fn cause(&self) -> StatusCause {
        StatusCause {
            field: Some(self.field.clone()),
            message: Some(self.body()),
            reason: Some(self.reason().into()),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_reads_like_kubernetes() {
        let s = ApiError::not_found("", "pods", "x").status();
        assert_eq!(s.code, Some(404));
        assert_eq!(s.reason.as_deref(), Some("NotFound"));
        assert_eq!(s.message.as_deref(), Some("pods \"x\" not found"));
        let d = s.details.unwrap();
        assert_eq!(d.kind.as_deref(), Some("pods"));
        assert_eq!(d.group, None);
        let json = serde_json::to_value(
            ApiError::not_found("coordination.k8s.io", "leases", "l").status(),
        )
        .unwrap();
        assert_eq!(json["kind"], "Status");
        assert_eq!(json["apiVersion"], "v1");
        assert_eq!(json["status"], "Failure");
        assert_eq!(
            json["message"],
            "leases.coordination.k8s.io \"l\" not found"
        );
        assert_eq!(json["details"]["group"], "coordination.k8s.io");
    }

    #[test]
    fn conflict_and_exists_messages() {
        let e = ApiError::conflict("", "pods", "x");
        assert_eq!(e.code(), 409);
        assert_eq!(e.reason(), "Conflict");
        assert_eq!(
            e.to_string(),
            "Operation cannot be fulfilled on pods \"x\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let e = ApiError::already_exists("", "pods", "x");
        assert_eq!((e.code(), e.reason()), (409, "AlreadyExists"));
        assert_eq!(e.to_string(), "pods \"x\" already exists");
    }

    #[test]
    fn invalid_lists_causes_with_field_paths() {
        let one = ApiError::invalid(
            "",
            "Pod",
            "x",
            vec![FieldError::required("spec.containers[0].image")],
        );
        assert_eq!(
            one.to_string(),
            "Pod \"x\" is invalid: spec.containers[0].image: Required value"
        );
        let two = ApiError::invalid(
            "",
            "Pod",
            "x",
            vec![
                FieldError::required("spec.containers[0].image"),
                FieldError::duplicate("spec.containers[1].name", "a"),
            ],
        );
        assert_eq!(
            two.to_string(),
            "Pod \"x\" is invalid: [spec.containers[0].image: Required value, spec.containers[1].name: Duplicate value: \"a\"]"
        );
        let s = two.status();
        assert_eq!(s.code, Some(422));
        let causes = s.details.unwrap().causes.unwrap();
        assert_eq!(causes[1].field.as_deref(), Some("spec.containers[1].name"));
        assert_eq!(causes[1].reason.as_deref(), Some("FieldValueDuplicate"));
        assert_eq!(causes[1].message.as_deref(), Some("Duplicate value: \"a\""));
    }

    #[test]
    fn compacted_store_error_is_gone() {
        let e: ApiError = StoreError::Compacted {
            requested: 3,
            oldest: 10,
        }
        .into();
        assert_eq!((e.code(), e.reason()), (410, "Gone"));
    }
}
