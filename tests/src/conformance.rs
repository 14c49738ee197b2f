//! Checks success bodies against the schemas of Scaleway's OpenAPI specs (`tests/spec/`, copies
//! of `shared/reference/scaleway-functions-v1alpha2.openapi.yaml` and
//! `scaleway-functions-v1beta1.openapi.yml`, and for containers v1beta1, which has none published,
//! one written from the reference's part B.6; containers v1 against
//! `scaleway-containers-v1.openapi.yml`).
//!
//! [`Tenant::send`](crate::Tenant::send) runs every 200 answer of the suite through
//! [`check_response`], so each test is also a conformance test. The check is strict where the
//! spec is loose: every property the schema lists must be present and no other may appear.
//!
//! Two documented departures, both asked for by the reference (section A.3) or the issues:
//! - `google.protobuf.Struct` (cron `args`) is a generator artefact; on the wire it is a plain
//!   JSON object, so any object is accepted.
//! - `Function.Runtime` lists only the 2019 names; newer ones (`node20`, `python311`...) are
//!   accepted as long as they are strings.
//! - v1beta1 `Cron.args` says each value is an object; real traffic has `{"test":"scw"}`
//!   (reference B.3), so any JSON object is accepted, as for v1alpha2's Struct.
//!
//! Properties of an `x-one-of` group (a v1beta1 `Token`'s `function_id` | `namespace_id`) may
//! be left out, as the real server leaves out the unused one, but at most one is present.

use serde_json::Value;
use std::sync::OnceLock;

const SCHEMAS: &str = "#/components/schemas/";

/// A spec the suite checks answers against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// Scaleway Functions v1alpha2.
    FunctionsV1alpha2,
    /// Scaleway Functions v1beta1.
    FunctionsV1beta1,
    /// Scaleway Containers v1beta1, for which Scaleway publishes no spec: checked against
    /// `tests/spec/scaleway-containers-v1beta1.from-reference-b6.yml`, written from the
    /// reference's part B.6.
    ContainersV1beta1,
    /// Scaleway Containers v1.
    ContainersV1,
}

impl Spec {
    /// Its path prefix up to the region.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::FunctionsV1alpha2 => "/functions/v1alpha2/regions/{region}",
            Self::FunctionsV1beta1 => "/functions/v1beta1/regions/{region}",
            Self::ContainersV1beta1 => "/containers/v1beta1/regions/{region}",
            Self::ContainersV1 => "/containers/v1/regions/{region}",
        }
    }

    fn document(self) -> &'static Value {
        static V1ALPHA2: OnceLock<Value> = OnceLock::new();
        static V1BETA1: OnceLock<Value> = OnceLock::new();
        static CONTAINERS_V1BETA1: OnceLock<Value> = OnceLock::new();
        static CONTAINERS_V1: OnceLock<Value> = OnceLock::new();
        let (cell, text) = match self {
            Self::FunctionsV1alpha2 => (
                &V1ALPHA2,
                include_str!("../spec/scaleway-functions-v1alpha2.openapi.yaml"),
            ),
            Self::FunctionsV1beta1 => (&V1BETA1, include_str!("../spec/scaleway-functions-v1beta1.openapi.yml")),
            Self::ContainersV1beta1 => (
                &CONTAINERS_V1BETA1,
                include_str!("../spec/scaleway-containers-v1beta1.from-reference-b6.yml"),
            ),
            Self::ContainersV1 => (
                &CONTAINERS_V1,
                include_str!("../spec/scaleway-containers-v1.openapi.yml"),
            ),
        };
        cell.get_or_init(|| serde_yaml_ng::from_str(text).expect("the spec parses"))
    }
}

/// Properties whose value may be any JSON object, whatever their schema says: (schema, property).
const ANY_OBJECT: [(&str, &str); 2] = [
    ("scaleway.functions.v1beta1.Cron", "args"),
    ("scaleway.containers.v1beta1.Cron", "args"),
];

