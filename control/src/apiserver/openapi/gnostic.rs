//! The subset of gnostic's `openapi.v2` protobuf messages (OpenAPIv2.proto) that the Swagger 2.0
//! document needs, written as prost structs with gnostic's field numbers, and the conversion from
//! the JSON document. kubectl 1.27/1.28 fetch `/openapi/v2` in this form.

use serde_json::Value;

/// `openapi.v2.Document`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Document {
    #[prost(string, tag = "1")]
    pub swagger: String,
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
    #[prost(message, repeated, tag = "16")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(string, tag = "3")]
    pub description: String,
}

/// `openapi.v2.Any`: gnostic keeps extension values as YAML text.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    #[prost(string, tag = "2")]
    pub yaml: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedAny {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Paths {
    #[prost(message, repeated, tag = "1")]
    pub vendor_extension: Vec<NamedAny>,
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedPathItem {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PathItem {
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
    #[prost(message, repeated, tag = "9")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "10")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Operation {
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "5")]
    pub operation_id: String,
    #[prost(string, repeated, tag = "6")]
    pub produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    #[prost(string, repeated, tag = "10")]
    pub schemes: Vec<String>,
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `ParametersItem` (only its `parameter` arm is used).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ParametersItem {
    #[prost(message, optional, tag = "1")]
    pub parameter: Option<Parameter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Parameter {
    #[prost(oneof = "ParameterKind", tags = "1, 2")]
    pub oneof: Option<ParameterKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParameterKind {
    #[prost(message, boxed, tag = "1")]
    Body(Box<BodyParameter>),
    #[prost(message, tag = "2")]
    NonBody(NonBodyParameter),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BodyParameter {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub r#in: String,
    #[prost(bool, tag = "4")]
    pub required: bool,
    #[prost(message, optional, tag = "5")]
    pub schema: Option<Schema>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NonBodyParameter {
    #[prost(oneof = "NonBodyKind", tags = "3, 4")]
    pub oneof: Option<NonBodyKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum NonBodyKind {
    #[prost(message, tag = "3")]
    Query(QueryParameterSubSchema),
    #[prost(message, tag = "4")]
    Path(PathParameterSubSchema),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryParameterSubSchema {
    #[prost(bool, tag = "1")]
    pub required: bool,
    #[prost(string, tag = "2")]
    pub r#in: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "6")]
    pub r#type: String,
    #[prost(bool, tag = "20")]
    pub unique_items: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PathParameterSubSchema {
    #[prost(bool, tag = "1")]
    pub required: bool,
    #[prost(string, tag = "2")]
    pub r#in: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "5")]
    pub r#type: String,
    #[prost(bool, tag = "19")]
    pub unique_items: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Responses {
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedResponseValue {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<ResponseValue>,
}

/// `ResponseValue` (only its `response` arm is used).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseValue {
    #[prost(message, optional, tag = "1")]
    pub response: Option<Response>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(message, optional, tag = "2")]
    pub schema: Option<SchemaItem>,
}

/// `SchemaItem` (only its `schema` arm is used).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaItem {
    #[prost(message, optional, tag = "1")]
    pub schema: Option<Schema>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Definitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedSchema {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Schema>,
}

/// `openapi.v2.Schema` (the keywords Kubernetes' definitions use).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Schema {
    #[prost(string, tag = "1")]
    pub r#ref: String,
    #[prost(string, tag = "2")]
    pub format: String,
    #[prost(string, tag = "3")]
    pub title: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    #[prost(message, optional, tag = "21")]
    pub additional_properties: Option<AdditionalPropertiesItem>,
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AdditionalPropertiesItem {
    #[prost(oneof = "AdditionalProperties", tags = "1, 2")]
    pub oneof: Option<AdditionalProperties>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AdditionalProperties {
    #[prost(message, boxed, tag = "1")]
    Schema(Box<Schema>),
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Properties {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

// ---- conversion from the JSON document

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn yaml(v: &Value) -> Any {
    Any {
        yaml: serde_yaml::to_string(v).unwrap_or_default(),
    }
}

/// The `x-` keys of a JSON object as gnostic vendor extensions.
fn extensions(v: &Value) -> Vec<NamedAny> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.starts_with("x-"))
                .map(|(k, v)| NamedAny {
                    name: k.clone(),
                    value: Some(yaml(v)),
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Schema {
    pub fn from_json(v: &Value) -> Schema {
        let additional = match &v["additionalProperties"] {
            Value::Bool(b) => Some(AdditionalProperties::Boolean(*b)),
            o @ Value::Object(_) => {
                Some(AdditionalProperties::Schema(Box::new(Schema::from_json(o))))
            }
            _ => None,
        };
        let named = |props: &Value| -> Vec<NamedSchema> {
            props
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| NamedSchema {
                            name: k.clone(),
                            value: Some(Schema::from_json(v)),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        Schema {
            r#ref: s(&v["$ref"]),
            format: s(&v["format"]),
            title: s(&v["title"]),
            description: s(&v["description"]),
            required: strings(&v["required"]),
            r#enum: v["enum"]
                .as_array()
                .map(|a| a.iter().map(yaml).collect())
                .unwrap_or_default(),
            additional_properties: additional.map(|a| AdditionalPropertiesItem { oneof: Some(a) }),
            r#type: v["type"].as_str().map(|t| TypeItem {
                value: vec![t.to_string()],
            }),
            items: v.get("items").filter(|i| i.is_object()).map(|i| ItemsItem {
                schema: vec![Schema::from_json(i)],
            }),
            all_of: v["allOf"]
                .as_array()
                .map(|a| a.iter().map(Schema::from_json).collect())
                .unwrap_or_default(),
            properties: v.get("properties").map(|p| Properties {
                additional_properties: named(p),
            }),
            read_only: v["readOnly"].as_bool().unwrap_or(false),
            vendor_extension: extensions(v),
        }
    }
}

fn parameter(p: &Value) -> ParametersItem {
    let kind = match p["in"].as_str() {
        Some("body") => ParameterKind::Body(Box::new(BodyParameter {
            description: s(&p["description"]),
            name: s(&p["name"]),
            r#in: "body".into(),
            required: p["required"].as_bool().unwrap_or(false),
            schema: Some(Schema::from_json(&p["schema"])),
        })),
        Some("path") => ParameterKind::NonBody(NonBodyParameter {
            oneof: Some(NonBodyKind::Path(PathParameterSubSchema {
                required: true,
                r#in: "path".into(),
                description: s(&p["description"]),
                name: s(&p["name"]),
                r#type: s(&p["type"]),
                unique_items: p["uniqueItems"].as_bool().unwrap_or(false),
            })),
        }),
        _ => ParameterKind::NonBody(NonBodyParameter {
            oneof: Some(NonBodyKind::Query(QueryParameterSubSchema {
                required: p["required"].as_bool().unwrap_or(false),
                r#in: "query".into(),
                description: s(&p["description"]),
                name: s(&p["name"]),
                r#type: s(&p["type"]),
                unique_items: p["uniqueItems"].as_bool().unwrap_or(false),
            })),
        }),
    };
    ParametersItem {
        parameter: Some(Parameter { oneof: Some(kind) }),
    }
}

fn parameters(v: &Value) -> Vec<ParametersItem> {
    v.as_array()
        .map(|a| a.iter().map(parameter).collect())
        .unwrap_or_default()
}

fn operation(v: &Value) -> Option<Operation> {
    let o = v.as_object()?;
    let responses = o
        .get("responses")
        .and_then(Value::as_object)
        .map(|r| Responses {
            response_code: r
                .iter()
                .map(|(code, resp)| NamedResponseValue {
                    name: code.clone(),
                    value: Some(ResponseValue {
                        response: Some(Response {
                            description: s(&resp["description"]),
                            schema: resp.get("schema").map(|sc| SchemaItem {
                                schema: Some(Schema::from_json(sc)),
                            }),
                        }),
                    }),
                })
                .collect(),
        });
    Some(Operation {
        tags: strings(&v["tags"]),
        description: s(&v["description"]),
        operation_id: s(&v["operationId"]),
        produces: strings(&v["produces"]),
        consumes: strings(&v["consumes"]),
        parameters: parameters(&v["parameters"]),
        responses,
        schemes: strings(&v["schemes"]),
        vendor_extension: extensions(v),
    })
}

impl Document {
    /// The protobuf form of a Swagger 2.0 JSON document.
    pub fn from_json(doc: &Value) -> Document {
        let paths = doc["paths"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(name, item)| NamedPathItem {
                        name: name.clone(),
                        value: Some(PathItem {
                            get: operation(&item["get"]),
                            put: operation(&item["put"]),
                            post: operation(&item["post"]),
                            delete: operation(&item["delete"]),
                            patch: operation(&item["patch"]),
                            parameters: parameters(&item["parameters"]),
                            vendor_extension: extensions(item),
                        }),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let definitions = doc["definitions"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(name, v)| NamedSchema {
                        name: name.clone(),
                        value: Some(Schema::from_json(v)),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Document {
            swagger: s(&doc["swagger"]),
            info: Some(Info {
                title: s(&doc["info"]["title"]),
                version: s(&doc["info"]["version"]),
                description: s(&doc["info"]["description"]),
            }),
            paths: Some(Paths {
                vendor_extension: Vec::new(),
                path: paths,
            }),
            definitions: Some(Definitions {
                additional_properties: definitions,
            }),
            vendor_extension: Vec::new(),
        }
    }
}