/// Routes real clients call that a spec does not list, as (the API that answers them, method,
/// path, the spec that holds the schema of their answer, that schema): the nested lists of
/// functions and containers that the Serverless plugin calls in every version, and the
/// routes of v1alpha2 that v1beta1's plugin releases (0.3.2 to 0.5.0) still call there,
/// `/issue-jwt` and `/<kind>s/{id}/logs`, which answer as v1alpha2's `/jwt/issue` and `/logs`.
const EXTRA_ROUTES: [(Spec, &str, &str, Spec, &str); 8] = [
    (
        Spec::FunctionsV1alpha2,
        "get",
        "/namespaces/{namespace_id}/functions",
        Spec::FunctionsV1alpha2,
        "scaleway.functions.v1alpha2.ListFunctionsResponse",
    ),
    (
        Spec::FunctionsV1alpha2,
        "get",
        "/namespaces/{namespace_id}/containers",
        Spec::FunctionsV1alpha2,
        "scaleway.functions.v1alpha2.ListContainersResponse",
    ),
    (
        Spec::FunctionsV1beta1,
        "get",
        "/namespaces/{namespace_id}/functions",
        Spec::FunctionsV1beta1,
        "scaleway.functions.v1beta1.ListFunctionsResponse",
    ),
    (
        Spec::ContainersV1beta1,
        "get",
        "/namespaces/{namespace_id}/containers",
        Spec::ContainersV1beta1,
        "scaleway.containers.v1beta1.ListContainersResponse",
    ),
    (
        Spec::FunctionsV1beta1,
        "get",
        "/issue-jwt",
        Spec::FunctionsV1alpha2,
        "scaleway.functions.v1alpha2.Token",
    ),
    (
        Spec::ContainersV1beta1,
        "get",
        "/issue-jwt",
        Spec::FunctionsV1alpha2,
        "scaleway.functions.v1alpha2.Token",
    ),
    (
        Spec::FunctionsV1beta1,
        "get",
        "/functions/{function_id}/logs",
        Spec::FunctionsV1alpha2,
        "scaleway.functions.v1alpha2.ListLogsResponse",
    ),
    (
        Spec::ContainersV1beta1,
        "get",
        "/containers/{container_id}/logs",
        Spec::FunctionsV1alpha2,
        "scaleway.functions.v1alpha2.ListLogsResponse",
    ),
];

/// Returns the name of the schema of the 200 answer to `method path` in `spec`, where `path`
/// follows the region (`/functions/{id}`), or `None` for a route the spec does not describe.
pub fn response_schema(spec: Spec, method: &str, path: &str) -> Option<String> {
    schema_of(spec, method, path).map(|(_, schema)| schema)
}

/// Asserts that `spec` describes the 200 answer of each of `routes` (method, path), so that the
/// answers of a suite's routes are checked against it.
pub fn assert_describes(spec: Spec, routes: &[(&str, &str)]) {
    for (method, path) in routes {
        assert!(response_schema(spec, method, path).is_some(), "{path}");
    }
}

/// Returns the spec that holds the schema of the 200 answer to `method path` in `spec`, and
/// the schema's name.
fn schema_of(spec: Spec, method: &str, path: &str) -> Option<(Spec, String)> {
    let method = method.to_ascii_lowercase();
    let path = path.split('?').next().unwrap_or_default();
    let matches = |template: &str| {
        let template: Vec<&str> = template.trim_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
        template.len() == actual.len()
            && template
                .iter()
                .zip(&actual)
                .all(|(t, a)| (t.starts_with('{') && !a.is_empty()) || t == a)
    };
    for (api, extra_method, template, holder, schema) in EXTRA_ROUTES {
        if spec == api && extra_method == method && matches(template) {
            return Some((holder, schema.to_owned()));
        }
    }
    let paths = spec.document()["paths"].as_object()?;
    paths.iter().find_map(|(template, operations)| {
        let template = template.strip_prefix(spec.prefix())?;
        if !matches(template) {
            return None;
        }
        let reference =
            operations[&method]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].as_str()?;
        reference.strip_prefix(SCHEMAS).map(|schema| (spec, schema.to_owned()))
    })
}

/// Checks `body`, the 200 answer to `method path`, against `spec` (or, for a route it does
/// not list but real clients call, the spec its answer follows). Routes no spec describes
/// pass.
pub fn check_response(spec: Spec, method: &str, path: &str, body: &Value) -> Result<(), String> {
    match schema_of(spec, method, path) {
        Some((holder, schema)) => check(holder, &schema, body),
        None => Ok(()),
    }
}

/// Checks `value` against the named schema of `spec`.
pub fn check(spec: Spec, schema: &str, value: &Value) -> Result<(), String> {
    let definition = &spec.document()["components"]["schemas"][schema];
    if definition.is_null() {
        return Err(format!("the spec has no schema `{schema}`"));
    }
    // Through its reference, so that the schema's name is known below.
    let reference = serde_json::json!({ "$ref": format!("{SCHEMAS}{schema}") });
    check_value(spec, &reference, value, schema)
}

fn resolve(spec: Spec, schema: &Value) -> (&Value, Option<&str>) {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix(SCHEMAS)) {
        Some(name) => (&spec.document()["components"]["schemas"][name], Some(name)),
        None => (schema, None),
    }
}

fn check_value(spec: Spec, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let (schema, name) = resolve(spec, schema);
    match name {
        Some("google.protobuf.Struct") => {
            return if value.is_object() {
                Ok(())
            } else {
                Err(format!("{at}: expected a JSON object, got {value}"))
            };
        }
        Some("scaleway.functions.v1alpha2.Function.Runtime") => {
            return if value.is_string() {
                Ok(())
            } else {
                Err(format!("{at}: expected a runtime name, got {value}"))
            };
        }
        _ => {}
    }
    if value.is_null() {
        return if schema["nullable"] == true {
            Ok(())
        } else {
            Err(format!("{at}: null where the spec does not allow it"))
        };
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {}", Value::Array(allowed.clone())));
    }
    match schema["type"].as_str() {
        Some("string") if !value.is_string() => Err(format!("{at}: expected a string, got {value}")),
        Some("number") if !value.is_number() => Err(format!("{at}: expected a number, got {value}")),
        Some("boolean") if !value.is_boolean() => Err(format!("{at}: expected a boolean, got {value}")),
        Some("array") => {
            let items = value
                .as_array()
                .ok_or_else(|| format!("{at}: expected an array, got {value}"))?;
            items
                .iter()
                .enumerate()
                .try_for_each(|(index, item)| check_value(spec, &schema["items"], item, &format!("{at}[{index}]")))
        }
        Some("object") => check_object(spec, schema, name, value, at),
        _ => Ok(()),
    }
}

fn check_object(spec: Spec, schema: &Value, name: Option<&str>, value: &Value, at: &str) -> Result<(), String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("{at}: expected an object, got {value}"))?;
    let properties = schema["properties"].as_object().cloned().unwrap_or_default();
    // `<key>`-style property names are the generator's way of writing a map's value schema.
    let placeholder = properties.iter().find(|(key, _)| key.starts_with('<'));
    if let Some((_, values)) = placeholder {
        return object
            .iter()
            .try_for_each(|(key, item)| check_value(spec, values, item, &format!("{at}.{key}")));
    }
    if let Some(unknown) = object.keys().find(|key| !properties.contains_key(*key)) {
        return Err(format!("{at}: `{unknown}` is not a property of the spec's schema"));
    }
    let mut groups_seen: Vec<&str> = Vec::new();
    for (key, property) in &properties {
        let group = property["x-one-of"].as_str();
        let Some(item) = object.get(key) else {
            if group.is_some() {
                continue;
            }
            return Err(format!("{at}: `{key}` is missing"));
        };
        if let Some(group) = group {
            if groups_seen.contains(&group) {
                return Err(format!("{at}: more than one property of the one-of group `{group}`"));
            }
            groups_seen.push(group);
        }
        if name.is_some_and(|name| ANY_OBJECT.contains(&(name, key.as_str()))) {
            if !item.is_object() {
                return Err(format!("{at}.{key}: expected a JSON object, got {item}"));
            }
            continue;
        }
        check_value(spec, property, item, &format!("{at}.{key}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn function() -> Value {
        json!({"id": "i", "name": "n", "namespace_id": "ns", "status": "created",
               "environment_variables": {"A": "1"}, "min_scale": 0, "max_scale": 20,
               "runtime": "node20", "memory_limit": 256, "cpu_limit": 140, "endpoint": "e",
               "timeout": 300000, "handler": "handler.handle", "error_message": "",
               "privacy": "public", "description": "", "region": "fr-par"})
    }

    #[test]
    fn routes_map_to_their_response_schemas() {
        let schema =
            |method: &str, path: &str| response_schema(Spec::FunctionsV1alpha2, method, path).unwrap_or_default();
        assert_eq!(
            schema("GET", "/functions/abc?x=1"),
            "scaleway.functions.v1alpha2.Function"
        );
        assert_eq!(
            schema("GET", "/functions"),
            "scaleway.functions.v1alpha2.ListFunctionsResponse"
        );
        assert_eq!(schema("DELETE", "/crons/x"), "scaleway.functions.v1alpha2.Cron");
        assert_eq!(
            schema("GET", "/runtimes"),
            "scaleway.functions.v1alpha2.ListFunctionRuntimesResponse"
        );
        assert_eq!(
            schema("GET", "/namespaces/x/containers"),
            "scaleway.functions.v1alpha2.ListContainersResponse"
        );
        assert_eq!(response_schema(Spec::FunctionsV1alpha2, "GET", "/nothing/here"), None);
        assert_eq!(
            response_schema(Spec::FunctionsV1beta1, "GET", "/functions/abc").as_deref(),
            Some("scaleway.functions.v1beta1.Function")
        );
    }

    #[test]
    fn bodies_that_break_the_spec_are_refused() {
        let check = |name: &str, value: &Value| check(Spec::FunctionsV1alpha2, name, value);
        let name = "scaleway.functions.v1alpha2.Function";
        check(name, &function()).unwrap();
        let mut extra = function();
        extra["project_id"] = json!("p");
        assert!(check(name, &extra).unwrap_err().contains("project_id"));
        let mut missing = function();
        missing.as_object_mut().unwrap().remove("cpu_limit");
        assert!(check(name, &missing).unwrap_err().contains("cpu_limit"));
        let mut status = function();
        status["status"] = json!("sleeping");
        assert!(check(name, &status).is_err());
        let mut number = function();
        number["timeout"] = json!("300s");
        assert!(check(name, &number).is_err());
        let mut environment = function();
        environment["environment_variables"] = json!({"A": 1});
        assert!(check(name, &environment).is_err());
        let cron =
            json!({"id": "c", "application_id": "a", "schedule": "* * * * *", "args": {"k": [1]}, "status": "ready"});
        check("scaleway.functions.v1alpha2.Cron", &cron).unwrap();
        let cron = json!({"id": "c", "application_id": "a", "schedule": "* * * * *", "args": [1], "status": "ready"});
        assert!(check("scaleway.functions.v1alpha2.Cron", &cron).is_err());
    }

    #[test]
    fn v1beta1_crons_and_tokens_keep_their_documented_departures_only() {
        let check = |name: &str, value: &Value| check(Spec::FunctionsV1beta1, name, value);
        let cron = json!({"id": "c", "function_id": "f", "schedule": "0 0 * * *", "args": {"test": "scw"},
                          "status": "pending", "name": "n"});
        check("scaleway.functions.v1beta1.Cron", &cron).unwrap();
        let mut list = json!({"crons": [cron.clone()], "total_count": 1});
        check("scaleway.functions.v1beta1.ListCronsResponse", &list).unwrap();
        list["crons"][0]["args"] = json!("text");
        assert!(check("scaleway.functions.v1beta1.ListCronsResponse", &list).is_err());
        let mut unnamed = cron;
        unnamed.as_object_mut().unwrap().remove("name");
        assert!(check("scaleway.functions.v1beta1.Cron", &unnamed).is_err());
        let token = json!({"id": "t", "token": "", "function_id": "f", "public_key": "", "status": "ready",
                           "description": "", "expires_at": null});
        check("scaleway.functions.v1beta1.Token", &token).unwrap();
        let mut both = token.clone();
        both["namespace_id"] = json!("n");
        assert!(
            check("scaleway.functions.v1beta1.Token", &both)
                .unwrap_err()
                .contains("one-of")
        );
        let mut status = token;
        status["status"] = json!("pending");
        assert!(check("scaleway.functions.v1beta1.Token", &status).is_err());
    }
}
